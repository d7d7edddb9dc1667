"""The issue 8 targets table of `results/summary.md` (and of the README) from
`results/targets.json`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}"
    return str(value)


def _met(value: bool | None) -> str:
    return {True: "**met**", False: "**MISSED**", None: "recorded"}[value]


def machine_line(document: Mapping[str, Any]) -> str:
    m = document["machine"]
    load = document.get("load_avg_at_end")
    return (
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python "
        f"{m['python']}, {m['platform']}; PostgreSQL {document.get('postgres')}; "
        f"commit {m['git_commit']}, {m['date']}; load average at start "
        f"{m['load_avg_at_start']}" + (f", at end {load}" if load else "") + "."
    )


def table(targets: Mapping[str, Any]) -> list[str]:
    head = "| # | work | check | figure | comparator | comparator figure | ratio | target | |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for key, t in targets.items():
        for index, c in enumerate(t["checks"]):
            work = t["title"] if index == 0 else ""
            lines.append(
                f"| {key if index == 0 else ''} | {work} | {c['name']} | "
                f"{_fmt(c['figure'])} {c['unit']} | {c['comparator']} | "
                f"{_fmt(c['comparator_value'])} | {_fmt(c['ratio'])} | {c['target']} | "
                f"{_met(c['met'])} |"
            )
    return lines


def notes(targets: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, t in targets.items():
        extra = list(t.get("notes", []))
        if t.get("profile"):
            extra.append(f"missed: profile in `{t['profile']}`")
        lines += [f"- **{key}**: " + "; ".join(extra)] if extra else []
    return lines


def render(document: Mapping[str, Any] | None) -> list[str]:
    if not document:
        return []
    quick = " (a `--quick` smoke run: tiny sizes, the figures mean nothing)"
    return [
        "## Issue 8 targets" + (quick if document.get("quick") else ""),
        "",
        machine_line(document),
        "Ratios are medians of fresh processes in this one run; the servers' own capacity"
        " is in the notes.",
        "",
        *table(document["targets"]),
        "",
        *notes(document["targets"]),
        "",
    ]
