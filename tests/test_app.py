"""Dashboard: each page runs and shows its heading; figures are tested on their data."""

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from explain.figures import stage_funnel

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clear_caches():
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()


def page(path, db, monkeypatch):
    monkeypatch.setenv("KLARTEXT_DB", str(db))
    at = AppTest.from_file(str(ROOT / path), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_overview_page(demo_log, monkeypatch):
    at = page("pages/overview.py", demo_log, monkeypatch)
    assert at.title[0].value == "Overview"
    assert at.metric[0].value == "2,000"


def test_recent_decisions_page(demo_log, monkeypatch):
    at = page("pages/recent.py", demo_log, monkeypatch)
    assert at.title[0].value == "Recent decisions"
    assert len(at.dataframe[0].value) == 100
    cands = at.dataframe[1].value
    assert len(cands) == 29 and set(cands.columns) >= {"stage", "rule", "reason", "priority"}
    at.selectbox[0].set_value("email").run()
    assert set(at.dataframe[0].value["channel"]) == {"email"}


def test_missing_log_shows_the_command_that_creates_one(tmp_path, monkeypatch):
    at = page("pages/overview.py", tmp_path / "none.duckdb", monkeypatch)
    assert f"klartext demo --db {tmp_path / 'none.duckdb'}" in at.info[0].value


def test_app_routes_to_the_overview(demo_log, monkeypatch):
    at = page("app.py", demo_log, monkeypatch)
    assert at.title[0].value == "Overview"


def test_stage_funnel_orders_stages_and_colours_selected():
    fig = stage_funnel(pd.DataFrame({"stage": ["selected", "eligibility", "ranked"], "candidates": [5, 50, 7]}))
    bar = fig.data[0]
    assert list(bar.y) == ["Eligibility", "Ranked, not shown", "Selected"]
    assert list(bar.x) == [50, 7, 5]
    assert bar.marker.color[-1] == "#2e7d32"
