"""Bring your own: fit a model per action of ``strategy.yaml`` on (simulated) past offers and
write them with skops, plus a customer table to decide for.

Stands in for your data science: your history, your estimator, your feature engineering.
The models are HistGradientBoosting classifiers fitted on a DataFrame, so they read the
features by name and take a missing "Days Since Purchase" as it is.

Usage: ``python examples/byo/train.py [--out DIR]`` (default: the current folder), then the
README's ``klartext model register`` and ``klartext run`` lines.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier

FEATURES = ["customer_age", "days_since_purchase", "lifetime_value"]


def people(n: int, rng: np.random.Generator) -> pd.DataFrame:
    days = rng.integers(0, 720, n).astype("float64")
    days[rng.random(n) < 0.1] = np.nan  # not every customer has bought yet
    return pd.DataFrame({"customer_age": rng.integers(18, 85, n), "days_since_purchase": days,
                         "lifetime_value": np.round(rng.gamma(2.0, 300.0, n), 2)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=".", help="Folder for the models and the customer table.")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    truth = {  # the chance of accepting, as the simulated customers behave
        "voucher_10": lambda f: 1 / (1 + np.exp(-(0.8 - np.nan_to_num(f["days_since_purchase"], nan=900) / 300))),
        "newsletter": lambda f: 1 / (1 + np.exp(-(-1.0 + f["lifetime_value"] / 1500))),
    }
    for action, p in truth.items():
        history = people(3000, rng)
        accepted = (rng.random(len(history)) < p(history)).astype(int)
        model = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(history[FEATURES], accepted)
        sio.dump(model, out / f"{action}.skops")
    customers = people(500, rng).rename(columns={"customer_age": "Customer Age", "days_since_purchase":
                                                 "Days Since Purchase", "lifetime_value": "Lifetime Value"})
    customers.insert(0, "Customer ID", [f"K-{i:05d}" for i in range(len(customers))])
    customers.insert(1, "Channel", rng.choice(["web", "email"], len(customers)))
    customers["Days Since Purchase"] = customers["Days Since Purchase"].astype("Int64")  # blank where missing
    customers.to_csv(out / "customers.csv", index=False)
    print(f"Wrote voucher_10.skops, newsletter.skops and customers.csv ({len(customers)} customers) to {out}/.")


if __name__ == "__main__":
    main()
