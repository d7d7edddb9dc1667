"""The Dagster UI in a real browser, for tests: `dagster dev` on 127.0.0.1 and Debian's
chromium driven by Playwright.

`dagster dev` runs the webserver, the daemon (schedules, the run queue, backfills) and a
code server for the workspace; it is started in a process group of its own and stopped by
its PID (SIGTERM, which it handles like Ctrl-C), the group killed only if it hangs.
Playwright's own browser download cannot work here, so the browser is the system's
chromium (`CHROMIUM_PATH`, else `chromium` on the PATH; scripts/ensure-chromium).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.waiting import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

BIN = Path(sys.executable).parent
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"


def chromium_path() -> str | None:
    """The chromium binary to drive, or None when the machine has none."""
    given = os.environ.get("CHROMIUM_PATH")
    if given:
        return given if os.access(given, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _post_graphql(base_url: str, query: str) -> bytes:
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


def _default_signals() -> None:
    # A test run started in the background of a non-interactive shell inherits SIGINT
    # ignored; `dagster dev` maps SIGTERM to what SIGINT does, so it would never stop.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def running_dagster_dev(workspace: Path, log_path: Path, timeout: float = 90) -> Iterator[str]:
    """`dagster dev -w workspace` on a free port of 127.0.0.1, on the instance of
    `$DAGSTER_HOME`; yields the UI's base URL once it serves."""
    port = free_port()
    log = log_path.open("w")
    proc = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # webserver, daemon and code server in a group of our own
        preexec_fn=_default_signals,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: proc.poll() is not None or _answers(f"{base_url}/server_info"),
            timeout,
            f"dagster dev to serve on {base_url} (log: {log_path})",
        )
        assert proc.poll() is None, f"dagster dev exited:\n{log_path.read_text()[-4000:]}"
        # The "join the community" dialog of a new instance would cover the pages.
        _post_graphql(base_url, "mutation { setNuxSeen }")
        yield base_url
    finally:
        _stop(proc)
        log.close()
        print(log_path.read_text()[-6000:])  # shown by pytest when the test failed


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to `dagster dev`; its code server and run workers (our process group) get
    a few seconds to follow before the group is killed."""
    proc.send_signal(signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _group_alive(proc.pid):
        time.sleep(0.2)
    if _group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def browser() -> Iterator[Browser]:
    """Headless chromium (the system's) under Playwright."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    assert path, "no chromium: run scripts/ensure-chromium or set CHROMIUM_PATH"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: Page, name: str) -> Path:
    """Saves the page as tests/artifacts/ui/<name>.png (kept after the test, gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def assert_lineage_shows(page: Page, asset_keys: Sequence[str], timeout_ms: float = 30_000) -> None:
    """The Lineage page (the global asset graph) shows a node for each asset key
    (`app_id/table`); a node is labelled with the key's last part. Groups start
    collapsed when there are several: they are expanded first, as a user would."""
    from playwright.sync_api import expect

    page.goto(page_url(page, "/asset-groups"))
    expect(page.get_by_text("Global asset lineage")).to_be_visible(timeout=timeout_ms)
    page.get_by_role("button", name="settings", exact=True).click()
    expand = page.get_by_role("menuitem", name=re.compile("Expand all groups"))
    collapse = page.get_by_role("menuitem", name=re.compile("Collapse all groups"))
    expect(expand.or_(collapse)).to_be_visible()
    if expand.count():
        expand.click()
        expect(collapse).to_be_visible()
    page.keyboard.press("Escape")  # the menu stays open after a click
    expect(collapse.or_(expand)).to_be_hidden()
    for key in asset_keys:
        label = key.rsplit("/", 1)[-1]
        expect(page.get_by_text(label, exact=True).first).to_be_visible(timeout=timeout_ms)


def page_url(page: Page, path: str) -> str:
    """`path` on the server the page is showing."""
    scheme, _, rest = page.url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}{path}"
