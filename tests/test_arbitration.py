"""Arbitration arithmetic, the incentive choice, thresholds, top-N, ties and exploration."""

import dataclasses

import numpy as np
import pytest

from conftest import cell, decide_one, request
from decisioning.engine import Engine
from decisioning.inputs import Requests


def test_priority_is_the_product_of_its_four_factors(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(age=25))
    c = cell(b, tiny_strategy, "store_card")
    product = c["propensity"] * c["value"] * c["context_weight"] * c["lever"]
    assert abs(c["priority"] - product) <= 1e-12 * abs(product)
    # the young-customer context weight and the growth lever apply to the store card
    assert c["context_weight"] == 1.5
    assert c["lever"] == 1.2


def test_value_blends_margin_net_of_incentive_and_retention(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(recency_days=400, clv=1000.0))
    a = tiny_strategy.action_index("reactivate_20")
    # margin 30 - 20% of 100 = 10; retention 0.5 x 0.1 x 1000 = 50
    assert b.value[0, a] == pytest.approx(1.0 * (30 - 20) + 0.5 * 0.1 * 1000, rel=1e-15)
    p = tiny_strategy.action_index("pay_later")
    # payment terms cost 100 x 10% x 30/365
    assert b.value[0, p] == pytest.approx(15 - 100 * 0.1 * 30 / 365, rel=1e-15)


def test_no_voucher_for_a_customer_who_buys_anyway(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(recency_days=10, clv=100.0))
    kept, dropped = cell(b, tiny_strategy, "reactivate_0"), cell(b, tiny_strategy, "reactivate_20")
    assert kept["stage"] in ("selected", "ranked")
    assert (dropped["stage"], dropped["rule"]) == ("incentive", "incentive_choice")
    assert dropped["reason"].startswith("incentive/incentive_choice: 'reactivate_0' (no incentive) ranks higher: priority ")


def test_higher_incentive_for_a_lapsed_customer(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(recency_days=700, clv=100.0))
    assert cell(b, tiny_strategy, "reactivate_20")["stage"] in ("selected", "ranked")
    dropped = cell(b, tiny_strategy, "reactivate_0")
    assert dropped["reason"].startswith("incentive/incentive_choice: 'reactivate_20' (20% voucher) ranks higher")


def test_no_action_when_nothing_clears_the_threshold(tiny_strategy, tiny_models):
    strict = dataclasses.replace(
        tiny_strategy, channels=tuple(dataclasses.replace(c, no_action_threshold=1e6) for c in tiny_strategy.channels))
    b = decide_one(Engine(strict, tiny_models), request())
    assert b.chosen[0] == []
    c = cell(b, strict, "reactivate_0")
    assert (c["stage"], c["rule"]) == ("arbitration", "no_action_threshold")
    assert c["reason"].endswith(" < threshold 1e+06 for web")


def test_top_n_per_channel_and_ranks(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request(age=22, recency_days=20, clv=300.0))
    ranked = [(cell(b, tiny_strategy, a.id)["rank"], a.id) for a in tiny_strategy.actions
              if cell(b, tiny_strategy, a.id)["rank"]]
    ranked.sort()
    assert len(b.chosen[0]) == min(2, len(ranked))  # web shows two
    assert [tiny_strategy.action_ids[a] for a in b.chosen[0]] == [a for _, a in ranked[:2]]
    prios = [cell(b, tiny_strategy, a)["priority"] for _, a in ranked]
    assert prios == sorted(prios, reverse=True)


def test_ties_break_by_catalog_order(tiny_strategy, tiny_models):
    # two identical actions (same model, same economics) tie exactly: the first in the catalog wins
    twin = dataclasses.replace(tiny_strategy.actions[4], id="newsletter_twin", offer="newsletter_twin")
    s = dataclasses.replace(tiny_strategy, actions=tiny_strategy.actions + (twin,),
                            levers=np.append(tiny_strategy.levers, 1.0))
    from decisioning.models import ModelSet

    models = ModelSet(dict(tiny_models.models, newsletter_twin=tiny_models.models["newsletter"]))
    b = decide_one(Engine(s, models), request(channel="email", segment="new"))
    a, t = s.action_index("newsletter"), s.action_index("newsletter_twin")
    assert b.priority[0, a] == b.priority[0, t]
    assert b.rank[0, a] + 1 == b.rank[0, t]


def test_batch_and_single_decisions_agree_exactly(tiny_engine, tiny_strategy):
    from conftest import tiny_customers

    frame = tiny_customers(300, seed=5)
    req = Requests.from_frame(tiny_strategy, frame)
    ids = np.array([f"D{i:04d}" for i in range(300)], dtype=object)
    batch = tiny_engine.decide(req, decision_ids=ids, ts_us=np.zeros(300, dtype=np.int64))
    for r in (0, 17, 299):
        one = tiny_engine.decide(req.take(np.array([r])), decision_ids=ids[[r]], ts_us=np.zeros(1, dtype=np.int64))
        np.testing.assert_array_equal(one.priority[0], batch.priority[r])
        np.testing.assert_array_equal(one.stage[0], batch.stage[r])
        assert one.chosen[0] == batch.chosen[r]


def test_exploration_records_the_selection_probability(tiny_strategy, tiny_models):
    explore = dataclasses.replace(tiny_strategy, epsilon=1.0, exploration_seed=3)
    from conftest import tiny_customers

    req = Requests.from_frame(explore, tiny_customers(400, seed=8))
    b = Engine(explore, tiny_models).decide(req)
    alive = b.rank > 0
    k = alive.sum(axis=1)
    has = k > 0
    # with epsilon = 1 the first slot is uniform over the k actions that cleared every filter
    np.testing.assert_allclose(b.selection_probability[has], 1.0 / k[has])
    firsts = np.array([c[0] for c in np.array(b.chosen, dtype=object)[has]])
    assert len(set(firsts.tolist())) > 1
    assert b.explored.any() and not b.explored[~has].any()
    top_n = np.array([c.top_n for c in explore.channels])[req.channel]
    for r in range(len(b)):
        assert sorted(b.chosen[r]) == np.flatnonzero(b.selected[r]).tolist()
        assert len(b.chosen[r]) == min(top_n[r], k[r])
        if b.explored[r]:  # the explored pick fills the first slot; the rest follow the ranking
            rest = [a for a in np.argsort(-np.where(alive[r], b.priority[r], -np.inf), kind="stable") if a != b.chosen[r][0]]
            assert b.chosen[r][1:] == rest[: len(b.chosen[r]) - 1]


def test_without_exploration_the_chosen_action_has_probability_one(tiny_engine, tiny_strategy):
    b = decide_one(tiny_engine, request())
    assert b.selection_probability[0] == 1.0
    assert not b.explored[0]


def _costly(text: str, in_value: bool) -> str:
    """The tiny shop with a contact cost of 2 on the store card, counted in the value or not."""
    out = text.replace("margin: 20, retention_effect: 0.02,", "margin: 20, cost: 2, retention_effect: 0.02,", 1)
    if in_value:
        out = out.replace("kpi: {margin_weight: 1.0, retention_weight: 0.5, clv_feature: clv}",
                          "kpi: {margin_weight: 1.0, retention_weight: 0.5, clv_feature: clv, contact_cost_in_value: true}")
    assert out.count("cost: 2") == 1 and (not in_value or "contact_cost_in_value" in out)
    return out


def test_a_contacts_cost_enters_the_value_when_the_strategy_says_so(tiny_models, tmp_path):
    from analysis import tradeoff as T
    from conftest import TINY_YAML, tiny_customers
    from decision_log.replay import replay
    from decision_log.store import DecisionLog
    from decisioning.strategy import parse_strategy

    with_cost = parse_strategy(_costly(TINY_YAML, True))
    without = parse_strategy(_costly(TINY_YAML, False))
    assert with_cost.contact_cost_in_value and not without.contact_cost_in_value
    a = with_cost.action_index("store_card")
    b = decide_one(Engine(with_cost, tiny_models), request(age=25, clv=500.0))
    b0 = decide_one(Engine(without, tiny_models), request(age=25, clv=500.0))
    p, v, v0 = b.propensity[0, a], b.value[0, a], b0.value[0, a]
    # value less margin weight × cost / propensity: propensity × value is the contact's expected value net of its cost
    assert v == pytest.approx(v0 - 1.0 * 2 / p, rel=1e-12) and v0 == pytest.approx(20 + 0.5 * 0.02 * 500, rel=1e-15)
    assert b.priority[0, a] == pytest.approx((p * v0 - 2) * b.context_weight[0, a] * b.lever[0, a], rel=1e-12)
    # over many customers the store card is chosen less often once its contacts cost something
    req = Requests.from_frame(with_cost, tiny_customers(600, seed=4))
    chosen = [Engine(s, tiny_models).decide(req).selected[:, a].sum() for s in (with_cost, without)]
    assert chosen[0] < chosen[1]
    # the log replays exactly, and re-arbitration (what-if, frontier, counterfactuals) reproduces it
    db = tmp_path / "cost.duckdb"
    with DecisionLog.open(db) as log:
        log.register_models(tiny_models)
        batch = Engine(with_cost, tiny_models).decide(req)
        log.append(batch, with_cost)
        ids = [r[0] for r in log.con.execute("SELECT decision_id FROM decisions LIMIT 50").fetchall()]
        assert all(r.reproduced for r in replay(log, ids))
        f = T.load_factors(log)
        assert f.check() == 0
        assert (f.first(f.arbitrate()) == T.first_actions(f)).all()
        # why A and not B: the counterfactuals re-arbitrate the logged factors with the same value
        from explain.api import Explainer

        did, other = log.con.execute("""
            SELECT c.decision_id, c.action_id FROM candidates c JOIN decisions d USING (decision_id)
            WHERE d.chosen_action IS NOT NULL AND c.stage = 'ranked' AND NOT d.explored LIMIT 1""").fetchall()[0]
        contrast = Explainer(log).why_not(did, other)
    assert contrast.kind == "ranked_lower" and contrast.rearbitration_reproduced
