"""The Next-Best-Action engine: filter, score, choose incentives, arbitrate — vectorised.

For a batch of requests the engine keeps, for every (decision, action) cell of the catalog,
where the action stopped and why: the policy stage and rule that removed it with the values
the rule tested, or its four priority factors, rank and whether it was selected.  Nothing
about a decision is left implicit, so the decision log can hold one row per action of the
catalog in every decision and a replay can compare every cell.

Order of the stages (``decisioning.strategy.STAGES``):

1. eligibility — the action is offered on the channel, then the strategy's rules;
2. applicability — never offer a product the customer already holds, then the rules;
3. suitability — the rules;
4. contact — contact limits per channel and suppression after repeated rejections;
5. scoring — ``priority = propensity × value × context_weight × lever`` with
   ``value = margin_weight × (margin − incentive cost) + retention_weight × retention
   effect × CLV`` (less ``margin_weight × contact cost / propensity`` with
   ``kpi.contact_cost_in_value``: then propensity × value is the expected value of the
   contact net of what it costs);
6. incentive — among the incentive levels of one offer only the highest priority stays
   (ties go to the cheaper incentive): a voucher is only given where it pays for itself;
7. arbitration — priority below the channel's no-action threshold is removed;
8. ranking — by priority (ties by catalog order), top-N per channel are selected; with
   exploration (epsilon-greedy) the first slot is drawn at random with probability epsilon
   and the probability of the chosen action is recorded.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from threadpoolctl import ThreadpoolController

from decisioning.arbitration import arbitrate, tables
from decisioning.errors import InputError, NotFittedError
from decisioning.forest import Forest
from decisioning.forest import supported as forest_supported
from decisioning.ids import new_ids
from decisioning.inputs import Requests
from decisioning.models import CHANNEL_FEATURE, ModelSet, model_matrix
from decisioning.strategy import STAGES, Strategy

#: Requests of at most this many decisions are scored on one OpenMP thread.
SINGLE_THREAD_ROWS = 32
#: Explanations re-score groups of at most this many decisions with the flattened forest
#: (:mod:`decisioning.forest`); the engine scores every batch with it.
FOREST_ROWS = 256


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


def _single_thread() -> contextlib.AbstractContextManager:
    return _threadpools().limit(limits=1, user_api="openmp")


_S = {name: i for i, name in enumerate(STAGES)}


@dataclass
class DecisionBatch:
    """Everything the engine decided for a batch, cell by cell (n decisions × A actions).

    ``stage``/``rule``/``reason`` hold codes into :data:`STAGES`, :attr:`rule_names` and
    :attr:`reasons`; ``rule`` and ``reason`` are -1 where the action survived.  Score arrays
    are NaN where the action never reached scoring; ``rank`` is 0 where it was not ranked.
    ``slots`` (n × slots) holds the selected actions of each decision in slot order, -1
    after the last; :attr:`chosen` gives them as lists.
    """

    strategy_version: str
    model_versions: dict[str, str]
    decision_id: np.ndarray
    ts_us: np.ndarray
    requests: Requests
    stage: np.ndarray
    rule: np.ndarray
    reason: np.ndarray
    rule_names: list[str]
    reasons: list[str]
    propensity: np.ndarray
    value: np.ndarray
    context_weight: np.ndarray
    lever: np.ndarray
    priority: np.ndarray
    rank: np.ndarray
    selected: np.ndarray
    slots: np.ndarray
    selection_probability: np.ndarray
    explored: np.ndarray
    latency_us: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.decision_id)

    @cached_property
    def chosen(self) -> list[list[int]]:
        """The selected actions of each decision in slot order (empty for "no action")."""
        counts = (self.slots >= 0).sum(axis=1).tolist()
        return [row[:k] for row, k in zip(self.slots.tolist(), counts)]


class _ReasonPool:
    def __init__(self) -> None:
        self.items: list[str] = []

    def extend(self, texts: list[str]) -> int:
        start = len(self.items)
        self.items.extend(texts)
        return start


class Engine:
    """Decide next-best-actions for a strategy with its propensity models.

    Parameters
    ----------
    strategy : Strategy
        The validated strategy (see :func:`decisioning.strategy.load_strategy`).
    models : ModelSet
        One propensity model per action of the strategy.
    """

    def __init__(self, strategy: Strategy, models: ModelSet) -> None:
        self.strategy = strategy
        self.models = models

    def prepare(self) -> None:
        """Build the lookup tables (channel availability, families, thresholds); idempotent."""
        if getattr(self, "_prepared_", False):
            return
        s = self.strategy
        self.models.check_covers(s)
        A, C = len(s.actions), len(s.channels)
        self.avail_ = np.zeros((C, A), dtype=bool)
        for a, action in enumerate(s.actions):
            for c in action.channels:
                self.avail_[s.channel_ids.index(c), a] = True
        self.avail_reasons_ = {}
        for c, ch in enumerate(s.channels):
            for a, action in enumerate(s.actions):
                if not self.avail_[c, a]:
                    self.avail_reasons_[(c, a)] = (
                        f"eligibility/available_on_channel: channel={ch.id!r} not in "
                        f"[{', '.join(action.channels)}]"
                    )
        self.tables_ = tables(s)
        self.net_margin_ = self.tables_.net_margin
        self.retention_ = self.tables_.retention
        self.threshold_ = self.tables_.threshold
        self.top_n_ = self.tables_.top_n
        self.families_ = self.tables_.families
        columns = s.model_features + (CHANNEL_FEATURE,)
        self.columns_ = columns
        self.feature_idx_ = {}
        for action in s.actions:
            m = self.models[action.id]
            missing = [f for f in m.features if f not in columns]
            if missing:
                raise NotFittedError(
                    f"The model for action {action.id!r} reads feature {missing[0]!r}, which the "
                    f"strategy's model features do not include.",
                    "Add it under models.features in the strategy file or retrain the model.",
                )
            self.feature_idx_[action.id] = np.array([columns.index(f) for f in m.features])
        self.incentive_prefix_ = [
            f"incentive/incentive_choice: {a.id!r} ({a.incentive.describe() if a.incentive else 'no incentive'}) "
            "ranks higher: " for a in s.actions
        ]
        self._prepared_ = True

    def _forest(self, actions: list[int]) -> Forest:
        """The flattened forest, extended by the supported models of ``actions`` not in it yet."""
        if getattr(self, "forest_", None) is None:
            self.forest_ = Forest()
            self.forest_skip_: set[int] = set()
        s = self.strategy
        for a in actions:
            if a in self.forest_ or a in self.forest_skip_:
                continue
            m = self.models[s.actions[a].id]
            if forest_supported(m):
                self.forest_.add(a, m, self.feature_idx_[s.actions[a].id])
            else:
                self.forest_skip_.add(a)
        return self.forest_

    # ------------------------------------------------------------------------------------

    def decide(
        self,
        requests: Requests,
        *,
        decision_ids: np.ndarray | None = None,
        ts_us: np.ndarray | None = None,
    ) -> DecisionBatch:
        """Decide for every request of the batch.

        Parameters
        ----------
        requests : Requests
            Validated requests.
        decision_ids : array of str, optional
            Ids to use (replay passes the logged ones); new time-sortable ids otherwise.
        ts_us : array of int, optional
            Decision times in microseconds since the epoch; now otherwise.
        """
        t_start = time.perf_counter_ns()
        self.prepare()
        s = self.strategy
        n, A = len(requests), len(s.actions)
        if ts_us is None:
            ts_us = np.full(n, time.time_ns() // 1000, dtype=np.int64)
        ts_us = np.asarray(ts_us, dtype=np.int64)
        if decision_ids is None:
            decision_ids = new_ids(ts_us // 1000)
        timings: dict[str, float] = {}

        stage = np.full((n, A), _S["ranked"], dtype=np.int8)
        stopped = np.zeros((n, A), dtype=bool)
        rule = np.full((n, A), -1, dtype=np.int32)
        reason = np.full((n, A), -1, dtype=np.int32)
        rule_names: list[str] = []
        pool = _ReasonPool()
        ch = requests.channel
        cols = dict(requests.features)
        cols["channel"] = np.asarray(s.channel_ids, dtype=object)[ch]

        def stop(rr: np.ndarray, aa: np.ndarray, stage_name: str, rule_name: str, codes: np.ndarray) -> None:
            if rule_name not in rule_names:
                rule_names.append(rule_name)
            stopped[rr, aa] = True
            stage[rr, aa] = _S[stage_name]
            rule[rr, aa] = rule_names.index(rule_name)
            reason[rr, aa] = codes

        def apply_rule(mask: np.ndarray, scope: np.ndarray, stage_name: str, rule_name: str, render) -> None:
            sub = mask[:, None] & ~stopped[:, scope]
            if not sub.any():
                return
            rows = np.flatnonzero(sub.any(axis=1))
            base = pool.extend([f"{stage_name}/{rule_name}: {t}" for t in render(rows)])
            row_code = np.full(n, -1, dtype=np.int32)
            row_code[rows] = base + np.arange(len(rows), dtype=np.int32)
            rr, cc = np.nonzero(sub)
            stop(rr, scope[cc], stage_name, rule_name, row_code[rr])

        t = time.perf_counter_ns()
        # 1. eligibility: offered on this channel?
        avail = self.avail_[ch]
        rr, aa = np.nonzero(~avail)
        if len(rr):
            keys = sorted(self.avail_reasons_)
            base = pool.extend([self.avail_reasons_[k] for k in keys])
            table = np.full(self.avail_.shape, -1, dtype=np.int32)
            for i, (c, a) in enumerate(keys):
                table[c, a] = base + i
            stop(rr, aa, "eligibility", "available_on_channel", table[ch[rr], aa])
        for stage_name in ("eligibility", "applicability", "suitability"):
            if stage_name == "applicability" and s.never_offer_held_products:
                for a, action in enumerate(s.actions):
                    if action.holds_feature:
                        hf = action.holds_feature
                        apply_rule(cols[hf].astype(bool), np.array([a]), "applicability", "already_holds_product",
                                   lambda rows, hf=hf: [f"{hf}=true"] * len(rows))
            for r in s.rules:
                if r.stage != stage_name:
                    continue
                mask = r.exclude_if.evaluate_bool(cols, n)
                apply_rule(mask, np.asarray(r.actions), stage_name, r.name,
                           lambda rows, r=r: r.exclude_if.render_columns(cols, rows))
        # 4. contact policies
        all_actions = np.arange(A)
        for lim in s.contact_limits:
            c = s.channel_ids.index(lim.channel)
            mask = (ch == c) & (requests.contacts[:, c] >= lim.max_contacts)
            apply_rule(mask, all_actions, "contact", f"max_contacts_{lim.channel}",
                       lambda rows, c=c, lim=lim: [
                           f"{k} contacts on {lim.channel} in the last {lim.period_days} days, limit {lim.max_contacts}"
                           for k in requests.contacts[rows, c].tolist()])
        if s.suppression is not None:
            sup = s.suppression
            hit = (~stopped) & (requests.rejections >= sup.after_rejections) & (
                requests.days_since_rejection < sup.suppress_days)
            rr, aa = np.nonzero(hit)
            if len(rr):
                texts = [
                    f"contact/suppressed_after_rejections: rejected {k} times within {sup.within_days} days "
                    f"(limit {sup.after_rejections}), last {d:.4g} days ago, suppressed for {sup.suppress_days} days"
                    for k, d in zip(requests.rejections[rr, aa].tolist(), requests.days_since_rejection[rr, aa].tolist())
                ]
                base = pool.extend(texts)
                stop(rr, aa, "contact", "suppressed_after_rejections", base + np.arange(len(rr), dtype=np.int32))
        timings["policies_s"] = (time.perf_counter_ns() - t) / 1e9

        # 5. scoring
        t = time.perf_counter_ns()
        propensity = np.full((n, A), np.nan)
        X = model_matrix(s, requests, self.columns_)
        timings["matrix_s"] = (time.perf_counter_ns() - t) / 1e9
        t = time.perf_counter_ns()
        todo = [(a, np.flatnonzero(~stopped[:, a])) for a in range(A)]
        todo = [(a, rows) for a, rows in todo if len(rows)]
        forest = self._forest([a for a, _ in todo])  # every supported model: one compiled walk (bit-identical)
        fast = [(a, rows) for a, rows in todo if a in forest]
        for (a, rows), p in zip(fast, forest.predict(X, fast)):
            propensity[rows, a] = p
        todo = [(a, rows) for a, rows in todo if a not in forest]  # the rest: scikit-learn
        with _single_thread() if n <= SINGLE_THREAD_ROWS else contextlib.nullcontext():
            for a, rows in todo:
                action = s.actions[a]
                propensity[rows, a] = self.models[action.id].predict(X[np.ix_(rows, self.feature_idx_[action.id])])
        timings["models_s"] = (time.perf_counter_ns() - t) / 1e9
        t = time.perf_counter_ns()
        scored = ~stopped
        clv = cols[s.clv_feature].astype(np.float64)
        value = self.tables_.value(s.margin_weight, s.retention_weight, clv, propensity)
        cw = np.ones((n, A))
        for w in s.context_weights:
            mask = w.when.evaluate_bool(cols, n)
            idx = np.asarray(w.actions)
            cw[np.ix_(mask, idx)] *= w.weight
        lever = np.broadcast_to(s.levers[None, :], (n, A)).copy()
        value = np.where(scored, value, np.nan)
        cw = np.where(scored, cw, np.nan)
        lever = np.where(scored, lever, np.nan)
        priority = propensity * value * cw * lever

        # 6.-8. incentive choice, no-action threshold, ranking and top-N
        thr = self.threshold_[ch]
        top_n = self.top_n_[ch]
        arb = arbitrate(priority, scored, self.families_, thr, top_n)
        rr, aa = np.nonzero(arb.incentive_winner >= 0)
        if len(rr):
            wa = arb.incentive_winner[rr, aa]
            prefix = self.incentive_prefix_
            texts = [
                f"{prefix[w]}priority {pw:.4g} vs {pl:.4g} (propensity {xw:.4g} vs {xl:.4g}, value {vw:.4g} vs {vl:.4g})"
                for w, pw, pl, xw, xl, vw, vl in zip(
                    wa.tolist(), priority[rr, wa].tolist(), priority[rr, aa].tolist(),
                    propensity[rr, wa].tolist(), propensity[rr, aa].tolist(),
                    value[rr, wa].tolist(), value[rr, aa].tolist())
            ]
            base = pool.extend(texts)
            stop(rr, aa, "incentive", "incentive_choice", base + np.arange(len(rr), dtype=np.int32))
        rr, aa = np.nonzero(arb.below_threshold)
        if len(rr):
            cids = s.channel_ids
            texts = [
                f"arbitration/no_action_threshold: priority {p:.4g} < threshold {th:.4g} for {cids[c]}"
                for p, th, c in zip(priority[rr, aa].tolist(), thr[rr].tolist(), ch[rr].tolist())
            ]
            base = pool.extend(texts)
            stop(rr, aa, "arbitration", "no_action_threshold", base + np.arange(len(rr), dtype=np.int32))

        # exploration on top of the greedy result
        alive, order, rank, k_alive = arb.alive, arb.order, arb.rank, arb.k_alive
        selected = arb.selected.copy()
        first = np.where(k_alive > 0, order[:, 0], -1)
        sel_prob = np.ones(n)
        explored = np.zeros(n, dtype=bool)
        if s.epsilon > 0:
            u1, u2 = _uniforms(decision_ids, s.exploration_seed)
            has = k_alive > 0
            explore = has & (u1 < s.epsilon)
            pick_pos = np.minimum((u2 * np.maximum(k_alive, 1)).astype(np.int64), np.maximum(k_alive - 1, 0))
            # the pick_pos-th alive action in catalog order
            cum = np.cumsum(alive, axis=1)
            pick = np.argmax(cum > pick_pos[:, None], axis=1)
            first = np.where(explore, pick, first)
            explored = explore & (pick != order[:, 0])
            greedy_first = order[:, 0]
            sel_prob = np.where(
                has,
                (1 - s.epsilon) * (first == greedy_first) + s.epsilon / np.maximum(k_alive, 1),
                1.0,
            )
        slots = _chosen_slots(selected, order, first, explored, top_n, k_alive)
        if requests.assigned is not None:  # served as assigned from outside (e.g. an experiment's arm)
            for r in np.flatnonzero(requests.assigned >= 0).tolist():
                a = int(requests.assigned[r])
                if not alive[r, a]:
                    raise InputError(
                        f"request {r}: the assigned action {s.action_ids[a]!r} did not pass the strategy "
                        f"(it stopped at the {STAGES[stage[r, a]]} stage); an assigned action must be eligible.",
                        "Assign only actions the strategy allows for this customer and channel.")
                slots[r, :] = -1
                slots[r, 0] = a
                selected[r, :] = False
                selected[r, a] = True
                sel_prob[r] = requests.assigned_probability[r]
                explored[r] = True
        for r in np.flatnonzero(explored).tolist():
            selected[r, :] = False
            selected[r, slots[r][slots[r] >= 0]] = True
        stage[selected] = _S["selected"]
        timings["arbitration_s"] = (time.perf_counter_ns() - t) / 1e9
        total_us = (time.perf_counter_ns() - t_start) / 1000.0
        latency = np.full(n, max(1, int(round(total_us / max(n, 1)))), dtype=np.int64)
        return DecisionBatch(
            strategy_version=s.version,
            model_versions=self.models.versions(),
            decision_id=np.asarray(decision_ids, dtype=object),
            ts_us=ts_us,
            requests=requests,
            stage=stage,
            rule=rule,
            reason=reason,
            rule_names=rule_names,
            reasons=pool.items,
            propensity=propensity,
            value=value,
            context_weight=cw,
            lever=lever,
            priority=priority,
            rank=rank,
            selected=selected,
            slots=slots,
            selection_probability=sel_prob,
            explored=explored,
            latency_us=latency,
            timings=timings,
        )


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-mixed 64-bit hash of each element."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _uniforms(decision_ids: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two reproducible uniforms in [0, 1) per decision, derived from its id and the seed.

    The id's UTF-8 bytes (zero-padded to a multiple of 8) are folded word by word through
    splitmix64, vectorised; the same id and seed always give the same draws, so a replay
    explores exactly as the original decision did.
    """
    raw = np.array([d.encode() for d in decision_ids.tolist()], dtype=object)
    width = max(8, -(-max((len(b) for b in raw), default=8) // 8) * 8)
    words = np.array(raw.tolist(), dtype=f"S{width}").view("<u8").reshape(len(raw), width // 8)
    with np.errstate(over="ignore"):
        h = np.full(len(raw), np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1), dtype=np.uint64)
        for k in range(words.shape[1]):
            h = _mix64(h ^ words[:, k])
        h1 = _mix64(h ^ np.uint64(0x5851F42D4C957F2D))
        h2 = _mix64(h1 + np.uint64(0x9E3779B97F4A7C15))
    scale = 1.0 / 2.0**53
    return (h1 >> np.uint64(11)).astype(np.float64) * scale, (h2 >> np.uint64(11)).astype(np.float64) * scale


def _chosen_slots(selected, order, first, explored, top_n, k_alive) -> np.ndarray:
    """Selected actions per decision in slot order, -1 after the last (an int32 matrix).

    Greedy: the top ``min(top_n, k_alive)`` by rank.  Explored: the explored pick first,
    then the greedy order without it, up to ``top_n`` slots in all.
    """
    n = len(selected)
    counts = selected.sum(axis=1)
    width = int(max(counts.max(), top_n.max())) if n else 0
    slots = np.array(order[:, :width], dtype=np.int32)
    slots[np.arange(width)[None, :] >= counts[:, None]] = -1
    for r in np.flatnonzero(explored).tolist():
        picked = int(first[r])
        greedy = [a for a in order[r, : min(top_n[r], k_alive[r])].tolist() if a != picked]
        row = [picked] + greedy[: top_n[r] - 1]
        slots[r, :] = -1
        slots[r, : len(row)] = row
    return slots
