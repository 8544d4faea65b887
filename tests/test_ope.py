"""Off-policy evaluation against the simulator's ground truth, and the estimators' arithmetic.

In the synthetic retailer the true acceptance probability of every action for every customer
is known, so the true value of any target policy is known too.  Over target policies and
seeds fixed here, the estimators' 95% intervals must contain the truth at about the rate
they promise.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analysis.ope import difference, evaluate
from analysis.tradeoff import Setting, from_batch
from decisioning.engine import Engine
from decisioning.inputs import Requests
from decisioning.models import train_models
from decisioning.scenarios import retail

SEEDS = (11, 12, 13, 14, 15, 16)
TARGETS = {
    "pure margin": Setting(margin_weight=2.0, retention_weight=0.0),
    "retention-heavy": Setting(margin_weight=0.5, retention_weight=1.5),
    "service and loyalty first": Setting(levers={"service": 3.0, "loyalty": 2.0}),
}


@pytest.fixture(scope="module")
def explore_setup():
    strategy = dataclasses.replace(retail.load_demo_strategy(), epsilon=0.3)
    models = train_models(strategy, retail.simulate_history(strategy, per_action=1500, seed=3), seed=3)
    return strategy, Engine(strategy, models)


def _simulate(strategy, engine, seed, n=6000):
    people = retail.generate_customers(n, seed=seed)
    frame, contacts, rej, days = retail.generate_interactions(people, strategy, seed=seed)
    req = Requests.from_frame(strategy, frame, contacts=contacts, rejections=rej, days_since_rejection=days)
    batch = engine.decide(req, decision_ids=np.array([f"S{seed}-{i:06d}" for i in range(n)], dtype=object))
    f = from_batch(strategy, batch)
    # true acceptance probability of every action for every customer (on their channel)
    truth = np.column_stack([retail.true_propensity(frame, a) for a in strategy.action_ids])
    rng = np.random.default_rng([seed, 77])
    logged = f.logged_first
    p_logged = np.where(logged >= 0, truth[np.arange(n), np.maximum(logged, 0)], 0.0)
    reward = (rng.random(n) < p_logged).astype(float)
    return f, batch, truth, reward


def test_interval_coverage_against_the_simulators_truth(explore_setup):
    strategy, engine = explore_setup
    hits = {"ips": 0, "snips": 0, "dr": 0}
    total = 0
    for seed in SEEDS:
        f, batch, truth, reward = _simulate(strategy, engine, seed)
        n = len(f)
        for setting in TARGETS.values():
            sel = f.arbitrate(setting)
            target = f.first(sel, setting)
            # only actions the logging policy could have picked are supported; keep the
            # target inside that support (choose among the logged ranked actions)
            alive = batch.rank > 0
            supported = (target < 0) | alive[np.arange(n), np.maximum(target, 0)]
            target = np.where(supported, target, f.logged_first)
            true_value = float(np.where(target >= 0, truth[np.arange(n), np.maximum(target, 0)], 0.0).mean())
            q = np.nan_to_num(f.propensity)
            q_t = np.where(target >= 0, q[np.arange(n), np.maximum(target, 0)], 0.0)
            q_l = np.where(f.logged_first >= 0, q[np.arange(n), np.maximum(f.logged_first, 0)], 0.0)
            est = evaluate(f.logged_first, batch.selection_probability, reward, target, q_t, q_l, n_boot=200, seed=seed)
            total += 1
            for k, e in est.items():
                hits[k] += e.ci_low <= true_value <= e.ci_high
                assert abs(e.value - true_value) < 0.05, (k, e, true_value)
    coverage = {k: v / total for k, v in hits.items()}
    assert all(c >= 0.8 for c in coverage.values()), coverage


def test_ips_of_the_logging_policy_is_the_observed_mean():
    rng = np.random.default_rng(0)
    n = 5000
    logged = rng.integers(0, 3, n)
    r = rng.random(n)
    est = evaluate(logged, np.full(n, 1 / 3), r, logged, n_boot=50)
    # a target equal to the logging policy has weight 3 everywhere: IPS = 3 × mean, SNIPS = mean
    assert est["snips"].value == pytest.approx(r.mean(), rel=1e-12)
    assert est["ips"].value == pytest.approx(3 * r.mean(), rel=1e-12)
    always_0 = evaluate(logged, np.full(n, 1 / 3), r, np.zeros(n, dtype=int), n_boot=50)
    assert always_0["ips"].value == pytest.approx(3 * r[logged == 0].sum() / n, rel=1e-12)
    assert always_0["snips"].value == pytest.approx(r[logged == 0].mean(), rel=1e-12)
    assert always_0["ips"].matched == int((logged == 0).sum())
    assert always_0["ips"].ess == pytest.approx((logged == 0).sum(), rel=1e-12)


def test_zero_logged_probability_is_refused_with_the_value():
    with pytest.raises(ValueError) as err:
        evaluate(np.array([0, 1]), np.array([0.5, 0.0]), np.array([1.0, 0.0]), np.array([0, 0]))
    assert str(err.value).startswith("Logged selection probability 0.0 at decision 1 is not positive")


def test_difference_is_the_mean_lift_with_a_normal_width_interval():
    rng = np.random.default_rng(1)
    a = (rng.random(20000) < 0.30).astype(float)
    b = (rng.random(20000) < 0.25).astype(float)
    d = difference(a, b, n_boot=400)
    assert d.value == a.mean() - b.mean()
    se = np.sqrt(a.var() / len(a) + b.var() / len(b))
    assert (d.ci_high - d.ci_low) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert d.ci_low < d.value < d.ci_high


# -- positivity: an estimate the log cannot support is refused or scoped, never printed as if whole


@pytest.fixture(scope="module")
def greedy_log(tmp_path_factory):
    """A demo log whose strategy never explores: every selection probability is 1."""
    from decisioning.strategy import parse_strategy
    from klartext import jobs

    text = retail.load_demo_strategy().text.replace("epsilon: 0.05", "epsilon: 0.0")
    assert "epsilon: 0.0" in text
    path = tmp_path_factory.mktemp("greedy") / "greedy.duckdb"
    mp = pytest.MonkeyPatch()
    mp.setattr(jobs.retail, "load_demo_strategy", lambda: parse_strategy(text))
    try:
        jobs.run_demo(str(path), 1500, history_per_action=600)
    finally:
        mp.undo()
    return path


def test_a_log_without_exploration_supports_only_what_was_served(greedy_log):
    from analysis import tradeoff as T
    from decision_log.store import DecisionLog

    with DecisionLog.open(greedy_log, read_only=True) as log:
        f = T.load_factors(log)
        assert (log.con.execute("SELECT min(selection_probability), bool_or(explored) FROM decisions").fetchall()[0]
                == (1.0, False))
        served = f.logged_first
        j = int(np.bincount(served[served >= 0]).argmax())  # the most served action
        res = T.off_policy(log, f, np.full(len(f), j), reward="retention", n_boot=50)
        greedy = T.off_policy(log, f, T.first_actions(f), reward="retention", n_boot=50)
        never = np.where(served >= 0, -1, j)  # differs from what was served in every decision
        with pytest.raises(T.UnsupportedTarget) as err:
            T.off_policy(log, f, never, reward="retention", n_boot=50)
    share = float((served == j).mean())
    # supported only where j was served (the old code said 100% because j was *ranked* there)
    assert res["supported"] == pytest.approx(share) and 0 < share < T.SUPPORT_WARN
    assert res["scope"] == "supported" and res["decisions"] == int((served == j).sum())
    assert "Positivity is violated" in res["warning"] and "not the target's value on the whole" in res["warning"]
    assert "Too little of the log supports the target" in res["warning"]
    # on the supported part the logging policy *is* the target: IPS = the observed mean there
    assert res["estimates"]["ips"]["value"] == pytest.approx(res["logging_policy_value"], rel=1e-12)
    assert greedy["supported"] == 1.0 and greedy["scope"] == "all" and "warning" not in greedy
    assert "no exploration and no experiment" in err.value.message
    assert "exploration.epsilon > 0" in err.value.hint
    # what the page words in German and English (the message itself is the CLI's)
    assert err.value.no_exploration and err.value.decisions == res["decisions_with_outcomes"] > 0


def test_cli_ope_warns_loudly_and_refuses_without_support(greedy_log):
    from click.testing import CliRunner

    from klartext.cli import main

    run = CliRunner().invoke
    with __import__("decision_log.store", fromlist=["DecisionLog"]).DecisionLog.open(greedy_log, read_only=True) as log:
        top = log.con.execute("SELECT chosen_action FROM decisions WHERE chosen_action IS NOT NULL "
                              "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchall()[0][0]
    out = run(main, ["ope", "--db", str(greedy_log), "--always", top, "--reward", "retention", "--boot", "50"])
    assert out.exit_code == 0, out.output
    assert "WARNING: Positivity is violated" in out.output
    assert "Estimates over the " in out.output and "supported decisions only" in out.output
