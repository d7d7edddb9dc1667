"""`bench/results/summary.md` from the suites' JSON results, with the reference figures of
../shared/notes/performance-limits.md beside ours."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# From performance-limits.md (2 cores, same machine kind; read ratios as +/-15%).
LIMITS = {
    "http_client_orjson": 400_000,
    "httpx_json": 174_000,
    "httpx_orjson": 196_000,
    "httpx_orjson_parquet": 133_000,
    "httpx_orjson_parquet_rss_1m_mb": 160,
    "dlt_parquet": 23_000,
    "dlt_default": 5_000,
    "pg_text_copy_empty": 335_000,
    "pg_binary_copy_empty": 760_000,
    "pg_upsert_text_staging": 147_000,
    "pg_upsert_binary_staging": 220_000,
    "pg_executemany_upsert": 107_000,
}


# More growth than this between the smallest and the largest N counts as "grows with N".
GROWTH_TOLERANCE_MB = 30
# What one page_server record takes as an orjson dict (100k records: 64 MB, measured).
DICT_BYTES_PER_RECORD = 670


def _by_name(document: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not document:
        return {}
    return {s["name"]: s for s in document["series"]}


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value < 10:
        return f"{value:.2f}"
    if isinstance(value, float) and value < 100:
        return f"{value:.1f}"
    return f"{round(value):,}"


def _runs(series: Mapping[str, Any]) -> str:
    return "median of 3" if series["repeats"] == 3 else f"{series['repeats']} run(s)"


def _quarters(series: Mapping[str, Any]) -> str:
    values = series["runs"][0].get("step_rss_by_quarter_mb") or []
    return " / ".join(_n(v) for v in values)


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def machine_section(documents: list[Mapping[str, Any]], postgres: str | None) -> list[str]:
    m = documents[0]["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    loads = "; ".join(
        f"{d['suite']} {d['machine'].get('load_avg_at_start')} at the start, "
        f"{d.get('load_avg_at_end')} at the end"
        for d in documents
    )
    lines = [
        f"- Date: {m['date']}; commit `{m['git_commit']}`",
        f"- Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB; {m['platform']}",
        f"- Load average (1, 5, 15 min): {loads}",
        f"- Python {m['python']}; {versions}",
    ]
    if postgres:
        lines.append(f"- PostgreSQL {postgres} (throwaway server, fsync off), SQLite (WAL)")
    return lines


def pages_section(series: dict[str, dict[str, Any]]) -> list[str]:
    header = ["records", "step records/s", "job records/s", "step s", "peak RSS MB"]
    header += ["RSS before run MB", "RSS growth in step MB", "step RSS by quarter MB (run 1)"]
    header += ["Parquet MB", "runs"]
    rows = []
    for name, s in series.items():
        if not name.startswith("pages_"):
            continue
        m = s["median"]
        rows.append(
            [
                _n(m["records"]),
                _n(m["records_per_s"]),
                _n(m["job_records_per_s"]),
                _n(m["step_s"]),
                _n(m["peak_rss_mb"]),
                _n(m["rss_before_run_mb"]),
                _n(m["step_rss_growth_mb"]),
                _quarters(s),
                _n(m["parquet_mb"]),
                _runs(s),
            ]
        )
    return _table(header, rows)


def bare_section(series: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for decoder, limit in (("json", "httpx_json"), ("orjson", "httpx_orjson")):
        s = series.get(f"bare_httpx_{decoder}")
        if s:
            m = s["median"]
            rows.append(
                [
                    f"httpx Client + {decoder}",
                    _n(m["records"]),
                    _n(m["records_per_s"]),
                    _n(LIMITS[limit]),
                    _n(m["peak_rss_mb"]),
                    _runs(s),
                ]
            )
    header = ["loop", "records", "records/s here", "records/s in limits", "peak RSS MB", "runs"]
    return _table(header, rows)


def layers_section(series: dict[str, dict[str, Any]]) -> list[str]:
    s = series.get("layers")
    if not s:
        return []
    m = s["median"]
    labels = {
        "bare": "httpx + orjson loop (reference)",
        "page_loop": "`ServiceResource.iter_pages` (request, paginator, dataPath)",
        "shaped": "+ `RecordShaper.shape` per record",
        "parquet": "+ `TableWriter` (cast to outputSchema, Parquet)",
        "checkpointed": "instead of the line above: checkpoint parts, assembled at the end "
        "(what the step does)",
    }
    rows = [
        [label, _n(m[f"{key}_records_per_s"]), _n(m.get(f"{key}_extra_us_per_record"))]
        for key, label in labels.items()
        if f"{key}_records_per_s" in m
    ]
    head = [f"{_n(m['records'])} records, no Dagster", "records/s", "us/record added"]
    return _table(head, rows)


def for_each_section(series: dict[str, dict[str, Any]]) -> list[str]:
    header = ["items", "parallel", "server delay ms", "mutation", "items/s", "step s"]
    header += ["peak RSS MB", "RSS growth in step MB", "step RSS by quarter MB (run 1)", "runs"]
    rows = []
    for name, s in series.items():
        if not name.startswith("for_each_"):
            continue
        m = s["median"]
        rows.append(
            [
                _n(m["items"]),
                str(m["parallel"]),
                str(m["delay_ms"]),
                "yes" if s["params"].get("mutation") else "no",
                _n(m["items_per_s"]),
                _n(m["step_s"]),
                _n(m["peak_rss_mb"]),
                _n(m["step_rss_growth_mb"]),
                _quarters(s),
                _runs(s),
            ]
        )
    return _table(header, rows)


def persist_section(series: dict[str, dict[str, Any]]) -> list[str]:
    header = ["database", "mode", "rows", "rows/s", "persist step s", "peak RSS MB"]
    header += ["RSS growth in step MB", "step RSS by quarter MB (run 1)", "runs"]
    rows = []
    for s in series.values():
        m, p = s["median"], s["params"]
        rows.append(
            [
                p["db"],
                p["mode"],
                _n(m["rows"]),
                _n(m["rows_per_s"]),
                _n(m["step_s"]),
                _n(m["peak_rss_mb"]),
                _n(m["step_rss_growth_mb"]),
                _quarters(s),
                _runs(s),
            ]
        )
    return _table(header, rows)


def pages_comparison(series: dict[str, dict[str, Any]]) -> list[str]:
    pages = sorted(
        (s for name, s in series.items() if name.startswith("pages_")),
        key=lambda s: s["median"]["records"],
    )
    bare = series.get("bare_httpx_orjson")
    if not pages or not bare:
        return []
    small, m, b = pages[0]["median"], pages[-1]["median"], bare["median"]["records_per_s"]
    rate = m["records_per_s"]
    held_mb = m["records"] * DICT_BYTES_PER_RECORD / 2**20
    grew = m["peak_rss_mb"] - small["peak_rss_mb"] > held_mb / 4
    peaks = ", ".join(
        f"{_n(p['median']['peak_rss_mb'])} MB at {_n(p['median']['records'])}" for p in pages
    )
    return [
        f"- **Cursor pages, {_n(m['records'])} records**: the step reaches {_n(rate)} "
        f"records/s, {rate / b:.0%} of the httpx + orjson bare loop against the same server "
        f"in this run ({_n(b)}/s; performance-limits.md: {_n(LIMITS['httpx_orjson'])}) and "
        f"{rate / LIMITS['httpx_orjson_parquet']:.0%} of the limits' httpx + orjson + "
        f"streaming-Parquet loop ({_n(LIMITS['httpx_orjson_parquet'])}/s, which casts and "
        f"checks nothing). dlt `rest_api`: {_n(LIMITS['dlt_parquet'])}/s with Parquet, "
        f"{_n(LIMITS['dlt_default'])}/s by default.",
        f"- **Memory {'grows with N' if grew else 'stays flat'}**: peak RSS {peaks} records "
        f"(held as Python dicts, {_n(m['records'])} records would take ~{_n(held_mb)} MB). "
        f"About {_n(m['rss_before_run_mb'])} MB is Python, Dagster and the project before "
        f"the run starts; the fetch step adds {_n(small['step_rss_growth_mb'])}-"
        f"{_n(m['step_rss_growth_mb'])} MB (10,000-row batches and checkpoint parts; pandas, "
        "which pyarrow imports on its first datetime conversion, is ~50 MB of it). Limits: "
        f"a streaming-Parquet loop stays at ~{LIMITS['httpx_orjson_parquet_rss_1m_mb']} MB "
        "(no Dagster); dlt reaches ~405 MB (Parquet) or ~3.4 GB (default) at 1M.",
    ]


def for_each_comparison(series: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    bare = series.get("bare_async_httpx_items")
    if bare:
        b = bare["median"]
        lines.append(
            f"- **forEach reference**: a bare `httpx.AsyncClient` loop ({_n(b['items'])} items, "
            f"{b['parallel']} tasks, no project code, no Dagster) reaches {_n(b['items_per_s'])} "
            "items/s against the same server."
        )
    for name, s in series.items():
        if not name.startswith("for_each_"):
            continue
        m = s["median"]
        if s["params"].get("mutation"):
            lines.append(
                f"- **forEach of a mutation, {_n(m['items'])} items, parallel {m['parallel']}"
                f"**: {_n(m['items_per_s'])} items/s ({1000 / m['items_per_s']:.2f} ms per "
                "item): every finished item is journalled (one JSON line) as it finishes."
            )
        elif m["delay_ms"]:
            ideal = m["parallel"] * 1000 / m["delay_ms"]
            lines.append(
                f"- **forEach, {_n(m['items'])} items, {m['delay_ms']} ms server latency, "
                f"parallel {m['parallel']}**: {_n(m['items_per_s'])} items/s, "
                f"{m['items_per_s'] / ideal:.0%} of the {_n(ideal)}/s that "
                f"{m['parallel']} calls in flight could reach."
            )
        else:
            lines.append(
                f"- **forEach, {_n(m['items'])} items, no latency, parallel {m['parallel']}**: "
                f"{_n(m['items_per_s'])} items/s ({1000 / m['items_per_s']:.2f} ms per item), "
                f"peak RSS {_n(m['peak_rss_mb'])} MB."
            )
    return lines


def persist_comparison(series: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    limits = {
        "append": f"text COPY into an empty table {_n(LIMITS['pg_text_copy_empty'])}/s; "
        "an append under onRowError fail COPies straight into the target",
        "upsert": f"text COPY into staging + merge {_n(LIMITS['pg_upsert_text_staging'])}/s, "
        f"binary {_n(LIMITS['pg_upsert_binary_staging'])}/s, executemany "
        f"{_n(LIMITS['pg_executemany_upsert'])}/s",
    }
    measured = [s for s in series.values() if not s["params"].get("memory_check")]
    for mode in ("append", "upsert"):
        matching = [s for s in measured if s["params"]["mode"] == mode]
        pg = [s for s in matching if s["params"]["db"] == "postgres"]
        lite = [s for s in matching if s["params"]["db"] == "sqlite"]
        if not pg or not lite:
            continue
        big = max(pg, key=lambda s: s["params"]["rows"])["median"]
        big_lite = max(lite, key=lambda s: s["params"]["rows"])["median"]
        lines.append(
            f"- **persist {mode}, {_n(big['rows'])} rows**: PostgreSQL {_n(big['rows_per_s'])} "
            f"rows/s (limits: {limits[mode]}); SQLite {_n(big_lite['rows_per_s'])} rows/s."
        )
    return lines + persist_memory(series)


def persist_memory(series: dict[str, dict[str, Any]]) -> list[str]:
    """The persist step's RSS growth against N, for the database of the memory check."""
    check = [s for s in series.values() if s["params"].get("memory_check")]
    if not check:
        return []
    db, mode = check[0]["params"]["db"], check[0]["params"]["mode"]
    same = [s for s in series.values() if (s["params"]["db"], s["params"]["mode"]) == (db, mode)]
    same.sort(key=lambda s: s["params"]["rows"])
    growth = ", ".join(
        f"{_n(s['median']['step_rss_growth_mb'])} MB at {_n(s['params']['rows'])} rows"
        for s in same
    )
    first, last = same[0]["median"], same[-1]["median"]
    if last["step_rss_growth_mb"] - first["step_rss_growth_mb"] < GROWTH_TOLERANCE_MB:
        return [f"- **persist memory is flat**: the {db} {mode} step's RSS growth is {growth}."]
    return [
        f"- **persist memory grows with N**: the {db} {mode} step's RSS growth is {growth}. "
        "The step reads its source with `pq.ParquetFile(path)`, which in pyarrow 26 "
        "pre-buffers (`pre_buffer=True`) every row group that `iter_batches` will read, so "
        "the whole table ends up in memory (see the README's Benchmarks section)."
    ]


def _took(documents: Iterable[Mapping[str, Any] | None]) -> str:
    parts = [
        f"{d['suite']} {d['suite_seconds'] / 60:.1f} min"
        for d in documents
        if d and d.get("suite_seconds")
    ]
    return f" Time taken: {', '.join(parts)}." if parts else ""


def render(scs: Mapping[str, Any] | None, persist: Mapping[str, Any] | None) -> str:
    """The whole summary.md."""
    scs_series, persist_series = _by_name(scs), _by_name(persist)
    documents = [d for d in (scs, persist) if d]
    assert documents, "no results to summarise"
    took = _took(documents)
    lines = ["# Benchmark results", ""]
    lines += machine_section(documents, persist.get("postgres") if persist else None)
    lines += [
        "",
        "Command: `.venv/bin/python -m bench.run_all` (see bench/README.md)." + took,
        "Each run is a fresh process; figures are medians of 3 runs unless the table says",
        "otherwise. The server (bench/page_server.py) runs in its own process on 127.0.0.1.",
        "",
        "## Compared with ../shared/notes/performance-limits.md",
        "",
        *pages_comparison(scs_series),
        *for_each_comparison(scs_series),
        *persist_comparison(persist_series),
    ]
    if scs_series:
        lines += ["", "## serviceCall with cursor pages (100 records a page, ~175 B each)", ""]
        lines += pages_section(scs_series)
        lines += ["", "### Reference loops against the same server (no project code)", ""]
        lines += bare_section(scs_series)
        lines += ["", "### Where the time of a page goes (in-process, no Dagster)", ""]
        lines += layers_section(scs_series)
        lines += ["", "## serviceCall with forEach (one page of 5 records per item)", ""]
        lines += for_each_section(scs_series)
    if persist_series:
        lines += ["", "## persistToDatabase (8 columns; upsert: half the keys exist)", ""]
        lines += persist_section(persist_series)
    return "\n".join(lines) + "\n"
