"""Replay: re-run the engine on logged inputs with the pinned strategy and models.

A replay rebuilds each decision's request from the ``inputs`` JSON it was logged with, loads
the strategy text and the model artifacts by the versions the decision recorded, decides
again under the same decision id and time, and compares every candidate cell (stage, rule,
reason, the four factors, priority, rank, selected) and the chosen actions *exactly* — a
float that differs in its last bit is a difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from decision_log.store import DecisionLog
from decisioning.engine import Engine
from decisioning.errors import LogError
from decisioning.inputs import Requests

COMPARED = ("stage", "rule", "reason", "propensity", "value", "context_weight", "lever", "priority",
            "rank", "selected")


@dataclass
class Difference:
    action_id: str
    field: str
    logged: Any
    replayed: Any


@dataclass
class ReplayResult:
    """Whether a decision was reproduced exactly, and what differs if not."""

    decision_id: str
    reproduced: bool
    chosen_logged: list[str]
    chosen_replayed: list[str]
    differences: list[Difference] = field(default_factory=list)
    replayable: bool = True
    note: str = ""
    #: When the customer was erased at their request (their inputs can no longer be read).
    erased_at: datetime | None = None


def _same(a: Any, b: Any) -> bool:
    if a is None or (isinstance(a, float) and np.isnan(a)):
        return b is None or (isinstance(b, float) and np.isnan(b))
    if b is None or (isinstance(b, float) and np.isnan(b)):
        return False
    return a == b


def replay(log: DecisionLog, decision_ids: list[str]) -> list[ReplayResult]:
    """Replay the given decisions (grouped by their pinned strategy and model versions)."""
    if not decision_ids:
        return []
    con = log.con.cursor()
    con.register("_k_ids", pd.DataFrame({"decision_id": list(decision_ids)}))
    dec = con.execute(
        "SELECT d.decision_id, epoch_us(d.ts) AS ts_us, d.customer, d.channel, d.inputs, d.strategy_version, "
        "d.model_versions, d.chosen_actions, d.selection_probability, d.source "
        "FROM decisions d SEMI JOIN _k_ids USING (decision_id)").df()
    cand = con.execute(
        "SELECT c.decision_id, c.action_id, " + ", ".join(f"c.{f}" for f in COMPARED) +
        " FROM candidates c SEMI JOIN _k_ids USING (decision_id)").df()
    con.unregister("_k_ids")
    dec = log.reveal(dec, cand)
    found = set(dec["decision_id"])
    missing = [d for d in decision_ids if d not in found]
    if missing:
        raise LogError(f"Decision {missing[0]!r} is not in the log {log.path!r}.",
                       "Look up ids with `klartext decisions --db PATH` or in the dashboard.")
    results: dict[str, ReplayResult] = {}
    for (sv, mv), group in dec.groupby(["strategy_version", "model_versions"], dropna=False, sort=False):
        ids = group["decision_id"].tolist()
        if group["source"].iloc[0] != "klartext" or sv is None or pd.isna(sv):
            for _, row in group.iterrows():
                results[row["decision_id"]] = ReplayResult(
                    row["decision_id"], False, list(row["chosen_actions"]), [], replayable=False,
                    note=f"imported from {row['source']!r}: there is no strategy to re-execute")
            continue
        erased = group[group["erased"]]
        for _, row in erased.iterrows():
            results[row["decision_id"]] = erased_result(log, row["decision_id"], row["customer"],
                                                        list(row["chosen_actions"]))
        group = group[~group["erased"]]
        ids = group["decision_id"].tolist()
        if not ids:
            continue
        strategy = log.load_strategy(sv)
        models = log.load_models(json.loads(mv))
        key = (sv, mv)
        engine = log.engines.get(key)
        if engine is None:  # reused across replays: its flattened forest grows as models are needed
            engine = log.engines[key] = Engine(strategy, models)
        req = Requests.from_logged(strategy, group["customer"], group["channel"], group["inputs"])
        batch = engine.decide(req, decision_ids=np.asarray(ids, dtype=object),
                              ts_us=group["ts_us"].to_numpy(dtype=np.int64))
        logged = cand[cand["decision_id"].isin(ids)].set_index(["decision_id", "action_id"])
        aids = strategy.action_ids
        for r, did in enumerate(ids):
            chosen_rep = [aids[a] for a in batch.chosen[r]]
            row = group.iloc[r]
            chosen_log = list(row["chosen_actions"])
            diffs: list[Difference] = []
            if chosen_rep != chosen_log:
                diffs.append(Difference("*", "chosen_actions", chosen_log, chosen_rep))
            if not _same(float(row["selection_probability"]), float(batch.selection_probability[r])):
                diffs.append(Difference("*", "selection_probability", row["selection_probability"],
                                        float(batch.selection_probability[r])))
            for a, aid in enumerate(aids):
                try:
                    lg = logged.loc[(did, aid)]
                except KeyError:
                    diffs.append(Difference(aid, "row", "missing from the log", "present"))
                    continue
                rep = batch.cell(r, a)
                for f in COMPARED:
                    lv = lg[f]
                    if isinstance(lv, (np.floating,)):
                        lv = float(lv)
                    elif isinstance(lv, (np.integer,)):
                        lv = int(lv)
                    elif isinstance(lv, np.bool_):
                        lv = bool(lv)
                    if lv is pd.NA or (f in ("rule", "reason") and isinstance(lv, float) and np.isnan(lv)):
                        lv = None
                    if f == "rank" and isinstance(lv, float):
                        lv = None if np.isnan(lv) else int(lv)
                    if not _same(lv, rep[f]):
                        diffs.append(Difference(aid, f, lv, rep[f]))
            results[did] = ReplayResult(did, not diffs, chosen_log, chosen_rep, diffs)
    return [results[d] for d in decision_ids]


def erased_result(log: DecisionLog, decision_id: str, customer: str, chosen: list[str]) -> ReplayResult:
    """The replay of a decision whose customer was erased: it cannot be re-run, and says why."""
    when = log.erasures().get(customer)
    on = f" on {when:%Y-%m-%d}" if when is not None else ""
    return ReplayResult(decision_id, False, chosen, [], replayable=False, erased_at=when,
                        note=f"erased{on} at the customer's request: the inputs it was decided on were destroyed "
                             "with the customer's key, so it cannot be re-run (its record and hash remain)")


def sample_ids(log: DecisionLog, n: int, seed: int = 0, source: str | None = None) -> list[str]:
    """``n`` random decision ids (repeatable for a given seed); with ``source``, only
    decisions from that source (e.g. ``klartext``: those made here, which can be replayed
    and explained)."""
    con = log.con.cursor()
    total = con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]
    if total == 0:
        raise LogError(f"The log {log.path!r} holds no decisions.", "Run `klartext demo` first.")
    rng = np.random.default_rng(seed)
    if source is None:
        picks = np.sort(rng.choice(total, size=min(n, total), replace=False)) + 1
    else:
        seqs = con.execute("SELECT seq FROM decisions WHERE source = ? ORDER BY seq", [source]).fetchnumpy()["seq"]
        if not len(seqs):
            others = [r[0] for r in con.execute("SELECT DISTINCT source FROM decisions ORDER BY 1").fetchall()]
            raise LogError(f"The log {log.path!r} holds no decisions from {source!r} (only from "
                           f"{', '.join(others)}).",
                           "Imported decisions have no model to re-execute or explain; `klartext explain ID` shows "
                           "their logged stages and factors.")
        picks = np.sort(rng.choice(seqs, size=min(n, len(seqs)), replace=False))
    con.register("_k_seq", pd.DataFrame({"seq": picks}))
    ids = con.execute("SELECT decision_id FROM decisions SEMI JOIN _k_seq USING (seq) ORDER BY seq").fetchall()
    con.unregister("_k_seq")
    return [r[0] for r in ids]
