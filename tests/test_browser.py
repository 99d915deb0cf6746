"""In a real headless Chromium: the Fleet tab while a run goes, and the report a run leaves."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.conftest import ROOT, SMOKE, run_locust

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Background networking off: this machine's closed network would refuse Chromium's own connections.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = ROOT / "results" / "fleet-tab.png"
UI_TIMEOUT_MS = 90_000  # a loaded 2-core machine can be slow to render the React UI


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 900})
        finally:
            browser.close()


def _fleet_value(page: Page, name: str) -> str:
    """The value on the Fleet tab's row whose measure is exactly `name`."""
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=name, exact=True))
    return row.first.locator("td").last.inner_text()


def _count(text: str) -> int:
    return int(re.match(r"[\d,]+", text).group(0).replace(",", ""))


def test_the_fleet_tab_shows_the_clock_advancing_and_counters_growing(web_ui: str, page: Page) -> None:
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(web_ui, wait_until="networkidle")
    page.get_by_role("button", name="Start").click()
    page.get_by_role("tab", name="Fleet").click()
    page.get_by_role("row").filter(has_text="Scenario clock").wait_for()
    # The fleet is built before its clock starts (longer on a busy machine): wait for its first check-ins.
    for _ in range(UI_TIMEOUT_MS // 500):
        if _count(_fleet_value(page, "Check-ins")) > 0:
            break
        page.wait_for_timeout(500)
    clock_before = _fleet_value(page, "Scenario clock")
    checkins_before = _count(_fleet_value(page, "Check-ins"))
    page.wait_for_timeout(4500)
    clock_after = _fleet_value(page, "Scenario clock")
    checkins_after = _count(_fleet_value(page, "Check-ins"))
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert clock_before.startswith("2004-08-18") and clock_after > clock_before
    assert checkins_after > checkins_before > 0
    table = page.get_by_role("table").inner_text()
    # Read top to bottom: the run, the fleet, the server's push-back, the thresholds with their state.
    groups = [table.index(group) for group in ("Run", "Fleet", "Server push-back", "Thresholds")]
    assert groups == sorted(groups)
    assert table.index("Scenario clock") < table.index("Check-ins/s") < table.index("Machines")
    assert _fleet_value(page, "check.p95 < 250ms") in ("PASS", "pending")


def test_the_report_opens_on_its_verdict_and_every_plot_renders_with_data(tmp_path: Path, page: Page) -> None:
    run = run_locust("--scenario", str(SMOKE), "-t", "6s", results_dir=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    page.goto((tmp_path / "report.html").as_uri())
    verdict = page.locator("#verdict")
    assert verdict.is_visible() and verdict.bounding_box()["y"] < 900  # on the first screen
    assert verdict.locator(".verdict").inner_text() == "PASS"
    for plot in ("checkins", "latency", "rollout", "pushback", "goodput"):
        figure = page.locator(f"#plot-{plot} svg")
        box = figure.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100, plot
        assert "scenario date" in figure.inner_html(), plot
        assert figure.locator("path").count() > 10, plot
    page.screenshot(path=str(ROOT / "results" / "report.png"), full_page=True)
