"""The demo-shop app's target tables, created idempotently on SQLite or PostgreSQL.

`workflow_defs/apps/demo-shop/workflows/syncEnrichedOrders.json` upserts into
`orders_enriched` (key `order_id`) and replaces rows of `revenue_by_tier` (by `tier`);
`notifyTopCustomers.json` reads `orders_enriched`; `customerOrderHistory.json` upserts into
`customer_order_history` (key `customer_id`). Both persist modes need the tables, and
upsert needs the primary key, before the workflow runs: `ensure_demo_schema` makes them.

Run `python -m demo.app_schema` (the app's URL from `AppDatabaseResource`) or
`python -m demo.app_schema --url postgresql+psycopg://...`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    inspect,
)
from sqlalchemy.engine import make_url

DEMO_APP_ID = "demo-shop"

metadata = MetaData()

orders_enriched = Table(
    "orders_enriched",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("customer_name", String(200)),
    Column("customer_email", String(320)),
    Column("tier", String(16)),
    Column("country", String(2)),
    Column("total_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("synced_at", DateTime(timezone=True)),
)

revenue_by_tier = Table(
    "revenue_by_tier",
    metadata,
    Column("tier", String(16), primary_key=True),
    Column("period_start", Date),
    Column("order_count", Integer, nullable=False),
    Column("revenue_cents", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True)),
)

customer_order_history = Table(
    "customer_order_history",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("customer_name", String(200)),
    Column("tier", String(16)),
    Column("order_count", Integer, nullable=False),
    Column("paid_order_count", Integer, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("revenue_cents", BigInteger, nullable=False),
    Column("first_order_at", DateTime(timezone=True)),
    Column("last_order_at", DateTime(timezone=True)),
    Column("synced_at", DateTime(timezone=True)),
)


class DemoSchemaError(RuntimeError):
    """A demo table exists with a primary key the demo workflows cannot use."""


def _ensure_sqlite_folder(url: str) -> None:
    """SQLite creates the file but not its folder."""
    parsed = make_url(url)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file:")
    if parsed.get_backend_name() == "sqlite" and not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def ensure_demo_schema(url: str) -> list[str]:
    """Creates the demo tables that are missing in the database at `url`.

    Existing tables are left as they are (their rows too), but their primary key must be
    the one the demo workflows match on.

    Args:
        url: A SQLAlchemy URL (`sqlite:///...`, `postgresql+psycopg://...`).

    Returns:
        The names of the tables created by this call; empty when all existed.

    Raises:
        DemoSchemaError: an existing table has a different primary key.
    """
    _ensure_sqlite_folder(url)
    engine = create_engine(url)
    try:
        existing = set(inspect(engine).get_table_names())
        created = [table.name for table in metadata.sorted_tables if table.name not in existing]
        metadata.create_all(engine, checkfirst=True)
        inspector = inspect(engine)
        for table in metadata.sorted_tables:
            expected = [column.name for column in table.primary_key.columns]
            found = inspector.get_pk_constraint(table.name)["constrained_columns"]
            if found != expected:
                raise DemoSchemaError(
                    f"table {table.name!r} has primary key {found}; the demo needs {expected}"
                )
        return created
    finally:
        engine.dispose()


def ensure_demo_schema_for_app(app_id: str = DEMO_APP_ID) -> list[str]:
    """Like `ensure_demo_schema`, for the database the app's workflows write to."""
    from resources.app_database import AppDatabaseResource

    return ensure_demo_schema(AppDatabaseResource().url_for(app_id))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m demo.app_schema", description="Create the demo-shop app's tables."
    )
    parser.add_argument("--url", help="database URL; default: the app's URL (AppDatabaseResource)")
    parser.add_argument("--app-id", default=DEMO_APP_ID, help=f"default {DEMO_APP_ID}")
    args = parser.parse_args(argv)
    created = ensure_demo_schema(args.url) if args.url else ensure_demo_schema_for_app(args.app_id)
    print(f"created: {', '.join(created)}" if created else "demo tables already exist")


if __name__ == "__main__":
    main()
