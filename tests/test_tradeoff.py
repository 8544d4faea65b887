"""Re-arbitration from the log: it reproduces the engine, and what-ifs agree with re-running it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from analysis import tradeoff as T
from decision_log.store import DecisionLog
from decisioning.strategy import parse_strategy
from klartext.cli import main


@pytest.fixture(scope="module")
def factors(demo_log):
    with DecisionLog.open(demo_log, read_only=True) as log:
        return T.load_factors(log)


def test_rearbitration_reproduces_every_greedy_decision(factors):
    assert len(factors) == 2000
    assert factors.check() == 0
    sel = factors.arbitrate()
    first = factors.first(sel)
    greedy = ~factors.explored
    np.testing.assert_array_equal(first[greedy], factors.logged_first[greedy])


def test_sweep_passes_through_the_strategy_and_is_a_frontier(factors):
    sw = T.sweep(factors, 21)
    assert len(sw) == 21 and sw["lambda"].iloc[0] == 0.0 and sw["lambda"].iloc[-1] == 1.0
    cur = sw[sw["current"]].iloc[0]
    exact = factors.kpis(factors.arbitrate())
    for k in T.KPIS:
        assert cur[k] == pytest.approx(exact[k], rel=1e-12)
    assert cur["changed"] == 0.0
    assert cur["margin_weight"] == factors.strategy.margin_weight
    # more weight on retention never buys margin, and never loses retention, along the sweep
    assert sw["margin"].iloc[0] >= cur["margin"] >= sw["margin"].iloc[-1]
    assert sw["retention"].iloc[0] <= cur["retention"] <= sw["retention"].iloc[-1]
    eff = sw[sw["efficient"]]
    for _, row in eff.iterrows():
        assert not ((sw["margin"] > row["margin"]) & (sw["retention"] > row["retention"])).any()


def test_what_if_agrees_with_rerunning_the_engine(demo_log, factors):
    """A lever change evaluated on the logged factors selects exactly what the engine selects
    when the strategy file itself is changed and the logged inputs are decided again."""
    s = factors.strategy
    text = s.text.replace("service: 1.2", "service: 2.5")
    assert text != s.text
    challenger = parse_strategy(text)
    with DecisionLog.open(demo_log, read_only=True) as log:
        g = T.rerun(log, challenger, factors)
    setting = T.Setting(levers={"service": 2.5})
    via_factors = factors.arbitrate(setting)
    via_engine = g.arbitrate()
    np.testing.assert_array_equal(via_factors, via_engine)
    res = T.compare(factors, g)
    w = T.what_if(factors, setting)
    assert res["changed"] == pytest.approx(w["changed"])
    assert res["challenger"]["margin"] == pytest.approx(w["what_if"]["margin"], rel=1e-12)
    service = res["by_segment"].query("by == 'issue' and key == 'service'").iloc[0]
    assert service["contacts_delta"] > 0


def test_same_strategy_changes_nothing(demo_log, factors):
    with DecisionLog.open(demo_log, read_only=True) as log:
        g = T.rerun(log, factors.strategy, factors)
    res = T.compare(factors, g)
    assert res["changed_decisions"] == 0
    # what the log gives back (CLV read from the inputs' JSON, cells grouped from the scan) is
    # bit for bit what the engine computes again from the logged inputs
    for name in ("clv", "channel", "seq", "logged_first"):
        np.testing.assert_array_equal(getattr(g, name), getattr(factors, name), err_msg=name)
    for name in ("scored", "propensity", "context_weight", "lever"):
        np.testing.assert_array_equal(getattr(g, name), getattr(factors, name), err_msg=name)


def test_cell_order_does_not_change_any_selection(factors):
    """The kernels break every tie by catalogue position, so any order of the cells within a
    decision selects the same (the layout puts them in catalogue order; here they are reversed)."""
    from analysis.kernels import group_cells, repeated_cell

    f = factors
    n, A = len(f), len(f.strategy.actions)
    rows = np.repeat(np.arange(n), np.diff(f.cell_ptr))
    rev = f.cell_ptr[rows] + f.cell_ptr[rows + 1] - 1 - np.arange(len(rows))  # each decision's cells backwards
    shuffled = dataclasses.replace(f, cell_col=f.cell_col[rev], cell_propensity=f.cell_propensity[rev],
                                   cell_context_weight=f.cell_context_weight[rev], cell_lever=f.cell_lever[rev])
    assert not np.array_equal(shuffled.cell_col, f.cell_col)
    settings = [T.Setting(), T.Setting(drop=("propensity",)), T.Setting(drop=("value", "lever")),
                T.Setting(top_n={"web": 5})]  # dropping factors makes many exact ties
    a, b = T.evaluate(f, settings, chunk=300), T.evaluate(shuffled, settings, chunk=300)
    np.testing.assert_array_equal(a.firsts, b.firsts)
    np.testing.assert_array_equal(a.by_action[:, 0], b.by_action[:, 0])
    np.testing.assert_array_equal(shuffled.propensity, f.propensity)
    np.testing.assert_array_equal(shuffled.ranked_at(f.logged_first), f.ranked_at(f.logged_first))
    with pytest.raises(ValueError, match="outside the decisions or the catalogue"):
        group_cells(rows, f.cell_col + A, f.cell_propensity, f.cell_context_weight, f.cell_lever, n, A)
    assert repeated_cell(f.cell_ptr, f.cell_col, A) == -1
    i = int(np.flatnonzero(np.diff(f.cell_ptr) >= 2)[5])
    twice = f.cell_col.copy()
    twice[f.cell_ptr[i] + 1] = twice[f.cell_ptr[i]]
    assert repeated_cell(f.cell_ptr, twice, A) == i


def test_sensitivity_and_lever_finder(factors):
    sens = T.sensitivity(factors).set_index("change")
    assert sens.loc["drop propensity", "changed"] > sens.loc["drop context_weight", "changed"] > 0
    a = factors.strategy.action_index("join_loyalty")
    now = factors.arbitrate()[:, a].mean()
    r = T.lever_for_share(factors, "join_loyalty", now / 2)
    assert r["share"] >= now / 2 and r["share"] - now / 2 <= 2 / len(factors)
    assert r["lever"] < r["current_lever"]
    sel = factors.arbitrate(T.Setting(levers={"join_loyalty": r["lever"]}))
    assert sel[:, a].mean() == r["share"]


def test_unknown_lever_names_the_value(factors):
    with pytest.raises(ValueError) as err:
        factors.arbitrate(T.Setting(levers={"nope": 2.0}))
    assert str(err.value).startswith("Unknown action or issue 'nope' in levers; use one of: growth, loyalty")


def test_off_policy_of_the_greedy_strategy_is_supported(demo_log, factors):
    with DecisionLog.open(demo_log, read_only=True) as log:
        res = T.off_policy(log, factors, factors.first(factors.arbitrate()), n_boot=50)
    assert res["supported"] == 1.0
    assert res["decisions"] == 2000
    snips = res["estimates"]["snips"]
    assert snips["ci_low"] <= snips["value"] <= snips["ci_high"]
    assert snips["matched"] == int((~factors.explored).sum() + (factors.explored & (
        factors.first(factors.arbitrate()) == factors.logged_first)).sum())


def test_cli_simulate_compare_ope(demo_log, tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["simulate", "--db", str(demo_log), "--lever", "service=2", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert len(data["frontier"]) == 21 and data["reproduced_by_rearbitration"] == data["greedy_decisions"]
    assert data["what_if"]["changed"] > 0
    bad = runner.invoke(main, ["simulate", "--db", str(demo_log), "--lever", "service"])
    assert bad.exit_code == 2
    assert bad.output.splitlines()[0] == "Error: --lever 'service' is not KEY=VALUE with a number."
    with DecisionLog.open(demo_log, read_only=True) as log:
        text = log.load_strategy(log.latest_strategy_version()).text
    ch = tmp_path / "challenger.yaml"
    ch.write_text(text.replace("retention_weight: 0.5", "retention_weight: 1.5"))
    cmp_ = runner.invoke(main, ["compare", "--db", str(demo_log), "--challenger", str(ch)])
    assert cmp_.exit_code == 0, cmp_.output
    assert "decisions (" in cmp_.output and "get another first action" in cmp_.output
    o = runner.invoke(main, ["ope", "--db", str(demo_log), "--target", str(ch), "--boot", "30", "--json"])
    assert o.exit_code == 0, o.output
    res = json.loads(o.output[o.output.index("{"):])
    assert set(res["estimates"]) == {"ips", "snips", "dr"} and res["target"].endswith(")")


def test_dataclass_replace_keeps_factors_consistent(factors):
    sub = factors.subset(np.arange(10))
    assert len(sub) == 10 and sub.scored.shape == (10, len(factors.strategy.actions))
    assert dataclasses.replace(sub).check() == 0


@pytest.mark.parametrize("setting", [
    T.Setting(),
    T.Setting(retention_weight=3.0),
    T.Setting(margin_weight=0.2, levers={"service": 2.5, "join_loyalty": 0.1}),
    T.Setting(thresholds={"email": 5.0, "web": 0.0}, top_n={"web": 3, "sms": 0}),
    T.Setting(drop=("propensity",)), T.Setting(drop=("value",)), T.Setting(drop=("context_weight", "lever")),
])
def test_blocked_evaluation_selects_exactly_what_dense_arbitration_selects(factors, setting):
    ev = T.evaluate(factors, [setting], chunk=300)  # small chunks: several run in parallel
    sel = factors.arbitrate(setting)
    np.testing.assert_array_equal(ev.firsts[0], factors.first(sel, setting))
    np.testing.assert_array_equal(ev.by_action[0, 0], sel.sum(axis=0))
    np.testing.assert_array_equal(ev.by_channel[0, 0], np.bincount(factors.channel, weights=sel.sum(axis=1),
                                                                    minlength=len(factors.strategy.channels)))
    dense = factors.kpis(sel)
    for i, k in enumerate(T.KPIS):
        assert ev.kpis[0, i] == pytest.approx(dense[k], rel=1e-12, abs=1e-9)


def test_evaluation_names_an_unknown_channel(factors):
    with pytest.raises(ValueError) as err:
        T.evaluate(factors, [T.Setting(thresholds={"fax": 1.0})])
    assert str(err.value) == "Unknown channel 'fax'; use one of: web, app, call_centre, email, push, sms."


def test_evaluation_names_an_unknown_factor(factors):
    with pytest.raises(ValueError) as err:
        T.evaluate(factors, [T.Setting(drop=("luck",))])
    assert str(err.value) == "Unknown factor 'luck' to drop; use one of: propensity, value, context_weight, lever."


def test_ranked_at_reads_the_cells_of_the_dense_arbitration(factors):
    alive, _ = factors.alive()
    rng = np.random.default_rng(3)
    n, A = alive.shape
    for cols in (rng.integers(-1, A, n), factors.logged_first, np.full(n, factors.strategy.action_index("winback_10"))):
        want = (cols >= 0) & alive[np.arange(n), np.maximum(cols, 0)]
        np.testing.assert_array_equal(factors.ranked_at(cols), want)
    assert alive.sum() > 0


def test_margin_kpi_pays_for_every_contact(factors):
    # an action shown costs its contact cost whether or not it is accepted (the old KPI left it out)
    sel = factors.arbitrate()
    cost = np.array([a.cost for a in factors.strategy.actions])
    assert cost.sum() > 0 and sel.sum() > 0
    p = np.where(sel, factors.propensity, 0.0)
    expected = float((p * factors.tables.net_margin[None, :]).sum() - (sel * cost[None, :]).sum())
    assert factors.kpis(sel)["margin"] == pytest.approx(expected, rel=1e-12)
    assert T.evaluate(factors, [T.Setting()]).kpi_dict(0)["margin"] == pytest.approx(expected, rel=1e-9)
    swept = T.sweep(factors, steps=3)
    assert swept.loc[swept["current"], "margin"].iloc[0] == pytest.approx(expected, rel=1e-9)


def test_a_large_version_is_re_decided_on_a_fixed_random_sample_scaled_to_all(demo_log, factors):
    """Past ``max_decisions`` (a quarter of a million in the dashboard) the factors are a uniform random
    sample, the same every time, whose totals stand for every decision of the version."""
    with DecisionLog.open(demo_log, read_only=True) as log:
        a = T.load_factors(log, max_decisions=800)
        b = T.load_factors(log, max_decisions=800)
    n = len(factors)
    assert len(a) == 800 and a.population == n == a.decisions and a.weight == n / 800
    assert np.array_equal(a.seq, b.seq) and len(np.unique(a.seq)) == 800
    assert np.isin(a.seq, factors.seq).all()
    full, est = T.what_if(factors, T.Setting()), T.what_if(a, T.Setting(retention_weight=2.0))
    assert est["decisions"] == n and est["sampled"] == 800 and full["sampled"] is None
    for k, v in full["base"].items():  # an unbiased estimate of every total (800 of 2,000: within 15%)
        if abs(v) > 50:
            assert abs(est["base"][k] - v) <= 0.15 * abs(v), (k, est["base"][k], v)
    part = a.subset(np.flatnonzero(a.channel == a.channel[0]), population=500)
    assert part.decisions == 500 and part.weight == 500 / len(part)
    assert factors.subset(np.arange(10)).population is None  # a whole version's subset stays itself


def test_a_selection_is_read_whole_or_sampled_within_itself(demo_log, factors):
    """The dashboard's period and channel filter reads the selection's own decisions: all of
    them when they are few enough (exactly the whole version's factors of those decisions),
    else a sample drawn from them that stands for the selection, not for the version."""
    with DecisionLog.open(demo_log, read_only=True) as log:
        sv = factors.strategy.version
        seqs = factors.seq[factors.channel == 0]
        whole = T.load_factors(log, sv, seqs=seqs, max_decisions=len(seqs))
        few = T.load_factors(log, sv, seqs=seqs, max_decisions=300)
    mine = factors.subset(np.flatnonzero(factors.channel == 0))
    assert whole.population is None and np.array_equal(whole.seq, mine.seq)
    for k in ("clv", "cell_ptr", "cell_col", "cell_propensity", "cell_context_weight", "cell_lever", "logged_first"):
        assert np.array_equal(getattr(whole, k), getattr(mine, k)), k
    assert len(few) == 300 and few.population == len(seqs) and np.isin(few.seq, seqs).all()
    rows = np.searchsorted(factors.seq, few.seq)
    assert np.array_equal(few.clv, factors.clv[rows]) and few.check() == 0


def test_the_cells_layout_does_not_depend_on_the_order_the_rows_came_in():
    # DuckDB's parallel join hands the candidate rows over in no fixed order: two reads of the
    # same decisions laid their cells out differently (and sums over them added in another order)
    from analysis.kernels import group_cells

    rng = np.random.default_rng(5)
    n, A = 400, 29
    rows = np.repeat(np.arange(n), 11)
    cols = np.concatenate([rng.permutation(A)[:11] for _ in range(n)]).astype(np.int32)
    vals = rng.random(len(rows))
    layouts = []
    for order in (rng.permutation(len(rows)), np.arange(len(rows))[::-1]):
        r, c, v = rows[order], cols[order], vals[order]
        layouts.append(group_cells(r, c, v, v * 2, v * 3, n, A))
    assert all(np.array_equal(x, y) for x, y in zip(*layouts))
    ptr, col, p = layouts[0][:3]
    assert all((np.diff(col[ptr[i]:ptr[i + 1]]) > 0).all() for i in range(n))  # catalogue order in a decision
