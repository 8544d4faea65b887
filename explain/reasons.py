"""Plain-language reason codes, derived only from computed attributions and fired rules.

A reason is one factor that actually shaped an action's priority, with the customer's value
and the size of its effect on a log scale, so factors of different kinds can be ranked:

* a **feature** — its SHAP attribution in log-odds (how far it moved the model's output);
* a **context weight** that fired — ``log(weight)``;
* a **lever** other than 1 — ``log(lever)``.

The principal reasons of a selected action are the (up to four) largest positive effects:
what raised its priority.  Nothing is invented: a reason without an attribution or a rule
behind it cannot be produced.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from decisioning.expressions import format_value
from decisioning.models import CHANNEL_FEATURE
from decisioning.strategy import LEVERS, Action, Strategy
from explain import i18n


@dataclass
class Reason:
    kind: str  #: feature, context_weight or lever
    name: str  #: the feature, context-weight rule or lever
    value: Any  #: the customer's value, the weight or the lever
    effect: float  #: effect on the log scale (log-odds for features)
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def display_value(strategy: Strategy, feature: str, value: Any, lang: str = "en") -> str:
    """A feature value as a person reads it: ``214 days ago``, ``yes``, ``shoes``, ``49.90 EUR``
    (``ja``, ``49,90 EUR`` in German)."""
    if feature == CHANNEL_FEATURE:
        try:
            return strategy.channel(str(value)).label
        except KeyError:
            return str(value)
    try:
        f = strategy.feature(feature)
    except KeyError:
        return format_value(value)
    if _missing(value):
        return i18n.t("value.missing", lang)
    if f.type == "boolean":
        return i18n.t("value.yes" if bool(value) else "value.no", lang)
    if f.type == "category":
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        text = i18n.number(value, lang, 2) if abs(value) >= 1 else i18n.significant(value, lang, 3)
    else:
        text = i18n.number(int(value), lang)
    return f"{text} {f.unit}".strip()


def _missing(value: Any) -> bool:
    """A missing value as the log holds it: JSON null, or NaN in a model matrix."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def feature_phrase(strategy: Strategy, feature: str, value: Any, lang: str = "en") -> str:
    """``Last purchase 214 days ago`` / ``Loyalty club member: no`` / ``Channel: Web shop``."""
    if feature == CHANNEL_FEATURE:
        return f"{i18n.t('value.channel', lang)}: {display_value(strategy, feature, value, lang)}"
    try:
        f = strategy.feature(feature)
    except KeyError:
        return f"{feature} = {format_value(value)}"
    shown = display_value(strategy, feature, value, lang)
    if f.unit.endswith("ago") and not _missing(value):
        return f"{f.label} {shown}"
    return f"{f.label}: {shown}"


def action_phrase(action: Action, lang: str = "en") -> str:
    return i18n.quoted(action.name, lang)


def strength(effect: float) -> str:
    """How large an effect on the log scale is, in words (a key of :mod:`explain.i18n`):
    strong from 0.5 (a factor of 1.65 on the odds), moderate from 0.15, else slight."""
    size = abs(effect)
    return "reason.strong" if size >= 0.5 else "reason.moderate" if size >= 0.15 else "reason.slight"


def reason_text(strategy: Strategy, action_id: str, reason: Reason, lang: str = "en") -> str:
    """A reason in plain words, in ``lang``: what raised or lowered the priority, and how much
    (the number itself is in the waterfall chart)."""
    action = strategy.actions[strategy.action_index(action_id)]
    who = action_phrase(action, lang)
    if reason.kind == "feature":
        what = i18n.t(f"predicts.{action.predicts}", lang, action=who)
        return i18n.t("reason.feature_up" if reason.effect > 0 else "reason.feature_down", lang,
                      phrase=feature_phrase(strategy, reason.name, reason.value, lang), what=what,
                      strength=i18n.t(strength(reason.effect), lang))
    if reason.kind == "context_weight":
        description = next((w.description for w in strategy.context_weights if w.name == reason.name), reason.name)
        return i18n.t("reason.context_weight", lang, description=description.rstrip("."), name=reason.name,
                      weight=i18n.number(reason.value, lang, 2).rstrip("0").rstrip(",."))
    return i18n.t("reason.lever", lang, action=who, issue=action.issue,
                  lever=i18n.number(reason.value, lang, 2).rstrip("0").rstrip(",."))


def fired_context_weights(strategy: Strategy, features: dict[str, Any], action_index: int) -> list[tuple[str, str, float]]:
    """The context-weight rules that fired for this action on these inputs: (name, description, weight)."""
    cols = {k: np.asarray([v]) for k, v in features.items()}
    out = []
    for w in strategy.context_weights:
        if action_index in w.actions and bool(w.when.evaluate_bool(cols, 1)[0]):
            out.append((w.name, w.description, w.weight))
    return out


def candidate_reasons(
    strategy: Strategy,
    action_id: str,
    features: dict[str, Any],
    channel: str,
    attribution_features: tuple[str, ...] | None,
    phi: np.ndarray | None,
    lever: float,
    max_reasons: int = 4,
    keep_all: list[Reason] | None = None,
) -> list[Reason]:
    """The principal reasons why this action's priority was high, largest effect first.

    ``phi`` are the action model's attributions (log-odds) for ``attribution_features``;
    pass ``None`` when they could not be verified, and only rules and levers are used.
    ``keep_all`` receives every reason, not only the principal ones.
    """
    a = strategy.action_index(action_id)
    out: list[Reason] = []
    if phi is not None and attribution_features is not None:
        for f, v in zip(attribution_features, np.asarray(phi).tolist()):
            value = channel if f == CHANNEL_FEATURE else features.get(f)
            out.append(Reason("feature", f, value, float(v), ""))
    for name, _description, weight in fired_context_weights(strategy, features, a):
        out.append(Reason("context_weight", name, weight, math.log(weight), ""))
    if lever > 0 and lever != 1.0:
        out.append(Reason("lever", action_id, lever, math.log(lever), ""))
    for r in out:
        r.text = reason_text(strategy, action_id, r)
    if keep_all is not None:
        keep_all.extend(out)
    positive = sorted((r for r in out if r.effect > 0), key=lambda r: -r.effect)
    if positive:
        return positive[:max_reasons]
    return sorted(out, key=lambda r: -abs(r.effect))[:max_reasons]


def discloses(strategy: Strategy, reason: Reason) -> bool:
    """Whether ``reason`` may be named to the customer (the strategy's ``disclosure:``)."""
    return strategy.disclosure.allows(LEVERS if reason.kind == "lever" else reason.name)


def customer_reasons(strategy: Strategy, action_id: str, reasons: list[Reason], lang: str = "en",
                     max_reasons: int = 4) -> tuple[list[str], float]:
    """What the customer is told about ``action_id``: the principal reasons they may be told
    (largest first), and the share of what raised the priority that comes from factors kept
    internal (0 when none), named only as "other factors"."""
    positive = [r for r in reasons if r.effect > 0]
    total = sum(r.effect for r in positive)
    told = sorted((r for r in positive if discloses(strategy, r)), key=lambda r: -r.effect)[:max_reasons]
    hidden = sum(r.effect for r in positive if not discloses(strategy, r))
    return [reason_text(strategy, action_id, r, lang) for r in told], (hidden / total if total > 0 else 0.0)
