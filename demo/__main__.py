"""`python -m demo`: the quick start. Runs the demo job end to end on embedded defaults.

Starts the bundled demo services on a free port of 127.0.0.1, points the catalog at them
(`SERVICE_<NAME>_BASE_URL`), creates the demo app's tables in its embedded SQLite
database, runs `workflows run demo-shop/syncEnrichedOrders` through Dagster, prints a few
of the rows that landed, and stops the services.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys

import sqlalchemy as sa

from demo.app_schema import DEMO_APP_ID, ensure_demo_schema_for_app
from demo.server import demo_secrets_env, running_demo_server, service_base_url_env
from resources.app_database import AppDatabaseResource

DEMO_WORKFLOW = f"{DEMO_APP_ID}/syncEnrichedOrders"


def show_rows(app_id: str) -> int:
    """Print what the run wrote; returns the number of enriched orders."""
    engine = sa.create_engine(AppDatabaseResource().url_for(app_id))
    try:
        with engine.connect() as conn:
            count = conn.execute(sa.text("SELECT count(*) FROM orders_enriched")).scalar_one()
            tiers = conn.execute(
                sa.text(
                    "SELECT tier, order_count, revenue_cents FROM revenue_by_tier ORDER BY tier"
                )
            ).all()
    finally:
        engine.dispose()
    print(f"\norders_enriched: {count} rows in {engine.url.render_as_string(hide_password=True)}")
    for tier, orders, cents in tiers:
        print(f"  revenue_by_tier {tier:<8} {orders:>4} orders {cents / 100:>12,.2f}")
    return int(count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--workflow", default=DEMO_WORKFLOW, help=f"default {DEMO_WORKFLOW}")
    args = parser.parse_args(argv)
    from translators.cli import main as workflows

    # Orders end today, so the workflow's "last 45 days" always finds some.
    with running_demo_server(end_date=dt.date.today()) as base_url:
        os.environ.update(service_base_url_env(base_url))
        os.environ.update(demo_secrets_env())
        print(f"demo services on {base_url}")
        ensure_demo_schema_for_app(DEMO_APP_ID)
        status = workflows(["run", args.workflow])
    if status == 0 and args.workflow == DEMO_WORKFLOW and show_rows(DEMO_APP_ID) == 0:
        print("the run succeeded but wrote no rows", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
