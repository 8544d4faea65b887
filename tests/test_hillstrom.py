"""The Hillstrom scenario: real data, logged with the experiment's arms, evaluated off-policy."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from click.testing import CliRunner

from analysis import tradeoff as T
from decision_log import queries
from decision_log.replay import replay, sample_ids
from decision_log.store import DecisionLog
from decisioning.errors import InputError
from decisioning.inputs import Requests
from decisioning.scenarios import hillstrom
from explain.api import Explainer
from klartext.cli import main
from klartext.jobs import run_hillstrom


@pytest.fixture(scope="module")
def hill_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("hill") / "hill.duckdb"
    run_hillstrom(str(path), explain_sample=100)
    return path


def test_the_shipped_copy_is_the_published_file():
    assert hashlib.sha256(hillstrom.DATA.read_bytes()).hexdigest() == hillstrom.SHA256
    f = hillstrom.load_frame()
    assert len(f) == 64000
    assert f.groupby("arm")["visit"].mean().round(3).to_dict() == {
        "mens_email": 0.183, "no_email": 0.106, "womens_email": 0.151}


def test_log_holds_the_held_out_half_with_its_real_arms(hill_log):
    _, test = hillstrom.split(hillstrom.load_frame())
    with DecisionLog.open(hill_log, read_only=True) as log:
        con = log.con.cursor()
        n, probs, explored = con.execute("SELECT count(*), list(DISTINCT selection_probability), bool_and(explored) "
                                         "FROM decisions").fetchall()[0]
        chosen = [r[0] for r in con.execute("SELECT chosen_action FROM decisions ORDER BY seq").fetchall()]
        spend = con.execute("SELECT sum(revenue) FROM outcomes").fetchall()[0][0]
        arms = queries.arm_means(con).set_index("action_id")
    assert n == len(test) and probs == [1 / 3] and explored
    assert chosen == test["arm"].tolist()
    assert spend == pytest.approx(test["spend"].sum(), rel=1e-12)
    obs = hillstrom.observed_arm_means(test).set_index("arm")
    for arm in hillstrom.ARMS.values():
        assert arms.loc[arm, "visit"] == pytest.approx(obs.loc[arm, "visit"], rel=1e-12)
        assert arms.loc[arm, "revenue"] == pytest.approx(obs.loc[arm, "revenue"], rel=1e-12)


def test_everyone_gets_the_mens_email_agrees_with_the_mens_arm(hill_log):
    """The check a reviewer can repeat by hand: SNIPS of "everyone gets the men's e-mail" is
    the observed mean of the men's arm; IPS is 3 × its sum / all decisions."""
    with DecisionLog.open(hill_log, read_only=True) as log:
        f = T.load_factors(log)
        mens = np.full(len(f), f.strategy.action_index("mens_email"))
        res = {rw: T.off_policy(log, f, mens, reward=rw, n_boot=100) for rw in ("visit", "revenue")}
        arms = queries.arm_means(log.con.cursor()).set_index("action_id")
    for rw, col in (("visit", "visit"), ("revenue", "revenue")):
        observed = arms.loc["mens_email", col]
        snips, ips = res[rw]["estimates"]["snips"], res[rw]["estimates"]["ips"]
        assert snips["value"] == pytest.approx(observed, rel=1e-12)
        n_mens = arms.loc["mens_email", "decisions"]
        assert ips["value"] == pytest.approx(3 * observed * n_mens / len(f), rel=1e-12)
        assert ips["ci_low"] <= observed <= ips["ci_high"]


def test_decisions_replay_and_explain(hill_log):
    with DecisionLog.open(hill_log, read_only=True) as log:
        ids = sample_ids(log, 200, seed=3)
        assert all(r.reproduced for r in replay(log, ids))
        s = Explainer(log).explain_many(ids[:50])
    assert s["failures"] == [] and s["candidates_explained"] == 150


def test_report_cli_shows_estimates_and_lifts_with_intervals(hill_log):
    out = CliRunner().invoke(main, ["ope", "--db", str(hill_log), "--report", "--boot", "50", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output[out.output.index("{"):])
    targets = {r["target"] for r in data["estimates"]}
    assert targets == {"learned targeting (the strategy)", "everyone: mens_email", "everyone: womens_email",
                       "everyone: no_email"}
    for lift in data["learned_lift"]:
        assert lift["ci_low"] <= lift["lift"] <= lift["ci_high"]


def test_assignment_is_validated():
    s = hillstrom.load_strategy_file()
    item = {"customer_id": "x", "channel": "email", "features": {
        "recency": 3, "history": 120.0, "history_segment": "2) $100 - $200", "mens": True, "womens": False,
        "zip_code": "Urban", "newbie": False, "purchase_channel": "Web"}}
    with pytest.raises(InputError) as err:
        Requests.from_dicts(s, [{**item, "assignment": {"action": "sms_blast", "probability": 0.5}}])
    assert err.value.message == "request: assignment names unknown action 'sms_blast'."
    with pytest.raises(InputError) as err:
        Requests.from_dicts(s, [{**item, "assignment": {"action": "mens_email", "probability": 0}}])
    assert err.value.message == "request: assignment.probability must be a number in (0, 1], got 0."
    req = Requests.from_dicts(s, [{**item, "assignment": {"action": "no_email", "probability": 0.25}}])
    assert req.to_dict(s, 0)["assignment"] == {"action": "no_email", "probability": 0.25}
