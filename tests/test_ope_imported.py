"""Off-policy evaluation on imported logs: a bandit log with its logging probabilities and
outcomes, stochastic target policies, outcomes added later, and positivity.

The reference is Open Bandit Pipeline (obp 0.4.1, a test-time reference only): on its
synthetic bandit data (``tests/data/obp``, made by ``make_fixture.py`` there) Klartext's IPS
and SNIPS must equal obp's IPW and SNIPW to 1e-9.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analysis import tradeoff as T
from decision_log.importers import import_file
from decision_log.store import DecisionLog
from decisioning.errors import InputError
from klartext.cli import main

OBP = Path(__file__).resolve().parent / "data" / "obp"


@pytest.fixture(scope="module")
def bandit_log(tmp_path_factory):
    db = tmp_path_factory.mktemp("obp") / "bandit.duckdb"
    with DecisionLog.open(db) as log:
        rep = import_file(log, "generic", str(OBP / "bandit.csv"))
    assert (rep.decisions_added, rep.outcomes_added, rep.bad_rows) == (3000, 3000, 0)
    return db


def test_ips_and_snips_equal_open_bandit_pipelines_on_its_synthetic_data(bandit_log):
    expected = json.loads((OBP / "expected.json").read_text())
    target = T.read_target_probabilities(str(OBP / "target.parquet"))
    with DecisionLog.open(bandit_log, read_only=True) as log:
        res = T.off_policy_probabilities(log, target, reward="conversion", n_boot=300, seed=1)
    est = res["estimates"]
    assert abs(est["ips"]["value"] - expected["ipw"]) < 1e-9
    assert abs(est["snips"]["value"] - expected["snipw"]) < 1e-9
    assert res["supported"] == 1.0 and res["scope"] == "all" and "warning" not in res
    # the simulation's true value lies in the intervals
    for k in ("ips", "snips", "dr"):
        assert est[k]["ci_low"] <= expected["ground_truth"] <= est[k]["ci_high"], (k, est[k])


def test_one_distribution_for_all_decisions_is_the_weighted_mean(bandit_log, tmp_path):
    # target: a fixed distribution over three arms; IPS by hand from the file itself
    dist = {"arm_0": 0.5, "arm_3": 0.3, "arm_7": 0.2}
    path = tmp_path / "fixed.csv"
    pd.DataFrame({"action_id": list(dist), "probability": list(dist.values())}).to_csv(path, index=False)
    src = pd.read_csv(OBP / "bandit.csv")
    w = src["action_id"].map(dist).fillna(0.0) / src["probability"]
    with DecisionLog.open(bandit_log, read_only=True) as log:
        res = T.off_policy_probabilities(log, T.read_target_probabilities(str(path)), n_boot=0)
    assert res["estimates"]["ips"]["value"] == pytest.approx(float((w * src["outcome"]).mean()), abs=1e-12)
    assert res["estimates"]["snips"]["value"] == pytest.approx(float((w * src["outcome"]).sum() / w.sum()), abs=1e-12)
    assert res["estimates"]["ips"]["matched"] == int((w > 0).sum())


def test_cli_ope_with_target_probabilities_on_an_imported_log(bandit_log):
    out = CliRunner().invoke(main, ["ope", "--db", str(bandit_log), "--target-probabilities",
                                    str(OBP / "target.parquet"), "--boot", "50"])
    assert out.exit_code == 0, out.output
    assert "IPS    0.6881" in out.output and "SNIPS  0.7047" in out.output


@pytest.mark.parametrize("rows, message", [
    ("action_id,probability\narm_0,0.5\narm_1,0.6\n", "sum to 1.1, not 1"),
    ("action_id,probability\narm_0,1.5\n", "row 1: probability '1.5' is not a number in [0, 1]"),
    ("action_id,probability\narm_0,0.5\narm_0,0.5\n", "row 2: action 'arm_0' is listed twice"),
    ("action,probability\narm_0,1\n", "column 'action_id' is missing"),
])
def test_bad_target_files_are_named(tmp_path, rows, message):
    path = tmp_path / "t.csv"
    path.write_text(rows)
    with pytest.raises(InputError) as err:
        T.read_target_probabilities(str(path))
    assert message in err.value.message


def _greedy_bandit(path: Path) -> None:
    """A deterministic logger: every decision served with probability 1."""
    src = pd.read_csv(OBP / "bandit.csv").head(400)
    src.assign(probability=1.0).to_csv(path, index=False)


def test_a_deterministic_log_refuses_a_target_it_cannot_support(tmp_path):
    _greedy_bandit(tmp_path / "greedy.csv")
    with DecisionLog.open(tmp_path / "g.duckdb") as log:
        import_file(log, "generic", str(tmp_path / "greedy.csv"))
        served = pd.read_csv(tmp_path / "greedy.csv")["action_id"]
        never = sorted(set(f"arm_{k}" for k in range(10)) - set(served))
        other = pd.DataFrame({"action_id": [never[0] if never else "arm_unseen"], "probability": [1.0]})
        with pytest.raises(T.UnsupportedTarget) as err:
            T.off_policy_probabilities(log, other, n_boot=0)
        # half the mass on the most served arm: supported only where it was served, and flagged
        top = served.value_counts().index[0]
        half = pd.DataFrame({"action_id": [top, "arm_unseen"], "probability": [0.5, 0.5]})
        res = T.off_policy_probabilities(log, half, n_boot=0)
    assert "no exploration and no experiment" in err.value.message
    share = float((served == top).mean())
    assert res["supported"] == pytest.approx(share * 0.5)
    assert res["scope"] == "biased" and "Positivity is violated" in res["warning"]


def test_a_log_without_logging_probabilities_says_what_is_missing(tmp_path):
    src = pd.read_csv(OBP / "bandit.csv").head(50).drop(columns="probability")
    src.to_csv(tmp_path / "noprob.csv", index=False)
    with DecisionLog.open(tmp_path / "n.duckdb") as log:
        import_file(log, "generic", str(tmp_path / "noprob.csv"))
        with pytest.raises(InputError) as err:
            T.off_policy_probabilities(log, pd.DataFrame({"action_id": ["arm_0"], "probability": [1.0]}))
    assert "have no logged selection probability (source: generic)" in err.value.message
    assert "`probability`" in err.value.hint


def test_outcomes_can_be_added_to_any_log_later(tmp_path):
    src = pd.read_csv(OBP / "bandit.csv").head(100)
    src.drop(columns="outcome").to_csv(tmp_path / "decisions.csv", index=False)
    outcomes = src[["decision_id", "action_id", "outcome"]].assign(revenue=np.where(src["outcome"] == 1, 9.5, 0.0))
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    db = tmp_path / "o.duckdb"
    with DecisionLog.open(db) as log:
        rep = import_file(log, "generic", str(tmp_path / "decisions.csv"))
        assert rep.outcomes_added == 0
    run = CliRunner().invoke
    out = run(main, ["import-outcomes", "--db", str(db), str(tmp_path / "outcomes.csv")])
    assert out.exit_code == 0, out.output
    assert "100 rows → 100 outcomes added (0 logged already)" in out.output
    again = run(main, ["import-outcomes", "--db", str(db), str(tmp_path / "outcomes.csv")])
    assert "100 rows → 0 outcomes added (100 logged already)" in again.output
    # a changed outcome is refused row by row, with the value; unknown decisions and actions too
    bad = pd.DataFrame({"decision_id": ["R00000", "NOPE", "R00001"], "action_id": ["arm_3", "arm_0", "arm_9"],
                        "outcome": [1 - int(src["outcome"].iloc[0]), 1, 1]})
    bad.to_csv(tmp_path / "bad.csv", index=False)
    out = run(main, ["import-outcomes", "--db", str(db), str(tmp_path / "bad.csv")])
    assert "bad.csv row 1, column outcome" in out.output and "outcomes are not changed" in out.output
    assert "row 2, column decision_id: 'NOPE' is not a decision in the log" in out.output
    assert "row 3, column action_id: 'arm_9' is not an action of that decision" in out.output
    with DecisionLog.open(db) as log:
        assert log.verify().ok
        got = log.con.execute("SELECT count(*), sum(revenue), count(*) FILTER (WHERE outcome = 'accepted') "
                              "FROM outcomes").fetchall()[0]
        log.con.execute("UPDATE outcomes SET revenue = 1000 WHERE decision_id = 'generic:R00000'")
        tampered = log.verify()
    assert got == (100, pytest.approx(9.5 * src["outcome"].sum()), int(src["outcome"].sum()))
    assert not tampered.ok and tampered.table == "outcomes"


def test_views_on_imported_logs_say_what_fits(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    path = Path(__file__).resolve().parent / "data" / "pega" / "sample_explainability_extract.parquet"
    db = tmp_path / "v1.duckdb"
    with DecisionLog.open(db) as log:
        import_file(log, "pega-v1", str(path))
    run = CliRunner().invoke
    # explain --sample on a log with no decision made here: says so and fails (never "0 explained, OK")
    out = run(main, ["explain", "--sample", "20", "--db", str(db)])
    assert out.exit_code == 2 and "holds no decisions from 'klartext' (only from pega-v1)" in out.output
    out = run(main, ["compare", "--db", str(db), "--challenger", str(Path(__file__).resolve().parent.parent /
                                                                     "decisioning/scenarios/retail_strategy.yaml")])
    assert out.exit_code == 2 and "holds only imported decisions (100, from pega-v1)" in out.output
    assert "Run `klartext demo` first" not in out.output
    # no outcomes: no acceptance rate (not "0.0%")
    monkeypatch.setenv("KLARTEXT_DB", str(db))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "pages" / "overview.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert [m.value for m in at.metric if m.label == "Acceptance rate"] == ["no outcomes"]
