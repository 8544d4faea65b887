"""The Hillstrom scenario: the real MineThatData e-mail experiment, logged as decisions.

64,000 customers who bought in the last 12 months were randomly assigned — probability 1/3
each — to a men's e-mail, a women's e-mail or no e-mail; their visits, conversions and spend
in the following two weeks were recorded (Kevin Hillstrom, 2008; a copy ships in
``decisioning/scenarios/data/hillstrom.csv``, SHA-256 checked on load).

:func:`run` splits the customers (seeded) into a training half, on which one conversion
model per arm is fitted, and a held-out half, which is logged: every decision runs the
whole strategy (scores, priorities, ranks of the three actions) but *serves the arm the
experiment assigned* (``assignment`` in the request, probability 1/3), and the real outcome
follows: ``accepted`` (converted), ``visited`` (visited without buying) or ``ignored``, with
the real spend as revenue and ``spend × 30% − e-mail cost`` as margin.

Because the arms were randomised with known probabilities, any targeting policy can be
evaluated on the held-out half without bias by off-policy estimators (:func:`report`).
There are no timestamps in the data: decisions are stamped at one campaign send time
(2008-03-03 08:00 UTC, a millisecond apart in file order).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from decisioning.errors import KlartextError
from decisioning.strategy import Strategy, load_strategy

DATA = Path(__file__).resolve().parent / "data" / "hillstrom.csv"
SHA256 = "0e5893329d8b93cefecc571777672028290ab69865718020c78c7284f291aece"
ARMS = {"Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email", "No E-Mail": "no_email"}
MARGIN_RATE = 0.30
SEND_TIME_US = 1_204_531_200_000_000  # 2008-03-03 08:00 UTC


def strategy_path() -> Path:
    return Path(__file__).resolve().parent / "hillstrom_strategy.yaml"


def load_strategy_file() -> Strategy:
    return load_strategy(strategy_path())


def load_frame(path: Path = DATA) -> pd.DataFrame:
    """The experiment, one row per customer, with Klartext's feature names and ``arm``."""
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != SHA256:
        raise KlartextError(f"{path} is not the published Hillstrom file (its SHA-256 differs).",
                            "Restore decisioning/scenarios/data/hillstrom.csv from the repository.")
    df = pd.read_csv(path)
    out = pd.DataFrame({
        "customer_id": [f"H{i:05d}" for i in range(len(df))],
        "channel": "email",
        "recency": df["recency"].astype(np.int64),
        "history": df["history"].astype(float),
        "history_segment": df["history_segment"].astype(str),
        "mens": df["mens"].astype(bool),
        "womens": df["womens"].astype(bool),
        "zip_code": df["zip_code"].astype(str),
        "newbie": df["newbie"].astype(bool),
        "purchase_channel": df["channel"].astype(str),
        "arm": df["segment"].map(ARMS),
        "visit": df["visit"].astype(bool),
        "conversion": df["conversion"].astype(bool),
        "spend": df["spend"].astype(float),
    })
    return out


def split(frame: pd.DataFrame, seed: int = 0, train_share: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = np.random.default_rng([seed, 2008]).random(len(frame)) < train_share
    return frame[train].reset_index(drop=True), frame[~train].reset_index(drop=True)


def history(frame: pd.DataFrame) -> pd.DataFrame:
    """Training rows for :func:`decisioning.models.train_models`: each customer's arm as the
    action offered, conversion as the response."""
    h = frame.drop(columns=["visit", "spend"]).rename(columns={"arm": "action_id", "conversion": "accepted"})
    h["accepted"] = h["accepted"].astype(np.int64)
    return h


def outcomes(strategy: Strategy, frame: pd.DataFrame, decision_id: np.ndarray, ts_us: np.ndarray) -> pd.DataFrame:
    """The real outcomes of the logged (held-out) customers, one row per decision."""
    cost = {a.id: a.cost for a in strategy.actions}
    c = frame["arm"].map(cost).to_numpy(dtype=float)
    outcome = np.where(frame["conversion"], "accepted", np.where(frame["visit"], "visited", "ignored"))
    return pd.DataFrame({
        "decision_id": decision_id, "action_id": frame["arm"].to_numpy(dtype=object),
        "outcome": outcome.astype(object), "revenue": frame["spend"].to_numpy(),
        "margin": np.round(frame["spend"].to_numpy() * MARGIN_RATE - c, 4),
        "churned": pd.Series([None] * len(frame), dtype=object),
        "ts_us": ts_us + 14 * 86_400_000_000,  # the experiment's two-week outcome window
    })


def observed_arm_means(frame: pd.DataFrame) -> pd.DataFrame:
    """Per arm of the held-out half: customers and mean visit, conversion, spend, margin."""
    g = frame.assign(margin=frame["spend"] * MARGIN_RATE - np.where(frame["arm"] == "no_email", 0.0, 0.10))
    return g.groupby("arm").agg(customers=("visit", "size"), visit=("visit", "mean"),
                                conversion=("conversion", "mean"), revenue=("spend", "mean"),
                                margin=("margin", "mean")).reset_index()


def assignment(strategy: Strategy, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    idx = {a: i for i, a in enumerate(strategy.action_ids)}
    return frame["arm"].map(idx).to_numpy(dtype=np.int64), np.full(len(frame), 1 / 3)




__all__ = ["ARMS", "DATA", "MARGIN_RATE", "SEND_TIME_US", "assignment", "history", "load_frame",
           "load_strategy_file", "observed_arm_means", "outcomes", "split", "strategy_path"]


