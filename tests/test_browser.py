"""A real browser walks the dashboard like a person: every page opens, a decision is selected,
no exception is shown.  Screenshots are kept in artifacts/screenshots/."""

import os
import re
from pathlib import Path

import pytest

from tests.conftest import start_dashboard, stop

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "screenshots"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(demo_log):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: install it with `apt-get install -y chromium` (the CI script does).")
    proc, url = start_dashboard(dict(os.environ, KLARTEXT_DB=str(demo_log)))
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


def _open(browser, url, heading, ready):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
    page.get_by_text(ready).first.wait_for(timeout=60_000)  # the page ran to its last element
    for _ in range(120):  # and every chart and table has painted (no loading skeletons left)
        if page.locator("[data-testid='stSkeleton']").count() == 0:
            break
        page.wait_for_timeout(500)
    page.wait_for_timeout(1000)
    assert page.locator("[data-testid='stException']").count() == 0
    # Streamlit's own developer menu and "Deploy" button are not for the people who use Klartext
    assert page.locator("[data-testid='stAppDeployButton']").count() == 0
    assert page.get_by_role("button", name="Deploy").count() == 0
    return page


PAGES = [  # url path, heading, text shown once the page ran to its end
    ("", "Overview", "Action mix"),
    ("tradeoffs", "KPI trade-offs", "Realised figures come from the logged outcomes"),
    ("replay", "Decision replay", "Evidence file (HTML)"),
    ("customer", "Customer history", "Enter a customer"),
    ("funnel", "Funnel & policies", "Customers with no action, or only weak ones"),
    ("explanations", "Explanations", "attributions are in log-odds"),
    ("models", "Models", "Features:"),
    ("integrity", "Integrity", "Verify the hash chain"),
    ("report", "Governance report", "Appendix: methods and definitions"),
    ("fairness", "Fairness", "The decisions behind a rate"),
    ("model_health", "Model health", "The newest shown offers of this model with their outcome"),
    ("strategy_versions", "Strategy versions", "What a customer is told"),
]


def test_every_page_opens_without_an_exception(server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for path, heading, ready in PAGES:
        page = _open(browser, f"{server}/{path}", heading, ready)
        page.screenshot(path=str(SHOTS / f"{path or 'overview'}.png"), full_page=True)
        text = page.locator("body").inner_text()
        assert "Traceback" not in text and "Error" not in text.replace("Errors", ""), (path, text[:500])
        page.close()


def test_selecting_a_decision_replays_and_explains_it(server, browser):
    page = _open(browser, server + "/replay", "Decision replay", "Evidence file (HTML)")
    assert page.get_by_text("Replay verified").count() >= 1
    first_id = page.get_by_role("heading", name=re.compile(r"^Decision [0-9A-Z]{26}$")).first.inner_text().split()[-1]
    # click the row selector of the third decision in the table
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.click(position={"x": 15, "y": 36 + 2 * 35 + 17})
    page.wait_for_timeout(3000)
    page.get_by_text("Evidence file (HTML)").first.wait_for(timeout=60_000)
    new_id = page.get_by_role("heading", name=re.compile(r"^Decision [0-9A-Z]{26}$")).first.inner_text().split()[-1]
    assert page.locator("[data-testid='stException']").count() == 0
    assert new_id != first_id
    assert page.get_by_text("Replay verified").count() >= 1
    page.screenshot(path=str(SHOTS / "replay_selected.png"), full_page=True)
    page.get_by_role("tab", name="Why not …?").click()
    page.wait_for_timeout(1500)
    assert page.locator("[data-testid='stException']").count() == 0
    page.screenshot(path=str(SHOTS / "replay_why_not.png"), full_page=True)
    page.close()


def test_integrity_check_runs_in_the_browser(server, browser):
    page = _open(browser, server + "/integrity", "Integrity", "Verify the hash chain")
    page.get_by_role("button", name="Verify the hash chain").click()
    page.get_by_text("Verified: all 2,000 decisions").first.wait_for(timeout=60_000)
    page.screenshot(path=str(SHOTS / "integrity.png"), full_page=True)
    page.close()


def test_switching_pages_in_the_sidebar_keeps_the_log(server, browser, demo_log):
    # a person clicks through the sidebar, twice round: every page keeps reading the same log
    # (a text field for the log's path once came back empty on every second switch)
    page = _open(browser, server, "Overview", "Action mix")
    tour = [("Funnel & policies", "Customers with no action, or only weak ones"), ("Models", "Features:"),
            ("Integrity", "Verify the hash chain"), ("Overview", "Action mix")] * 2
    for title, ready in tour:
        links = page.locator("[data-testid='stSidebarNav']").get_by_role("link")  # not a section's header
        links.filter(has_text=re.compile(re.escape(title) + "$")).first.click()
        page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
        page.get_by_text(ready).first.wait_for(timeout=60_000)
        text = page.locator("body").inner_text()
        assert "Cannot open decision log" not in text and "Is a directory" not in text, (title, text[:500])
        assert page.locator("[data-testid='stException']").count() == 0, title
        assert f"Decision log: {demo_log.name}" in page.locator("[data-testid='stSidebar']").inner_text(), title
    page.close()


def test_the_language_switch_in_the_sidebar_turns_the_dashboard_german(server, browser):
    # picked like a person picks it; it once stayed English in the browser while AppTest passed
    page = _open(browser, server, "Overview", "Action mix")
    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").filter(has_text="Sprache").click()
    page.get_by_role("option", name="Deutsch").click()
    page.get_by_role("heading", name="Überblick").first.wait_for(timeout=60_000)
    page.get_by_text("Aktionsmix").first.wait_for(timeout=60_000)
    assert "lang=de" in page.url
    # it stays German on the next page, opened from the sidebar
    page.locator("[data-testid='stSidebarNav']").get_by_role("link").filter(has_text=re.compile("Integrität$")).click()
    page.get_by_role("heading", name="Integrität").first.wait_for(timeout=60_000)
    assert page.locator("[data-testid='stException']").count() == 0
    page.close()


def test_the_first_visitor_of_a_fresh_server_can_open_a_page_by_its_address(demo_log, browser):
    # a shared link opened before anyone loaded the start page once showed the page file on its
    # own, with a sidebar listing every file in pages/ ("app", "common", …) and no language switch
    proc, url = start_dashboard(dict(os.environ, KLARTEXT_DB=str(demo_log)))
    try:
        page = _open(browser, url + "/funnel?lang=de", "Trichter & Regeln", "Kunden ohne Aktion oder nur mit schwachen")
        nav = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert "Trichter & Regeln" in nav and "Überblick" in nav, nav
        assert not re.search(r"(?m)^(app|common)$", nav), nav
        assert page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").filter(has_text="Sprache").count() == 1
        page.close()
    finally:
        stop(proc)


def test_an_open_dashboard_does_not_block_a_cli_write(demo_copy, browser):
    """Issue #17: with the dashboard open in a browser, `klartext decide` failed with "in use by
    another process" until the dashboard was stopped.  The dashboard now holds the log only
    while a page runs: the write goes through, and the page shows it after a reload."""
    import subprocess
    import sys

    proc, url = start_dashboard(dict(os.environ, KLARTEXT_DB=str(demo_copy)))
    try:
        page = _open(browser, url + "/", "Overview", "Action mix")
        metric = page.locator("[data-testid='stMetricValue']").first
        assert metric.inner_text() == "2,000"
        out = subprocess.run([sys.executable, "-m", "klartext.cli", "decide", "--db", str(demo_copy), "--input",
                              "examples/customer.json"], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        page.reload()
        page.get_by_text("Action mix").first.wait_for(timeout=60_000)
        page.locator("[data-testid='stMetricValue']").get_by_text("2,001").wait_for(timeout=30_000)
        assert page.locator("[data-testid='stException']").count() == 0
        page.close()
    finally:
        stop(proc)
