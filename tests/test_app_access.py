"""The dashboard's access rules: sign-in with a users file, pages by role, the log path fixed
at start, data shown as text, and no Streamlit left behind (security issue, item 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from klartext.access import add_user
from tests.conftest import alive, children_of, free_port, start_dashboard

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def clear_caches():
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def signed_env(demo_log, tmp_path, monkeypatch):
    users = tmp_path / "users.txt"
    add_user(users, "vera", "viewer", PASSWORD)
    add_user(users, "rita", "reviewer", PASSWORD)
    monkeypatch.setenv("KLARTEXT_DB", str(demo_log))
    monkeypatch.setenv("KLARTEXT_USERS", str(users))
    return users


def test_the_dashboard_asks_for_a_sign_in_and_refuses_a_wrong_password(signed_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["User", "Password"]
    assert not at.metric  # nothing of the log is shown before signing in
    at.text_input[0].input("vera")
    at.text_input[1].input("not the password")
    at.button[0].click().run()
    assert at.error[0].value == "Unknown user or wrong password."
    assert "_user" not in at.session_state


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/funnel.py", "pages/models.py", "pages/integrity.py",
                                  "pages/tradeoffs.py", "pages/replay.py"])
def test_every_page_opened_by_its_own_url_asks_for_a_sign_in(signed_env, page):
    at = AppTest.from_file(str(ROOT / page), default_timeout=90)
    at.run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["User", "Password"]
    assert not at.metric and not at.dataframe


def test_a_viewer_signs_in_and_sees_aggregates_but_no_single_decision(signed_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.text_input[0].input("vera")
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["_user"] == "vera"
    assert at.title[0].value == "Overview"
    for page in ("pages/replay.py", "pages/customer.py", "pages/explanations.py"):
        p = AppTest.from_file(str(ROOT / page), default_timeout=90)
        p.session_state["_user"] = "vera"
        p.run()
        assert p.error[0].value.startswith("vera (viewer) may not open this page"), page
    p = AppTest.from_file(str(ROOT / "pages/customer.py"), default_timeout=90)
    p.session_state["_user"] = "rita"
    p.run()
    assert not p.error and p.title[0].value == "Customer history"


def test_the_log_path_cannot_be_changed_from_the_browser(demo_log, monkeypatch):
    monkeypatch.setenv("KLARTEXT_DB", str(demo_log))
    at = AppTest.from_file(str(ROOT / "pages/overview.py"), default_timeout=90)
    at.run()
    assert not at.exception
    assert not at.sidebar.text_input  # no path field: the log is fixed when the dashboard starts
    assert any("Decision log: demo\\.duckdb" in c.value for c in at.sidebar.caption)


def test_data_is_shown_as_text_never_as_markdown():
    from pages.common import md

    shown = md("![x](https://evil.example/p.png) [click](https://evil.example) <img src=x>")
    import re

    unescaped = re.sub(r"\\.", "", shown)  # what is left once every escaped character is dropped
    assert not set("![]()<>") & set(unescaped), shown


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_killing_klartext_app_ends_the_dashboard(demo_log):
    parent = subprocess.Popen([sys.executable, "-m", "klartext.cli", "app", "--db", str(demo_log),
                               "--port", str(free_port())], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    kids: list[int] = []
    while time.monotonic() < deadline and not kids:
        time.sleep(0.5)
        kids = children_of(parent.pid)
    assert kids, "the dashboard did not start"
    time.sleep(2)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(k) for k in kids):
        time.sleep(0.2)
    assert not any(alive(k) for k in kids)


@pytest.mark.browser
def test_a_trusted_proxy_header_signs_a_user_into_the_dashboard_in_chromium(demo_log, tmp_path):
    """Behind a reverse proxy: the header names the user, the users file gives the role; a
    request without the header still meets the sign-in form."""
    from playwright.sync_api import sync_playwright

    users = tmp_path / "users.txt"
    add_user(users, "proxy-rita", "reviewer", None)
    env = dict(os.environ, KLARTEXT_DB=str(demo_log), KLARTEXT_USERS=str(users),
               KLARTEXT_AUTH_HEADER="X-Forwarded-User")
    proc, url = start_dashboard(env)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                  args=["--no-sandbox", "--disable-gpu"])
            signed = b.new_page(extra_http_headers={"X-Forwarded-User": "proxy-rita"})
            signed.goto(url)
            signed.get_by_role("heading", name="Overview").wait_for(timeout=60_000)
            assert signed.get_by_role("link", name="Decision replay").count() == 1  # a reviewer's page
            anonymous = b.new_page()
            anonymous.goto(url)
            anonymous.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
            assert anonymous.get_by_role("heading", name="Overview").count() == 0
            b.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
