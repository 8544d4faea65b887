"""The synthetic retailer: reproducible, documented ground truth that behaves as described."""

import numpy as np
import pandas as pd

from decisioning.scenarios import retail


def test_customers_are_reproducible_and_valid():
    a = retail.generate_customers(5000, seed=3)
    b = retail.generate_customers(5000, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(retail.generate_customers(5000, seed=4))
    s = retail.load_demo_strategy()
    from decisioning.inputs import Requests

    frame, contacts, rej, days = retail.generate_interactions(a, s, seed=3)
    req = Requests.from_frame(s, frame, contacts=contacts, rejections=rej, days_since_rejection=days)  # validates
    assert len(req) == 5000 and set(frame["channel"]) == set(s.channel_ids)


def test_vouchers_help_lapsed_customers_more_than_active_ones():
    f = retail.generate_customers(4000, seed=1)
    f["channel"] = "email"
    for col, val in (("trigger", "campaign"), ("viewing_category", "none"), ("cart_value", 0.0),
                     ("mobile_device", False), ("hour", 12)):
        f[col] = val
    def logit(p):
        return np.log(p / (1 - p))

    # the documented incentive boost acts on the log-odds: 0.2 x (3 + 10 x lapsed share of a year)
    lift = logit(retail.true_propensity(f, "winback_20")) - logit(retail.true_propensity(f, "winback_0"))
    lapsed = f["recency_days"].to_numpy() >= 365
    active = f["recency_days"].to_numpy() <= 60
    assert (lift > 0).all()
    assert lift[lapsed].mean() > 2 * lift[active].mean()


def test_churn_rises_with_recency_and_complaints():
    f = pd.DataFrame({"recency_days": [10, 400, 10], "orders_12m": [5, 5, 5], "complaints_90d": [0, 0, 3],
                      "tenure_days": [500, 500, 500], "return_rate": [0.1, 0.1, 0.1]})
    p = retail.true_churn(f)
    assert p[1] > p[0] and p[2] > p[0]


def test_true_drivers_cover_every_action():
    s = retail.load_demo_strategy()
    assert set(retail.TRUE_DRIVERS) == set(s.action_ids)
    names = {f.name for f in s.features}
    assert all(set(d) <= names for d in retail.TRUE_DRIVERS.values())


def test_outcomes_follow_the_logged_choice():
    s = retail.load_demo_strategy()
    f, *_ = retail.generate_interactions(retail.generate_customers(3, seed=2), s, seed=2)
    ids = np.array(["a", "b", "c"], dtype=object)
    out = retail.simulate_outcomes(s, f, ids, np.zeros(3, dtype=np.int64), [[0, 1], [], [5]])
    assert out["decision_id"].tolist() == ["a", "a", "b", "c"]
    assert out.loc[out["decision_id"] == "b", "outcome"].tolist() == ["none"]
    assert (out.loc[out["outcome"] != "accepted", "revenue"] == 0).all()


def test_customer_facts_agree_with_each_other():
    """No customer bought before joining, an order this year means a purchase less than a
    year ago, none means more than a year ago, and every customer has a value (CLV > 0)."""
    f = retail.generate_customers(50_000, seed=5)
    assert (f["tenure_days"] >= f["recency_days"]).all()
    active = f["orders_12m"] > 0
    assert (f.loc[active, "recency_days"] < 365).all() and (f.loc[~active, "recency_days"] >= 365).all()
    assert (f["clv"] > 0).all()


def test_returning_customers_carry_their_history(demo_log):
    """In the demo, customers come back: most decided customers have several decisions, never
    two on a day, and a later decision sees the earlier ones — its facts have aged by the
    days between, an accepted order reset the recency, a contact on a limited channel counts."""
    import json

    from decision_log.store import DecisionLog

    with DecisionLog.open(demo_log, read_only=True) as log:  # the inputs are sealed: opened with the log's keys
        con = log.con
        visits = con.execute("SELECT customer, count(*), count(DISTINCT ts::DATE) FROM decisions GROUP BY 1").fetchall()
        raw = con.execute("""
            SELECT customer, ts, channel, chosen_actions, decision_id, inputs::VARCHAR,
                   (SELECT list(o.action_id || ':' || o.outcome) FROM outcomes o WHERE o.decision_id = d.decision_id)
            FROM decisions d ORDER BY customer, ts""").fetchall()
        churn = con.execute("""SELECT count(*) FROM (SELECT d.customer FROM outcomes o JOIN decisions d
                               USING (decision_id) GROUP BY 1 HAVING count(DISTINCT o.churned) > 1)""").fetchall()
        docs = [json.loads(x) for x in log.open_inputs([r[4] for r in raw], [r[0] for r in raw], [r[5] for r in raw])]
    rows = [(*r[:4], d["features"]["tenure_days"], d["features"]["recency_days"], d["contacts"].get("email", 0), r[6])
            for r, d in zip(raw, docs)]
    assert all(n == days for _, n, days in visits)  # never twice on a day
    several = sum(n > 1 for _, n, _ in visits)
    assert several > 0.3 * len(visits) and sum(n for _, n, _ in visits) == 2000
    assert churn == [(0,)]  # one churn per customer
    strategy = retail.load_demo_strategy()
    orders = {a.id for a in strategy.actions if a.order_value > 0}
    products = {a.id for a in strategy.actions if a.holds_feature}  # the club, premium, the app, ...
    pairs = bad = reset = counted = taken = 0
    held: set[str] = set()
    for prev, cur in zip(rows, rows[1:]):
        if prev[0] != cur[0]:
            held = set()
            continue
        held |= {x.split(":")[0] for x in prev[7] if x and x.endswith(":accepted") and x.split(":")[0] in products}
        taken += bool(held)
        bad += bool(held & set(cur[3]))  # a product the customer took is not offered again
        pairs += 1
        days = (cur[1].date() - prev[1].date()).days
        bought = any(x and x.split(":")[0] in orders and x.endswith(":accepted") for x in prev[7])
        bad += cur[4] - prev[4] != days  # tenure ages with the calendar
        bad += cur[4] < cur[5]  # no purchase before joining
        if bought:
            reset += 1
            bad += cur[5] > days  # the accepted order is the last purchase
        else:
            bad += cur[5] < prev[5] + days - 1  # no purchase in between: the last one only recedes
        if prev[2] == "email" and prev[3] and (cur[1] - prev[1]).days < 7:
            counted += 1
            bad += cur[6] < 1  # the email shown counts against the email limit
    assert bad == 0 and pairs > 300 and reset > 10 and counted > 10 and taken > 10
