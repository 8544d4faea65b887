"""The figures of the strategy lifecycle: a proposal's simulation, and the measured effect of
each activation (before against after, and — for a canary — canary against the rest).

:func:`simulate` re-decides the champion's newest logged decisions under the proposal
(champion/challenger, :func:`analysis.tradeoff.compare`) and estimates the proposal's value
off-policy from the logged outcomes (:func:`analysis.tradeoff.off_policy`, with its
positivity check: an estimate the log cannot support is marked, not printed bare).

:func:`effects` measures on the log.  A canary is a randomised experiment: the keyed hash
that assigns customers does not depend on anything a model reads, so during the canary the
canary's decisions and the rest's differ by the version alone, and their difference in
means (with a 95% interval) is its effect.  Before/after compares the champion's decisions
in the span before an activation with all decisions after it, over equally long spans, and
is confounded with whatever else changed at that time; the page says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from analysis import tradeoff as T
from analysis.governance import _before_after, _diff, action_table
from decision_log import monitoring
from decision_log.lifecycle import State, strategy_of
from decision_log.store import DecisionLog
from decisioning.errors import InputError, LogError
from decisioning.strategy import Strategy

#: Decisions of the champion a simulation re-decides (the newest).
SIMULATE_DECISIONS = 50_000


def simulate(log: DecisionLog, champion: str, proposal: Strategy, decisions: int = SIMULATE_DECISIONS,
             n_boot: int = 300, seed: int = 0, progress=None) -> dict[str, Any]:
    """The proposal against ``champion`` on the champion's newest ``decisions`` logged
    decisions: what changes (share of decisions, KPIs, moves) and off-policy estimates of
    conversion and margin per decision, JSON-ready (stored with the proposal)."""
    con = log.con.cursor()
    seqs = np.array([r[0] for r in con.execute(
        "SELECT seq FROM decisions WHERE strategy_version = ? AND source = 'klartext' ORDER BY seq DESC LIMIT ?",
        [champion, int(decisions)]).fetchall()], dtype=np.int64)[::-1]
    if len(seqs) == 0:
        raise LogError(f"The log holds no decisions of the version deciding now ({champion}), so there is "
                       "nothing to simulate the proposal on.", "Make decisions with it first (`klartext run`).")
    f = T.load_factors(log, champion, seqs=seqs, max_decisions=None)
    g = T.rerun(log, proposal, f, progress=progress)
    cmp = T.compare(f, g)
    out: dict[str, Any] = {
        "champion": champion, "proposal": proposal.version, "decisions": cmp["decisions"],
        "first": str(con.execute("SELECT min(ts) FROM decisions WHERE seq = ?", [int(seqs[0])]).fetchall()[0][0]),
        "last": str(con.execute("SELECT max(ts) FROM decisions WHERE seq = ?", [int(seqs[-1])]).fetchall()[0][0]),
        "changed": cmp["changed"], "changed_decisions": cmp["changed_decisions"],
        "kpis": {"champion": cmp["champion"], "proposal": cmp["challenger"]},
        "moves": cmp["moves"].to_dict("records"),
        "changes": _diff(log.load_strategy(champion), proposal),
        "off_policy": {},
    }
    try:
        target = T.logged_targets(f, g)
    except InputError as exc:  # the proposal offers an action never logged
        out["off_policy_note"] = f"{exc.message} There is no off-policy estimate."
        return out
    for reward in ("conversion", "margin"):
        try:
            r = T.off_policy(log, f, target, target=None, reward=reward, n_boot=n_boot, seed=seed)
        except (ValueError, InputError) as exc:
            out["off_policy"][reward] = {"refused": str(exc)}
            continue
        keep = {k: r[k] for k in ("decisions", "decisions_with_outcomes", "logging_policy_value", "supported",
                                  "scope", "explored_share", "target_differs") if k in r}
        keep["estimates"] = {k: {m: e[m] for m in ("value", "ci_low", "ci_high", "ess") if m in e}
                             for k, e in r["estimates"].items()}
        if "warning" in r:
            keep["warning"] = r["warning"]
        keep["reliable"] = r["supported"] >= T.SUPPORT_WARN and r["decisions_with_outcomes"] > 0
        out["off_policy"][reward] = keep
    return out


#: Metrics that need reported outcomes: left out (None) while a side has none.
OUTCOME_METRICS = ("accepted", "margin", "incentive")


def _effect(a: pd.DataFrame, b: pd.DataFrame) -> list[dict]:
    """Per metric: mean of ``b`` (reference) and ``a``, the difference a − b and its 95% interval
    (for the metrics of outcomes only where both sides have reported outcomes)."""
    outcomes = bool(a["has_outcome"].any() and b["has_outcome"].any())
    out = []
    for e in _before_after(b, a):
        if e["metric"] in OUTCOME_METRICS and not outcomes:
            out.append({"metric": e["metric"], "reference": None, "value": None, "difference": None, "low": None,
                        "high": None, "note": "no outcomes reported yet"})
        else:
            out.append({"metric": e["metric"], "reference": e["before"], "value": e["after"],
                        "difference": e["difference"], "low": e["low"], "high": e["high"]})
    return out


def effects(log: DecisionLog, st: State) -> list[dict]:
    """Each activation and rollback of the record with its measured effect (newest first):
    ``canary`` (canary against the rest while it ran) where it was a canary, and
    ``before_after`` (the previous arrangement's decisions in the span before, all decisions
    in an equally long span after)."""
    con = log.con.cursor()
    bounds = con.execute("SELECT min(ts), max(ts) FROM decisions WHERE strategy_version IS NOT NULL").fetchall()[0]
    if bounds[0] is None:
        return []
    last = pd.Timestamp(bounds[1]) + pd.Timedelta(microseconds=1)
    moves = [s for s in st.steps if s.step in ("activated", "rolled_back")]
    if not moves:
        return []
    actions = action_table(strategy_of(log, st, st.champion))
    out = []
    for i, s in enumerate(moves):
        start = pd.Timestamp(s.ts)
        end = pd.Timestamp(moves[i + 1].ts) if i + 1 < len(moves) else last
        if end <= start:
            continue
        span = end - start
        per = monitoring.version_outcomes(con, (start - span).to_pydatetime(), end.to_pydatetime(), actions)
        ts = pd.to_datetime(per["ts"], utc=True)
        before, after = per[ts < start], per[ts >= start]
        if len(before) < min(len(after), 100):  # nothing decided just before: the same number of the latest before
            since = con.execute("SELECT min(ts) FROM (SELECT ts FROM decisions WHERE ts < ? AND strategy_version IS "
                                "NOT NULL ORDER BY seq DESC LIMIT ?)", [start.to_pydatetime(), len(after)]).fetchall()[0][0]
            if since is not None:
                before = monitoring.version_outcomes(con, since, start.to_pydatetime(), actions).tail(len(after))
        item: dict[str, Any] = {"step": s.step, "version": s.version, "base_version": s.base_version,
                                "share": s.share, "from": start.isoformat(), "to": end.isoformat(),
                                "actor": s.actor, "decisions_before": int(len(before)),
                                "decisions_after": int(len(after))}
        if len(before) and len(after):
            item["before_after"] = _effect(after, before)
        if s.step == "activated" and s.share is not None and s.share < 1:
            canary, rest = after[after["strategy_version"] == s.version], after[after["strategy_version"] != s.version]
            item["decisions_canary"], item["decisions_rest"] = int(len(canary)), int(len(rest))
            item["observed_share"] = float(len(canary) / len(after)) if len(after) else None
            if len(canary) and len(rest):
                item["canary"] = _effect(canary, rest)
        out.append(item)
    return out[::-1]


#: Bucket widths of the timeline, in seconds (the first that gives at most ~80 buckets).
BUCKETS = ((60, "minute"), (300, "5 minutes"), (900, "15 minutes"), (3600, "hour"), (6 * 3600, "6 hours"),
           (86400, "day"), (7 * 86400, "week"))


def timeline(log: DecisionLog, st: State) -> tuple[pd.DataFrame, str]:
    """Decisions per time bucket and strategy version (start, version, decisions) around the
    lifecycle's steps — from as long before the first step as the steps span
    (at least an hour) to the newest decision — in buckets that give at most about 80 bars; and the bucket's
    width in words.  Without steps: the whole log."""
    con = log.con.cursor()
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM decisions WHERE strategy_version IS NOT NULL").fetchall()[0]
    if lo is None:
        return pd.DataFrame(columns=["start", "version", "decisions"]), "day"
    lo, hi = pd.Timestamp(lo), pd.Timestamp(hi)
    if st.steps:
        first = pd.Timestamp(st.steps[0].ts)
        end = max(hi, pd.Timestamp(st.steps[-1].ts))
        lo = max(lo, first - max(end - first, pd.Timedelta(hours=1)))
        hi = end
    span = max((hi - lo).total_seconds(), 60.0)
    width, label = next(((w, n) for w, n in BUCKETS if span / w <= 80), BUCKETS[-1])
    df = con.execute(
        "SELECT to_timestamp(floor(epoch(ts) / $w) * $w) AS start, strategy_version AS version, count(*) AS decisions "
        "FROM decisions WHERE strategy_version IS NOT NULL AND ts >= $lo GROUP BY ALL ORDER BY start, version",
        {"w": width, "lo": lo.to_pydatetime()}).df()
    return df, label


def diff(log: DecisionLog, st: State, old: str, new: str) -> list[dict]:
    """Field-by-field changes from version ``old`` to ``new`` (proposals included)."""
    return _diff(strategy_of(log, st, old), strategy_of(log, st, new))
