"""The demo in the Dagster UI, through a real browser (issue 9).

`dagster dev` (webserver, daemon, code server) serves the project's workspace on
127.0.0.1 with the project's `dagster.yaml` in a temporary `DAGSTER_HOME`; the demo
services run in this process. Debian's chromium, driven by Playwright, does what a user
does: finds the jobs and schedules, launches a run from the Launchpad with its defaults,
backfills two partitions of the demo's partitioned job, and opens the asset lineage.
Each outcome is also checked where it lands (run records, rows in the app database).
Screenshots go to tests/artifacts/ui/; with UI_SCREENSHOTS_TO_DOCS=1 the ones the README
shows are copied to docs/images/.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Page, expect

from demo.app_schema import DEMO_APP_ID, ensure_demo_schema_for_app
from demo.server import demo_secrets_env, running_demo_server, service_base_url_env
from resources.app_database import AppDatabaseResource
from tests.support.app_tables import rows
from tests.support.daemon import workspace_file
from tests.support.jobs import PROJECT_ROOT, REAL_DEFS
from tests.support.ui import (
    assert_lineage_shows,
    browser,
    page_url,
    running_dagster_dev,
    screenshot,
)
from tests.support.waiting import wait_for
from translators.loader import load_definitions
from translators.schedules import partitions_for

pytestmark = [pytest.mark.browser, pytest.mark.integration]

JOBS = [
    "demo_shop__customerOrderHistory",
    "demo_shop__notifyTopCustomers",
    "demo_shop__syncEnrichedOrders",
]
SCHEDULES = ["demo_shop__daily_order_sync", "demo_shop__weekly_top_customers"]
LAUNCHPAD_JOB = "demo_shop__customerOrderHistory"  # not partitioned: launched as it is
BACKFILL_SCHEDULE = "daily-order-sync"  # the demo schedule with backfillStart
BACKFILL_JOB = "demo_shop__syncEnrichedOrders"
DOCS_IMAGES = {
    "run": "ui-run.png",
    "lineage": "ui-asset-lineage.png",
    "partitions": "ui-backfill.png",
}
# The app tables the demo's persist steps write, and what they come from.
LINEAGE = [
    "demo-shop/orders_enriched",
    "demo-shop/revenue_by_tier",
    "demo-shop/customer_order_history",
    "shop/listOrders",
    "crm/listCustomers",
]
TIMEOUT_MS = 90_000  # a run: the queue's poll, a run worker's start, the steps


@pytest.fixture
def ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Page]:
    """A browser page on `dagster dev` with the demo services and the app's tables."""
    home = Path(os.environ["DAGSTER_HOME"])
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    with running_demo_server(end_date=dt.date.today()) as base_url:
        for name, value in {**service_base_url_env(base_url), **demo_secrets_env()}.items():
            monkeypatch.setenv(name, value)
        ensure_demo_schema_for_app(DEMO_APP_ID)
        workspace = workspace_file(tmp_path)
        log = tmp_path / "dagster_dev.log"
        with running_dagster_dev(workspace, log) as ui_url, browser() as chromium:
            context = chromium.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(30_000)
            page = context.new_page()
            page.goto(ui_url)
            yield page


def test_demo_in_the_dagster_ui(ui: Page) -> None:
    page = ui
    assert_jobs_and_schedules_listed(page)
    partitions = last_two_partitions()
    backfill_id = launch_backfill(page, partitions)
    run_id = launch_from_launchpad(page, LAUNCHPAD_JOB)
    assert app_rows("SELECT count(*) FROM customer_order_history") == [(40,)]

    assert_backfill_succeeds(page, backfill_id, partitions)
    # After the runs: the tables' nodes show their latest materialization.
    assert_lineage_shows(page, LINEAGE)
    save(page, "lineage")
    page.goto(page_url(page, f"/runs/{run_id}"))
    expect_text(page, "Success")
    save(page, "run")


def assert_jobs_and_schedules_listed(page: Page) -> None:
    page.goto(page_url(page, "/jobs"))
    for job in JOBS:
        expect_text(page, job)
    save(page, "jobs")
    page.goto(page_url(page, "/automation"))
    for schedule in SCHEDULES:
        expect_text(page, schedule)
    save(page, "schedules")


def launch_from_launchpad(page: Page, job: str) -> str:
    """Launch Run with the Launchpad's default config; returns the run id once the run
    page says Success."""
    page.goto(page_url(page, f"/locations/workflows/jobs/{job}/playground"))
    expect(page.get_by_text("No errors")).to_be_visible()
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect_text(page, "Success", TIMEOUT_MS)
    # The run's last events arrive after its status.
    expect_text(page, "RUN_SUCCESS")
    run = dg.DagsterInstance.get().get_run_by_id(run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    return run_id


def launch_backfill(page: Page, partitions: list[str]) -> str:
    """Launch a backfill of `partitions` from the job's Partitions tab; returns its id."""
    page.goto(page_url(page, f"/locations/workflows/jobs/{BACKFILL_JOB}/partitions"))
    page.get_by_role("button", name=re.compile("Launch backfill")).click()
    selection = page.get_by_placeholder(re.compile(r"^ex: "))
    selection.fill(", ".join(partitions))
    selection.press("Enter")
    page.get_by_role("button", name=f"Submit {len(partitions)} runs").click()
    instance = dg.DagsterInstance.get()
    [backfill] = wait_for(instance.get_backfills, 30, "the backfill to be recorded")
    return backfill.backfill_id


def assert_backfill_succeeds(page: Page, backfill_id: str, partitions: list[str]) -> None:
    """The backfill's page reaches Succeeded (the daemon looks at backfills every 30 s)
    and each partition has one successful run."""
    page.goto(page_url(page, f"/runs/b/{backfill_id}"))
    status = page.get_by_text("Status", exact=True).locator("xpath=..")
    expect(status).to_contain_text("Succeeded", timeout=TIMEOUT_MS)
    save(page, "backfill")
    page.goto(page_url(page, f"/locations/workflows/jobs/{BACKFILL_JOB}/partitions"))
    expect_text(page, backfill_id)
    page.wait_for_load_state("networkidle")
    save(page, "partitions")
    runs = dg.DagsterInstance.get().get_runs(dg.RunsFilter.for_backfill(backfill_id))
    assert sorted(r.tags["dagster/partition"] for r in runs) == sorted(partitions)
    assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert app_rows("SELECT count(*) FROM orders_enriched")[0][0] > 0


def last_two_partitions() -> list[str]:
    """The two partitions before the newest (complete days) of the backfill schedule."""
    loaded = load_definitions(REAL_DEFS)
    [schedule] = [s for s in loaded.schedules if s.spec.name == BACKFILL_SCHEDULE]
    partitions_def = partitions_for(schedule)
    assert partitions_def is not None, f"{BACKFILL_SCHEDULE} has no backfillStart"
    keys = partitions_def.get_partition_keys()
    assert len(keys) >= 3, keys
    return list(keys[-3:-1])


def app_rows(query: str) -> list[tuple]:
    return rows(AppDatabaseResource().url_for(DEMO_APP_ID), query)


def expect_text(page: Page, text: str, timeout_ms: float = 30_000) -> None:
    expect(page.get_by_text(text, exact=True).first).to_be_visible(timeout=timeout_ms)


def save(page: Page, name: str) -> None:
    path = screenshot(page, name)
    if name in DOCS_IMAGES and os.environ.get("UI_SCREENSHOTS_TO_DOCS") == "1":
        shutil.copyfile(path, PROJECT_ROOT / "docs" / "images" / DOCS_IMAGES[name])
