"""The governance report's figures, computed from the log (``klartext report``, the Governance
report, Fairness and Model health pages).

:func:`build` returns one JSON-ready dict; the HTML/PDF writer and the pages only render it.
Every figure is defined in the report's appendix (:data:`METHODS`); the tests recompute
each with independent SQL or numpy.

What needs attention is *derived*: a model whose AUC on the period's outcomes lies outside
the strategy's band (the whole 95% interval), an input or score whose population stability
index (PSI) against the comparison period reaches the alert band, a policy violation (must
be 0), a group whose rate is below ``min_ratio`` of the best-treated group's with the whole
bootstrap interval below it.  Figures that the data cannot support (too few outcomes, too
small a group) are shown as such and never flagged.

Figures that need the decisions' inputs (input drift, fairness, the rule re-check and the
margin/retention frontier) are computed on a random sample of the period's decisions (at
most ``sample``; the same sample on every run), because the inputs are sealed under each
customer's key and opening them costs ~25 µs a decision; the report says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from decision_log import monitoring, queries, rows
from decision_log.store import DecisionLog
from decisioning import stability
from decisioning.errors import InputError
from decisioning.models import CHANNEL_FEATURE, SCORE, expected_calibration_error
from decisioning.strategy import Strategy

FORMAT = "klartext-governance/1"
#: decisions whose inputs are opened per period, at most
SAMPLE = 50_000
#: bootstrap resamples of the fairness intervals
N_BOOT = 400
#: a model's AUC on the period is judged from this many accepted and this many other outcomes
MIN_CLASS = 30
#: a PSI in a band counts only where sampling noise would give it less often than this
NOISE_P = 0.001


@dataclass(frozen=True)
class Period:
    start: date
    end: date  #: inclusive

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return (datetime.combine(self.start, time.min, UTC),
                datetime.combine(self.end + timedelta(days=1), time.min, UTC))

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "days": self.days}


def default_period(first: date, last: date) -> Period:
    """The period a report covers unless told: the last 28 days, or the log's second half when
    it spans less than 8 weeks (so there is a period before to compare with)."""
    span = (last - first).days + 1
    days = min(28, max(1, span // 2))
    return Period(last - timedelta(days=days - 1), last)


def parse_period(text: str) -> Period:
    """``2026-11-01..2026-11-14`` or ``previous`` is handled by the caller; this reads the former."""
    try:
        a, b = text.split("..")
        p = Period(date.fromisoformat(a.strip()), date.fromisoformat(b.strip()))
    except ValueError:
        raise InputError(f"{text!r} is not a period.", "Write it as FROM..TO, e.g. 2026-11-01..2026-11-14, "
                         "or 'previous' for the period of the same length before.") from None
    if p.end < p.start:
        raise InputError(f"The period {text!r} ends before it starts.", "Write the earlier date first.")
    return p


# -- the strategy's figures ----------------------------------------------------------------------


def action_table(strategy: Strategy) -> pd.DataFrame:
    """action_id, name, issue, incentive_cost, premium, marketing of the strategy's actions."""
    prem = set(strategy.governance.premium)
    return pd.DataFrame({
        "action_id": list(strategy.action_ids), "name": [a.name for a in strategy.actions],
        "issue": [a.issue for a in strategy.actions],
        "incentive_cost": [float(a.incentive_cost) for a in strategy.actions],
        "premium": [i in prem for i in range(len(strategy.actions))],
        "marketing": [a.marketing for a in strategy.actions]})


def _actions_of(log: DecisionLog, versions: list[str]) -> tuple[pd.DataFrame, Strategy]:
    """The union of the versions' action tables (newest wins) and the newest strategy."""
    frames = [action_table(log.load_strategy(v)) for v in versions]
    table = pd.concat(frames[::-1], ignore_index=True).drop_duplicates("action_id")
    return table.reset_index(drop=True), log.load_strategy(versions[-1])


# -- opening the inputs of a sample --------------------------------------------------------------


def input_columns(log: DecisionLog, sample: pd.DataFrame, strategy: Strategy) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The features of ``strategy`` for each sampled decision, opened from the (sealed) inputs
    — numbers as float64 (NaN where missing), booleans as bool, categories as object — and a
    mask of the decisions whose inputs could be read (an erased customer's cannot)."""
    stored = sample["inputs"].tolist()
    plain = log.open_inputs_raw(sample["decision_id"].tolist(), sample["customer"].tolist(), stored)
    n = len(plain)
    ok = np.array([p is not None for p in plain], dtype=bool)
    parts: list[tuple[np.ndarray, pd.DataFrame]] = []
    by_version: dict[str, list[int]] = {}
    clear: list[int] = []
    docs: list[Any] = [None] * n
    for i, text in enumerate(plain):
        if text is None:
            continue
        doc = docs[i] = json.loads(text)
        if text.startswith(rows.COMPACT):
            by_version.setdefault(doc["s"], []).append(i)
        else:
            clear.append(i)
    for version, idx in by_version.items():
        order = [f.name for f in log.load_strategy(version).features]
        parts.append((np.asarray(idx), pd.DataFrame([docs[i]["f"] for i in idx], columns=order)))
    if clear:
        parts.append((np.asarray(clear), pd.DataFrame.from_records([docs[i].get("features", {}) for i in clear])))
    cols: dict[str, np.ndarray] = {}
    for f in strategy.features:
        if f.type in ("number", "integer"):
            out = np.full(n, np.nan)
        else:
            out = np.full(n, None if f.type == "category" else False, dtype=object if f.type == "category" else bool)
        for idx, frame in parts:
            if f.name not in frame.columns:
                continue
            v = frame[f.name]
            if f.type in ("number", "integer"):
                out[idx] = pd.to_numeric(v, errors="coerce").to_numpy(dtype=np.float64)
            elif f.type == "boolean":
                out[idx] = v.fillna(False).to_numpy(dtype=bool)
            else:
                out[idx] = v.to_numpy(dtype=object)
        cols[f.name] = out
    cols["channel"] = sample["channel"].to_numpy(dtype=object)
    return cols, ok


def coded(strategy: Strategy, cols: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A feature as the model matrix codes it (category → its position, boolean → 0/1,
    channel → its position), as float64 with NaN for unknown or missing values."""
    if name == CHANNEL_FEATURE:
        values, v = list(strategy.channel_ids), cols["channel"]
    else:
        f = strategy.feature(name)
        if f.type != "category":
            return cols[name].astype(np.float64)
        values, v = list(f.values), cols[name]
    codes = pd.Categorical(v, categories=values).codes.astype(np.float64)
    codes[codes < 0] = np.nan
    return codes


# -- statistics -----------------------------------------------------------------------------------


def auc_interval(y: np.ndarray, p: np.ndarray, z: float = 1.96) -> tuple[float, float, float]:
    """AUC with an interval of ``z`` standard errors (Hanley & McNeil's; 1.96: 95%)."""
    auc = float(roc_auc_score(y, p))
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    se = np.sqrt(max(auc * (1 - auc) + (n1 - 1) * (q1 - auc * auc) + (n0 - 1) * (q2 - auc * auc), 0.0) / (n1 * n0))
    return auc, max(0.0, auc - z * se), min(1.0, auc + z * se)


def mean_interval(x: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error."""
    n = len(x)
    if n == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")


def group_boot(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` bootstrap means of ``values`` (rows resampled with replacement), drawn as
    multinomial counts over the distinct values — the same distribution as resampling rows,
    at the cost of the distinct values rather than of the rows."""
    if len(values) == 0:
        return np.full(n_boot, np.nan)
    uniq, counts = np.unique(values, return_counts=True)
    draws = rng.multinomial(len(values), counts / counts.sum(), size=n_boot)
    return draws @ uniq / len(values)


# -- the parts of the report ----------------------------------------------------------------------


def _kpis(con, period: Period, actions: pd.DataFrame) -> dict[str, Any]:
    start, stop = period.bounds
    total = monitoring.period_figures(con, start, stop, actions)
    rec = total.iloc[0].to_dict() if len(total) else {}
    return _rates(rec)


def _rates(rec: dict[str, Any]) -> dict[str, Any]:
    out = {k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in rec.items()}

    def div(a, b):
        return out.get(a) / out[b] if out.get(b) else None
    out["acceptance_rate"] = div("accepted", "with_outcome")
    out["offer_rate"] = div("with_action", "decisions")
    out["margin_per_decision"] = div("margin", "decisions")
    out["incentive_per_decision"] = div("incentive_spend", "decisions")
    out["churn_reached"] = div("churned_reached", "n_reached")
    out["churn_not_reached"] = div("churned_not_reached", "n_not_reached")
    return out


def _breakdown(con, period: Period, previous: Period | None, actions: pd.DataFrame, by: str) -> list[dict]:
    cur = monitoring.period_figures(con, *period.bounds, actions, by=by)
    rows_ = [_rates(r) for r in cur.to_dict("records")]
    if previous is not None:
        prev = {r["key"]: _rates(r) for r in monitoring.period_figures(con, *previous.bounds, actions, by=by)
                .to_dict("records")}
        for r in rows_:
            r["previous"] = prev.get(r["key"])
    return rows_


def _models(log: DecisionLog, con, period: Period, previous: Period | None, strategy: Strategy,
            sample_cols: dict[str, np.ndarray] | None, sample: pd.DataFrame | None, kpis: dict) -> list[dict]:
    """Per action model deciding in the period: AUC, calibration, positives, score and input PSI
    (``kpis``: the report's figures of the period and the one before)."""
    g = strategy.governance
    reg = queries.models_registry(con)
    reg_by = {(r.action_id, r.version): r for r in reg.itertuples()}
    ids = sorted(set(strategy.action_ids) | set(reg["action_id"].tolist()))
    pairs = monitoring.shown_outcomes(con, *period.bounds)
    sc = _by_action(monitoring.scores(con, *period.bounds, ids), len(ids))
    prev_sc = _by_action(monitoring.scores(con, *previous.bounds, ids), len(ids)) if previous is not None else None
    used = monitoring.score_versions(con, *period.bounds)
    names = {a.id: a.name for a in strategy.actions}
    # a returning customer's scores are alike: the noise test counts customers, not decisions
    per_customer = {k: _decisions_per_customer(kpis[v]) for k, v in (("cur", "current"), ("prev", "previous"))}
    scored = None
    if sample is not None and len(sample):
        sp = monitoring.scored_pairs(con, sample["decision_id"].tolist())
        pos = pd.Index(sample["decision_id"]).get_indexer(sp["decision_id"])
        scored = {a: pos[grp] for a, grp in sp.groupby("action_id").indices.items()}
    codes: dict[str, np.ndarray] = {}  # each feature coded once, for every model that reads it
    out = []
    pa = np.asarray(pairs["action_id"], dtype=object)
    pair_at = pd.Series(np.arange(len(pa))).groupby(pa).indices if len(pa) else {}
    # every model is judged against the band: the intervals hold jointly at 95% (Bonferroni), so
    # a calm log does not raise an alarm by chance because a dozen models were tested
    z_joint = NormalDist().inv_cdf(1 - 0.05 / (2 * max(1, used["action_id"].nunique())))
    for action_id, grp in used.groupby("action_id", sort=True):
        version = str(grp.sort_values("n", ascending=False)["model_version"].iloc[0])  # scored most in the period
        row = reg_by.get((action_id, version))
        metrics = json.loads(row.metrics) if row is not None and isinstance(row.metrics, str) else {}
        ref = metrics.get("reference") or {}
        here_n = int(grp["n"].sum())
        m: dict[str, Any] = {"action_id": action_id, "name": names.get(action_id, action_id), "version": version,
                             "versions": int(len(grp)), "scored": here_n,
                             "auc_train": metrics.get("auc"), "ece_train": metrics.get("ece"),
                             "positive_rate_train": metrics.get("positive_rate"), "n_train": metrics.get("n_train")}
        sel = pair_at.get(action_id, np.empty(0, dtype=np.int64))
        y = np.asarray(pairs["accepted"], dtype=bool)[sel]
        p = np.asarray(pairs["propensity"], dtype=np.float64)[sel]
        days = np.asarray(pairs["day"])[sel]
        m.update({"shown_with_outcome": int(len(y)), "positives": int(y.sum()),
                  "positives_per_day": float(y.sum()) / period.days,
                  "mean_predicted": float(p.mean()) if len(p) else None,
                  "observed_rate": float(y.mean()) if len(y) else None})
        m["days_with_positives"] = int(len(np.unique(days[y]))) if len(y) else 0
        if y.sum() >= MIN_CLASS and len(y) - y.sum() >= MIN_CLASS:
            auc, lo, hi = auc_interval(y, p, z_joint)
            m.update({"auc": auc, "auc_low": lo, "auc_high": hi})
            m["ece"] = expected_calibration_error(y, p)
        else:
            m.update({"auc": None, "auc_low": None, "auc_high": None, "ece": None})
        # score stability
        cur_p = sc.get(ids.index(action_id), np.empty(0))
        spec = ref.get(SCORE)
        m["psi_score_train"] = stability.psi(spec["share"], stability.shares(cur_p, spec)) if spec else None
        if prev_sc is not None:
            prev_p = prev_sc.get(ids.index(action_id), np.empty(0))
            if len(prev_p):
                pspec = spec or stability.bins(prev_p, False)
                value = stability.psi(stability.shares(prev_p, pspec), stability.shares(cur_p, pspec))
                m["psi_score_previous"] = value
                m["psi_score_noise_p"] = stability.noise_p(value, len(prev_p) / per_customer["prev"],
                                                           len(cur_p) / per_customer["cur"], len(pspec["share"]))
            else:
                m["psi_score_previous"] = None
        else:
            m["psi_score_previous"] = None
        # inputs against training, on the sampled decisions this model scored
        m["inputs_vs_training"] = []
        if scored is not None and ref and sample_cols is not None and action_id in scored:
            at = scored[action_id]
            for feat, fspec in ref.items():
                if feat == SCORE or (feat != CHANNEL_FEATURE and feat not in sample_cols):
                    continue
                if feat not in codes:
                    codes[feat] = coded(strategy, sample_cols, feat)
                v = codes[feat][at]
                m["inputs_vs_training"].append({"feature": feat, "psi": stability.psi(fspec["share"],
                                                                                       stability.shares(v, fspec))})
            m["inputs_vs_training"].sort(key=lambda r: -r["psi"])
        m["reads"] = [k for k in ref if k != SCORE] or list(strategy.model_features)
        m["flags"] = _model_flags(m, g)
        out.append(m)
    out.sort(key=lambda m: (-len(m["flags"]), m["action_id"]))
    return out


def _decisions_per_customer(kpis: dict | None) -> float:
    """Decisions per distinct customer in a period's figures (at least 1): the factor by which
    repeated decisions for one customer shrink a sample's worth for a noise test."""
    n, c = (kpis or {}).get("decisions"), (kpis or {}).get("customers")
    return max(1.0, n / c) if n and c else 1.0


def _by_action(sc: dict[str, np.ndarray], n_actions: int) -> dict[int, np.ndarray]:
    """Scores split by action code (the rows of :func:`decision_log.monitoring.scores`)."""
    code = np.asarray(sc["action"], dtype=np.int64)
    p = np.asarray(sc["propensity"], dtype=np.float64)
    order = np.argsort(code, kind="stable")
    code, p = code[order], p[order]
    bounds = np.searchsorted(code, np.arange(n_actions + 1))
    return {a: p[bounds[a]:bounds[a + 1]] for a in range(n_actions) if bounds[a + 1] > bounds[a]}


def _model_flags(m: dict, g) -> list[dict]:
    flags = []
    if m.get("auc") is not None:
        if m["auc_high"] < g.auc_low:
            flags.append({"kind": "auc_low", "value": m["auc"], "low": m["auc_low"], "high": m["auc_high"],
                          "band": [g.auc_low, g.auc_high]})
        elif m["auc_low"] > g.auc_high:
            flags.append({"kind": "auc_high", "value": m["auc"], "low": m["auc_low"], "high": m["auc_high"],
                          "band": [g.auc_low, g.auc_high]})
    if (m.get("psi_score_previous") is not None and m["psi_score_previous"] >= g.psi_alert
            and m["psi_score_noise_p"] < NOISE_P):
        flags.append({"kind": "score_drift", "value": m["psi_score_previous"]})
    return flags


def _inputs(strategy: Strategy, cur: dict[str, np.ndarray] | None, prev: dict[str, np.ndarray] | None) -> list[dict]:
    """PSI of every input, the period against the comparison period (bins from the latter)."""
    if cur is None or prev is None:
        return []
    g = strategy.governance
    out = []
    for f in strategy.features:
        a, b = coded(strategy, prev, f.name), coded(strategy, cur, f.name)
        spec = stability.bins(a, f.type in ("category", "boolean"))
        value = stability.psi(spec["share"], stability.shares(b, spec))
        noise = stability.noise_p(value, len(a), len(b), len(spec["share"]))
        band = "stable" if noise >= NOISE_P else "alert" if value >= g.psi_alert else "watch" if value >= g.psi_warn \
            else "stable"
        out.append({"feature": f.name, "label": f.label, "psi": value, "band": band,
                    "mean": float(np.nanmean(b)) if f.type in ("number", "integer") and len(b) else None,
                    "mean_previous": float(np.nanmean(a)) if f.type in ("number", "integer") and len(a) else None})
    out.sort(key=lambda r: -r["psi"])
    return out


def _group_of(attr, strategy: Strategy, cols: dict[str, np.ndarray]) -> np.ndarray:
    v = cols[attr.feature]
    if not attr.bands:
        return np.asarray(v, dtype=object)
    labels = np.asarray(attr.group_labels(), dtype=object)
    idx = np.searchsorted(np.asarray(attr.bands), v.astype(np.float64), side="right") - 1
    out = np.where(idx >= 0, labels[np.clip(idx, 0, len(labels) - 1)], None)
    out[np.isnan(v.astype(np.float64))] = None
    return out


def _metric_frame(comp: pd.DataFrame, name: str):
    """fairlearn's MetricFrame of the mean of ``x`` per group, from rows (g, x, n)."""
    from fairlearn.metrics import MetricFrame, mean_prediction

    xs = comp["x"].to_numpy(dtype=np.float64)
    return MetricFrame(metrics=mean_prediction, y_true=xs, y_pred=xs,
                       sensitive_features=pd.Series(comp["g"].to_numpy(), name=name),
                       sample_params={"sample_weight": comp["n"].to_numpy(dtype=np.float64)})


def _fairness(strategy: Strategy, cols: dict[str, np.ndarray], ok: np.ndarray, per: pd.DataFrame,
              n_boot: int, seed: int) -> list[dict]:
    """Per attribute of ``governance.fairness``: each group's rates (fairlearn's MetricFrame),
    the ratio of the lowest to the highest group and the difference, with stratified
    bootstrap intervals, and whether the four-fifths rule is clearly broken."""
    g = strategy.governance
    out = []
    metric_rows = {
        "offer_rate": (np.ones(len(per), dtype=bool), per["offered"].to_numpy(dtype=np.float64)),
        "incentive_rate": (np.ones(len(per), dtype=bool), per["incentive"].to_numpy(dtype=np.float64)),
        "incentive_value": (np.ones(len(per), dtype=bool), per["incentive_value"].to_numpy(dtype=np.float64)),
        "premium_rate": (np.ones(len(per), dtype=bool), per["premium"].to_numpy(dtype=np.float64)),
        "acceptance_rate": (per["has_outcome"].to_numpy(dtype=bool), per["accepted"].to_numpy(dtype=np.float64)),
    }
    for k, attr in enumerate(g.attributes):
        rng = np.random.default_rng([seed, k])
        groups = _group_of(attr, strategy, cols)
        known = ok & pd.notna(groups)
        order = attr.group_labels(strategy.feature(attr.feature).values)
        sizes = {grp: int((groups[known] == grp).sum()) for grp in order}
        judged = [grp for grp in order if sizes[grp] >= g.min_group]
        res: dict[str, Any] = {"attribute": attr.name, "label": attr.label, "feature": attr.feature,
                               "flag": attr.flag, "note": attr.note,
                               "groups": [{"group": grp, "decisions": sizes[grp], "judged": grp in judged}
                                          for grp in order], "metrics": []}
        for name, (base, x) in metric_rows.items():
            rows_ = known & base
            if not rows_.any():
                continue
            # fairlearn reads the rows compressed to (group, value, count): the weighted means
            # are the rows' means exactly, at the cost of the distinct values (~100× sooner)
            comp = (pd.DataFrame({"g": groups[rows_].astype(str), "x": x[rows_]}).groupby(["g", "x"]).size()
                    .reset_index(name="n"))

            by = _metric_frame(comp, attr.name).by_group
            for grp in res["groups"]:
                grp[name] = float(by[grp["group"]]) if grp["group"] in by.index else None
                grp[name + "_n"] = int(comp.loc[comp["g"] == grp["group"], "n"].sum())
            judge = [grp for grp in judged if (comp["g"] == grp).any()]
            if len(judge) < 2:
                continue
            mfj = _metric_frame(comp[comp["g"].isin(judge)], attr.name)
            ratio, diff = float(mfj.ratio(method="between_groups")), float(mfj.difference(method="between_groups"))
            boots = np.column_stack([group_boot(x[rows_][groups[rows_] == grp], n_boot, rng) for grp in judge])
            hi_b, lo_b = boots.max(axis=1), boots.min(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios = np.where(hi_b > 0, lo_b / hi_b, 1.0)
            byj = mfj.by_group
            lowest, highest = str(byj.idxmin()), str(byj.idxmax())
            r_lo, r_hi = (float(x) for x in np.quantile(ratios, [0.025, 0.975]))
            d_lo, d_hi = (float(x) for x in np.quantile(hi_b - lo_b, [0.025, 0.975]))
            below = ratio < g.min_ratio
            res["metrics"].append({
                "metric": name, "ratio": ratio, "ratio_low": r_lo, "ratio_high": r_hi, "difference": diff,
                "difference_low": d_lo, "difference_high": d_hi, "lowest": lowest, "highest": highest,
                "below_min_ratio": bool(below), "clear": bool(r_hi < g.min_ratio),
                "flagged": bool(attr.flag and r_hi < g.min_ratio)})
        out.append(res)
    return out


def _compliance(log: DecisionLog, con, period: Period, strategy: Strategy, versions: list[str],
                sample: pd.DataFrame | None, cols: dict[str, np.ndarray] | None, ok: np.ndarray | None) -> dict:
    start, stop = period.bounds
    limits = [(lim.channel, lim.max_contacts, lim.period_days) for lim in strategy.contact_limits]
    contacts = monitoring.contact_limit_breaches(con, start, stop, limits)
    with log.register(read_only=True) as reg:
        periods = reg.objection_periods() if reg is not None else []
    marketing = {v: {a.id for a in log.load_strategy(v).actions if a.marketing} for v in versions}
    objections = queries.objection_violations(con, periods, marketing)
    objections = objections[(objections["ts"] >= pd.Timestamp(start)) & (objections["ts"] < pd.Timestamp(stop))]
    fired = monitoring.rules_fired(con, start, stop)
    recheck = _recheck_rules(log, strategy, sample, cols, ok) if sample is not None else None
    if recheck is not None:
        recheck["complete"] = len(sample) >= int(con.execute(
            "SELECT count(*) FROM decisions WHERE ts >= ? AND ts < ? AND source = 'klartext'", [start, stop]
        ).fetchall()[0][0])
    return {
        "contact_limits": contacts.to_dict("records"),
        "objections": {"periods": len(periods), "violations": int(len(objections)),
                       "decisions": objections["decision_id"].head(20).tolist()},
        "rules_fired": fired.to_dict("records"),
        "recheck": recheck,
    }


def _recheck_rules(log: DecisionLog, strategy: Strategy, sample: pd.DataFrame, cols: dict[str, np.ndarray],
                   ok: np.ndarray) -> dict:
    """Every eligibility and suitability rule of each decision's strategy, evaluated again on
    the logged inputs of the sampled decisions, for the actions they showed: a shown action
    that a rule excludes is a violation (e.g. marketing without consent)."""
    per_rule: dict[str, dict] = {}
    checked = 0
    for version, idx in sample.groupby("strategy_version").indices.items():
        s = log.load_strategy(version)
        idx = idx[ok[idx]]
        if not len(idx):
            continue
        sub = {k: v[idx] for k, v in cols.items()}
        chosen = sample["chosen_actions"].to_numpy()[idx]
        aidx = {a: i for i, a in enumerate(s.action_ids)}
        shown = np.zeros((len(idx), len(s.actions)), dtype=bool)
        for r, acts in enumerate(chosen):
            for a in (acts if acts is not None else []):
                if a in aidx:
                    shown[r, aidx[a]] = True
        checked += int(shown.sum())
        for rule in s.rules:
            if rule.stage not in ("eligibility", "suitability"):
                continue
            if any(f not in sub for f in rule.exclude_if.fields):
                continue
            mask = rule.exclude_if.evaluate_bool(sub, len(idx))
            bad = shown[:, list(rule.actions)] & mask[:, None]
            entry = per_rule.setdefault(rule.name, {"rule": rule.name, "stage": rule.stage,
                                                    "description": rule.description, "checked": 0, "violations": 0,
                                                    "decisions": []})
            entry["checked"] += int(shown[:, list(rule.actions)].sum())
            entry["violations"] += int(bad.sum())
            rows_bad = np.flatnonzero(bad.any(axis=1))[:5]
            entry["decisions"] += sample["decision_id"].to_numpy()[idx][rows_bad].tolist()
    violations = int(sum(r["violations"] for r in per_rule.values()))
    return {"contacts_checked": checked, "decisions": int(ok.sum()), "rules": list(per_rule.values()),
            "violations": violations,
            # none found in a sample: the rule of three bounds the share of contacts that break a rule
            "upper_95": (3.0 / checked) if checked and not violations else None}


def _diff(old: Strategy, new: Strategy) -> list[dict]:
    """Field-by-field changes between two strategy versions: weights, levers, thresholds,
    rules, context weights, actions, contact limits, exploration, model features, disclosure."""
    out: list[dict] = []

    def add(kind, field, before, after):
        if before != after:
            out.append({"kind": kind, "field": field, "before": before, "after": after})
    add("weights", "kpi.margin_weight", old.margin_weight, new.margin_weight)
    add("weights", "kpi.retention_weight", old.retention_weight, new.retention_weight)
    add("exploration", "exploration.epsilon", old.epsilon, new.epsilon)
    for c in new.channels:
        try:
            oc = old.channel(c.id)
        except KeyError:
            add("channels", f"channels.{c.id}", None, "added")
            continue
        add("thresholds", f"no_action.{c.id}", oc.no_action_threshold, c.no_action_threshold)
        add("channels", f"channels.{c.id}.top_n", oc.top_n, c.top_n)
    oa = {a.id: i for i, a in enumerate(old.actions)}
    for i, a in enumerate(new.actions):
        if a.id not in oa:
            add("actions", f"actions.{a.id}", None, "added")
            continue
        add("levers", f"levers.{a.id}", float(old.levers[oa[a.id]]), float(new.levers[i]))
        b = old.actions[oa[a.id]]
        for fld in ("margin", "cost", "retention_effect", "incentive_cost", "marketing"):
            add("actions", f"actions.{a.id}.{fld}", getattr(b, fld), getattr(a, fld))
    for a in old.actions:
        if a.id not in {x.id for x in new.actions}:
            add("actions", f"actions.{a.id}", "present", None)
    for kind, attr, olds, news in (("rules", "exclude_if", old.rules, new.rules),
                                   ("context_weights", "when", old.context_weights, new.context_weights)):
        om, nm = {r.name: r for r in olds}, {r.name: r for r in news}
        for name in nm.keys() | om.keys():
            o, n = om.get(name), nm.get(name)
            def desc(r, attr=attr):
                if r is None:
                    return None
                return getattr(r, attr).text + (f" × {r.weight:g}" if hasattr(r, "weight") else "")
            if o is None or n is None or desc(o) != desc(n) or o.actions != n.actions:
                add(kind, f"{kind}.{name}", desc(o), desc(n))
    for lim in new.contact_limits:
        olim = next((x for x in old.contact_limits if x.channel == lim.channel), None)
        add("contact_limits", f"max_contacts.{lim.channel}",
            None if olim is None else f"{olim.max_contacts} in {olim.period_days} d",
            f"{lim.max_contacts} in {lim.period_days} d")
    add("models", "models.features", list(old.model_features), list(new.model_features))
    names = sorted({f.name for f in (*old.features, *new.features)} | {w.name for w in (*old.context_weights,
                                                                                          *new.context_weights)}
                   | {"levers", "channel"})
    for name in names:  # what a customer may be told (a reason's disclosure)
        add("disclosure", f"disclosure.{name}", "customer" if old.disclosure.allows(name) else "internal",
            "customer" if new.disclosure.allows(name) else "internal")
    out.sort(key=lambda r: (r["kind"], r["field"]))
    return out


def _changes(log: DecisionLog, con, period: Period, actions: pd.DataFrame) -> list[dict]:
    """The strategy versions that started deciding in the period: what changed, and the
    effect measured on the period's decisions before and after."""
    vs = monitoring.versions_in(con, *period.bounds)
    start, stop = period.bounds
    out = []
    for i in range(1, len(vs)):
        new, old = vs.iloc[i], vs.iloc[i - 1]
        first = pd.Timestamp(new["first"])
        if not (pd.Timestamp(start) <= first < pd.Timestamp(stop)):
            continue
        # after: the new version to the period's end; before: the old one, as long before the change
        since = first - (pd.Timestamp(stop) - first)
        per = monitoring.version_outcomes(con, since.to_pydatetime(), stop, actions)
        before = per[(per["strategy_version"] == old["version"]) & (per["ts"] < first)]
        after = per[(per["strategy_version"] == new["version"]) & (per["ts"] >= first)]
        item = {"version": new["version"], "previous": old["version"], "first": first.isoformat(),
                "name": log.load_strategy(new["version"]).name,
                "decisions_before": int(len(before)), "decisions_after": int(len(after)),
                "changes": _diff(log.load_strategy(old["version"]), log.load_strategy(new["version"])),
                "effect": _before_after(before, after)}
        # a canary (`klartext strategy activate --share`): other versions went on deciding beside the new
        # one, for customers assigned by keyed hash — a randomised comparison over the same days
        last = pd.Timestamp(new["last"])
        rest = per[(per["strategy_version"] != new["version"]) & (per["ts"] >= first) & (per["ts"] <= last)]
        if len(rest) and len(after):
            item["canary"] = {"decisions_canary": int(len(after)), "decisions_rest": int(len(rest)),
                              "share": float(len(after) / (len(after) + len(rest))),
                              "effect": _before_after(rest, after)}
        out.append(item)
    return out


def _before_after(before: pd.DataFrame, after: pd.DataFrame) -> list[dict]:
    """Per figure: the mean before and after, the difference and its 95% interval."""
    effect = []
    for metric in ("offered", "incentive_offered", "accepted", "margin", "incentive"):
        b, se_b = mean_interval(before[metric].to_numpy(dtype=np.float64))
        a, se_a = mean_interval(after[metric].to_numpy(dtype=np.float64))
        d = a - b
        se = float(np.hypot(se_a, se_b))
        effect.append({"metric": metric, "before": b, "after": a, "difference": d,
                       "low": d - 1.96 * se, "high": d + 1.96 * se})
    return effect


def _frontier(log: DecisionLog, version: str, seqs: np.ndarray) -> dict | None:
    """Expected margin and retention per decision along the margin/retention balance, on the
    sampled decisions of ``version``, and where the strategy itself sits."""
    from analysis.tradeoff import load_factors, sweep

    if not len(seqs):
        return None
    f = load_factors(log, version, seqs=seqs, max_decisions=None)  # already its sample
    df = sweep(f, steps=11)
    n = len(f)
    points = [{"lambda": float(r["lambda"]), "margin": float(r["margin"]) / n, "retention": float(r["retention"]) / n,
               "efficient": bool(r["efficient"]), "current": bool(r["current"])} for _, r in df.iterrows()]
    return {"version": version, "decisions": n, "points": points,
            "margin_weight": f.strategy.margin_weight, "retention_weight": f.strategy.retention_weight}


def _integrity(log: DecisionLog, full: bool, via: str) -> dict:
    """``verify`` at report time: from the newest full verification in the compliance register
    (the chain must still pass through its heads; what came after is re-read), or in full when
    there is none or ``full`` (and then recorded)."""
    import getpass
    import time as _time

    from decision_log.integrity import Anchor

    last = None
    if not full and log.replica is None:
        with log.register(read_only=True) as reg:
            last = None if reg is None else reg.last_verification()
    t = _time.perf_counter()
    if last is not None and last["head_seq"] is not None and last["log_seal_seq"] is not None:
        res = log.verify(since=Anchor(int(last["head_seq"]), last["head_hash"], int(last["log_seal_seq"]),
                                      last["log_seal_hash"]))
        mode = "since"
    else:
        res = log.verify() if log.replica is not None else log.verify_and_record(getpass.getuser(), via)
        mode, last = "full", None
    out = {"ok": bool(res.ok), "decisions": int(res.n_decisions), "head": res.head_hash, "mode": mode,
           "problem": res.problem, "first_bad_decision": res.first_bad_decision, "table": res.table,
           "seconds": round(_time.perf_counter() - t, 2), "checked_at": datetime.now(UTC).isoformat(timespec="seconds")}
    if last is not None:
        out["anchor"] = {"at": pd.Timestamp(last["ts"]).isoformat(timespec="seconds"), "by": last["actor"],
                         "via": last["via"], "decisions": int(last["decisions"]), "seconds": last["seconds"],
                         "added": int(res.n_decisions) - int(last["decisions"])}
    return out


def _attention(rep: dict, strategy: Strategy) -> list[dict]:
    """What needs attention, most serious first, each derived from a figure of the report."""
    out = []
    integ = rep["integrity"]
    if not integ["ok"]:
        out.append({"kind": "integrity", "severity": 0, "problem": integ["problem"]})
    comp = rep["compliance"]
    for c in comp["contact_limits"]:
        if c["breaches"]:
            out.append({"kind": "contact_limit", "severity": 0, **c})
    if comp["objections"]["violations"]:
        out.append({"kind": "objection", "severity": 0, "violations": comp["objections"]["violations"]})
    if comp["recheck"] and comp["recheck"]["violations"]:
        for r in comp["recheck"]["rules"]:
            if r["violations"]:
                out.append({"kind": "rule", "severity": 0, "rule": r["rule"], "violations": r["violations"]})
    for fa in rep["fairness"]:
        for m in fa["metrics"]:
            if m["flagged"]:
                out.append({"kind": "fairness", "severity": 1, "attribute": fa["attribute"], "label": fa["label"],
                            "metric": m["metric"], "ratio": m["ratio"], "ratio_high": m["ratio_high"],
                            "lowest": m["lowest"], "highest": m["highest"]})
    drifted = [r for r in rep["inputs"] if r["band"] == "alert"]
    for r in drifted:
        out.append({"kind": "input_drift", "severity": 1, "feature": r["feature"], "label": r["label"],
                    "psi": r["psi"], "mean": r["mean"], "mean_previous": r["mean_previous"]})
    for m in rep["models"]:
        for fl in m["flags"]:
            item = {"kind": fl["kind"], "severity": 2, "action_id": m["action_id"], "name": m["name"], **fl}
            if fl["kind"] == "score_drift":  # which shifted inputs it reads: the likely cause
                item["inputs"] = [r["label"] for r in drifted if r["feature"] in m["reads"]]
            out.append(item)
    out.sort(key=lambda r: r["severity"])
    return out


def build(log: DecisionLog, period: Period, compare: Period | None | str = "previous", *, sample: int = SAMPLE,
          n_boot: int = N_BOOT, seed: int = 0, progress=None, full_verify: bool = False,
          via: str = "cli") -> dict[str, Any]:
    """The governance report of ``period`` (see the module docstring), beside ``compare``
    (``"previous"``: the period of the same length before; None: nothing beside it)."""
    con = log.con.cursor()
    step = progress or (lambda _what: None)
    previous = period.previous() if compare == "previous" else compare
    vs = monitoring.versions_in(con, *period.bounds)
    in_period = vs[vs["in_period"]]["version"].tolist()
    if not in_period:
        first, last = con.execute("SELECT min(ts)::DATE, max(ts)::DATE FROM decisions "
                                  "WHERE source = 'klartext'").fetchall()[0]
        raise InputError(f"No decision of a Klartext strategy between {period.start} and {period.end}.",
                         f"The log's decisions run from {first} to {last}; pick dates in that range."
                         if first else "Make decisions first: `klartext demo` or `klartext run`.")
    actions, strategy = _actions_of(log, vs["version"].tolist())
    step("figures")
    rep: dict[str, Any] = {
        "format": FORMAT, "period": period.to_dict(), "compare": previous.to_dict() if previous else None,
        "log": str(log.path).rsplit("/", 1)[-1], "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "strategy": {"name": strategy.name, "version": strategy.version, "currency": strategy.currency,
                     "versions": in_period},
        "thresholds": {"psi": [strategy.governance.psi_warn, strategy.governance.psi_alert],
                       "auc": [strategy.governance.auc_low, strategy.governance.auc_high],
                       "min_ratio": strategy.governance.min_ratio, "min_group": strategy.governance.min_group},
    }
    rep["kpis"] = {"current": _kpis(con, period, actions),
                   "previous": _kpis(con, previous, actions) if previous else None}
    rep["by_issue"] = _breakdown(con, period, previous, actions, "issue")
    rep["by_channel"] = _breakdown(con, period, previous, actions, "channel")
    rep["daily"] = json.loads(monitoring.daily_figures(con, *period.bounds).to_json(orient="records",
                                                                                      date_format="iso"))
    step("inputs")
    smp, total = monitoring.sample_decisions(con, *period.bounds, sample)
    cols, ok = input_columns(log, smp, strategy)
    prev_cols = None
    if previous is not None:
        psmp, ptotal = monitoring.sample_decisions(con, *previous.bounds, sample)
        if len(psmp):
            prev_cols, pok = input_columns(log, psmp, strategy)
            prev_cols = {k: v[pok] for k, v in prev_cols.items()}
    rep["sample"] = {"decisions": int(len(smp)), "of": total, "readable": int(ok.sum()),
                     "erased": int(len(smp) - ok.sum())}
    cur_cols = {k: v[ok] for k, v in cols.items()}
    rep["inputs"] = _inputs(strategy, cur_cols, prev_cols)
    step("models")
    rep["models"] = _models(log, con, period, previous, strategy, cols, smp, rep["kpis"])
    step("fairness")
    per = monitoring.decision_outcomes(con, smp["decision_id"].tolist(), actions)
    per = per.set_index("decision_id").loc[smp["decision_id"]].reset_index()
    rep["fairness"] = _fairness(strategy, cols, ok, per, n_boot, seed)
    step("compliance")
    rep["compliance"] = _compliance(log, con, period, strategy, vs["version"].tolist(), smp, cols, ok)
    step("strategy")
    rep["changes"] = _changes(log, con, period, actions)
    newest = in_period[-1]
    seqs = smp.loc[(smp["strategy_version"] == newest).to_numpy() & ok, "seq"].to_numpy(dtype=np.int64)
    rep["frontier"] = _frontier(log, newest, seqs)
    rep["positions"] = []
    for v in in_period[:-1]:
        vseq = smp.loc[(smp["strategy_version"] == v).to_numpy() & ok, "seq"].to_numpy(dtype=np.int64)
        fr = _frontier(log, v, vseq)
        if fr is not None:
            cur = next(p for p in fr["points"] if p["current"])
            rep["positions"].append({"version": v, "margin": cur["margin"], "retention": cur["retention"]})
    step("integrity")
    rep["integrity"] = _integrity(log, full_verify, via)
    rep["attention"] = _attention(rep, strategy)
    return rep


# -- drill-downs of the pages ---------------------------------------------------------------------


def model_detail(log: DecisionLog, period: Period, previous: Period | None, action_id: str, version: str) -> dict:
    """One model behind the report's line: calibration by predicted decile on the period's
    outcomes, accepted offers per day, and its score's distribution in the period, the period
    before and at training (on the training deciles)."""
    con = log.con.cursor()
    pairs = monitoring.shown_outcomes(con, *period.bounds)
    sel = np.asarray(pairs["action_id"], dtype=object) == action_id
    y = np.asarray(pairs["accepted"], dtype=bool)[sel]
    p = np.asarray(pairs["propensity"], dtype=np.float64)[sel]
    days = pd.to_datetime(np.asarray(pairs["day"])[sel])
    calibration = []
    if len(p):
        edges = np.unique(np.quantile(p, np.linspace(0, 1, 11)))
        idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
        for b in np.unique(idx):
            m = idx == b
            calibration.append({"bin": int(b), "n": int(m.sum()), "predicted": float(p[m].mean()),
                                "observed": float(y[m].mean())})
    per_day = (pd.DataFrame({"day": days, "accepted": y}).groupby("day")["accepted"].agg(["sum", "count"])
               .reset_index().rename(columns={"sum": "accepted", "count": "with_outcome"}))
    row = con.execute("SELECT metrics FROM models WHERE action_id = ? AND version = ?", [action_id, version]).fetchall()
    ref = (json.loads(row[0][0]).get("reference") or {}) if row else {}
    spec = ref.get(SCORE)

    def scores_of(per: Period | None) -> np.ndarray:
        if per is None:
            return np.empty(0)
        sc = monitoring.scores(con, *per.bounds, [action_id])
        return np.asarray(sc["propensity"], dtype=np.float64)[np.asarray(sc["action"]) == 0]
    cur, prev = scores_of(period), scores_of(previous)
    base = spec or (stability.bins(prev, False) if len(prev) else stability.bins(cur, False))
    dist = {"edges": base["edges"], "period": stability.shares(cur, base).tolist(),
            "previous": stability.shares(prev, base).tolist() if len(prev) else None,
            "training": spec["share"] if spec else None}
    return {"calibration": calibration, "per_day": per_day, "scores": dist}


def group_decisions(log: DecisionLog, period: Period, attribute: str, group: str, metric: str,
                    sample: int = SAMPLE, limit: int = 200) -> pd.DataFrame:
    """The sampled decisions of one group of a fairness attribute that count towards a rate
    (e.g. those of group "female" that showed an incentive), newest first: decision_id, ts,
    channel, chosen_actions."""
    con = log.con.cursor()
    smp, _ = monitoring.sample_decisions(con, *period.bounds, sample)
    vs = smp["strategy_version"].dropna().unique().tolist()
    actions, strategy = _actions_of(log, sorted(vs, key=lambda v: smp.loc[smp["strategy_version"] == v, "seq"].min()))
    attr = next(a for a in strategy.governance.attributes if a.name == attribute)
    cols, ok = input_columns(log, smp, strategy)
    groups = _group_of(attr, strategy, cols)
    per = monitoring.decision_outcomes(con, smp["decision_id"].tolist(), actions)
    per = per.set_index("decision_id").loc[smp["decision_id"]].reset_index()
    column = {"offer_rate": "offered", "incentive_rate": "incentive", "incentive_value": "incentive",
              "premium_rate": "premium", "acceptance_rate": "accepted"}[metric]
    keep = ok & (groups == group) & per[column].to_numpy(dtype=bool)
    ids = smp.loc[keep, "decision_id"].tolist()
    return queries.decisions_by_id(con, ids).drop(columns=["customer"]).sort_values("ts", ascending=False).head(limit)
