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
from decisioning.strategy import PREDICTS, Action, Strategy


@dataclass
class Reason:
    kind: str  #: feature, context_weight or lever
    name: str  #: the feature, context-weight rule or lever
    value: Any  #: the customer's value, the weight or the lever
    effect: float  #: effect on the log scale (log-odds for features)
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def display_value(strategy: Strategy, feature: str, value: Any) -> str:
    """A feature value as a person reads it: ``214 days ago``, ``yes``, ``shoes``, ``49.90 EUR``."""
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
        return "missing"
    if f.type == "boolean":
        return "yes" if bool(value) else "no"
    if f.type == "category":
        return str(value)
    if isinstance(value, float) and not value.is_integer():
        text = f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"
    else:
        text = f"{int(value):,}"
    return f"{text} {f.unit}".strip()


def _missing(value: Any) -> bool:
    """A missing value as the log holds it: JSON null, or NaN in a model matrix."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def feature_phrase(strategy: Strategy, feature: str, value: Any) -> str:
    """``Last purchase 214 days ago`` / ``Loyalty club member: no`` / ``Channel: Web shop``."""
    if feature == CHANNEL_FEATURE:
        return f"Channel: {display_value(strategy, feature, value)}"
    try:
        f = strategy.feature(feature)
    except KeyError:
        return f"{feature} = {format_value(value)}"
    shown = display_value(strategy, feature, value)
    if f.unit.endswith("ago") and not _missing(value):
        return f"{f.label} {shown}"
    return f"{f.label}: {shown}"


def action_phrase(action: Action) -> str:
    return f"“{action.name}”"


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
) -> list[Reason]:
    """The principal reasons why this action's priority was high, largest effect first.

    ``phi`` are the action model's attributions (log-odds) for ``attribution_features``;
    pass ``None`` when they could not be verified, and only rules and levers are used.
    """
    a = strategy.action_index(action_id)
    action = strategy.actions[a]
    out: list[Reason] = []
    if phi is not None and attribution_features is not None:
        for f, v in zip(attribution_features, np.asarray(phi).tolist()):
            value = channel if f == CHANNEL_FEATURE else features.get(f)
            verb = "raised" if v > 0 else "lowered"
            text = (f"{feature_phrase(strategy, f, value)} {verb} "
                    f"{PREDICTS[action.predicts].format(action=action_phrase(action))} ({v:+.2f} log-odds)")
            out.append(Reason("feature", f, value, float(v), text))
    for name, description, weight in fired_context_weights(strategy, features, a):
        text = f"{description.rstrip('.')} — context weight ×{weight:g} ({name})"
        out.append(Reason("context_weight", name, weight, math.log(weight), text))
    if lever > 0 and lever != 1.0:
        text = f"Business lever ×{lever:g} for {action_phrase(action)} (issue {action.issue})"
        out.append(Reason("lever", action_id, lever, math.log(lever), text))
    positive = sorted((r for r in out if r.effect > 0), key=lambda r: -r.effect)
    if positive:
        return positive[:max_reasons]
    return sorted(out, key=lambda r: -abs(r.effect))[:max_reasons]
