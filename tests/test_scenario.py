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
