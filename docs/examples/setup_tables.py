"""Create the tables of the `docs` app that the example workflows read and write.

    .venv/bin/python docs/examples/setup_tables.py            # the app's database
    .venv/bin/python docs/examples/setup_tables.py --url sqlite:///docs.sqlite
    .venv/bin/python docs/examples/setup_tables.py --reset    # drop them first

Without `--url` the tables go where the workflows write: the database of app `docs`
(`APP_DB_URL__DOCS`, else `APP_DB_URL`, else `.data/apps/docs.sqlite`). Missing tables are
created; the two reference tables are filled when empty; existing rows stay.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import sqlalchemy as sa

APP_ID = "docs"

metadata = sa.MetaData()

# Read by importFromDatabase.json.
tier_targets = sa.Table(
    "tier_targets",
    metadata,
    sa.Column("tier", sa.String(16), primary_key=True),
    sa.Column("monthly_target_cents", sa.BigInteger, nullable=False),
)
customer_flags = sa.Table(
    "customer_flags",
    metadata,
    sa.Column("customer_id", sa.String(64), nullable=False),
    sa.Column("flag", sa.String(32)),
    sa.Column("owner", sa.String(32), nullable=False),
    sa.Column("flagged_on", sa.Date, nullable=False),
)
# Written by persistToDatabase.json: upsert (with a CHECK that refuses two products),
# append and replaceAll.
catalog_products = sa.Table(
    "catalog_products",
    metadata,
    sa.Column("sku", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("category", sa.String(32)),
    sa.Column("price_cents", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean),
    sa.Column("synced_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("price_cents <= 9000", name="catalog_price_at_most_90_eur"),
)
stock_snapshots = sa.Table(
    "stock_snapshots",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("sku", sa.String(32), nullable=False),
    sa.Column("stock", sa.Integer, nullable=False),
    sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
)
category_stock = sa.Table(
    "category_stock",
    metadata,
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("sku_count", sa.Integer, nullable=False),
    sa.Column("total_stock", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

TIER_TARGETS = [
    {"tier": "gold", "monthly_target_cents": 400_000},
    {"tier": "silver", "monthly_target_cents": 300_000},
    {"tier": "bronze", "monthly_target_cents": 200_000},
]
CUSTOMER_FLAGS = [
    ("cus_001", "churn-risk", "ana", "2026-10-02"),
    ("cus_005", "churn-risk", "bo", "2026-10-05"),
    ("cus_012", "vip", "chen", "2026-10-07"),
    ("cus_020", "churn-risk", "ana", "2026-10-11"),
    ("cus_033", None, "bo", "2026-10-12"),
    ("cus_040", "vip", "ana", "2026-10-20"),
]


def _ensure_sqlite_folder(url: str) -> None:
    parsed = sa.engine.make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def ensure_docs_tables(url: str, *, reset: bool = False) -> list[str]:
    """Create the missing tables at `url` and fill empty reference tables.

    Returns:
        The tables created by this call.
    """
    _ensure_sqlite_folder(url)
    engine = sa.create_engine(url)
    try:
        if reset:
            metadata.drop_all(engine)
        existing = set(sa.inspect(engine).get_table_names())
        created = [t.name for t in metadata.sorted_tables if t.name not in existing]
        metadata.create_all(engine)
        with engine.begin() as conn:
            if conn.execute(sa.select(sa.func.count()).select_from(tier_targets)).scalar() == 0:
                conn.execute(tier_targets.insert(), TIER_TARGETS)
            if conn.execute(sa.select(sa.func.count()).select_from(customer_flags)).scalar() == 0:
                rows = [
                    {
                        "customer_id": customer,
                        "flag": flag,
                        "owner": owner,
                        "flagged_on": dt.date.fromisoformat(day),
                    }
                    for customer, flag, owner, day in CUSTOMER_FLAGS
                ]
                conn.execute(customer_flags.insert(), rows)
        return created
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL; default: the docs app's database")
    parser.add_argument("--reset", action="store_true", help="drop the example tables first")
    args = parser.parse_args(argv)
    url = args.url
    if url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from resources.app_database import AppDatabaseResource

        url = AppDatabaseResource().url_for(APP_ID)
    created = ensure_docs_tables(url, reset=args.reset)
    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    print(f"{shown}: created {', '.join(created)}" if created else f"{shown}: tables exist")
    return 0


if __name__ == "__main__":
    sys.exit(main())
