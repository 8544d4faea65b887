"""The Next-Best-Action engine: filter, score, choose incentives, arbitrate — vectorised.

For a batch of requests the engine keeps, for every (decision, action) cell of the catalog,
where the action stopped and why: the policy stage and rule that removed it with the values
the rule tested, or its four priority factors, rank and whether it was selected.  Nothing
about a decision is left implicit, so the decision log can hold one row per action of the
catalog in every decision and a replay can compare every cell.

Order of the stages (``decisioning.stages.FLOW``; one step each, see :data:`STEPS`):

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from decisioning.arbitration import arbitrate, priority, tables
from decisioning.errors import InputError, NotFittedError
from decisioning.forest import Forest
from decisioning.forest import supported as forest_supported
from decisioning.ids import new_ids
from decisioning.inputs import Requests
from decisioning.models import CHANNEL_FEATURE, ModelSet, model_matrix
from decisioning.stages import CODE, FILTERS, STAGES
from decisioning.strategy import Strategy

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
    #: Per entry of :attr:`reasons`: None where the text quotes no customer data, else the
    #: text without the quoted values (what a log may keep in clear; see :mod:`decision_log.subjects`).
    public_reasons: list[str | None]
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

    def cell(self, row: int, a: int) -> dict[str, Any]:
        """The fate of action ``a`` in decision ``row`` as the log stores it: stage, rule,
        reason, the four factors and priority (None where not scored), rank (None where not
        ranked) and whether it was selected."""
        def num(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "stage": STAGES[self.stage[row, a]],
            "rule": self.rule_names[self.rule[row, a]] if self.rule[row, a] >= 0 else None,
            "reason": self.reasons[self.reason[row, a]] if self.reason[row, a] >= 0 else None,
            "propensity": num(self.propensity[row, a]), "value": num(self.value[row, a]),
            "context_weight": num(self.context_weight[row, a]), "lever": num(self.lever[row, a]),
            "priority": num(self.priority[row, a]),
            "rank": int(self.rank[row, a]) or None,
            "selected": bool(self.selected[row, a]),
        }

    @cached_property
    def chosen(self) -> list[list[int]]:
        """The selected actions of each decision in slot order (empty for "no action")."""
        counts = (self.slots >= 0).sum(axis=1).tolist()
        return [row[:k] for row, k in zip(self.slots.tolist(), counts)]


def contact_limit_text(k: int, lim) -> str:
    """What a contact limit tested (after ``contact/max_contacts_<channel>: ``)."""
    return f"{k} contacts on {lim.channel} in the last {lim.period_days} days, limit {lim.max_contacts}"


def suppression_text(k: int, days: float, sup) -> str:
    """The reason of a suppression after repeated rejections."""
    return (f"contact/suppressed_after_rejections: rejected {k} times within {sup.within_days} days "
            f"(limit {sup.after_rejections}), last {days:.4g} days ago, suppressed for {sup.suppress_days} days")


def logged_reason(strategy: Strategy, rule: str, action_id: str, channel: str, inputs: Mapping[str, Any]
                  ) -> str | None:
    """The reason, with the values it tested, that the engine gave for removing ``action_id``
    by ``rule``, written again from the decision's logged ``inputs`` (the JSON document);
    None for a rule whose reason quotes no customer data (it is logged in full).

    A log that seals inputs stores such a reason without its values (the rule's own text)
    and the values once, sealed, in the inputs (:mod:`decision_log.subjects`); this is how
    a view puts them back together.  Replay checks that it gives the engine's text exactly."""
    if rule.startswith("max_contacts_"):
        lim = next((x for x in strategy.contact_limits if f"max_contacts_{x.channel}" == rule), None)
        if lim is None:
            return None
        return f"contact/{rule}: " + contact_limit_text(int((inputs.get("contacts") or {}).get(lim.channel, 0)), lim)
    if rule == "suppressed_after_rejections":
        rej = (inputs.get("rejections") or {}).get(action_id)
        if strategy.suppression is None or rej is None:
            return None
        return suppression_text(int(rej["count"]), float(rej["days_since_last"]), strategy.suppression)
    for r in strategy.rules:
        if r.name == rule and r.exclude_if.fields:
            return f"{r.stage}/{r.name}: " + r.exclude_if.render({**inputs.get("features", {}), "channel": channel})
    return None


class _ReasonPool:
    """The reason texts of a batch; ``public`` holds, per text that quotes the customer's
    data, the same reason without the values (None for a text that quotes none)."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.public: list[str | None] = []

    def extend(self, texts: list[str], public: str | None = None) -> int:
        start = len(self.items)
        self.items.extend(texts)
        self.public.extend([public] * len(texts))
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
        """Decide for every request of the batch: each step of :data:`STEPS` in turn.

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
        n = len(requests)
        if ts_us is None:
            ts_us = np.full(n, time.time_ns() // 1000, dtype=np.int64)
        ts_us = np.asarray(ts_us, dtype=np.int64)
        if decision_ids is None:
            decision_ids = new_ids(ts_us // 1000)
        b = _Batch(self.strategy, requests, np.asarray(decision_ids, dtype=object))
        for timing, step in STEPS:
            t = time.perf_counter_ns()
            step(self, b)
            b.timings[timing] = b.timings.get(timing, 0.0) + (time.perf_counter_ns() - t) / 1e9
        total_us = (time.perf_counter_ns() - t_start) / 1000.0
        c = b.cells
        return DecisionBatch(
            strategy_version=self.strategy.version, model_versions=self.models.versions(),
            decision_id=b.decision_ids, ts_us=ts_us, requests=requests,
            stage=c.stage, rule=c.rule, reason=c.reason, rule_names=c.rule_names, reasons=c.pool.items,
            public_reasons=c.pool.public,
            propensity=b.propensity, value=b.value, context_weight=b.context_weight, lever=b.lever,
            priority=b.priority, rank=b.rank, selected=b.selected, slots=b.slots,
            selection_probability=b.selection_probability, explored=b.explored,
            latency_us=np.full(n, max(1, int(round(total_us / max(n, 1)))), dtype=np.int64),
            timings=b.timings,
        )

    # -- the steps, in the order of the stages (decisioning.stages.FLOW) --------------------

    def _eligibility(self, b: _Batch) -> None:
        """Offered on this channel?  Then the customer's objection to direct marketing (every
        marketing action left goes), then the strategy's eligibility rules."""
        avail = self.avail_[b.channel]
        rr, aa = np.nonzero(~avail)
        if len(rr):
            keys = sorted(set(zip(b.channel[rr].tolist(), aa.tolist())))
            base = b.cells.pool.extend([self.avail_reasons_[k] for k in keys])
            table = np.full(self.avail_.shape, -1, dtype=np.int32)
            for i, (c, a) in enumerate(keys):
                table[c, a] = base + i
            b.cells.stop(rr, aa, "eligibility", "available_on_channel", table[b.channel[rr], aa])
        objection = b.requests.objection
        if objection is not None and objection.any():
            s = self.strategy
            marketing = np.array([a for a, action in enumerate(s.actions) if action.marketing], dtype=np.int64)
            if len(marketing):
                cids = s.channel_ids
                b.cells.apply_rule(np.asarray(objection, dtype=bool), marketing, "eligibility", "objection",
                                   lambda rows: [f"the customer objected to direct marketing on {cids[c]} (GDPR Art. 21)"
                                                 for c in b.channel[rows].tolist()])
        self._rules(b, "eligibility")

    def _applicability(self, b: _Batch) -> None:
        """Never offer a product the customer already holds; then the strategy's rules."""
        s = self.strategy
        if s.never_offer_held_products:
            for a, action in enumerate(s.actions):
                if action.holds_feature:
                    hf = action.holds_feature
                    b.cells.apply_rule(b.cols[hf].astype(bool), np.array([a]), "applicability", "already_holds_product",
                                       lambda rows, hf=hf: [f"{hf}=true"] * len(rows))
        self._rules(b, "applicability")

    def _rules(self, b: _Batch, stage_name: str) -> None:
        """The strategy's rules of one policy stage, in the file's order."""
        for r in self.strategy.rules:
            if r.stage == stage_name:
                mask = r.exclude_if.evaluate_bool(b.cols, b.n)
                b.cells.apply_rule(mask, np.asarray(r.actions), stage_name, r.name,
                                   lambda rows, r=r: r.exclude_if.render_columns(b.cols, rows),
                                   public=r.exclude_if.text if r.exclude_if.fields else None)

    def _contact(self, b: _Batch) -> None:
        """Contact limits per channel, then suppression after repeated rejections."""
        s, req = self.strategy, b.requests
        all_actions = np.arange(b.A)
        for lim in s.contact_limits:
            c = s.channel_ids.index(lim.channel)
            mask = (b.channel == c) & (req.contacts[:, c] >= lim.max_contacts)
            b.cells.apply_rule(mask, all_actions, "contact", f"max_contacts_{lim.channel}",
                               lambda rows, c=c, lim=lim: [contact_limit_text(k, lim) for k in req.contacts[rows, c].tolist()],
                               public=f"at least {lim.max_contacts} contacts on {lim.channel} in the last "
                                      f"{lim.period_days} days, limit {lim.max_contacts}")
        sup = s.suppression
        if sup is None:
            return
        hit = (~b.cells.stopped) & (req.rejections >= sup.after_rejections) & (req.days_since_rejection < sup.suppress_days)
        rr, aa = np.nonzero(hit)
        if len(rr):
            b.cells.stop_each(rr, aa, "contact", "suppressed_after_rejections", [
                suppression_text(k, d, sup)
                for k, d in zip(req.rejections[rr, aa].tolist(), req.days_since_rejection[rr, aa].tolist())],
                public=f"contact/suppressed_after_rejections: rejected at least {sup.after_rejections} times within "
                       f"{sup.within_days} days, suppressed for {sup.suppress_days} days")

    def _matrix(self, b: _Batch) -> None:
        b.X = model_matrix(self.strategy, b.requests, self.columns_)

    def _score(self, b: _Batch) -> None:
        """Every surviving (decision, action) cell scored by its model: the flattened forest
        where it can (bit-identical), scikit-learn for the rest."""
        s, n, A = self.strategy, b.n, b.A
        b.propensity = propensity = np.full((n, A), np.nan)
        todo = [(a, np.flatnonzero(~b.cells.stopped[:, a])) for a in range(A)]
        todo = [(a, rows) for a, rows in todo if len(rows)]
        forest = self._forest([a for a, _ in todo])
        fast = [(a, rows) for a, rows in todo if a in forest]
        for (a, rows), p in zip(fast, forest.predict(b.X, fast)):
            propensity[rows, a] = p
        todo = [(a, rows) for a, rows in todo if a not in forest]
        with _single_thread() if n <= SINGLE_THREAD_ROWS else contextlib.nullcontext():
            for a, rows in todo:
                aid = s.actions[a].id
                propensity[rows, a] = self.models[aid].predict(b.X[np.ix_(rows, self.feature_idx_[aid])])

    def _priority(self, b: _Batch) -> None:
        """priority = propensity × value × context weight × lever (NaN where not scored)."""
        s, n, A = self.strategy, b.n, b.A
        scored = ~b.cells.stopped
        clv = b.cols[s.clv_feature].astype(np.float64)
        value = self.tables_.value(s.margin_weight, s.retention_weight, clv, b.propensity)
        cw = np.ones((n, A))
        for w in s.context_weights:
            mask = w.when.evaluate_bool(b.cols, n)
            cw[np.ix_(mask, np.asarray(w.actions))] *= w.weight
        lever = np.broadcast_to(s.levers[None, :], (n, A)).copy()
        b.value = np.where(scored, value, np.nan)
        b.context_weight = np.where(scored, cw, np.nan)
        b.lever = np.where(scored, lever, np.nan)
        b.priority = priority(b.propensity, b.value, b.context_weight, b.lever)

    def _arbitrate(self, b: _Batch) -> None:
        """Incentive choice within each offer, the no-action threshold, ranking and top-N."""
        s, ch = self.strategy, b.channel
        b.threshold, b.top_n = self.threshold_[ch], self.top_n_[ch]
        pr, prop, val = b.priority, b.propensity, b.value
        b.arb = arb = arbitrate(pr, ~b.cells.stopped, self.families_, b.threshold, b.top_n)
        rr, aa = np.nonzero(arb.incentive_winner >= 0)
        if len(rr):
            wa = arb.incentive_winner[rr, aa]
            prefix = self.incentive_prefix_
            b.cells.stop_each(rr, aa, "incentive", "incentive_choice", [
                f"{prefix[w]}priority {pw:.4g} vs {pl:.4g} (propensity {xw:.4g} vs {xl:.4g}, value {vw:.4g} vs {vl:.4g})"
                for w, pw, pl, xw, xl, vw, vl in zip(
                    wa.tolist(), pr[rr, wa].tolist(), pr[rr, aa].tolist(), prop[rr, wa].tolist(),
                    prop[rr, aa].tolist(), val[rr, wa].tolist(), val[rr, aa].tolist())])
        rr, aa = np.nonzero(arb.below_threshold)
        if len(rr):
            cids = s.channel_ids
            b.cells.stop_each(rr, aa, "arbitration", "no_action_threshold", [
                f"arbitration/no_action_threshold: priority {p:.4g} < threshold {th:.4g} for {cids[c]}"
                for p, th, c in zip(pr[rr, aa].tolist(), b.threshold[rr].tolist(), ch[rr].tolist())])
        b.rank = arb.rank

    def _select(self, b: _Batch) -> None:
        """The top-N per channel; with exploration (epsilon-greedy) the first slot is drawn at
        random with probability epsilon, and the probability of the chosen action is kept."""
        s, n, arb = self.strategy, b.n, b.arb
        alive, order, k_alive = arb.alive, arb.order, arb.k_alive
        selected = arb.selected.copy()
        first = np.where(k_alive > 0, order[:, 0], -1)
        sel_prob = np.ones(n)
        explored = np.zeros(n, dtype=bool)
        if s.epsilon > 0:
            u1, u2 = _uniforms(b.decision_ids, s.exploration_seed)
            has = k_alive > 0
            explore = has & (u1 < s.epsilon)
            pick_pos = np.minimum((u2 * np.maximum(k_alive, 1)).astype(np.int64), np.maximum(k_alive - 1, 0))
            pick = np.argmax(np.cumsum(alive, axis=1) > pick_pos[:, None], axis=1)  # the pick_pos-th alive action
            first = np.where(explore, pick, first)
            explored = explore & (pick != order[:, 0])
            sel_prob = np.where(has, (1 - s.epsilon) * (first == order[:, 0]) + s.epsilon / np.maximum(k_alive, 1), 1.0)
        slots = _chosen_slots(selected, order, first, explored, b.top_n, k_alive)
        if b.requests.assigned is not None:
            self._assigned(b, alive, slots, selected, sel_prob, explored)
        for r in np.flatnonzero(explored).tolist():
            selected[r, :] = False
            selected[r, slots[r][slots[r] >= 0]] = True
        b.cells.stage[selected] = CODE["selected"]
        b.selected, b.slots, b.selection_probability, b.explored = selected, slots, sel_prob, explored

    def _assigned(self, b: _Batch, alive, slots, selected, sel_prob, explored) -> None:
        """Serve the action assigned from outside (e.g. an experiment's arm) where there is one."""
        req = b.requests
        for r in np.flatnonzero(req.assigned >= 0).tolist():
            a = int(req.assigned[r])
            if not alive[r, a]:
                raise InputError(
                    f"request {r}: the assigned action {self.strategy.action_ids[a]!r} did not pass the strategy "
                    f"(it stopped at the {STAGES[b.cells.stage[r, a]]} stage); an assigned action must be eligible.",
                    "Assign only actions the strategy allows for this customer and channel.")
            slots[r, :] = -1
            slots[r, 0] = a
            selected[r, :] = False
            selected[r, a] = True
            sel_prob[r] = req.assigned_probability[r]
            explored[r] = True


def _steps() -> tuple:
    """The engine's steps in order, with the timing each adds to: one per filtering stage of
    :data:`decisioning.stages.FLOW` before scoring (a policy stage without a step of its own
    applies the strategy's rules written for it), then scoring (the model matrix, the models,
    the priority), the incentive choice with the no-action threshold, and the selection."""
    own = {"eligibility": Engine._eligibility, "applicability": Engine._applicability, "contact": Engine._contact}
    after_scoring = ("incentive", "arbitration")
    steps = [("policies_s", own.get(st.name) or functools.partial(_policy_step, name=st.name))
             for st in FILTERS if st.name not in after_scoring]
    return (*steps, ("matrix_s", Engine._matrix), ("models_s", Engine._score), ("arbitration_s", Engine._priority),
            ("arbitration_s", Engine._arbitrate), ("arbitration_s", Engine._select))


def _policy_step(engine: Engine, b: _Batch, *, name: str) -> None:
    engine._rules(b, name)


STEPS = _steps()


class _Cells:
    """Where each (decision, action) cell stopped and why, filled stage by stage."""

    def __init__(self, n: int, A: int) -> None:
        self.stage = np.full((n, A), CODE["ranked"], dtype=np.int8)
        self.stopped = np.zeros((n, A), dtype=bool)
        self.rule = np.full((n, A), -1, dtype=np.int32)
        self.reason = np.full((n, A), -1, dtype=np.int32)
        self.rule_names: list[str] = []
        self.pool = _ReasonPool()

    def stop(self, rr: np.ndarray, aa: np.ndarray, stage_name: str, rule_name: str, codes: np.ndarray) -> None:
        if rule_name not in self.rule_names:
            self.rule_names.append(rule_name)
        self.stopped[rr, aa] = True
        self.stage[rr, aa] = CODE[stage_name]
        self.rule[rr, aa] = self.rule_names.index(rule_name)
        self.reason[rr, aa] = codes

    def stop_each(self, rr: np.ndarray, aa: np.ndarray, stage_name: str, rule_name: str, texts: list[str],
                  public: str | None = None) -> None:
        """Stop these cells, each with its own reason text (``public``: the texts without the
        customer's values, where they quote some)."""
        base = self.pool.extend(texts, public)
        self.stop(rr, aa, stage_name, rule_name, base + np.arange(len(rr), dtype=np.int32))

    def apply_rule(self, mask: np.ndarray, scope: np.ndarray, stage_name: str, rule_name: str, render,
                   public: str | None = None) -> None:
        """Stop the actions of ``scope`` not stopped yet in the rows of ``mask``; one reason
        text per row (``render(rows)``: what the rule tested there; ``public``: the same
        without the customer's values, where it quotes some)."""
        sub = mask[:, None] & ~self.stopped[:, scope]
        if not sub.any():
            return
        n = len(mask)
        rows = np.flatnonzero(sub.any(axis=1))
        base = self.pool.extend([f"{stage_name}/{rule_name}: {t}" for t in render(rows)],
                                None if public is None else f"{stage_name}/{rule_name}: {public}")
        row_code = np.full(n, -1, dtype=np.int32)
        row_code[rows] = base + np.arange(len(rows), dtype=np.int32)
        rr, cc = np.nonzero(sub)
        self.stop(rr, scope[cc], stage_name, rule_name, row_code[rr])


class _Batch:
    """One batch on its way through the steps: the requests, their columns, and what each
    step adds (cells, scores, arbitration, selection)."""

    def __init__(self, s: Strategy, requests: Requests, decision_ids: np.ndarray) -> None:
        self.requests, self.decision_ids = requests, decision_ids
        self.n, self.A = len(requests), len(s.actions)
        self.channel = requests.channel
        self.cols = dict(requests.features)
        self.cols["channel"] = np.asarray(s.channel_ids, dtype=object)[self.channel]
        self.cells = _Cells(self.n, self.A)
        self.timings: dict[str, float] = {}


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
