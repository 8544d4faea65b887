"""The demo scenario: Modehaus Lindner, a fashion & lifestyle online retailer.

A synthetic customer population generated from a documented causal model, so every
quantity the engine estimates has a known true value:

* **Customers** (CRM history): a latent activity level ``z ~ N(0, 1)`` drives orders in the
  last 12 months (``Poisson(exp(0.6 + 0.6 z))``), recency (exponential with mean
  ``400 / (1 + orders)`` days, plus a year for customers without orders), club membership,
  premium membership and app use; age, tenure, order value, return rate, consents,
  arrears and complaints are drawn independently (see :func:`generate_customers`).
* **Churn** (next 90 days, true): ``logit = -2.2 + 1.6·lapsed - 0.25·log(1 + orders) +
  0.5·complaints_90d - 0.0002·tenure_days + 0.8·[return_rate > 0.4]`` with
  ``lapsed = min(recency_days / 365, 1)``.  The CRM's ``clv`` feature is an estimate:
  ``3 × max(spend_12m, avg_order_value / 2) × (1 - churn) × LogNormal(0, 0.15)`` (a customer
  without orders this year still counts for half an order a year).  Facts agree with each
  other: recency is under a year when there were orders in the last 12 months, over a year
  when there were none, and tenure is at least the recency.
* **Interactions** (real-time context): channel, trigger, category viewed, cart value,
  device, hour; contact counts per channel and past rejections
  (:func:`generate_interactions`).
* **Response** (true probability of accepting an action): ``sigmoid(logit)``, where the
  logit of each action is a sum of the terms listed in :data:`TRUE_DRIVERS` plus a channel
  offset (:data:`CHANNEL_OFFSET`) and, for incentive levels, an incentive boost that is
  larger for lapsed customers (reactivation) or for customers with few orders (cart
  recovery) — so a voucher pays off only where the customer would not buy anyway.
* **Outcomes**: acceptance ``~ Bernoulli(true propensity)``; revenue = order value net of
  the voucher; margin = margin − incentive cost − contact cost; churn ``~ Bernoulli(true
  churn − Σ retention effect of accepted actions)``.

Everything is vectorised numpy and seeded: one million customers take a few seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from decisioning.strategy import Strategy, load_strategy

CATEGORIES = ["womenswear", "menswear", "shoes", "accessories", "sports", "home"]
TRIGGERS = ["session_start", "product_view", "cart_abandoned", "order_shipped", "inbound_call", "campaign"]
GENDERS = ["female", "male", "diverse"]
REGIONS = ["north", "east", "south", "west"]
CHANNEL_OFFSET = {"web": 0.3, "app": 0.5, "call_centre": 1.0, "email": -0.4, "push": -0.2, "sms": 0.0}

#: The features that truly drive each action's response, strongest first (the generative
#: model below; explanations are checked against it).
TRUE_DRIVERS: dict[str, list[str]] = {
    "xsell_shoes": ["viewing_category", "preferred_category", "orders_12m", "recency_days"],
    "xsell_accessories": ["viewing_category", "preferred_category", "cart_value", "orders_12m"],
    "xsell_sports": ["preferred_category", "viewing_category", "age"],
    "xsell_home": ["preferred_category", "viewing_category", "age"],
    "new_collection_womens": ["preferred_category", "viewing_category", "orders_12m", "recency_days"],
    "new_collection_mens": ["preferred_category", "viewing_category", "orders_12m", "recency_days"],
    "premium_membership": ["orders_12m", "avg_order_value"],
    "app_download": ["mobile_device", "age"],
    "newsletter_signup": ["trigger", "orders_12m"],
    "winback_0": ["recency_days", "orders_12m"],
    "winback_5": ["recency_days", "orders_12m"],
    "winback_10": ["recency_days", "orders_12m"],
    "winback_20": ["recency_days", "orders_12m"],
    "cart_recovery_0": ["orders_12m", "cart_value"],
    "cart_recovery_5": ["orders_12m", "cart_value"],
    "cart_recovery_10": ["orders_12m", "cart_value"],
    "churn_save_call": ["recency_days", "complaints_90d"],
    "birthday_voucher": ["days_to_birthday", "orders_12m"],
    "join_loyalty": ["orders_12m", "tenure_days"],
    "double_points": ["orders_12m", "loyalty_points"],
    "points_expiry_reminder": ["points_expiring", "orders_12m"],
    "refer_a_friend": ["mobile_device", "age", "orders_12m"],
    "order_tracking": ["trigger", "app_installed"],
    "size_advice": ["return_rate", "viewing_category"],
    "complaint_follow_up": ["complaints_90d"],
    "return_label_reminder": ["mobile_device"],
    "pay_later_30": ["cart_value", "trigger", "age"],
    "instalments_3": ["cart_value", "trigger"],
    "payment_reminder_friendly": ["arrears_days"],
}


#: Features the generator computes from others (see :func:`generate_customers`): a model may
#: learn a driver through them, and SHAP then credits them.
DERIVED_FROM: dict[str, list[str]] = {
    "spend_12m": ["orders_12m", "avg_order_value"],
    "clv": ["orders_12m", "avg_order_value", "recency_days", "complaints_90d", "tenure_days", "return_rate"],
    "loyalty_points": ["orders_12m", "avg_order_value"],
}


def strategy_path() -> Path:
    """Path of the shipped demo strategy file."""
    return Path(str(resources.files("decisioning.scenarios") / "retail_strategy.yaml"))


def load_demo_strategy() -> Strategy:
    return load_strategy(strategy_path())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ------------------------------------------------------------------------------------------
# customers and interactions


def generate_customers(n: int, seed: int = 0, first: int = 1) -> pd.DataFrame:
    """``n`` customers with CRM features (see the module docstring for the model), numbered
    from ``first`` on (``C00000001``, …)."""
    rng = np.random.default_rng([seed, 1])
    z = rng.normal(size=n)
    age = np.clip(rng.normal(40, 13, n), 16, 90).astype(np.int64)
    tenure = np.clip(rng.exponential(900, n), 0, 5000).astype(np.int64)
    orders = np.clip(rng.poisson(np.exp(0.6 + 0.6 * z)), 0, 60).astype(np.int64)
    mean = 400 / (1 + orders)
    x = rng.exponential(mean)
    # consistent facts: a customer with an order in the last 12 months bought less than a
    # year ago (the exponential truncated at 364 days), one without bought over a year ago,
    # and every customer joined before their last purchase
    u = -np.expm1(-x / mean)  # the draw's quantile, kept so the seeded stream is unchanged
    year = -mean * np.log1p(u * np.expm1(-364 / mean))
    recency = np.where(orders > 0, year, np.minimum(x + 365, 1095)).astype(np.int64)
    tenure = np.minimum(recency + tenure, 5000)
    aov = np.round(rng.lognormal(np.log(70), 0.4, n), 2)
    spend = np.round(orders * aov * rng.lognormal(0, 0.1, n), 2)
    return_rate = np.round(rng.beta(2, 6, n), 3)
    loyalty = rng.random(n) < _sigmoid(-0.5 + 0.5 * z)
    points = np.where(loyalty, (spend * rng.uniform(0.5, 1.5, n)).astype(np.int64) + rng.integers(0, 300, n), 0)
    expiring = np.where(loyalty & (rng.random(n) < 0.4), rng.binomial(points, 0.3), 0).astype(np.int64)
    premium = rng.random(n) < _sigmoid(-2.5 + 0.8 * z)
    pay_later = rng.random(n) < 0.25
    app = rng.random(n) < _sigmoid(0.5 - 0.04 * (age - 40) + 0.3 * z)
    newsletter = rng.random(n) < 0.45
    email_c = rng.random(n) < 0.7
    sms_c = rng.random(n) < 0.3
    push_c = app & (rng.random(n) < 0.6)
    arrears = np.where(rng.random(n) < 0.07, rng.integers(1, 91, n), 0).astype(np.int64)
    complaints = rng.poisson(0.12, n).astype(np.int64)
    open_return = rng.random(n) < return_rate * 0.3
    open_order = rng.random(n) < np.minimum(orders / 30, 0.5)
    pref = np.asarray(CATEGORIES, dtype=object)[rng.choice(6, n, p=[0.3, 0.2, 0.18, 0.12, 0.12, 0.08])]
    bday = rng.integers(0, 366, n).astype(np.int64)
    frame = pd.DataFrame({
        "customer_id": np.char.add("C", np.char.zfill(np.arange(first, first + n).astype(str), 8)).astype(object),
        "age": age, "tenure_days": tenure, "recency_days": recency, "orders_12m": orders,
        "spend_12m": spend, "avg_order_value": aov, "return_rate": return_rate,
        "loyalty_member": loyalty, "loyalty_points": points.astype(np.int64), "points_expiring": expiring,
        "holds_premium": premium, "holds_pay_later": pay_later, "app_installed": app,
        "newsletter_opt_in": newsletter, "email_consent": email_c, "sms_consent": sms_c,
        "push_consent": push_c, "arrears_days": arrears, "complaints_90d": complaints,
        "open_return": open_return, "open_order": open_order, "preferred_category": pref,
        "days_to_birthday": bday,
    })
    # drawn from a stream of their own (the other facts stay as they were before these two
    # existed); neither drives any response: the groups are alike by construction, so the
    # governance report must find no difference between them unless a strategy makes one
    other = np.random.default_rng([seed, 6])
    frame["gender"] = np.asarray(GENDERS, dtype=object)[other.choice(3, n, p=[0.51, 0.47, 0.02])]
    frame["region"] = np.asarray(REGIONS, dtype=object)[other.choice(4, n, p=[0.2, 0.2, 0.3, 0.3])]
    churn = true_churn(frame)
    # a customer without orders this year is still worth something: half an order a year
    frame["clv"] = np.round(3 * np.maximum(spend, 0.5 * aov) * (1 - churn) * rng.lognormal(0, 0.15, n), 2)
    return frame


_CHANNELS = ["web", "app", "call_centre", "email", "push", "sms"]


def generate_interactions(
    customers: pd.DataFrame,
    strategy: Strategy,
    seed: int = 0,
    channel: str | np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """One interaction per customer: context features, channel and contact history.

    Returns
    -------
    frame : DataFrame
        ``customers`` plus ``channel`` and the context features.
    contacts : ndarray (n, n_channels)
    rejections : ndarray (n, n_actions)
    days_since_rejection : ndarray (n, n_actions)
    """
    rng = np.random.default_rng([seed, 2])
    n = len(customers)
    app = customers["app_installed"].to_numpy()
    if channel is None:
        p = np.array([0.30, 0.20, 0.05, 0.25, 0.10, 0.10])
        ch_idx = rng.choice(6, n, p=p)
        no_app = ~app & np.isin(ch_idx, [1, 4])
        ch_idx[no_app] = np.where(rng.random(no_app.sum()) < 0.5, 0, 3)
        ch = np.asarray(_CHANNELS, dtype=object)[ch_idx]
    else:
        ch = np.broadcast_to(np.asarray(channel, dtype=object), (n,)).copy()
    inbound_web = np.isin(ch, ["web", "app"])
    outbound = np.isin(ch, ["email", "push", "sms"])
    trig = np.empty(n, dtype=object)
    u = rng.random(n)
    trig[inbound_web] = np.asarray(TRIGGERS, dtype=object)[
        np.searchsorted(np.cumsum([0.45, 0.35, 0.15, 0.05]), u[inbound_web] * 0.99999)]
    trig[ch == "call_centre"] = "inbound_call"
    trig[outbound] = np.asarray(["campaign", "cart_abandoned", "order_shipped"], dtype=object)[
        np.searchsorted(np.cumsum([0.7, 0.15, 0.15]), u[outbound] * 0.99999)]
    pref = customers["preferred_category"].to_numpy()
    rand_cat = np.asarray(CATEGORIES, dtype=object)[rng.integers(0, 6, n)]
    viewing = np.full(n, "none", dtype=object)
    pv = trig == "product_view"
    viewing[pv] = np.where(rng.random(pv.sum()) < 0.6, pref[pv], rand_cat[pv])
    ss = (trig == "session_start") & (rng.random(n) < 0.3)
    viewing[ss] = rand_cat[ss]
    cart = np.where(trig == "cart_abandoned", rng.lognormal(np.log(90), 0.5, n),
                    np.where(inbound_web & (rng.random(n) < 0.3), rng.lognormal(np.log(60), 0.6, n), 0.0))
    mobile = np.where(np.isin(ch, ["app", "push", "sms"]), True,
                      np.where(ch == "web", rng.random(n) < 0.6,
                               np.where(ch == "email", rng.random(n) < 0.5, False)))
    hour = np.clip(rng.normal(15, 4.5, n), 0, 23).astype(np.int64)
    frame = customers.copy()
    frame["channel"] = ch
    frame["trigger"] = trig
    frame["viewing_category"] = viewing
    frame["cart_value"] = np.round(cart, 2)
    frame["mobile_device"] = mobile.astype(bool)
    frame["hour"] = hour
    # contact history
    cids = strategy.channel_ids
    rate = {"email": 1.3, "sms": 0.5, "push": 1.6}
    contacts = np.zeros((n, len(cids)), dtype=np.int64)
    for j, c in enumerate(cids):
        if c in rate:
            contacts[:, j] = rng.poisson(rate[c], n)
    A = len(strategy.actions)
    rej = np.zeros((n, A), dtype=np.int64)
    days = np.full((n, A), np.inf)
    who = np.flatnonzero(rng.random(n) < 0.12)
    acts = rng.integers(0, A, len(who))
    rej[who, acts] = rng.integers(1, 5, len(who))
    days[who, acts] = rng.integers(0, 30, len(who)).astype(np.float64)
    return frame, contacts, rej, days


# ------------------------------------------------------------------------------------------
# ground truth


def true_churn(frame: pd.DataFrame) -> np.ndarray:
    """True probability of churning within 90 days without any action."""
    lapsed = np.minimum(frame["recency_days"].to_numpy() / 365, 1.0)
    logit = (-2.2 + 1.6 * lapsed - 0.25 * np.log1p(frame["orders_12m"].to_numpy())
             + 0.5 * frame["complaints_90d"].to_numpy() - 0.0002 * frame["tenure_days"].to_numpy()
             + 0.8 * (frame["return_rate"].to_numpy() > 0.4))
    return _sigmoid(logit)


def _logit_table() -> dict[str, Callable[[dict], np.ndarray]]:
    def eq(f, col, val):
        return (f[col] == val).astype(float)

    def act(f):
        return np.log1p(f["orders_12m"])

    def lapsed(f):
        return np.minimum(f["recency_days"] / 365, 2.0)

    def winback(pct):
        return lambda f: (-2.0 - 1.2 * lapsed(f) + 0.3 * act(f)
                          + pct / 100 * (3 + 10 * np.minimum(f["recency_days"] / 365, 1.0)))

    def cart(pct):
        return lambda f: (-1.2 + 0.8 * act(f) + 0.3 * f["cart_value"] / 100
                          + pct / 100 * 14 / (1 + f["orders_12m"]))

    def xsell(cat, base):
        return lambda f: (base + 2.0 * eq(f, "viewing_category", cat) + 1.0 * eq(f, "preferred_category", cat)
                          + 0.5 * act(f) - 0.8 * lapsed(f))

    return {
        "xsell_shoes": xsell("shoes", -3.0),
        "xsell_accessories": lambda f: (-2.6 + 1.8 * eq(f, "viewing_category", "accessories")
                                        + 0.8 * eq(f, "preferred_category", "accessories")
                                        + 0.4 * act(f) + 0.4 * f["cart_value"] / 100),
        "xsell_sports": lambda f: (-3.0 + 1.5 * eq(f, "preferred_category", "sports")
                                   + 1.2 * eq(f, "viewing_category", "sports") - 0.03 * (f["age"] - 35)),
        "xsell_home": lambda f: (-3.2 + 1.5 * eq(f, "preferred_category", "home")
                                 + 1.2 * eq(f, "viewing_category", "home") + 0.03 * (f["age"] - 35)),
        "new_collection_womens": lambda f: (-2.8 + 1.8 * eq(f, "preferred_category", "womenswear")
                                            + 1.0 * eq(f, "viewing_category", "womenswear")
                                            + 0.4 * act(f) - 0.6 * lapsed(f)),
        "new_collection_mens": lambda f: (-2.8 + 1.8 * eq(f, "preferred_category", "menswear")
                                          + 1.0 * eq(f, "viewing_category", "menswear")
                                          + 0.4 * act(f) - 0.6 * lapsed(f)),
        "premium_membership": lambda f: (-4.0 + 0.2 * np.minimum(f["orders_12m"], 10)
                                         + 0.8 * f["avg_order_value"] / 100),
        "app_download": lambda f: -2.5 + 1.5 * f["mobile_device"] - 0.03 * (f["age"] - 35),
        "newsletter_signup": lambda f: -2.5 + 1.2 * eq(f, "trigger", "product_view") + 0.3 * act(f),
        "winback_0": winback(0),
        "winback_5": winback(5),
        "winback_10": winback(10),
        "winback_20": winback(20),
        "cart_recovery_0": cart(0),
        "cart_recovery_5": cart(5),
        "cart_recovery_10": cart(10),
        "churn_save_call": lambda f: -1.5 + 0.8 * lapsed(f) + 0.5 * f["complaints_90d"],
        "birthday_voucher": lambda f: -1.5 + 1.2 * (f["days_to_birthday"] <= 7) + 0.3 * act(f),
        "join_loyalty": lambda f: -2.5 + 0.6 * act(f) + 0.0003 * f["tenure_days"],
        "double_points": lambda f: -2.2 + 0.7 * act(f) + 0.0004 * f["loyalty_points"],
        "points_expiry_reminder": lambda f: -1.8 + 0.003 * f["points_expiring"] + 0.3 * act(f),
        "refer_a_friend": lambda f: (-3.5 + 0.9 * f["mobile_device"] - 0.03 * (f["age"] - 35)
                                     + 0.3 * act(f)),
        "order_tracking": lambda f: 0.0 + 1.8 * eq(f, "trigger", "order_shipped") + 0.8 * f["app_installed"],
        "size_advice": lambda f: -2.5 + 4.0 * f["return_rate"] + 0.6 * (f["viewing_category"] != "none"),
        "complaint_follow_up": lambda f: -0.8 + 0.7 * f["complaints_90d"],
        "return_label_reminder": lambda f: 0.2 + 0.8 * f["mobile_device"],
        "pay_later_30": lambda f: (-2.5 + 0.9 * f["cart_value"] / 100 + 0.8 * eq(f, "trigger", "cart_abandoned")
                                   - 0.02 * (f["age"] - 35)),
        "instalments_3": lambda f: -3.0 + 1.2 * f["cart_value"] / 100 + 0.6 * eq(f, "trigger", "cart_abandoned"),
        "payment_reminder_friendly": lambda f: -0.5 - 0.02 * f["arrears_days"],
    }


_LOGITS = _logit_table()


def true_propensity(frame: pd.DataFrame, action_id: str) -> np.ndarray:
    """True probability that the customers in ``frame`` accept ``action_id`` on their channel."""
    f = {c: frame[c].to_numpy() for c in frame.columns}
    for c in ("mobile_device", "app_installed"):
        f[c] = f[c].astype(float)
    offset = np.vectorize(CHANNEL_OFFSET.__getitem__, otypes=[float])(f["channel"]) if len(frame) else np.empty(0)
    return _sigmoid(_LOGITS[action_id](f) + offset)


# ------------------------------------------------------------------------------------------
# history and outcomes


def simulate_history(strategy: Strategy, per_action: int = 8000, seed: int = 0) -> pd.DataFrame:
    """Past offers of every action to random customers on random channels of the action.

    One row per offer with the customer's features, the context, ``action_id`` and whether
    it was ``accepted`` (drawn from the true propensity).
    """
    rng = np.random.default_rng([seed, 3])
    parts = []
    customers = generate_customers(per_action * 2, seed=seed + 1000)
    for k, action in enumerate(strategy.actions):
        idx = rng.choice(len(customers), per_action, replace=False)
        chans = np.asarray(action.channels, dtype=object)[rng.integers(0, len(action.channels), per_action)]
        frame, *_ = generate_interactions(customers.iloc[idx].reset_index(drop=True), strategy,
                                          seed=seed * 1000 + k, channel=chans)
        p = true_propensity(frame, action.id)
        frame["action_id"] = action.id
        frame["accepted"] = (rng.random(per_action) < p).astype(np.int64)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def _draw_outcomes(
    strategy: Strategy,
    frame: pd.DataFrame,
    decision_id: np.ndarray,
    ts_us: np.ndarray,
    chosen: list[list[int]],
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The outcome rows of logged decisions without ``churned``, and per decision the summed
    retention effect of its accepted actions."""
    n = len(frame)
    rows_d, rows_a = [], []
    for d, acts in enumerate(chosen):
        if acts:
            rows_d.extend([d] * len(acts))
            rows_a.extend(acts)
        else:
            rows_d.append(d)
            rows_a.append(-1)
    rows_d = np.asarray(rows_d, dtype=np.int64)
    rows_a = np.asarray(rows_a, dtype=np.int64)
    accepted = np.zeros(len(rows_d), dtype=bool)
    aids = strategy.action_ids
    for a, action in enumerate(strategy.actions):
        m = rows_a == a
        if m.any():
            sub = frame.iloc[rows_d[m]]
            accepted[m] = rng.random(m.sum()) < true_propensity(sub, action.id)
    order_value = np.array([x.order_value for x in strategy.actions] + [0.0])
    pct = np.array([(x.incentive.amount if x.incentive and x.incentive.kind == "voucher" else 0.0)
                    for x in strategy.actions] + [0.0])
    net = np.array([x.margin - x.incentive_cost for x in strategy.actions] + [0.0])
    cost = np.array([x.cost for x in strategy.actions] + [0.0])
    ret = np.array([x.retention_effect for x in strategy.actions] + [0.0])
    revenue = np.where(accepted, order_value[rows_a] * (1 - pct[rows_a] / 100), 0.0)
    margin = np.where(accepted, net[rows_a], 0.0) - cost[rows_a]
    relief = np.zeros(n)
    np.add.at(relief, rows_d, np.where(accepted, ret[rows_a], 0.0))
    u = rng.random(len(rows_d))
    outcome = np.where(rows_a < 0, "none", np.where(accepted, "accepted", np.where(u < 0.35, "rejected", "ignored")))
    delay_us = (rng.exponential(36, len(rows_d)) * 3600e6).astype(np.int64)
    return pd.DataFrame({
        "decision_id": decision_id[rows_d],
        "action_id": np.asarray(list(aids) + [None], dtype=object)[rows_a],
        "outcome": outcome.astype(object),
        "revenue": np.round(revenue, 2),
        "margin": np.round(margin, 4),
        "ts_us": ts_us[rows_d] + delay_us,
    }), relief


def simulate_outcomes(
    strategy: Strategy,
    frame: pd.DataFrame,
    decision_id: np.ndarray,
    ts_us: np.ndarray,
    chosen: list[list[int]],
    seed: int = 0,
) -> pd.DataFrame:
    """Outcomes of logged decisions drawn from the true model.

    One row per selected action (``accepted`` / ``rejected`` / ``ignored``) and one row with
    ``action_id`` NULL and outcome ``none`` for decisions without an action; ``churned`` is
    the customer's churn within 90 days, the same on every row of a decision.
    """
    rng = np.random.default_rng([seed, 4])
    out, relief = _draw_outcomes(strategy, frame, decision_id, ts_us, chosen, rng)
    churned = rng.random(len(frame)) < np.clip(true_churn(frame) - relief, 0, 1)
    index = pd.Index(decision_id).get_indexer(out["decision_id"])
    out.insert(5, "churned", churned[index])
    return out


# ------------------------------------------------------------------------------------------
# customers who come back


def visits(customers: pd.DataFrame, n: int, days: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` interactions over ``days`` days among ``customers``: who comes (row index) and
    when (days since the start, with the hour of day as the fraction), in time order.

    Active customers come more often (chance ∝ 1 + orders in the last 12 months, capped at
    10), so most of them have several decisions in the period and some customers none; no
    customer comes twice on one day.
    """
    rng = np.random.default_rng([seed, 5])
    w = 1.0 + np.minimum(customers["orders_12m"].to_numpy(dtype=np.float64), 10)
    who = rng.choice(len(customers), n, p=w / w.sum())
    day = rng.integers(0, days, n)
    for _ in range(100):  # a customer twice on one day: draw another day (and, rarely, another customer)
        key = who.astype(np.int64) * days + day
        _, first = np.unique(key, return_index=True)
        again = np.setdiff1d(np.arange(n), first)
        if not len(again):
            break
        day[again] = rng.integers(0, days, len(again))
        full = np.bincount(who, minlength=len(customers))[who[again]] > days // 2
        who[again[full]] = rng.choice(len(customers), int(full.sum()), p=w / w.sum())
    else:  # pragma: no cover - needs far more interactions than customer-days
        raise ValueError(f"{n:,} interactions do not fit {len(customers):,} customers over {days} days")
    hour = rng.normal(15, 4.5, n) % 24  # around mid-afternoon; late evenings run into the night
    when = day + hour / 24
    order = np.argsort(when, kind="stable")
    return who[order], when[order]


class Journeys:
    """The demo's returning customers: each decision sees what the customer's earlier
    decisions in the period did.

    Facts are as of the period's start and age with it (tenure, recency, days to birthday,
    contacts and rejections from before the period); an accepted offer with an order is a
    purchase (recency 0, one more order); an accepted product (the club, premium, the app,
    the newsletter, pay-later) is held from then on; an action shown on a channel with a
    contact limit is a contact there; a rejection counts towards suppression.  Used as ``before``/``after``
    of :func:`decision_log.writer.decide_and_log` with one chunk per day (:meth:`spans`), so
    no chunk holds a customer twice; :meth:`outcomes` then gives every decision's outcome
    rows, with one churn draw per customer (from their churn at their last decision, less
    the retention effect of all they accepted) on each of their decisions.

    Parameters
    ----------
    frame : one row per interaction (:func:`generate_interactions` of the visiting rows).
    customer, when : from :func:`visits`.
    contacts, rejections, days_since_rejection : the history before the period, per row;
        a customer's first row stands for all their rows.
    """

    def __init__(self, strategy: Strategy, frame: pd.DataFrame, customer: np.ndarray, when: np.ndarray,
                 ts_us: np.ndarray, contacts: np.ndarray, rejections: np.ndarray, days_since_rejection: np.ndarray,
                 seed: int = 0) -> None:
        self.strategy, self.frame, self.customer, self.when, self.ts_us = strategy, frame, customer, when, ts_us
        self.rng = np.random.default_rng([seed, 4])
        first = pd.Series(np.arange(len(customer))).groupby(customer).min()
        at = first.loc[customer].to_numpy()  # each row's customer's first row
        self.base_contacts, self.base_rejections = contacts[at], rejections[at]
        self.base_days = days_since_rejection[at]
        self.start = {c: frame[c].to_numpy().copy() for c in _AGEING}
        self.limits = [(strategy.channel_ids.index(lim.channel), lim.period_days) for lim in strategy.contact_limits]
        self.within = strategy.suppression.within_days if strategy.suppression else 30
        self.order_value = np.array([a.order_value for a in strategy.actions])
        self.holds = [a.holds_feature for a in strategy.actions]
        self.action_index = {a: k for k, a in enumerate(strategy.action_ids)}
        self.held: dict[int, set[str]] = {}  #: products a customer took during the period
        self.purchases: dict[int, list[float]] = {}
        self.contacts: dict[tuple[int, int], list[float]] = {}
        self.rejections: dict[int, dict[int, list[float]]] = {}
        self.parts: list[pd.DataFrame] = []  #: each chunk's outcome rows
        self.part_rows: list[np.ndarray] = []  #: and the interaction (row of ``frame``) of each
        self.relief = np.zeros(len(frame))

    def spans(self, max_rows: int = 10_000) -> list[tuple[int, int]]:
        """One chunk per day (split past ``max_rows``): a customer comes at most once a day."""
        edges = np.flatnonzero(np.diff(np.floor(self.when))) + 1
        out = []
        for a, b in zip(np.r_[0, edges], np.r_[edges, len(self.when)]):
            out.extend((int(x), int(min(x + max_rows, b))) for x in range(int(a), int(b), max_rows))
        return out

    def before(self, rows: np.ndarray, req) -> None:
        """The chunk's facts and contact history as of its day."""
        now = self.when[rows]
        day = np.floor(now).astype(np.int64)
        facts = {"tenure_days": self.start["tenure_days"][rows] + day,
                 "recency_days": self.start["recency_days"][rows] + day,
                 "orders_12m": self.start["orders_12m"][rows].copy(),
                 "days_to_birthday": (self.start["days_to_birthday"][rows] - day) % 365}
        contacts = self.base_contacts[rows].copy()
        for j, period in self.limits:  # contacts before the period leave its window
            contacts[day >= period, j] = 0
        since = self.base_days[rows] + now[:, None]
        rejected = np.where(since < self.within, self.base_rejections[rows], 0)
        held = {f: self.frame[f].to_numpy()[rows].copy() for f in {h for h in self.holds if h}}
        for i, c in enumerate(self.customer[rows].tolist()):
            for f in self.held.get(c, ()):
                held[f][i] = True
            bought = self.purchases.get(c)
            if bought:
                facts["recency_days"][i] = int(now[i] - bought[-1])
                facts["orders_12m"][i] += len(bought)
            for j, period in self.limits:
                seen = self.contacts.get((c, j))
                if seen:
                    contacts[i, j] += sum(now[i] - d < period for d in seen)
            for a, days in self.rejections.get(c, {}).items():
                recent = [now[i] - d for d in days if now[i] - d < self.within]
                if recent:
                    rejected[i, a] += len(recent)
                    since[i, a] = min(since[i, a], min(recent))
        for name, values in (*facts.items(), *held.items()):
            self.frame.iloc[rows, self.frame.columns.get_loc(name)] = values
            if name in req.features:
                req.features[name][:] = values.astype(req.features[name].dtype)
        req.contacts[:] = contacts
        req.rejections[:] = rejected
        req.days_since_rejection[:] = np.where(rejected > 0, since, np.inf)

    def after(self, rows: np.ndarray, req, batch) -> None:
        """Draw the chunk's outcomes; remember its contacts, purchases and rejections."""
        out, relief = _draw_outcomes(self.strategy, self.frame.iloc[rows], batch.decision_id, self.ts_us[rows],
                                     batch.chosen, self.rng)
        at = rows[pd.Index(batch.decision_id).get_indexer(out["decision_id"])]
        self.parts.append(out)
        self.part_rows.append(at)
        self.relief[rows] = relief
        limited = {j for j, _ in self.limits}
        for r, c, ch, acts in zip(rows.tolist(), self.customer[rows].tolist(), req.channel.tolist(), batch.chosen):
            if acts and ch in limited:
                self.contacts.setdefault((c, ch), []).append(float(self.when[r]))
        aidx = self.action_index
        for r, aid, res in zip(at.tolist(), out["action_id"].tolist(), out["outcome"].tolist()):
            c = int(self.customer[r])
            if res == "accepted" and self.holds[aidx[aid]]:
                self.held.setdefault(c, set()).add(self.holds[aidx[aid]])
            if res == "accepted" and self.order_value[aidx[aid]] > 0:
                self.purchases.setdefault(c, []).append(float(self.when[r]))
            elif res == "rejected":
                self.rejections.setdefault(c, {}).setdefault(aidx[aid], []).append(float(self.when[r]))

    def outcomes(self) -> pd.DataFrame:
        """Every decision's outcome rows, with ``churned``."""
        out = pd.concat(self.parts, ignore_index=True)
        rows = pd.Series(np.arange(len(self.customer)))
        last = rows.groupby(self.customer).max()
        relief = pd.Series(self.relief).groupby(self.customer).sum().loc[last.index].to_numpy()
        p = np.clip(true_churn(self.frame.iloc[last.to_numpy()]) - relief, 0, 1)
        churned = pd.Series(self.rng.random(len(p)) < p, index=last.index)
        out.insert(5, "churned", churned.loc[self.customer[np.concatenate(self.part_rows)]].to_numpy())
        return out


#: the facts that age with the demo's period
_AGEING = ("tenure_days", "recency_days", "orders_12m", "days_to_birthday")


# ------------------------------------------------------------------------------------------
# known faults, for the governance report to find (``klartext demo --plant``)

#: what each fault does, from the period's middle day on
PLANTS: dict[str, str] = {
    "drift": "the CRM's average order value arrives 1.5 times as high (a changed feed)",
    "disparity": "a new strategy version weights every incentive (vouchers, bonus points) up threefold for women (an incentive rule favouring one group)",
}


def plant_drift(frame: pd.DataFrame, start: int) -> pd.DataFrame:
    """``frame`` with ``avg_order_value`` 1.5 times as high from row ``start`` on."""
    out = frame.copy()
    col = out.columns.get_loc("avg_order_value")
    out.iloc[start:, col] = np.round(out["avg_order_value"].to_numpy()[start:] * 1.5, 2)
    return out


_DISPARITY = """\
  - name: voucher_push_for_women
    description: Planted fault (klartext demo --plant disparity) - vouchers weighted up for women.
    when: gender == 'female'
    applies_to: {actions: [winback_5, winback_10, winback_20, cart_recovery_5, cart_recovery_10, birthday_voucher,
                           churn_save_call, join_loyalty, double_points, refer_a_friend]}
    weight: 3.0
"""


def plant_disparity(strategy: Strategy) -> Strategy:
    """The demo strategy with one more context weight: incentives count three times for women."""
    from decisioning.strategy import parse_strategy

    text = strategy.text.replace("context_weights:\n", "context_weights:\n" + _DISPARITY, 1)
    return parse_strategy(text, source=f"{strategy.source} (+ planted disparity)")
