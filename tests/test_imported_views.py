"""Views that need no model work on imported decisions that carry their four factors:
what-if levers and sensitivity by re-arbitrating the logged factors (Pega's v1 extract)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from analysis import imported as I
from decision_log.importers import import_file
from decision_log.store import DecisionLog
from klartext.cli import main

ROOT = Path(__file__).resolve().parent.parent
V1 = ROOT / "tests" / "data" / "pega" / "sample_explainability_extract.parquet"


@pytest.fixture(scope="module")
def v1_log(tmp_path_factory):
    db = tmp_path_factory.mktemp("v1") / "v1.duckdb"
    with DecisionLog.open(db) as log:
        import_file(log, "pega-v1", str(V1))
    return db


def _by_hand(levers: dict[str, float]) -> float:
    """Share of interactions whose top action changes when the issues' Weight is replaced."""
    df = pd.read_parquet(V1).reset_index(names="row")
    w = df["Weight"].where(~df["pyIssue"].isin(list(levers)), df["pyIssue"].map(levers))
    df["p0"] = df["FinalPropensity"] * df["Value"] * df["ContextWeight"] * df["Weight"]
    df["p1"] = df["FinalPropensity"] * df["Value"] * df["ContextWeight"] * w
    top = {}
    for k in ("p0", "p1"):
        top[k] = df.sort_values(["pxInteractionID", k, "row"], ascending=[True, False, True]).groupby(
            "pxInteractionID")["pyName"].first()
    return float((top["p0"] != top["p1"]).mean())


def test_what_if_and_sensitivity_re_arbitrate_the_logged_factors(v1_log):
    with DecisionLog.open(v1_log, read_only=True) as log:
        lf = I.load(log.con.cursor())
    assert (len(lf), lf.reproduced) == (100, 100)  # the logged factors reproduce every logged winner
    levers = {"Retention": 3.0, "Service": 0.2}
    res = I.what_if(lf, levers)
    assert res["changed"] == pytest.approx(_by_hand(levers)) and res["changed"] > 0
    assert res["by_action"]["delta"].sum() == 0 and res["by_action"]["before"].sum() == 100
    sens = I.sensitivity(lf).set_index("change")["changed"]
    assert sens["drop propensity"] > 0 and set(sens.index) >= {"drop value", "drop context_weight", "drop lever"}
    with pytest.raises(Exception) as err:
        I.what_if(lf, {"Nonsense": 2.0})
    assert "Unknown action, issue or group 'Nonsense'" in str(err.value)


def test_simulate_on_an_imported_log(v1_log):
    run = CliRunner().invoke
    out = run(main, ["simulate", "--db", str(v1_log), "--lever", "Retention=3", "--lever", "Service=0.2",
                     "--sensitivity"])
    assert out.exit_code == 0, out.output
    assert "reproduces the first action of 100 of the 100 that chose one" in out.output
    assert f"{_by_hand({'Retention': 3.0, 'Service': 0.2}):.2%} of decisions get another first action" in out.output
    assert "No margin/retention sweep" in out.output and "drop propensity" in out.output
    out = run(main, ["simulate", "--db", str(v1_log), "--margin-weight", "2"])
    assert out.exit_code == 2 and "only --lever and --sensitivity apply" in out.output


def test_the_trade_offs_page_re_arbitrates_an_imported_log(v1_log, monkeypatch):
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    monkeypatch.setenv("KLARTEXT_DB", str(v1_log))
    at = AppTest.from_file(str(ROOT / "pages" / "tradeoffs.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.metric  # the tabs that re-arbitrate run when chosen
    at.session_state["to_tab"] = "What-if"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.metric[0].value == "0.00%"
    assert any("no margin/retention frontier" in i.value for i in at.info)
    at.number_input(key="im_lever_Retention").set_value(3.0).run()
    assert at.metric[0].value == f"{_by_hand({'Retention': 3.0}):.2%}"
    assert np.isfinite(float(at.metric[0].value.rstrip("%")))
