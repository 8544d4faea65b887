"""The stages of a decision, defined once: their order, names, colours and built-in rules.

A candidate action passes the stages of :data:`FLOW` in order and stops at the first that
removes it; ``ranked`` and ``selected`` mean it passed every filter.  The engine runs one
step per stage (:mod:`decisioning.engine`); the log stores the stage's name; explanations,
funnels, charts and contrasts read its label, group, colour and rules from here.

A built-in rule is one the engine applies itself (the strategy's own rules are named in the
strategy file).  Each knows what it means and which of the decision's values it tested, so
"why not B?" can show them.

To add a stage: one :class:`Stage` in :data:`FLOW`.  A policy stage (``policy=True``) needs
nothing else: the strategy writes its rules under ``policies.<name>`` and the engine applies
them in the flow's order.  A stage with logic of its own also adds its step in
:func:`decisioning.engine._steps`.  ``tests/test_one_definition.py`` adds one in a copy of
the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: What a built-in rule tested, from the logged decision: (inputs, channel, action, rule) → {name: value}.
Tested = Callable[[dict, str, Any, str], dict[str, Any]]


@dataclass(frozen=True)
class BuiltinRule:
    id: str  #: the rule's name in the log; a name ending in ``_`` is a prefix (``max_contacts_web``)
    description: str  #: ``{suffix}`` stands for what follows a prefix
    tested: Tested = field(default=lambda inputs, channel, action, rule: {}, compare=False)

    def matches(self, rule: str) -> bool:
        return rule.startswith(self.id) if self.id.endswith("_") else rule == self.id

    def describe(self, rule: str) -> str:
        return self.description.format(suffix=rule.removeprefix(self.id))


@dataclass(frozen=True)
class Stage:
    name: str
    label: str  #: where an action stopped, for a person ("Below no-action threshold")
    short: str  #: the stage as a column or bar ("Arbitration")
    group: str  #: its stage group (Pega's word for a phase of the flow)
    color: str
    filters: bool  #: removes actions (``ranked`` / ``selected`` are results)
    policy: bool = False  #: the strategy may write rules for it (``policies.<name>``)
    rules: tuple[BuiltinRule, ...] = ()


FLOW: tuple[Stage, ...] = (
    Stage("eligibility", "Eligibility", "Eligibility", "Policies", "#c62828", True, policy=True, rules=(
        BuiltinRule("available_on_channel", "The action is not offered on this channel.",
                    lambda inputs, channel, action, rule: {"channel": channel, "action channels": list(action.channels)}),
    )),
    Stage("applicability", "Applicability", "Applicability", "Policies", "#e57373", True, policy=True, rules=(
        BuiltinRule("already_holds_product", "Never offer a product the customer already holds.",
                    lambda inputs, channel, action, rule: {action.holds_feature: (inputs.get("features") or {}).get(
                        action.holds_feature)} if action.holds_feature else {}),
    )),
    Stage("suitability", "Suitability", "Suitability", "Policies", "#ef9a9a", True, policy=True),
    Stage("contact", "Contact policy", "Contact", "Contact policies", "#ce93d8", True, rules=(
        BuiltinRule("max_contacts_", "At most the allowed number of {suffix} contacts per period.",
                    lambda inputs, channel, action, rule: {f"contacts.{rule.removeprefix('max_contacts_')}": (
                        inputs.get("contacts") or {}).get(rule.removeprefix("max_contacts_"))}),
        BuiltinRule("suppressed_after_rejections",
                    "The customer rejected this action repeatedly; it is suppressed for a while.",
                    lambda inputs, channel, action, rule: {"rejections": (inputs.get("rejections") or {}).get(action.id)}),
    )),
    Stage("incentive", "Other incentive level won", "Incentive", "Incentives", "#ffe082", True, rules=(
        BuiltinRule("incentive_choice", "Another incentive level of the same offer had a higher priority."),
    )),
    Stage("arbitration", "Below no-action threshold", "Arbitration", "Arbitration", "#ffcc80", True, rules=(
        BuiltinRule("no_action_threshold", "The priority is below the channel's no-action threshold."),
    )),
    Stage("ranked", "Ranked, not shown", "Ranked", "Arbitration", "#90caf9", False),
    Stage("selected", "Selected", "Selected", "Output", "#2e7d32", False),
)

#: Every stage a candidate can stop at, in order.
STAGES: tuple[str, ...] = tuple(s.name for s in FLOW)
#: The stages the strategy writes rules for.
POLICY_STAGES: tuple[str, ...] = tuple(s.name for s in FLOW if s.policy)
#: The stages that remove actions, in order.
FILTERS: tuple[Stage, ...] = tuple(s for s in FLOW if s.filters)
BY_NAME: dict[str, Stage] = {s.name: s for s in FLOW}
CODE: dict[str, int] = {s.name: i for i, s in enumerate(FLOW)}  #: a stage's code in the engine's arrays


def builtin_rule(rule: str | None) -> BuiltinRule | None:
    """The engine's own rule of this name, if it is one."""
    for s in FLOW:
        for r in s.rules:
            if rule and r.matches(rule):
                return r
    return None


def tested_values(rule: str, inputs: dict, channel: str, action: Any) -> dict[str, Any]:
    """The values of the logged decision that a built-in rule tested."""
    r = builtin_rule(rule)
    return {} if r is None else r.tested(inputs, channel, action, rule)
