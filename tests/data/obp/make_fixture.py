"""Make the Open Bandit Pipeline reference fixture (run with obp installed; not a test).

    python -m venv /tmp/obpenv && /tmp/obpenv/bin/pip install obp
    /tmp/obpenv/bin/python tests/data/obp/make_fixture.py

Writes, next to this file, from obp's *synthetic* bandit data (``SyntheticBanditDataset``,
seeded):

- ``bandit.csv`` — the logged bandit feedback in Klartext's generic import format: one row per
  round (decision), the served action ``selected`` with its logging probability (obp's
  ``pscore``) and its binary reward as the outcome (1 = accepted, 0 = ignored);
- ``target.parquet`` — a stochastic evaluation policy (epsilon-greedy on the true
  expected rewards): ``decision_id, action_id, probability`` for every round and action;
- ``expected.json`` — obp's own IPW and SNIPW estimates of that policy (and its ground truth),
  which Klartext's ``ope --target-probabilities`` must reproduce to 1e-9.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import obp
import pandas as pd
from obp.dataset import SyntheticBanditDataset, linear_behavior_policy, logistic_reward_function
from obp.ope import InverseProbabilityWeighting, OffPolicyEvaluation, SelfNormalizedInverseProbabilityWeighting

HERE = Path(__file__).resolve().parent
N_ROUNDS, N_ACTIONS, SEED = 3000, 10, 12345


def main() -> None:
    ds = SyntheticBanditDataset(n_actions=N_ACTIONS, dim_context=5, reward_type="binary",
                                reward_function=logistic_reward_function,
                                behavior_policy_function=linear_behavior_policy, random_state=SEED)
    fb = ds.obtain_batch_bandit_feedback(n_rounds=N_ROUNDS)
    # the evaluation policy: epsilon-greedy on the true expected reward (eps = 0.3), as obp's
    # examples build one; (n_rounds, n_actions, 1) as obp expects
    q = fb["expected_reward"]
    action_dist = np.full(q.shape, 0.3 / q.shape[1])
    action_dist[np.arange(len(q)), q.argmax(axis=1)] += 0.7
    action_dist = action_dist[:, :, None]
    ope = OffPolicyEvaluation(bandit_feedback=fb, ope_estimators=[InverseProbabilityWeighting(),
                                                                  SelfNormalizedInverseProbabilityWeighting()])
    est = ope.estimate_policy_values(action_dist=action_dist)
    truth = ds.calc_ground_truth_policy_value(expected_reward=fb["expected_reward"], action_dist=action_dist)
    ids = [f"R{i:05d}" for i in range(N_ROUNDS)]
    pd.DataFrame({
        "decision_id": ids, "ts": "2024-06-01 09:00:00", "customer": [f"U{i % 997:04d}" for i in range(N_ROUNDS)],
        "channel": "web", "action_id": [f"arm_{a}" for a in fb["action"]], "stage": "selected",
        "probability": [repr(float(p)) for p in fb["pscore"]], "outcome": fb["reward"].astype(int),
    }).to_csv(HERE / "bandit.csv", index=False)
    n, k = action_dist.shape[:2]
    pd.DataFrame({
        "decision_id": np.repeat(ids, k), "action_id": np.tile([f"arm_{a}" for a in range(k)], n),
        "probability": action_dist[:, :, 0].ravel(),
    }).to_parquet(HERE / "target.parquet", index=False)
    (HERE / "expected.json").write_text(json.dumps({
        "obp_version": obp.__version__, "n_rounds": N_ROUNDS, "n_actions": N_ACTIONS, "seed": SEED,
        "ipw": float(est["ipw"]), "snipw": float(est["snipw"]), "ground_truth": float(truth),
        "behavior_pscore_min": float(fb["pscore"].min()), "behavior_pscore_max": float(fb["pscore"].max()),
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
