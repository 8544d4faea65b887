"""Strategy files: the YAML that says what the engine may offer, to whom, and how to rank it.

A strategy is loaded with :func:`load_strategy` (from a file) or :func:`parse_strategy`
(from text).  Validation reports the file, the line, the field, the bad value and what is
allowed; the strategy's version is the SHA-256 of its text, so a decision can always be
traced to the exact file that shaped it.  The reference of every field is in
``docs/strategy.md``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from decisioning.errors import StrategyError
from decisioning.expressions import Expression, compile_expression
from decisioning.stages import POLICY_STAGES, STAGES  # noqa: F401  (STAGES: re-exported)

FEATURE_TYPES = ("number", "integer", "boolean", "category")
FEATURE_SOURCES = ("crm", "context")
DIRECTIONS = ("inbound", "outbound")
INCENTIVE_KINDS = ("voucher", "bonus_points", "payment_terms")
#: Issues whose actions are not direct marketing unless the action says otherwise.
NON_MARKETING_ISSUES = ("service",)
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
#: What a propensity model may predict, and how a person reads a change of it ("… raised
#: the chance of accepting “Voucher”"): the strategy says which, per strategy
#: (``models.predicts``) or per action (``predicts``).
PREDICTS = {
    "acceptance": "the chance of accepting {action}",
    "conversion": "the chance of buying after {action}",
    "click": "the chance of clicking {action}",
    "response": "the chance of responding to {action}",
    "churn_risk": "the predicted risk of churning, which {action} addresses",
}
#: The same in two words, for chart axes ("log-odds of accepting").
PREDICTS_SHORT = {"acceptance": "accepting", "conversion": "buying", "click": "clicking", "response": "responding",
                  "churn_risk": "churning"}


@dataclass(frozen=True)
class Feature:
    """One customer feature the engine reads (historical CRM data or real-time context)."""

    name: str
    type: str
    source: str
    label: str
    unit: str = ""
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()
    #: ``missing: allowed``: a request may leave this (numeric) feature out or empty; the
    #: models read it as NaN, which only models that accept missing values may do (checked
    #: when a model is registered or scores).  No rule or weight may read such a feature.
    missing: bool = False


@dataclass(frozen=True)
class Channel:
    id: str
    direction: str
    top_n: int
    label: str
    no_action_threshold: float


@dataclass(frozen=True)
class Incentive:
    """An incentive attached to an action and what it costs per acceptance (currency units)."""

    kind: str
    amount: float
    cost: float

    def describe(self) -> str:
        if self.kind == "voucher":
            return f"{_num(self.amount)}% voucher"
        if self.kind == "bonus_points":
            return f"{_num(self.amount)} bonus points"
        return f"{_num(self.amount)} days payment terms"


@dataclass(frozen=True)
class Action:
    id: str
    name: str
    issue: str
    group: str
    offer: str
    channels: tuple[str, ...]
    margin: float
    order_value: float
    cost: float
    retention_effect: float
    incentive: Incentive | None
    holds_feature: str | None
    description: str = ""
    #: What this action's model predicts (:data:`PREDICTS`): the words every reason uses.
    predicts: str = "acceptance"
    #: Direct marketing (GDPR Art. 21(2)): removed for a customer who objected to it.
    #: Default: every action whose issue is not ``service``.
    marketing: bool = True

    @property
    def incentive_cost(self) -> float:
        return self.incentive.cost if self.incentive else 0.0


@dataclass(frozen=True)
class Rule:
    """An engagement-policy rule: actions in scope are removed when ``exclude_if`` is true."""

    stage: str
    name: str
    description: str
    exclude_if: Expression
    actions: tuple[int, ...]


@dataclass(frozen=True)
class ContextWeight:
    name: str
    description: str
    when: Expression
    actions: tuple[int, ...]
    weight: float


@dataclass(frozen=True)
class ContactLimit:
    channel: str
    max_contacts: int
    period_days: int


@dataclass(frozen=True)
class Suppression:
    after_rejections: int
    within_days: int
    suppress_days: int


@dataclass(frozen=True)
class FairnessAttribute:
    """A customer attribute the governance report compares groups by (``governance.fairness``).

    ``feature`` is the strategy feature it reads; a numeric feature is cut into ``bands``
    (lower bounds: ``[16, 25, 35]`` gives 16–24, 25–34, 35 and over).  ``flag: false`` shows
    the groups' figures without flagging them (differences that exist by design, e.g. credit
    only from 18), with ``note`` saying why.
    """

    name: str
    feature: str
    label: str
    bands: tuple[float, ...] = ()
    flag: bool = True
    note: str = ""
    integer: bool = True  #: bands of whole numbers (16–24) rather than of amounts (0–<500)

    def group_labels(self, values: tuple[str, ...] = ()) -> list[str]:
        """The groups' names in order: the bands as ``16–24``/``65+``, or the category values."""
        if not self.bands:
            return list(values)
        out = []
        for lo, hi in zip(self.bands, (*self.bands[1:], None)):
            if hi is None:
                out.append(f"{_num(lo)}+")
            elif self.integer and float(lo).is_integer() and float(hi).is_integer():
                out.append(f"{_num(lo)}–{_num(hi - 1)}")
            else:
                out.append(f"{_num(lo)}–<{_num(hi)}")
        return out


@dataclass(frozen=True)
class Governance:
    """Thresholds and attributes of the governance report (``governance:`` in the file).

    Defaults follow common practice: population stability (PSI) bands 0.10 / 0.25, Pega's
    AUC band 0.52–0.90, the four-fifths rule for rate ratios.
    """

    attributes: tuple[FairnessAttribute, ...] = ()
    min_ratio: float = 0.8  #: a group's rate below min_ratio × the highest group's is flagged
    psi_warn: float = 0.10
    psi_alert: float = 0.25
    auc_low: float = 0.52
    auc_high: float = 0.90
    min_group: int = 200  #: decisions a group (or a model) needs before it is judged
    premium: tuple[int, ...] = ()  #: the actions counted as premium or payment-term offers


@dataclass(frozen=True)
class Disclosure:
    """What a customer may be told (``disclosure:`` in the file): which features, context
    weights and levers may be named as a reason in the customer's own explanation.  The rest
    is folded into "other factors" with its share.  Without the section everything may be
    named (as before it existed); with it, whatever is not listed gets ``default``."""

    declared: bool = False
    default: str = "customer"  #: customer or internal
    customer: frozenset[str] = frozenset()
    internal: frozenset[str] = frozenset()

    def allows(self, name: str) -> bool:
        """Whether a reason from ``name`` (a feature, a context weight, or ``levers``) may be named to a customer."""
        if name in self.customer:
            return True
        if name in self.internal:
            return False
        return self.default == "customer"


#: The name ``disclosure:`` gives every lever (an action's lever is a business setting).
LEVERS = "levers"


@dataclass(frozen=True)
class Strategy:
    """A validated strategy.  Build it with :func:`load_strategy` or :func:`parse_strategy`."""

    name: str
    description: str
    text: str
    source: str
    currency: str
    features: tuple[Feature, ...]
    channels: tuple[Channel, ...]
    actions: tuple[Action, ...]
    rules: tuple[Rule, ...]
    context_weights: tuple[ContextWeight, ...]
    levers: np.ndarray
    contact_limits: tuple[ContactLimit, ...]
    suppression: Suppression | None
    never_offer_held_products: bool
    margin_weight: float
    retention_weight: float
    clv_feature: str
    epsilon: float
    exploration_seed: int
    model_features: tuple[str, ...]
    model_params: dict[str, Any] = field(default_factory=dict)
    #: ``kpi.contact_cost_in_value``: an action's cost per contact enters its value (priority =
    #: propensity × value − margin weight × cost, times context weight and lever)
    contact_cost_in_value: bool = False
    governance: Governance = field(default_factory=Governance)
    disclosure: Disclosure = field(default_factory=Disclosure)

    @cached_property
    def version(self) -> str:
        """Content hash of the strategy text (first 16 hex digits of its SHA-256)."""
        return strategy_version(self.text)

    @property
    def action_ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.actions)

    @property
    def channel_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.channels)

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def channel(self, channel_id: str) -> Channel:
        for c in self.channels:
            if c.id == channel_id:
                return c
        raise KeyError(channel_id)

    def action_index(self, action_id: str) -> int:
        return self.action_ids.index(action_id)


def strategy_version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ten times faster than the pure-Python parser


def load_strategy(path: str | Path) -> Strategy:
    """Load and validate a strategy file.

    Raises
    ------
    StrategyError
        If the file is missing, is not valid YAML, or any field is wrong; the message names
        the file, line, field, value and what is allowed.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise StrategyError(
            f"Strategy file {str(p)!r} does not exist.",
            "Pass the path of a strategy YAML file; examples/byo/strategy.yaml in the Klartext repository is "
            "a small one to start from.",
        ) from exc
    except UnicodeDecodeError:
        raise StrategyError(f"Strategy file {str(p)!r} is not a text file (UTF-8).",
                            "Pass the strategy's YAML file, not a model or another binary file.") from None
    except OSError as exc:
        raise StrategyError(f"Strategy file {str(p)!r} cannot be read: {exc.strerror or type(exc).__name__}.",
                            "Pass the path of a readable strategy YAML file.") from None
    return parse_strategy(text, source=str(p))


def parse_strategy(text: str, source: str = "<strategy>") -> Strategy:
    """Parse and validate strategy YAML ``text``; ``source`` names it in error messages."""
    return _Parser(text, source).parse()


# --------------------------------------------------------------------------------------
# parsing


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _path_str(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.lines: dict[tuple[Any, ...], int] = {}

    # -- error helpers -------------------------------------------------------------

    def where(self, path: tuple[Any, ...]) -> str:
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe) if probe else None
        loc = f"{self.source}, line {line}" if line else self.source
        return f"{loc}, {_path_str(path)}"

    def fail(self, path: tuple[Any, ...], problem: str, hint: str | None = None) -> StrategyError:
        return StrategyError(f"{self.where(path)}: {problem}", hint)

    # -- typed getters -------------------------------------------------------------

    def get(self, obj: dict, key: str, path: tuple, required: bool = True, default: Any = None) -> Any:
        if key in obj:
            return obj[key]
        if required:
            raise self.fail(path + (key,), "this field is required but missing.",
                            f"Add '{key}:' " + (f"to {_path_str(path)}." if path else "at the top level of the file."))
        return default

    def mapping(self, value: Any, path: tuple, allowed: tuple[str, ...] | None = None) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping (key: value), got {value!r}.",
                            "Write it as 'key: value' lines indented below the field, or {key: value}.")
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    raise self.fail(path + (k,), f"unknown field {k!r}.",
                                    f"Allowed fields here: {', '.join(allowed)}.")
        return value

    def seq(self, value: Any, path: tuple) -> list:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {value!r}.", "Write it as [a, b] or as '- item' lines.")
        return value

    def number(self, value: Any, path: tuple, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise self.fail(path, f"expected a finite number, got {value!r}.", "Write a number such as 12.5.")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            rng = f"{'(' if lo_open else '['}{_num(lo)}, {'inf' if hi is None else _num(hi)}]"
            raise self.fail(path, f"must be in the range {rng}, got {value!r}.")
        if hi is not None and value > hi:
            raise self.fail(path, f"must be in the range [{_num(lo or 0)}, {_num(hi)}], got {value!r}.")
        return float(value)

    def integer(self, value: Any, path: tuple, lo: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected a whole number, got {value!r}.", "Write a whole number such as 3.")
        if value < lo:
            raise self.fail(path, f"must be at least {lo}, got {value!r}.")
        return int(value)

    def string(self, value: Any, path: tuple) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty text, got {value!r}.", "Write a text value.")
        return value.strip()

    def ident(self, value: Any, path: tuple) -> str:
        s = self.string(value, path)
        if not _IDENT.match(s):
            raise self.fail(path, f"{s!r} is not a valid identifier.",
                            "Use lower-case letters, digits and underscores, starting with a letter.")
        return s

    def choice(self, value: Any, path: tuple, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(path, f"{value!r} is not allowed.", f"Allowed values: {', '.join(allowed)}.")
        return value

    # -- the document ----------------------------------------------------------------

    def _index_lines(self, node: Any, path: tuple) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value
                self.lines[path + (key,)] = k.start_mark.line + 1
                self._index_lines(v, path + (key,))
                self.lines[path + (key,)] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                self._index_lines(v, path + (i,))

    def parse(self) -> Strategy:
        try:
            try:
                data = yaml.load(self.text, Loader=_LOADER)
                node = yaml.compose(self.text, Loader=_LOADER)
            except yaml.YAMLError:  # the pure-Python parser words its errors better ("but got ':'")
                data = yaml.safe_load(self.text)
                node = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f", line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise StrategyError(
                f"{self.source}{line}: not valid YAML: {problem}.",
                "Check the indentation and quoting around that line.",
            ) from exc
        if node is not None:
            self._index_lines(node, ())
        top = self.mapping(data, (), (
            "name", "description", "currency", "features", "channels", "actions", "policies",
            "contact_policies", "context_weights", "levers", "kpi", "no_action", "exploration",
            "models", "governance", "disclosure",
        ))
        name = self.string(self.get(top, "name", ()), ("name",))
        description = str(top.get("description", "") or "").strip()
        currency = self.string(top.get("currency", "EUR"), ("currency",))

        features = self._features(top)
        fmap = {f.name: f for f in features}
        channels = self._channels(top)
        actions = self._actions(top, fmap, {c.id for c in channels})
        rules = self._rules(top, fmap, actions)
        contact_limits, suppression, never_held = self._contact(top, channels)
        cws = self._context_weights(top, fmap, actions)
        levers = self._levers(top, actions)
        kpi = self.mapping(self.get(top, "kpi", ()), ("kpi",),
                           ("margin_weight", "retention_weight", "clv_feature", "contact_cost_in_value"))
        cost_in_value = kpi.get("contact_cost_in_value", False)
        if not isinstance(cost_in_value, bool):
            raise self.fail(("kpi", "contact_cost_in_value"), f"{cost_in_value!r} is not true or false.",
                            "Write contact_cost_in_value: true to let each contact's cost lower its action's value.")
        mw = self.number(self.get(kpi, "margin_weight", ("kpi",)), ("kpi", "margin_weight"), 0)
        rw = self.number(self.get(kpi, "retention_weight", ("kpi",)), ("kpi", "retention_weight"), 0)
        if mw == 0 and rw == 0:
            raise self.fail(("kpi",), "margin_weight and retention_weight are both 0, so every "
                            "action would be worth nothing.", "Give at least one of them a positive weight.")
        clv = self.string(self.get(kpi, "clv_feature", ("kpi",)), ("kpi", "clv_feature"))
        if clv not in fmap or fmap[clv].type not in ("number", "integer"):
            raise self.fail(("kpi", "clv_feature"), f"{clv!r} is not a numeric feature.",
                            "Name the numeric feature that holds the customer lifetime value.")
        if fmap[clv].missing:
            raise self.fail(("kpi", "clv_feature"), f"{clv!r} may be missing (missing: allowed), so the "
                            "retention value of some customers would be unknown.",
                            "Name a customer lifetime value that is always given, or write missing: refused.")

        channels = self._thresholds(top, channels)
        exp = self.mapping(top.get("exploration", {}) or {}, ("exploration",), ("epsilon", "seed"))
        eps = self.number(exp.get("epsilon", 0.0), ("exploration", "epsilon"), 0, 1)
        seed = self.integer(exp.get("seed", 0), ("exploration", "seed"))

        models = self.mapping(top.get("models", {}) or {}, ("models",), ("features", "params", "predicts"))
        mfeat_raw = models.get("features", [f.name for f in features])
        mfeat = []
        for i, fname in enumerate(self.seq(mfeat_raw, ("models", "features"))):
            if fname not in fmap:
                raise self.fail(("models", "features", i), f"unknown feature {fname!r}.",
                                f"Declared features: {', '.join(fmap)}.")
            mfeat.append(fname)
        params = self.mapping(models.get("params", {}) or {}, ("models", "params"))

        return Strategy(
            name=name, description=description, text=self.text, source=self.source,
            currency=currency, features=features, channels=channels, actions=actions,
            rules=rules, context_weights=cws, levers=levers, contact_limits=contact_limits,
            suppression=suppression, never_offer_held_products=never_held, margin_weight=mw,
            retention_weight=rw, clv_feature=clv, epsilon=eps, exploration_seed=seed,
            model_features=tuple(mfeat), model_params=dict(params), contact_cost_in_value=cost_in_value,
            governance=self._governance(top, fmap, actions),
            disclosure=self._disclosure(top, fmap, cws),
        )

    def _disclosure(self, top: dict, fmap: dict, cws: tuple[ContextWeight, ...]) -> Disclosure:
        if top.get("disclosure") is None:
            return Disclosure()
        path = ("disclosure",)
        raw = self.mapping(top["disclosure"], path, ("default", "customer", "internal"))
        default = self.choice(raw.get("default", "internal"), path + ("default",), ("customer", "internal"))
        known = {*fmap, "channel", *(w.name for w in cws), LEVERS}
        lists = {}
        for key in ("customer", "internal"):
            names = []
            for j, name in enumerate(self.seq(raw.get(key, []) or [], path + (key,))):
                if name not in known:
                    raise self.fail(path + (key, j), f"{name!r} is not a feature, a context weight or 'levers'.",
                                    f"Features: {', '.join(fmap)}; context weights: "
                                    f"{', '.join(w.name for w in cws) or 'none'}; and levers.")
                names.append(name)
            lists[key] = frozenset(names)
        both = sorted(lists["customer"] & lists["internal"])
        if both:
            raise self.fail(path, f"{both[0]!r} is listed as both customer and internal.", "List it once.")
        return Disclosure(True, default, lists["customer"], lists["internal"])

    def _governance(self, top: dict, fmap: dict, actions: tuple[Action, ...]) -> Governance:
        path = ("governance",)
        raw = self.mapping(top.get("governance", {}) or {}, path, ("fairness", "monitoring", "premium_offers"))
        fair = self.mapping(raw.get("fairness", {}) or {}, path + ("fairness",), ("attributes", "min_ratio", "min_group"))
        attrs = []
        for name, spec in self.mapping(fair.get("attributes", {}) or {}, path + ("fairness", "attributes")).items():
            ap = path + ("fairness", "attributes", name)
            self.ident(name, ap)
            spec = self.mapping(spec or {}, ap, ("feature", "label", "bands", "flag", "note"))
            feat = self.string(spec.get("feature", name), ap + ("feature",))
            if feat not in fmap:
                raise self.fail(ap + ("feature",), f"unknown feature {feat!r}.", f"Declared features: {', '.join(fmap)}.")
            f = fmap[feat]
            bands: tuple[float, ...] = ()
            if f.type in ("number", "integer"):
                raw_bands = self.seq(self.get(spec, "bands", ap), ap + ("bands",))
                bands = tuple(self.number(b, ap + ("bands", j)) for j, b in enumerate(raw_bands))
                if len(bands) < 2 or any(b >= c for b, c in zip(bands, bands[1:])):
                    raise self.fail(ap + ("bands",), f"{list(bands)!r} are not at least two rising lower bounds.",
                                    "Write the lower bound of each band, e.g. bands: [16, 25, 35, 50, 65].")
            elif f.type == "category":
                if "bands" in spec:
                    raise self.fail(ap + ("bands",), f"{feat!r} is a category: its values are the groups.",
                                    "Leave out bands.")
            else:
                raise self.fail(ap + ("feature",), f"{feat!r} is a {f.type} feature.",
                                "Name a category feature, or a numeric one with bands.")
            flag = spec.get("flag", True)
            if not isinstance(flag, bool):
                raise self.fail(ap + ("flag",), f"{flag!r} is not true or false.")
            note = str(spec.get("note", "") or "").strip()
            if not flag and not note:
                raise self.fail(ap + ("note",), "an attribute shown without flags needs a note saying why.",
                                "Add note: with the reason, e.g. 'payment terms only from 18 by law'.")
            label = self.string(spec.get("label", f.label), ap + ("label",))
            attrs.append(FairnessAttribute(name, feat, label, bands, flag, note, f.type == "integer"))
        mon = self.mapping(raw.get("monitoring", {}) or {}, path + ("monitoring",), ("psi_bands", "auc_band"))
        psi = self.seq(mon.get("psi_bands", [0.10, 0.25]), path + ("monitoring", "psi_bands"))
        auc = self.seq(mon.get("auc_band", [0.52, 0.90]), path + ("monitoring", "auc_band"))
        if len(psi) != 2 or len(auc) != 2:
            raise self.fail(path + ("monitoring",), "psi_bands and auc_band each take two numbers.",
                            "Write psi_bands: [0.10, 0.25] and auc_band: [0.52, 0.90].")
        pw, pa = (self.number(v, path + ("monitoring", "psi_bands", j), 0, lo_open=True) for j, v in enumerate(psi))
        al, ah = (self.number(v, path + ("monitoring", "auc_band", j), 0, 1) for j, v in enumerate(auc))
        if pw >= pa or al >= ah:
            raise self.fail(path + ("monitoring",), "each band's first number must be below its second.")
        premium: tuple[int, ...] = ()
        if "premium_offers" in raw:
            premium = self._scope({"applies_to": raw["premium_offers"]}, path[:-1] + ("governance", "premium_offers"),
                                  actions)
        return Governance(
            attributes=tuple(attrs),
            min_ratio=self.number(fair.get("min_ratio", 0.8), path + ("fairness", "min_ratio"), 0, 1, lo_open=True),
            psi_warn=pw, psi_alert=pa, auc_low=al, auc_high=ah,
            min_group=self.integer(fair.get("min_group", 200), path + ("fairness", "min_group"), 1),
            premium=premium)

    def _features(self, top: dict) -> tuple[Feature, ...]:
        raw = self.mapping(self.get(top, "features", ()), ("features",))
        out = []
        for name, spec in raw.items():
            path = ("features", name)
            self.ident(name, path)
            if name in ("channel", "direction", "customer_id"):
                raise self.fail(path, f"{name!r} is reserved; the engine sets it itself.",
                                "Rename the feature.")
            spec = self.mapping(spec, path, ("type", "source", "label", "unit", "min", "max", "values", "missing"))
            ftype = self.choice(self.get(spec, "type", path), path + ("type",), FEATURE_TYPES)
            source = self.choice(self.get(spec, "source", path), path + ("source",), FEATURE_SOURCES)
            label = self.string(spec.get("label", name.replace("_", " ")), path + ("label",))
            lo = spec.get("min")
            hi = spec.get("max")
            if lo is not None:
                lo = self.number(lo, path + ("min",))
            if hi is not None:
                hi = self.number(hi, path + ("max",))
            values: tuple[str, ...] = ()
            if ftype == "category":
                vals = self.seq(self.get(spec, "values", path), path + ("values",))
                if not vals:
                    raise self.fail(path + ("values",), "a category needs at least one value.")
                values = tuple(self.string(v, path + ("values", i)) for i, v in enumerate(vals))
            missing = self.choice(spec.get("missing", "refused"), path + ("missing",), ("allowed", "refused")) == "allowed"
            if missing and ftype not in ("number", "integer"):
                raise self.fail(path + ("missing",), f"only a number or integer feature may be missing; {name!r} is "
                                f"a {ftype}.", "Add an explicit value such as 'unknown' to the category instead, "
                                "or write missing: refused.")
            out.append(Feature(name, ftype, source, label, str(spec.get("unit", "") or ""), lo, hi, values, missing))
        if not out:
            raise self.fail(("features",), "at least one feature must be declared.")
        return tuple(out)

    def _channels(self, top: dict) -> tuple[Channel, ...]:
        raw = self.mapping(self.get(top, "channels", ()), ("channels",))
        out = []
        for cid, spec in raw.items():
            path = ("channels", cid)
            self.ident(cid, path)
            spec = self.mapping(spec or {}, path, ("direction", "top_n", "label"))
            direction = self.choice(self.get(spec, "direction", path), path + ("direction",), DIRECTIONS)
            top_n = self.integer(spec.get("top_n", 1), path + ("top_n",), lo=1)
            label = self.string(spec.get("label", cid), path + ("label",))
            out.append(Channel(cid, direction, top_n, label, 0.0))
        if not out:
            raise self.fail(("channels",), "at least one channel must be declared.")
        return tuple(out)

    def _actions(self, top: dict, fmap: dict, channel_ids: set[str]) -> tuple[Action, ...]:
        raw = self.seq(self.get(top, "actions", ()), ("actions",))
        models = top.get("models") if isinstance(top.get("models"), dict) else {}
        default_predicts = self.choice(models.get("predicts", "acceptance"), ("models", "predicts"), tuple(PREDICTS))
        out: list[Action] = []
        seen: set[str] = set()
        allowed = ("id", "name", "issue", "group", "offer", "channels", "margin", "order_value",
                   "cost", "retention_effect", "incentive", "holds_feature", "description", "predicts", "marketing")
        for i, spec in enumerate(raw):
            path = ("actions", i)
            spec = self.mapping(spec, path, allowed)
            aid = self.ident(self.get(spec, "id", path), path + ("id",))
            if aid in seen:
                raise self.fail(path + ("id",), f"action id {aid!r} is used twice.", "Give every action its own id.")
            seen.add(aid)
            chans = self.seq(self.get(spec, "channels", path), path + ("channels",))
            if not chans:
                raise self.fail(path + ("channels",), "an action needs at least one channel.")
            for j, c in enumerate(chans):
                if c not in channel_ids:
                    raise self.fail(path + ("channels", j), f"{c!r} is not a declared channel.",
                                    f"Declared channels: {', '.join(sorted(channel_ids))}.")
            margin = self.number(self.get(spec, "margin", path), path + ("margin",))
            order_value = self.number(spec.get("order_value", 0.0), path + ("order_value",), 0)
            cost = self.number(spec.get("cost", 0.0), path + ("cost",), 0)
            ret = self.number(spec.get("retention_effect", 0.0), path + ("retention_effect",), 0, 1)
            incentive = None
            if spec.get("incentive") is not None:
                incentive = self._incentive(spec["incentive"], path + ("incentive",), order_value)
            holds = spec.get("holds_feature")
            if holds is not None:
                if holds not in fmap or fmap[holds].type != "boolean":
                    raise self.fail(path + ("holds_feature",), f"{holds!r} is not a boolean feature.",
                                    "Name the boolean feature that is true when the customer already holds the product.")
            issue = self.ident(self.get(spec, "issue", path), path + ("issue",))
            marketing = spec.get("marketing", issue not in NON_MARKETING_ISSUES)
            if not isinstance(marketing, bool):
                raise self.fail(path + ("marketing",), f"marketing must be true or false, not {marketing!r}.",
                                "Write `marketing: false` for a service message a customer cannot object to.")
            out.append(Action(
                id=aid,
                name=self.string(spec.get("name", aid.replace("_", " ")), path + ("name",)),
                issue=issue, marketing=marketing,
                group=self.ident(self.get(spec, "group", path), path + ("group",)),
                offer=self.ident(spec.get("offer", aid), path + ("offer",)),
                channels=tuple(chans), margin=margin, order_value=order_value, cost=cost,
                retention_effect=ret, incentive=incentive, holds_feature=holds,
                description=str(spec.get("description", "") or "").strip(),
                predicts=self.choice(spec.get("predicts", default_predicts), path + ("predicts",), tuple(PREDICTS)),
            ))
        if not out:
            raise self.fail(("actions",), "at least one action must be declared.")
        return tuple(out)

    def _incentive(self, spec: Any, path: tuple, order_value: float) -> Incentive:
        spec = self.mapping(spec, path, ("kind", "percent", "points", "days", "point_value", "annual_rate"))
        kind = self.choice(self.get(spec, "kind", path), path + ("kind",), INCENTIVE_KINDS)
        if kind == "voucher":
            pct = self.number(self.get(spec, "percent", path), path + ("percent",), 0, 100)
            return Incentive(kind, pct, order_value * pct / 100.0)
        if kind == "bonus_points":
            pts = self.number(self.get(spec, "points", path), path + ("points",), 0)
            pv = self.number(spec.get("point_value", 0.01), path + ("point_value",), 0)
            return Incentive(kind, pts, pts * pv)
        days = self.number(self.get(spec, "days", path), path + ("days",), 0)
        rate = self.number(spec.get("annual_rate", 0.08), path + ("annual_rate",), 0, 1)
        return Incentive(kind, days, order_value * rate * days / 365.0)

    def _scope(self, spec: dict, path: tuple, actions: tuple[Action, ...]) -> tuple[int, ...]:
        raw = spec.get("applies_to", "all")
        if raw == "all":
            return tuple(range(len(actions)))
        raw = self.mapping(raw, path + ("applies_to",), ("actions", "issues", "groups"))
        picked: set[int] = set()
        for key, attr in (("actions", "id"), ("issues", "issue"), ("groups", "group")):
            known = sorted({getattr(a, attr) for a in actions})
            for j, v in enumerate(self.seq(raw.get(key, []), path + ("applies_to", key))):
                if v not in known:
                    raise self.fail(path + ("applies_to", key, j), f"{v!r} is not a known {key[:-1]}.",
                                    f"Known {key}: {', '.join(known)}.")
                picked |= {i for i, a in enumerate(actions) if getattr(a, attr) == v}
        if not picked:
            raise self.fail(path + ("applies_to",), "selects no action.",
                            "List actions, issues or groups, or write 'applies_to: all'.")
        return tuple(sorted(picked))

    def _rules(self, top: dict, fmap: dict, actions: tuple[Action, ...]) -> tuple[Rule, ...]:
        raw = self.mapping(top.get("policies", {}) or {}, ("policies",), POLICY_STAGES)
        out: list[Rule] = []
        names: set[tuple[str, str]] = set()
        for stage in POLICY_STAGES:
            for i, spec in enumerate(self.seq(raw.get(stage, []) or [], ("policies", stage))):
                path = ("policies", stage, i)
                spec = self.mapping(spec, path, ("name", "description", "exclude_if", "applies_to"))
                name = self.ident(self.get(spec, "name", path), path + ("name",))
                if (stage, name) in names:
                    raise self.fail(path + ("name",), f"rule name {name!r} is used twice in {stage}.")
                names.add((stage, name))
                desc = self.string(self.get(spec, "description", path), path + ("description",))
                expr = compile_expression(" ".join(str(self.get(spec, "exclude_if", path)).split()),
                                          {**fmap, "channel": "category"}, self.where(path + ("exclude_if",)))
                self._no_missing(expr, fmap, path + ("exclude_if",))
                out.append(Rule(stage, name, desc, expr, self._scope(spec, path, actions)))
        return tuple(out)

    def _no_missing(self, expr: Expression, fmap: dict, path: tuple) -> None:
        """A rule or weight must not read a feature that may be missing: a comparison with a
        missing value is neither true nor false, and the engine would have to guess."""
        for name in expr.fields:
            if name in fmap and fmap[name].missing:
                raise self.fail(path, f"{name!r} may be missing (missing: allowed), and a rule cannot decide "
                                "on a missing value.", f"Let only the models read {name!r}, or write missing: "
                                "refused for it and fill it in for every customer.")

    def _contact(self, top: dict, channels: tuple[Channel, ...]):
        raw = self.mapping(top.get("contact_policies", {}) or {}, ("contact_policies",),
                           ("max_contacts", "suppression", "never_offer_held_products"))
        limits = []
        cids = [c.id for c in channels]
        for cid, spec in (self.mapping(raw.get("max_contacts", {}) or {}, ("contact_policies", "max_contacts"))).items():
            path = ("contact_policies", "max_contacts", cid)
            if cid not in cids:
                raise self.fail(path, f"{cid!r} is not a declared channel.", f"Declared channels: {', '.join(cids)}.")
            spec = self.mapping(spec, path, ("max", "period_days"))
            limits.append(ContactLimit(cid, self.integer(self.get(spec, "max", path), path + ("max",), 1),
                                       self.integer(self.get(spec, "period_days", path), path + ("period_days",), 1)))
        sup = None
        if raw.get("suppression") is not None:
            path = ("contact_policies", "suppression")
            spec = self.mapping(raw["suppression"], path, ("after_rejections", "within_days", "suppress_days"))
            sup = Suppression(
                self.integer(self.get(spec, "after_rejections", path), path + ("after_rejections",), 1),
                self.integer(self.get(spec, "within_days", path), path + ("within_days",), 1),
                self.integer(self.get(spec, "suppress_days", path), path + ("suppress_days",), 1),
            )
        never = raw.get("never_offer_held_products", True)
        if not isinstance(never, bool):
            raise self.fail(("contact_policies", "never_offer_held_products"), f"expected true or false, got {never!r}.")
        return tuple(limits), sup, never

    def _context_weights(self, top: dict, fmap: dict, actions: tuple[Action, ...]) -> tuple[ContextWeight, ...]:
        out = []
        for i, spec in enumerate(self.seq(top.get("context_weights", []) or [], ("context_weights",))):
            path = ("context_weights", i)
            spec = self.mapping(spec, path, ("name", "description", "when", "applies_to", "weight"))
            name = self.ident(self.get(spec, "name", path), path + ("name",))
            desc = self.string(self.get(spec, "description", path), path + ("description",))
            expr = compile_expression(" ".join(str(self.get(spec, "when", path)).split()),
                                      {**fmap, "channel": "category"}, self.where(path + ("when",)))
            self._no_missing(expr, fmap, path + ("when",))
            weight = self.number(self.get(spec, "weight", path), path + ("weight",), 0, lo_open=True)
            out.append(ContextWeight(name, desc, expr, self._scope(spec, path, actions), weight))
        return tuple(out)

    def _levers(self, top: dict, actions: tuple[Action, ...]) -> np.ndarray:
        raw = self.mapping(top.get("levers", {}) or {}, ("levers",), ("issues", "groups", "actions"))
        lev = np.ones(len(actions))
        for key, attr in (("issues", "issue"), ("groups", "group"), ("actions", "id")):
            known = {getattr(a, attr) for a in actions}
            for k, v in self.mapping(raw.get(key, {}) or {}, ("levers", key)).items():
                if k not in known:
                    raise self.fail(("levers", key, k), f"{k!r} is not a known {key[:-1]}.",
                                    f"Known {key}: {', '.join(sorted(known))}.")
                w = self.number(v, ("levers", key, k), 0, lo_open=True)
                for i, a in enumerate(actions):
                    if getattr(a, attr) == k:
                        lev[i] *= w
        return lev

    def _thresholds(self, top: dict, channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
        raw = self.mapping(self.get(top, "no_action", ()), ("no_action",), ("threshold", "per_channel"))
        base = self.number(self.get(raw, "threshold", ("no_action",)), ("no_action", "threshold"), 0)
        per = self.mapping(raw.get("per_channel", {}) or {}, ("no_action", "per_channel"))
        cids = [c.id for c in channels]
        for cid in per:
            if cid not in cids:
                raise self.fail(("no_action", "per_channel", cid), f"{cid!r} is not a declared channel.",
                                f"Declared channels: {', '.join(cids)}.")
        return tuple(
            Channel(c.id, c.direction, c.top_n, c.label,
                    self.number(per[c.id], ("no_action", "per_channel", c.id), 0) if c.id in per else base)
            for c in channels
        )
