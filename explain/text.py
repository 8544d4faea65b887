"""Explanations as plain text (the CLI) — the same facts the dashboard shows."""

from __future__ import annotations

import math

import pandas as pd

from explain.api import DecisionExplanation
from explain.attributions import probability
from explain.contrast import Contrast


def _f(x, spec: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return format(x, spec)


def explanation_text(e: DecisionExplanation, top_features: int = 6) -> str:
    d = e.decision
    lines = [
        f"Decision {e.decision_id}  ·  {pd.Timestamp(d['ts']):%Y-%m-%d %H:%M:%S %Z}  ·  channel {d['channel']} "
        f"({d['direction']})  ·  customer {d['customer'][:12]}…",
        (f"Strategy {d['strategy_version']}  ·  source {d['source']}" if d.get("strategy_version")
         else f"Imported from {d['source']} (no strategy in the log)"),
    ]
    if e.chosen:
        sel = ", ".join(e.chosen)
        prob = d.get("selection_probability")
        lines.append(f"Chosen: {sel}" + (f"  (explored; picked with probability {prob:.3g})" if d.get("explored") else ""))
    else:
        lines.append("Chosen: no action (nothing cleared every policy and the no-action threshold)")
    for note in e.notes:
        lines.append(f"Note: {note}")
    by_action = e.candidates.set_index("action_id")
    for aid in e.chosen:
        row = by_action.loc[aid]
        lines.append("")
        lines.append(f"Why {aid}:  priority {_f(row['priority'])} = propensity {_f(row['propensity'])} × value "
                     f"{_f(row['value'])} × context weight {_f(row['context_weight'])} × lever {_f(row['lever'])}")
        marked = e.strategy is not None and e.strategy.disclosure.declared
        for r, told in zip(e.reasons.get(aid, []), e.disclosed(aid)):
            lines.append(f"  • {r.text}" + ("" if not marked else "" if told else "  [internal only]"))
        ca = e.attributions.get(aid)
        if ca is not None:
            status = "verified" if ca.verified else "MISMATCH — " + "; ".join(ca.problems)
            lines.append(f"  Attributions ({ca.algorithm}, log-odds, model {ca.model_version}): {status}")
            lines.append(f"    base value {ca.base_value:+.4f}  (p = {probability(ca.base_value):.3f})")
            order = sorted(range(len(ca.features)), key=lambda i: -abs(ca.phi[i]))
            labels = e.feature_phrases(ca.features)
            for i in order[:top_features]:
                lines.append(f"    {ca.phi[i]:+.4f}  {labels[i]}")
            rest = sum(ca.phi[i] for i in order[top_features:])
            if len(order) > top_features:
                lines.append(f"    {rest:+.4f}  {len(order) - top_features} other features")
            lines.append(f"    = {ca.raw_output:+.4f} log-odds → p = {ca.propensity_rescored:.6f} "
                         f"(logged {_f(ca.propensity_logged, '.6f')}; additivity residual {ca.residual:.1e})")
    lines.append("")
    lines.append("Every action and its fate" + (" (where it got furthest)" if e.component_level else "") + ":")
    for r in e.candidates.itertuples(index=False):
        stage = str(r.stage)
        more = f"  [{r.rows} rows]" if e.component_level and r.rows > 1 else ""
        if (bool(r.selected) or stage == "ranked") and not pd.isna(r.rank):
            lines.append(f"  {r.action_id:<28} {stage:<12} rank {int(r.rank):>2}  priority {_f(r.priority)}{more}")
        else:
            lines.append(f"  {r.action_id:<28} {stage:<12} {r.reason if r.reason is not None else ''}{more}")
    if e.component_level:
        lines.append("")
        lines.append(f"Component rows ({len(e.rows):,}, in logged order):")
        for r in e.rows.itertuples(index=False):
            lines.append(f"  {int(r.ordinal):>4}  {r.action_id:<28} {str(r.stage):<16} "
                         f"{'presented' if r.selected else (r.rule or '')}  {r.reason or ''}")
    return "\n".join(lines)


def contrast_text(c: Contrast) -> str:
    lines = [f"Why {c.winner} and not {c.other}?  ({c.kind.replace('_', ' ')})", f"  {c.summary}"]
    if c.tested:
        lines.append("  Values the rule tested: " + ", ".join(f"{k}={v!r}" for k, v in c.tested.items()))
    if c.terms:
        lines.append(f"  log(priority {c.winner}) − log(priority {c.other}) = {_f(c.log_ratio, '+.4f')}, of which:")
        for t in c.terms:
            lines.append(f"    {t.name:<15} {_f(t.winner):>10} vs {_f(t.other):>10}   {_f(t.log_ratio, '+.4f')}")
        if c.residual is not None:
            lines.append(f"    (rounding residual {c.residual:.1e})")
    if c.propensity_terms:
        lines.append("  The propensity term, by the two models' attributions (log-odds):")
        for t in c.propensity_terms[:8]:
            lines.append(f"    {_f(t.log_ratio, '+.4f')}  {t.name}")
        if len(c.propensity_terms) > 8:
            rest = sum(t.log_ratio for t in c.propensity_terms[8:-1])
            lines.append(f"    {rest:+.4f}  {len(c.propensity_terms) - 9} other features")
            lines.append(f"    {c.propensity_terms[-1].log_ratio:+.4f}  {c.propensity_terms[-1].name}")
    for cf in c.counterfactuals:
        mark = "✓ verified by re-arbitration" if cf.verified else ""
        lines.append(f"  What would have changed it ({cf.parameter}): {cf.note} {mark}".rstrip())
    return "\n".join(lines)


def why_not_text(c: Contrast, e: DecisionExplanation, lang: str = "en",
                 names: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Why ``c.winner`` and not ``c.other``, in plain words and ``lang``: (the answer, one
    sentence per counterfactual).  Built from the contrast's facts, so it says what
    :attr:`Contrast.summary` says, in either language and with the actions' names."""
    from explain import i18n

    names = names or {}

    def q(aid: str) -> str:
        return i18n.quoted(names.get(aid, aid), lang)

    def n(x: float, digits: int = 4) -> str:
        return i18n.significant(x, lang, digits)

    cands = e.candidates.set_index("action_id")
    other = cands.loc[c.other] if c.other in cands.index else None
    if c.kind == "winner":
        text = i18n.t("whynot.winner", lang, other=q(c.other))
    elif c.kind == "filtered" and not c.rule:
        text = i18n.t("whynot.filtered_no_rule", lang, other=q(c.other), stage=c.stage)
    elif c.kind == "filtered":
        text = i18n.t("whynot.filtered", lang, other=q(c.other), stage=c.stage, rule=c.rule,
                      description=(c.description or "").rstrip("."), reason=c.reason or "")
    elif c.kind == "also_selected":
        top_n = e.strategy.channel(e.decision["channel"]).top_n if e.strategy is not None else "?"
        text = i18n.t("whynot.also_selected", lang, other=q(c.other), rank=int(other["rank"]), top_n=top_n)
    else:
        rank = other["rank"] if other is not None else None
        text = i18n.t("whynot.ranked_lower", lang, other=q(c.other), winner=q(c.winner),
                      rank=i18n.t("whynot.lower", lang) if rank is None or pd.isna(rank) else int(rank),
                      p_other=n(c.priority_other if c.priority_other is not None else other["priority"]),
                      p_winner=n(c.priority_winner if c.priority_winner is not None else cands.loc[c.winner, "priority"]))
    if c.terms and c.log_ratio is None:
        text += " " + i18n.t("whynot.not_positive", lang)
    if c.rearbitration_reproduced is False and not c.explored:
        text += " " + i18n.t("whynot.not_reproduced", lang)
    if c.explored:
        text += " " + i18n.t("whynot.explored", lang, winner=q(c.winner),
                             p=n(e.decision["selection_probability"], 3))
    notes = []
    for cf in c.counterfactuals:
        what = i18n.t(f"term.{cf.parameter}", lang)
        if cf.needed is None:
            notes.append(i18n.t("whynot.cf_none", lang, what=what))
        elif cf.needed == cf.current:
            notes.append(i18n.t("whynot.cf_already", lang))
        else:
            notes.append(i18n.t("whynot.cf_needed", lang, what=what, needed=n(cf.needed, 4), current=n(cf.current, 4)))
    return text, notes


def plain_text(e: DecisionExplanation, lang: str = "en", contrast: Contrast | None = None) -> str:
    """The decision in plain words for business users, in ``lang``: what was chosen (by name),
    why (the reasons), and why not the action asked about.  The technical text follows it."""
    from explain import i18n

    names = e.action_names()
    lines = [i18n.t("replay.decision", lang, id=e.decision_id),
             f"{i18n.t('col.chosen', lang)}: " + (", ".join(f"{names.get(a, a)} ({a})" for a in e.chosen)
                                                   or i18n.t("replay.no_action", lang))]
    for aid in e.chosen:
        lines += [f"  • {r}" for r in e.reason_texts(aid, lang)]
    if contrast is not None:
        answer, notes = why_not_text(contrast, e, lang, names)
        lines += ["", answer] + [f"  → {n}" for n in notes]
    return "\n".join(lines)
