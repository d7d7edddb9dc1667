"""Print what an example run produced: a step's table, or a table of the docs app database.

    .venv/bin/python docs/examples/show_table.py get_customer        # newest run's step table
    .venv/bin/python docs/examples/show_table.py --db catalog_products

A step's table is the Parquet file `<table store>/<run id>/<step name>.parquet` of the
newest run that has one (`$TABLE_STORE_ROOT`, else `$WORKFLOWS_DATA_DIR/tables`, else
`.data/tables`). `--db` reads the docs app's database (`APP_DB_URL__DOCS`, `APP_DB_URL`,
else `.data/apps/docs.sqlite`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _print_rows(title: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    print(f"{title}: {len(rows)} row(s)")
    texts = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in texts)]) for i, c in enumerate(columns)]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in texts:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def show_step(step: str, limit: int) -> int:
    import pyarrow.parquet as pq

    from resources.table_store import TableStoreResource

    root = TableStoreResource().root_path()
    found = sorted(root.glob(f"*/{step}.parquet"), key=lambda p: p.stat().st_mtime)
    if not found:
        print(f"no table of step {step!r} under {root}", file=sys.stderr)
        return 1
    table = pq.read_table(found[-1])
    rows = [tuple(r.values()) for r in table.slice(0, limit).to_pylist()]
    _print_rows(f"{found[-1]} ({table.num_rows} in all)", table.column_names, rows)
    return 0


def show_db_table(name: str, limit: int) -> int:
    import sqlalchemy as sa

    from resources.app_database import AppDatabaseResource

    engine = sa.create_engine(AppDatabaseResource().url_for("docs"))
    try:
        table = sa.Table(name, sa.MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(sa.select(table).limit(limit))]
    finally:
        engine.dispose()
    _print_rows(f"docs app table {name}", [c.name for c in table.columns], rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="a step name, or with --db a table of the docs app")
    parser.add_argument("--db", action="store_true", help="read the docs app's database")
    parser.add_argument("--limit", type=int, default=20, help="rows to print (default 20)")
    args = parser.parse_args(argv)
    if args.db:
        return show_db_table(args.name, args.limit)
    return show_step(args.name, args.limit)


if __name__ == "__main__":
    sys.exit(main())
