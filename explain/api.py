"""The explanation API: why a logged decision came out as it did.

>>> from decision_log.store import DecisionLog
from decision_log.writer import Writer
>>> from explain.api import Explainer
>>> ex = Explainer(DecisionLog.open("klartext_demo.duckdb"))
>>> e = ex.explain("01J...")           # attributions of every scored candidate, reason codes
>>> c = ex.why_not("01J...", "winback_20")   # why the winner and not this action

Every explanation is computed from the *logged* inputs with the *pinned* model version and
checked before it is shown: the model must re-score the logged propensity (to
:data:`~explain.attributions.RESCORE_TOL`) and ``base + Σ attributions`` must equal its
log-odds output (to :data:`~explain.attributions.ADDITIVITY_TOL`).  A failed check is
reported as a mismatch, and reason codes are then not derived from those attributions.
Attributions are cached in the log's ``explanations`` table (when it is writable) and in
memory, keyed by (decision, action, model version).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from decision_log import explanations as store
from decision_log import queries, stages, subjects
from decision_log.replay import sample_ids
from decision_log.store import DecisionLog
from decision_log.writer import Writer
from decisioning import stages as flow
from decisioning.arbitration import Tables, tables
from decisioning.cache import BoundedCache
from decisioning.engine import FOREST_ROWS
from decisioning.errors import LogError
from decisioning.forest import Forest
from decisioning.forest import supported as forest_supported
from decisioning.inputs import Requests
from decisioning.models import CHANNEL_FEATURE, ModelSet, model_matrix
from decisioning.strategy import Strategy
from explain.attributions import ADDITIVITY_TOL, RESCORE_TOL, ModelExplainer, library
from explain.contrast import (
    Contrast,
    DecisionFactors,
    Term,
    decompose,
    lever_needed,
    propensity_breakdown,
    weight_needed,
)
from explain.reasons import (
    Reason,
    candidate_reasons,
    customer_reasons,
    discloses,
    display_value,
    feature_phrase,
    reason_text,
)

#: How many explained decisions an explainer on a read-only log keeps in memory.
EXPLANATION_MEMO = 4096


@dataclass
class CandidateAttribution:
    """The verified (or not) attributions of one candidate's propensity."""

    action_id: str
    model_version: str
    algorithm: str
    library: str
    background: str | None
    features: tuple[str, ...]
    x: np.ndarray
    phi: np.ndarray
    base_value: float
    raw_output: float
    residual: float
    propensity_logged: float | None
    propensity_rescored: float
    #: Set when the stored copy of this explanation is not what the pinned model computes
    #: (or its seal does not match): the explanations table was changed.
    stored_problem: str | None = None

    @property
    def additive(self) -> bool:
        return abs(self.residual) <= ADDITIVITY_TOL

    @property
    def rescore_error(self) -> float:
        if self.propensity_logged is None:
            return float("inf")
        return abs(self.propensity_rescored - self.propensity_logged)

    @property
    def reproduces(self) -> bool:
        return self.rescore_error <= RESCORE_TOL

    @property
    def verified(self) -> bool:
        return self.additive and self.reproduces and self.stored_problem is None

    @property
    def problems(self) -> list[str]:
        out = [] if self.stored_problem is None else [self.stored_problem]
        if not self.reproduces:
            out.append(f"model {self.model_version} re-scores the logged inputs to {self.propensity_rescored!r}, "
                       f"but the log says {self.propensity_logged!r}: this is not the model that decided")
        if not self.additive:
            out.append(f"attributions do not add up: base + Σ = raw output {self.residual:+.3g} (tolerance {ADDITIVITY_TOL:g})")
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("x", "phi")}
        d["features"] = list(self.features)
        d["x"] = self.x.tolist()
        d["attributions"] = self.phi.tolist()
        d["verified"] = self.verified
        d["problems"] = self.problems
        return d


@dataclass
class DecisionExplanation:
    """A logged decision with its candidates, attributions and reason codes."""

    decision: dict[str, Any]
    inputs: dict[str, Any]
    candidates: pd.DataFrame
    strategy: Strategy | None
    attributions: dict[str, CandidateAttribution] = field(default_factory=dict)
    reasons: dict[str, list[Reason]] = field(default_factory=dict)
    #: Every reason of each chosen action (``reasons`` holds the principal ones).
    all_reasons: dict[str, list[Reason]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Every candidate row in logged order (an imported decision may hold several per action,
    #: e.g. one per Pega strategy component); ``candidates`` shows one per action.
    rows: pd.DataFrame | None = None
    #: The flow's stages this decision can stop at, in order: (name, label).
    stages: list[tuple[str, str]] = field(default_factory=list)
    #: When the customer was erased at their request (the inputs are gone); None otherwise.
    erased_at: Any = None
    #: The customer's key is gone: the inputs cannot be read (``erased_at`` says when, if recorded).
    erased: bool = False

    @property
    def component_level(self) -> bool:
        """Whether some action has more than one row (component-level rows, e.g. Pega v2)."""
        return self.rows is not None and len(self.rows) > len(self.candidates)

    @property
    def decision_id(self) -> str:
        return self.decision["decision_id"]

    @property
    def chosen(self) -> list[str]:
        return list(self.decision["chosen_actions"])

    @property
    def verified(self) -> bool:
        """Every scored candidate's attributions passed both fidelity checks."""
        scored = self.candidates["propensity"].notna().sum()
        return len(self.attributions) == scored and all(a.verified for a in self.attributions.values())

    def feature_labels(self) -> dict[str, str]:
        if self.strategy is None:
            return {}
        out = {f.name: f.label for f in self.strategy.features}
        out[CHANNEL_FEATURE] = "Channel"
        return out

    def action_names(self) -> dict[str, str]:
        """Action id → name from the decision's strategy (an imported decision has none)."""
        return {a.id: a.name for a in self.strategy.actions} if self.strategy is not None else {}

    def reason_texts(self, action_id: str, lang: str = "en") -> list[str]:
        """The principal reasons for ``action_id`` in plain words, in ``lang``."""
        if self.strategy is None:
            return [r.text for r in self.reasons.get(action_id, [])]
        return [reason_text(self.strategy, action_id, r, lang) for r in self.reasons.get(action_id, [])]

    def customer_reasons(self, action_id: str, lang: str = "en") -> tuple[list[str], float]:
        """What the customer may be told about ``action_id`` (the strategy's ``disclosure:``):
        the reasons, and the share of the rest ("other factors")."""
        if self.strategy is None:
            return self.reason_texts(action_id, lang), 0.0
        return customer_reasons(self.strategy, action_id, self.all_reasons.get(action_id, []), lang)

    def disclosed(self, action_id: str) -> list[bool]:
        """Per principal reason of ``action_id``: whether a customer is told it."""
        if self.strategy is None:
            return [True] * len(self.reasons.get(action_id, []))
        return [discloses(self.strategy, r) for r in self.reasons.get(action_id, [])]

    def feature_phrases(self, features: tuple[str, ...] | list[str], lang: str = "en") -> list[str]:
        """Each feature with the customer's logged value as a person reads it (``Last purchase
        214 days ago``); the bare name without a strategy."""
        if self.strategy is None:
            return list(features)
        feats = self.inputs.get("features", {})
        return [feature_phrase(self.strategy, f, self.decision["channel"] if f == CHANNEL_FEATURE else feats.get(f),
                               lang) for f in features]

    def display_inputs(self) -> pd.DataFrame:
        """The logged features as a table: feature, label, value (as a person reads it), source."""
        rows = []
        feats = self.inputs.get("features", {})
        for name, value in feats.items():
            if self.strategy is not None:
                try:
                    f = self.strategy.feature(name)
                    rows.append({"feature": name, "label": f.label,
                                 "value": display_value(self.strategy, name, value), "source": f.source})
                    continue
                except KeyError:
                    pass
            rows.append({"feature": name, "label": name, "value": str(value), "source": ""})
        return pd.DataFrame(rows, columns=["feature", "label", "value", "source"])

    def to_dict(self) -> dict[str, Any]:
        dec = {k: _plain(v) for k, v in self.decision.items() if k != "inputs"}
        for k in ("model_versions",):
            if isinstance(dec.get(k), str):
                dec[k] = json.loads(dec[k])
        cands = json.loads(self.candidates.to_json(orient="records"))
        out_rows = json.loads(self.rows.to_json(orient="records")) if self.component_level else None
        return {
            "decision": dec,
            "inputs": self.inputs,
            "candidates": cands,
            **({"candidate_rows": out_rows} if out_rows is not None else {}),
            "attributions": {a: x.to_dict() for a, x in self.attributions.items()},
            "reasons": {a: [r.to_dict() for r in rs] for a, rs in self.reasons.items()},
            "verified": self.verified,
            "notes": self.notes,
        }


def flow_stages(con, source: str | None) -> list[tuple[str, str]]:
    """The stages a decision of ``source`` can stop at, in the flow's order, as (name, label):
    Klartext's own filtering stages, or those an import recorded for its source."""
    known = stages.known(con)
    if source in (None, "klartext") or not any(s.source == source for s in known):
        return [(s.name, s.label) for s in stages.NATIVE if s.name not in ("ranked", "selected")]
    return [(s.name, s.label) for s in known
            if s.source == source and s.group.lower() != "output" and s.name not in ("ranked", "selected")]


#: SHAP's explainers of tree models, by the model object (a log builds each model from its row once
#: per process, :func:`decision_log.store.model_from_row`): a live replica of a log a service
#: writes is a new log, and an explainer, every few seconds; each built its own (30 ms a model).
_TREE_EXPLAINERS: BoundedCache[tuple[Any, ModelExplainer]] = BoundedCache(64)


def _tree_explainer(model, permutations: int, seed: int) -> ModelExplainer:
    # keyed by the model's id, with the model held in the entry: its id is not reused while kept
    return _TREE_EXPLAINERS.get_or_build((id(model), permutations, seed), lambda: (
        model, ModelExplainer(model, None, permutations=permutations, seed=seed)))[1]


class Explainer:
    """Explains decisions of one log (see the module docstring).

    Parameters
    ----------
    log : DecisionLog
        The decision log; explanations are stored in it when it is writable.
    background_size : int
        Background rows for model-agnostic explanations (drawn from the log, seeded).
    permutations : int
        Permutations per row of the model-agnostic explainer.
    seed : int
        Seed for the background sample and the permutations.
    writer : Writer, optional
        The log's running writer (the service's): explanations are stored through it, on its
        thread.  Without one they are stored on the log's connection (a process that writes
        alone).
    """

    def __init__(self, log: DecisionLog, *, background_size: int = 100, permutations: int = 10,
                 seed: int = 0, writer: Writer | None = None) -> None:
        self.log = log
        self.writer = writer
        self.background_size = background_size
        self.permutations = permutations
        self.seed = seed
        self._explainers: dict[tuple[str, str], ModelExplainer] = {}
        self._build_lock = threading.RLock()
        self._memo: dict[tuple[str, str, str], CandidateAttribution] = {}
        self._explained: BoundedCache[DecisionExplanation] = BoundedCache(EXPLANATION_MEMO)  # read-only logs
        self._backgrounds: dict[str, np.ndarray] = {}
        self._tables: dict[str, Tables] = {}
        self._writable: bool | None = None
        self._has_table: bool | None = None
        self._forest = Forest()  # every tree model explained so far, flattened (small groups' re-scoring)
        self._forest_slots: dict[tuple[str, str, str], int] = {}
        self._computed = 0

    # -- loading --------------------------------------------------------------------------

    def _con(self):
        return self.log.con.cursor()

    @property
    def writable(self) -> bool:
        if self._writable is None:
            self._writable = not self.log.read_only and store.writable(self._con())
        return self._writable

    def _decision(self, decision_id: str) -> dict[str, Any]:
        rec = queries.decision_record(self._con(), decision_id)
        if rec is None:
            raise LogError(f"Decision {decision_id!r} is not in the log {self.log.path!r}.",
                           "Look up ids with `klartext decisions --db PATH` or in the dashboard.")
        return rec

    def _opened(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Rows with a decision's ``inputs`` (and ``customer``) with the inputs opened where
        they are sealed; the rows of erased customers are left out (nothing to explain)."""
        stored = rows["inputs"].tolist()
        if not any(subjects.is_sealed(x) for x in stored):
            return rows
        first = rows.drop_duplicates("decision_id")
        plain = dict(zip(first["decision_id"], self.log.open_inputs(
            first["decision_id"].tolist(), first["customer"].tolist(), first["inputs"].tolist())))
        rows = rows.assign(inputs=[plain[d] for d in rows["decision_id"]])
        return rows[rows["inputs"].notna()].reset_index(drop=True)

    def _stored(self, rows: pd.DataFrame, keys: pd.DataFrame) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The stored explanations of ``keys``, each as (the row as stored — what its seal
        covers —, the row with its sealed input values opened); opened in one call (``rows``:
        the scored candidates they belong to, for the customers)."""
        records = store.fetch(self._con(), keys, table_known=True).to_dict("records")
        opened = list(records)
        idx = [i for i, r in enumerate(records) if isinstance(r.get("x_sealed"), str)]
        if idx:
            customer = dict(zip(rows["decision_id"], rows["customer"]))
            dids = [records[i]["decision_id"] for i in idx]
            plain = self.log.open_inputs(dids, [customer[d] for d in dids], [records[i]["x_sealed"] for i in idx])
            for i, text in zip(idx, plain):
                opened[i] = {**records[i], "x": [] if text is None else json.loads(text)}
        return list(zip(records, opened))

    def _requests(self, strategy: Strategy, rows: pd.DataFrame) -> Requests:
        return Requests.from_logged(strategy, rows["customer"], rows["channel"], rows["inputs"], assignment=False)

    def _background(self, strategy: Strategy) -> np.ndarray:
        """Model-matrix rows of ``background_size`` decisions drawn from the log (seeded)."""
        if strategy.version not in self._backgrounds:
            ids = sample_ids(self.log, self.background_size, seed=self.seed)
            con = self._con()
            con.register("_k_bg", pd.DataFrame({"decision_id": ids}))
            rows = con.execute("SELECT decision_id, customer, channel, inputs FROM decisions SEMI JOIN _k_bg "
                               "USING (decision_id) WHERE strategy_version = ? ORDER BY seq", [strategy.version]).df()
            con.unregister("_k_bg")
            rows = self._opened(rows)
            self._backgrounds[strategy.version] = model_matrix(strategy, self._requests(strategy, rows))
        return self._backgrounds[strategy.version]

    def _explainer(self, strategy: Strategy, models: ModelSet, action_id: str, version: str) -> ModelExplainer:
        key = (action_id, version)
        if key in self._explainers:
            return self._explainers[key]
        with self._build_lock:  # two threads (a page and a batch) may ask for the same explainer
            if key in self._explainers:
                return self._explainers[key]
            m = models[action_id]
            if m.log_odds_trees:  # exact, from the model alone: shared by the explainers of every log
                self._explainers[key] = _tree_explainer(m, self.permutations, self.seed)
                return self._explainers[key]
            full = self._background(strategy)
            cols = strategy.model_features + (CHANNEL_FEATURE,)
            bg = full[:, [cols.index(f) for f in m.features]]
            self._explainers[key] = ModelExplainer(m, bg, permutations=self.permutations, seed=self.seed)
        return self._explainers[key]

    def warm(self, strategy_version: str, hold: Callable[[], AbstractContextManager] = nullcontext) -> int:
        """Load the newest models of a strategy and build their explainers ahead of the first
        decision that needs them (the dashboard does it on a thread of its own: a model is
        deserialised and checked once per process, about 0.1 s each, which the first view of a
        decision would otherwise wait for, model by model).  ``hold()`` is entered around each
        read of the log (not around deserialising, which reads none), so that a caller can let
        the file go meanwhile.  Returns the explainers built."""
        with hold():
            strategy = self.log.load_strategy(strategy_version)
            models = self.log.latest_models_for(strategy)
        for aid in strategy.action_ids:
            models[aid].estimator  # noqa: B018 (deserialised and checked on first use)
        with hold():
            for aid in strategy.action_ids:
                self._explainer(strategy, models, aid, models[aid].version)
            self.tables(strategy_version)
        return len(strategy.action_ids)

    def tables(self, strategy_version: str) -> Tables:
        if strategy_version not in self._tables:
            self._tables[strategy_version] = tables(self.log.load_strategy(strategy_version))
        return self._tables[strategy_version]

    # -- attributions ---------------------------------------------------------------------

    def attributions(self, decision_ids: list[str], progress: Callable[[int], None] | None = None,
                     rows: pd.DataFrame | None = None, recheck: bool = False,
                     ) -> dict[tuple[str, str], CandidateAttribution]:
        """Attributions of every scored candidate of these decisions.

        Stored ones are read (and their seals checked), the rest computed in vectorised
        batches per model and stored.  With ``recheck`` (a decision shown to a person) every
        attribution is computed from the pinned model, and a stored copy that differs from it
        marks the attribution as a mismatch: a stored explanation is evidence only while it
        is what the model says.  ``rows`` may pass the scored candidates already read (the
        columns of ``scored_candidates``).
        """
        if rows is None:
            rows = store.scored_candidates(self._con(), decision_ids)
        out: dict[tuple[str, str], CandidateAttribution] = {}
        if rows.empty:
            return out
        rows = self._opened(rows)
        if rows.empty:
            return out
        keys = list(zip(rows["decision_id"], rows["action_id"], rows["model_version"]))
        # the propensity in the log *now*: an explanation is checked against it every time
        logged_now = dict(zip(keys, rows["propensity"].to_numpy(dtype=np.float64).tolist()))
        todo = []
        for i, k in enumerate(keys):  # computed by this process: the model's own word
            if k in self._memo:
                out[k[:2]] = dataclasses.replace(self._memo[k], propensity_logged=logged_now[k])
            else:
                todo.append(i)
        if self._has_table is None:
            self._has_table = store.has_table(self._con())
        if todo and not recheck and self._has_table:
            for raw, r in self._stored(rows, rows.iloc[todo]):
                ca = _from_row(r)
                if raw.get("seal") != store.row_seal(raw):
                    ca.stored_problem = _TAMPERED + " (its seal does not match its content)"
                out[(r["decision_id"], r["action_id"])] = dataclasses.replace(
                    ca, propensity_logged=logged_now[(r["decision_id"], r["action_id"], r["model_version"])])
            todo = [i for i in todo if keys[i][:2] not in out]
        if progress and out:  # read, not computed: done too
            progress(len(out))
        if todo:
            computed = self._compute(rows.iloc[todo].reset_index(drop=True), progress)
            for ca_key, ca in computed.items():
                out[ca_key[:2]] = ca
        if recheck and self._has_table:
            for raw, r in self._stored(rows, rows):
                k = (r["decision_id"], r["action_id"])
                if k in out:
                    problem = _differs(_from_row(r), out[k], raw)
                    if problem:
                        out[k] = dataclasses.replace(out[k], stored_problem=f"{_TAMPERED}: {problem}")
        return out

    def _compute(self, rows: pd.DataFrame, progress) -> dict[tuple[str, str, str], CandidateAttribution]:
        out: dict[tuple[str, str, str], CandidateAttribution] = {}
        tables = []
        for (sv, mv), grp in rows.groupby(["strategy_version", "model_versions"], sort=False, dropna=False):
            if grp["source"].iloc[0] != "klartext" or sv is None or pd.isna(sv):
                continue  # imported decisions: there is no model artifact to re-score
            strategy = self.log.load_strategy(sv)
            needed = set(grp["action_id"])
            models = self.log.load_models({a: v for a, v in json.loads(mv).items() if a in needed})
            dec = grp.drop_duplicates("decision_id")
            pos = {d: i for i, d in enumerate(dec["decision_id"])}
            M = model_matrix(strategy, self._requests(strategy, dec))
            cols = strategy.model_features + (CHANNEL_FEATURE,)
            parts = []
            for (aid, version), g in grp.groupby(["action_id", "model_version"], sort=False):
                ex = self._explainer(strategy, models, aid, version)
                parts.append((aid, version, g, ex, np.asarray([pos[d] for d in g["decision_id"]], dtype=np.int64)))
            raws = self._rescore(strategy, parts, M, cols) if len(grp) <= FOREST_ROWS else {}
            for aid, version, g, ex, rows_ in parts:
                fidx = [cols.index(f) for f in ex.model.features]
                X = M[np.ix_(rows_, fidx)]
                att = ex.explain(X, raw=raws.get((aid, version)))
                resid = att.residual
                logged = g["propensity"].to_numpy(dtype=np.float64)
                for j, did in enumerate(g["decision_id"].tolist()):
                    ca = CandidateAttribution(
                        aid, version, att.algorithm, library(), att.background, att.features, att.x[j],
                        att.phi[j], float(att.base_value[j]), float(att.raw_output[j]), float(resid[j]),
                        float(logged[j]), float(att.propensity[j]))
                    out[(did, aid, version)] = ca
                    self._memo[(did, aid, version)] = ca
                self._computed += len(g)
                tables.append((g["decision_id"].tolist(), aid, version, att, logged))
                if progress:
                    progress(len(g))
        if tables and self.writable:
            sealer = None
            keys = self.log.sealing_keys()
            if keys is not None:
                customer = dict(zip(rows["decision_id"], rows["customer"]))

                def sealer(dids: list[str], texts: list[str]) -> list[str]:
                    return keys.seal([customer[d] for d in dids], dids, texts)
            computed = _to_arrow(tables, sealer)
            if self.writer is None:
                store.store(self.log.con.cursor(), computed)
            else:  # derived data: a failed store is recomputed next time, the answer stands
                self.writer.call(lambda log: store.store(log.con, computed)).add_done_callback(_store_failed)
        return out

    def _rescore(self, strategy: Strategy, parts: list, M: np.ndarray, cols: tuple[str, ...]) -> dict:
        """Log-odds of every small group's rows, all tree models walked at once by one flat
        forest (bit-identical to scikit-learn) instead of one walk per model."""
        pairs, keys = [], []
        for aid, version, _g, ex, rows_ in parts:
            slot = self._forest_slots.get((strategy.version, aid, version))
            if slot is None:
                if not forest_supported(ex.model):
                    continue
                slot = self._forest_slots[(strategy.version, aid, version)] = len(self._forest_slots)
                self._forest.add(slot, ex.model, np.asarray([cols.index(f) for f in ex.model.features]))
            pairs.append((slot, rows_))
            keys.append((aid, version))
        return dict(zip(keys, self._forest.raw(np.ascontiguousarray(M, dtype=np.float64), pairs)))

    # -- one decision ---------------------------------------------------------------------

    def explain(self, decision_id: str) -> DecisionExplanation:
        """Everything about one decision: record, candidates, attributions, reason codes.

        On a log opened read-only the result is kept (up to ``EXPLANATION_MEMO`` decisions):
        while a DuckDB file is open read-only no process can write it, so the record the
        fidelity checks ran on cannot have changed.  On a writable log every call re-reads
        the record and re-checks the attributions against it.
        """
        if not self.log.read_only:
            return self._explain(decision_id)
        return self._explained.get_or_build(decision_id, lambda: self._explain(decision_id))

    def _explain(self, decision_id: str) -> DecisionExplanation:
        dec = self._decision(decision_id)
        con = self._con()
        cands = queries.candidates_of(con, decision_id)
        opened = self.log.reveal(pd.DataFrame([{"decision_id": decision_id, "customer": dec.get("customer"),
                                                "inputs": dec.get("inputs")}]), cands)
        dec["inputs"] = opened["inputs"].iloc[0]
        inputs = json.loads(dec["inputs"]) if dec.get("inputs") else {}
        if opened["erased"].iloc[0]:
            when = self.log.erasures().get(dec["customer"])
            e = DecisionExplanation(dec, {}, cands, None, stages=flow_stages(con, dec.get("source")), erased_at=when,
                                   erased=True)
            e.notes.append("Erased" + (f" on {when:%Y-%m-%d}" if when is not None else "") + " at the customer's "
                           "request: the inputs it was decided on were destroyed with the customer's key, so it "
                           "cannot be re-run or explained. Its record (stages, rules, scores, the chosen action) "
                           "and its hash remain.")
            return e
        strategy = None
        notes = []
        if dec.get("source") == "klartext" and dec.get("strategy_version"):
            strategy = self.log.load_strategy(dec["strategy_version"])
        else:
            notes.append(f"Imported from {dec.get('source')!r}: there is no strategy or model to re-execute, "
                         "so attributions cannot be computed; the logged stages and factors are shown as recorded.")
        e = DecisionExplanation(dec, inputs, cands, strategy, notes=notes, stages=flow_stages(con, dec.get("source")))
        if strategy is None:
            e.rows = queries.candidate_rows(con, decision_id)
            if e.component_level:
                e.notes.append(f"{len(e.rows):,} candidate rows for {len(cands):,} actions: the source logged an "
                               "action once per strategy component it passed. Each action is shown where it got "
                               "furthest; every row is listed under “Component rows”.")
        if strategy is None:
            return e
        sc = cands[cands["propensity"].notna()].sort_values("action_id")
        n = len(sc)
        scored = pd.DataFrame({  # built at once: column by column costs ~0.5 ms a column
            "decision_id": [decision_id] * n, "action_id": sc["action_id"].tolist(),
            "model_version": sc["model_version"].tolist(), "propensity": sc["propensity"].to_numpy(dtype=np.float64),
            **{k: [dec[k]] * n for k in ("channel", "customer", "inputs", "strategy_version", "model_versions", "source")},
        })
        atts = self.attributions([decision_id], rows=scored, recheck=True)
        e.attributions = {a: ca for (_, a), ca in atts.items()}
        feats = inputs.get("features", {})
        for aid in e.chosen:
            ca = e.attributions.get(aid)
            row = cands[cands["action_id"] == aid].iloc[0]
            usable = ca is not None and ca.verified
            if ca is not None and not ca.verified:
                e.notes.append(f"{aid}: attributions withheld — " + "; ".join(ca.problems))
            e.all_reasons[aid] = []
            e.reasons[aid] = candidate_reasons(
                strategy, aid, feats, dec["channel"], ca.features if usable else None,
                ca.phi if usable else None, float(row["lever"]), keep_all=e.all_reasons[aid])
        return e

    def why_not(self, decision_id: str, other: str, winner: str | None = None) -> Contrast:
        """Why ``winner`` (default: the decision's first choice) and not ``other``."""
        e = self.explain(decision_id)
        cands = e.candidates.set_index("action_id")
        if other not in cands.index:
            raise LogError(f"Action {other!r} is not in decision {decision_id!r}.",
                           f"Pick one of: {', '.join(sorted(cands.index))}.")
        if winner is None:
            if not e.chosen:
                raise LogError(f"Decision {decision_id!r} chose no action, so there is no winner to compare with.",
                               "Look at the stage and reason of each action instead (`klartext explain ID`).")
            winner = e.chosen[0]
        if winner not in cands.index:
            raise LogError(f"Action {winner!r} is not in decision {decision_id!r}.",
                           f"Pick one of: {', '.join(sorted(cands.index))}.")
        A, B = cands.loc[winner], cands.loc[other]
        explored = bool(e.decision.get("explored"))
        c = Contrast(decision_id, winner, other, "", "", explored=explored)
        if other == winner:
            c.kind, c.summary = "winner", f"{other} is the action compared against."
            return c
        factors = ("propensity", "value", "context_weight", "lever", "priority")
        has_factors = all(B[k] is not None and not pd.isna(B[k]) for k in factors) and \
            all(A[k] is not None and not pd.isna(A[k]) for k in factors)
        if B["stage"] not in ("ranked", "selected"):
            self._filtered(e, B, c)
        elif bool(B["selected"]):
            c.kind = "also_selected"
            c.summary = (f"{other} was selected too (rank {int(B['rank'])}); the channel shows up to "
                         f"{e.strategy.channel(e.decision['channel']).top_n if e.strategy else '?'} actions.")
        else:
            c.kind = "ranked_lower"
            rank = "lower" if B["rank"] is None or pd.isna(B["rank"]) else int(B["rank"])
            c.summary = (f"{other} passed every policy but ranked {rank} "
                         f"(priority {B['priority']:.4g} vs {A['priority']:.4g}).")
        if has_factors and c.kind != "also_selected":
            self._ranked(e, A, B, c)
        if explored:
            c.summary += (f" Note: this decision explored — {e.chosen[0]} was picked at random "
                          f"(probability {e.decision['selection_probability']:.3g}), not by priority.")
        return c

    def _filtered(self, e: DecisionExplanation, B: pd.Series, c: Contrast) -> None:
        c.kind = "filtered"
        # an imported row may name no rule or reason (NaN in the frame): then there is none
        c.stage, c.rule, c.reason = (B["stage"], *(None if pd.isna(B[k]) else B[k] for k in ("rule", "reason")))
        builtin = flow.builtin_rule(c.rule)
        desc = builtin.describe(c.rule) if builtin else None
        fields: tuple[str, ...] = ()
        s = e.strategy
        if s is not None:
            for r in s.rules:
                if r.name == c.rule:
                    desc, fields = r.description, r.exclude_if.fields
            if builtin:
                c.tested.update(flow.tested_values(c.rule, e.inputs, e.decision["channel"],
                                                   s.actions[s.action_index(B.name)]))
        feats = e.inputs.get("features", {})
        for f in fields:
            c.tested[f] = feats.get(f)
        c.description = desc
        c.summary = f"{B.name} was removed at the {c.stage} stage by {c.rule}: {desc or ''} ({c.reason})"

    def _ranked(self, e: DecisionExplanation, A: pd.Series, B: pd.Series, c: Contrast) -> None:
        fa = {k: float(A[k]) for k in ("propensity", "value", "context_weight", "lever", "priority")}
        fb = {k: float(B[k]) for k in ("propensity", "value", "context_weight", "lever", "priority")}
        c.priority_winner, c.priority_other = fa["priority"], fb["priority"]
        dec = decompose(fa, fb)
        if dec is None:
            c.terms = [Term(k, fa[k], fb[k], float("nan")) for k in ("propensity", "value", "context_weight", "lever")]
            c.summary += " A factor is not positive, so the log-ratio decomposition is not defined; the factors are shown as logged."
        else:
            c.log_ratio, c.terms, c.residual = dec
            ca, cb = e.attributions.get(A.name), e.attributions.get(B.name)
            if ca is not None and cb is not None and ca.verified and cb.verified and ca.features == cb.features:
                c.propensity_terms = propensity_breakdown(
                    ca.features, ca.phi, ca.base_value, ca.raw_output, ca.propensity_rescored,
                    cb.phi, cb.base_value, cb.raw_output, cb.propensity_rescored, e.feature_labels())
        # counterfactuals on the logged factors
        factors = self.factors(e)
        if factors is None:
            return
        rank, sel = factors.rearbitrate(factors.priority()[None, :])
        logged_rank = factors.rank
        c.rearbitration_reproduced = bool(np.array_equal(rank[0], logged_rank)) and not e.decision.get("explored")
        if not c.rearbitration_reproduced and not e.decision.get("explored"):
            c.summary += " (Re-arbitrating the logged factors did not reproduce the logged ranking; counterfactuals are withheld.)"
            return
        s = e.strategy
        b = s.action_index(B.name)
        c.counterfactuals = [
            lever_needed(factors, b),
            weight_needed(factors, b, "retention_weight", s.margin_weight, s.retention_weight),
            weight_needed(factors, b, "margin_weight", s.margin_weight, s.retention_weight),
        ]

    def factors(self, e: DecisionExplanation) -> DecisionFactors | None:
        """The logged factors of a decision in catalogue order, for re-arbitration."""
        if e.strategy is None:
            return None
        tbl = self.tables(e.decision["strategy_version"])
        s = e.strategy
        cands = e.candidates.set_index("action_id").reindex(list(s.action_ids))

        def col(name: str) -> np.ndarray:
            return cands[name].to_numpy(dtype=np.float64, na_value=np.nan)

        prop = col("propensity")
        clv = float(e.inputs["features"][s.clv_feature])
        return DecisionFactors(
            tbl, s.channel_ids.index(e.decision["channel"]), ~np.isnan(prop), prop, col("value"),
            col("context_weight"), col("lever"), clv,
            cands["rank"].fillna(0).to_numpy(dtype=np.int64), cands["selected"].to_numpy(dtype=bool))

    # -- many decisions -------------------------------------------------------------------

    def explain_many(self, decision_ids: list[str], batch_size: int = 2000,
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Explain every scored candidate of these decisions (batched) and check each one.

        Returns a summary: decisions, candidates, how many were computed now vs cached,
        the largest additivity residual and re-scoring error, and the failures.
        """
        self._computed = 0
        total = 0
        max_res = 0.0
        max_err = 0.0
        failures = []
        for start in range(0, len(decision_ids), batch_size):
            chunk = decision_ids[start:start + batch_size]
            atts = self.attributions(chunk, progress=progress)
            for (did, aid), ca in atts.items():
                total += 1
                max_res = max(max_res, abs(ca.residual))
                max_err = max(max_err, ca.rescore_error)
                if not ca.verified:
                    failures.append({"decision_id": did, "action_id": aid, "problems": ca.problems})
        return {
            "decisions": len(decision_ids),
            "candidates_explained": total,
            "computed_now": self._computed,
            "max_additivity_residual": max_res,
            "max_rescore_error": max_err,
            "failures": failures,
            "stored": self.writable,
        }


def _plain(v: Any) -> Any:
    """A JSON-ready value: timestamps as ISO text, numpy scalars and arrays as Python ones."""
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and np.isnan(v):
        return None
    return v


def _store_failed(stored) -> None:
    if stored.exception() is not None:
        logging.getLogger(__name__).warning("Storing explanations failed (they are recomputed when next shown): %s",
                                            stored.exception())


_TAMPERED = "the stored explanation is not what the pinned model computes; the explanations table was changed"


def _differs(stored: CandidateAttribution, fresh: CandidateAttribution, row: dict[str, Any]) -> str | None:
    """How a stored explanation differs from the one just computed (None: it does not).

    Numbers are compared to 1e-9 (the same computation gives the same bits; the tolerance
    only absorbs a library upgrade's last-digit changes)."""
    if row.get("seal") != store.row_seal(row):
        return "its seal does not match its content"
    if stored.background != fresh.background:  # computed against another background sample (e.g. one
        return None                            # that held an erased customer): stale, not altered
    if stored.features != fresh.features or stored.algorithm != fresh.algorithm:
        return f"it explains features {', '.join(stored.features)} by {stored.algorithm}"
    for name, a, b in (("input", stored.x, fresh.x), ("attribution", stored.phi, fresh.phi)):
        if a.shape != b.shape:
            return f"it holds {a.size} {name}s for {b.size} features"
        bad = np.flatnonzero(~np.isclose(a, b, rtol=0, atol=1e-9, equal_nan=True))
        if len(bad):
            j = int(bad[0])
            return f"{name} of {stored.features[j]!r} stored as {a[j]:+.6g}, computed {b[j]:+.6g}"
    for name, a, b in (("base value", stored.base_value, fresh.base_value),
                       ("model output", stored.raw_output, fresh.raw_output),
                       ("re-scored propensity", stored.propensity_rescored, fresh.propensity_rescored)):
        if not np.isclose(a, b, rtol=0, atol=1e-9):
            return f"{name} stored as {a:+.6g}, computed {b:+.6g}"
    return None


def _from_row(r: dict[str, Any]) -> CandidateAttribution:
    return CandidateAttribution(
        r["action_id"], r["model_version"], r["algorithm"], r["library"],
        None if r["background"] is None or (isinstance(r["background"], float) and np.isnan(r["background"])) else r["background"],
        tuple(r["features"]), np.asarray(r["x"], dtype=np.float64), np.asarray(r["attributions"], dtype=np.float64),
        float(r["base_value"]), float(r["raw_output"]), float(r["residual"]),
        None if pd.isna(r["propensity_logged"]) else float(r["propensity_logged"]), float(r["propensity_rescored"]))


def _to_arrow(groups: list[tuple[list[str], str, str, Any, np.ndarray]],
              sealer: Callable[[list[str], list[str]], list[str]] | None = None) -> pa.Table:
    """One Arrow table of explanations from ``(decision_ids, action_id, version, attributions,
    logged propensities)`` per model group (built once: per group it costs ~0.3 ms).
    ``sealer(decision_ids, texts)`` seals each row's input values (a log that seals inputs):
    ``x`` is then stored empty and ``x_sealed`` holds them."""
    ids, aids, versions, algos, backgrounds, features, lengths = [], [], [], [], [], [], []
    for dids, aid, version, att, _ in groups:
        n = len(dids)
        ids += dids
        aids += [aid] * n
        versions += [version] * n
        algos += [att.algorithm] * n
        backgrounds += [att.background] * n
        features += [list(att.features)] * n
        lengths += [len(att.features)] * n
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    cat = np.concatenate
    n = len(ids)
    xs = [row for g in groups for row in g[3].x]
    phis = [row for g in groups for row in g[3].phi]
    base, raw, resid = (cat([getattr(g[3], f) for g in groups]) for f in ("base_value", "raw_output", "residual"))
    logged, rescored = cat([g[4] for g in groups]), cat([g[3].propensity for g in groups])
    x_values = pa.array(cat([g[3].x.ravel() for g in groups]))
    x_sealed = [None] * n
    if sealer is not None:
        x_sealed = sealer(ids, [json.dumps(np.asarray(x, dtype=np.float64).tolist()) for x in xs])
        xs = [()] * n
        x_values = pa.array([], pa.float64())
    seals = [store.seal(ids[i], aids[i], versions[i], algos[i], "log_odds", library(), backgrounds[i], features[i],
                        xs[i], phis[i], base[i], raw[i], resid[i], None if np.isnan(logged[i]) else logged[i],
                        rescored[i], x_sealed[i]) for i in range(n)]
    return pa.table({
        "decision_id": pa.array(ids, pa.string()),
        "action_id": pa.array(aids, pa.string()),
        "model_version": pa.array(versions, pa.string()),
        "algorithm": pa.array(algos, pa.string()),
        "output": pa.array(["log_odds"] * n, pa.string()),
        "library": pa.array([library()] * n, pa.string()),
        "background": pa.array(backgrounds, pa.string()),
        "features": pa.array(features, pa.list_(pa.string())),
        "x": (pa.ListArray.from_arrays(offsets, x_values) if sealer is None
              else pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), x_values)),
        "attributions": pa.ListArray.from_arrays(offsets, pa.array(cat([g[3].phi.ravel() for g in groups]))),
        "base_value": pa.array(base),
        "raw_output": pa.array(raw),
        "residual": pa.array(resid),
        "propensity_logged": pa.array(logged),
        "propensity_rescored": pa.array(rescored),
        "created": pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
        "seal": pa.array(seals, pa.string()),
        "x_sealed": pa.array(x_sealed, pa.string()),
    })


__all__ = ["Explainer", "DecisionExplanation", "CandidateAttribution", "feature_phrase"]
