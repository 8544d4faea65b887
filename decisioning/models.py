"""Propensity models: one scikit-learn classifier per action, versioned and safely stored.

Each action's model predicts the probability that a customer accepts the action, from the
strategy's model features plus the channel.  Models are persisted with `skops`_ (which
refuses to load types it was not told to trust, unlike pickle) and versioned by the SHA-256
of their fitted state, so the decision log can pin exactly which model scored a decision.

.. _skops: https://skops.readthedocs.io/
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import io
import json
import os
import pickle
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:
    from sklearn.ensemble import HistGradientBoostingClassifier

from decisioning import stability
from decisioning.errors import KlartextError, NotFittedError
from decisioning.inputs import Requests
from decisioning.strategy import Strategy

#: Every type a model artifact may contain, by exact name (no prefixes): the scikit-learn
#: estimators, transformers and tree internals Klartext supports, the numpy and builtin types
#: they are stored with (functions: :data:`ALLOWED_MODEL_FUNCTIONS`).  A name
#: outside this list is refused before anything is constructed.  Extend it for your own
#: estimator classes with ``$KLARTEXT_MODEL_TYPES`` (comma-separated names of scikit-learn
#: estimator classes, see :func:`allowed_model_types`).
ALLOWED_MODEL_TYPES = frozenset({
    # containers and scalars skops stores estimators' attributes with
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int", "builtins.float",
    "builtins.bool", "builtins.slice", "builtins.NoneType",
    # numpy arrays, dtypes and random generators
    "numpy.ndarray", "numpy.dtype", "numpy.random._generator.Generator", "numpy.random.mtrand.RandomState",
    "numpy.random._pcg64.PCG64", "numpy.random._mt19937.MT19937",
    "numpy.bool", "numpy.bool_", "numpy.int8", "numpy.int16", "numpy.int32", "numpy.int64", "numpy.uint8",
    "numpy.uint16", "numpy.uint32", "numpy.uint64", "numpy.float16", "numpy.float32", "numpy.float64",
    "numpy.str_", "numpy.object_", "numpy.intp", "numpy.uintp",
    # classifiers
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.dummy.DummyClassifier",
    # pipelines and transformers
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.MaxAbsScaler",
    "sklearn.preprocessing._data.RobustScaler",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.impute._base.SimpleImputer",
    # internals of the above (trees, binning, losses, calibration)
    "sklearn.tree._tree.Tree",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.Interval",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.isotonic.IsotonicRegression",
})

#: Functions (skops' FunctionNode / PartialNode) a model may hold: pure numeric ones only.
ALLOWED_MODEL_FUNCTIONS = frozenset({
    "numpy.log1p", "numpy.log", "numpy.log2", "numpy.log10", "numpy.exp", "numpy.expm1", "numpy.sqrt",
    "numpy.square", "numpy.absolute", "numpy.tanh", "numpy.arcsinh", "sklearn.utils.validation.check_array",
    "functools.partial",
})
#: skops node kinds a model may use.  Bound methods, ``operator`` getters, reduce-constructors
#: and raw bytes are never needed by a supported estimator, so they are refused outright.
_ALLOWED_LOADERS = frozenset({
    "DictNode", "ListNode", "TupleNode", "SliceNode", "JsonNode", "TypeNode", "FunctionNode", "PartialNode",
    "ObjectNode", "NdArrayNode", "DTypeNode", "RandomStateNode", "RandomGeneratorNode", "LossNode", "TreeNode",
})
#: Bounds on an artifact before anything in it is read: compressed size, unpacked size (all
#: members together, so a zip bomb is refused unread), members, and schema size.
MAX_ARTIFACT_BYTES = 256 * 1024 * 1024
MAX_ARTIFACT_UNPACKED = 1024 * 1024 * 1024
MAX_ARTIFACT_MEMBERS = 200_000
MAX_SCHEMA_BYTES = 64 * 1024 * 1024
CHANNEL_FEATURE = "channel"


def model_matrix(strategy: Strategy, requests: Requests, features: tuple[str, ...] | None = None) -> np.ndarray:
    """The float64 matrix the models read: one column per model feature, then the channel.

    Booleans become 0/1 and categories their position in the declared value list, so a
    column means the same thing in training, scoring and explanation.
    """
    names = features if features is not None else strategy.model_features + (CHANNEL_FEATURE,)
    out = np.empty((len(requests), len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        if name == CHANNEL_FEATURE:
            out[:, j] = requests.channel
            continue
        f = strategy.feature(name)
        col = requests.features[name]
        if f.type == "category":
            lookup = {v: i for i, v in enumerate(f.values)}
            out[:, j] = np.fromiter((lookup[v] for v in col.tolist()), dtype=np.float64, count=len(col))
        else:
            out[:, j] = col
    return out


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), clipped to ±36.8 (the float64 limits of the logistic function)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-16, 1 - 1e-16)
    return np.log(p) - np.log1p(-p)


_IMPORT_LOCK = threading.Lock()


def imported(module: str):
    """``importlib.import_module(module)``, one thread at a time.  scikit-learn, skops and SHAP
    are imported where first needed (a dashboard page or CLI command that loads no model does
    without their 1.5 s), and two threads importing one package at once can each be handed the
    other's half-initialised modules (CPython accepts that to break an import deadlock)."""
    with _IMPORT_LOCK:
        return importlib.import_module(module)


def default_estimator(params: dict[str, Any] | None = None) -> HistGradientBoostingClassifier:
    """HistGradientBoosting with fixed seed and no early stopping, so training is repeatable."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    kw: dict[str, Any] = {"random_state": 0, "early_stopping": False}
    kw.update(params or {})
    return HistGradientBoostingClassifier(**kw)


@dataclass
class PropensityModel:
    """A fitted classifier for one action, with the facts the registry keeps about it."""

    action_id: str
    estimator: Any
    features: tuple[str, ...]
    training_fingerprint: str
    metrics: dict[str, Any] = field(default_factory=dict)
    algorithm: str = ""
    #: How the estimator reads its input: None = the float model matrix; ``{"kind": "frame",
    #: "categories": {feature: [values]}, "booleans": [features]}`` = a DataFrame with the
    #: original values (category strings, booleans), e.g. a Pipeline with a OneHotEncoder.
    input: dict[str, Any] | None = None

    @cached_property
    def version(self) -> str:
        """SHA-256 (first 16 hex digits) of the fitted estimator's state, its feature list and
        its input spec.

        Computed once per object: a fitted model is never changed in place (refitting makes
        a new :class:`PropensityModel`).
        """
        state = (self.features, self.estimator) if self.input is None else (self.features, self.estimator, self.input)
        h = hashlib.sha256(pickle.dumps(state, protocol=5))
        return h.hexdigest()[:16]

    def frame(self, X: np.ndarray) -> pd.DataFrame:
        """The model matrix as the DataFrame a frame-input estimator reads (original values)."""
        spec = self.input or {}
        cats = spec.get("categories", {})
        bools = set(spec.get("booleans", []))
        cols = {}
        for j, f in enumerate(self.features):
            col = X[:, j]
            if f in cats:
                values = np.asarray(cats[f], dtype=object)
                cols[f] = values[col.astype(np.int64)]
            elif f in bools:
                cols[f] = col.astype(bool)
            else:
                cols[f] = col
        return pd.DataFrame(cols)

    def _input(self, X: np.ndarray):
        return X if self.input is None else self.frame(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Probability of acceptance for each row of ``X`` (columns in :attr:`features` order).

        A missing value (NaN, a feature declared ``missing: allowed``) reaches the estimator
        as it is; an estimator that cannot take it is named with the feature, never guessed
        around (no silent imputation), and an estimator that returns NaN is refused too.
        """
        if len(X) == 0:
            return np.empty(0)
        gaps = np.isnan(X).any(axis=0)
        if not gaps.any():
            return self.estimator.predict_proba(self._input(X))[:, 1]
        name = self.features[int(np.flatnonzero(gaps)[0])]
        try:
            p = self.estimator.predict_proba(self._input(X))[:, 1]
        except ValueError as exc:
            raise self._no_missing(name, exc) from None
        if np.isnan(p).any():
            raise self._no_missing(name, "it returned NaN")
        return p

    def _no_missing(self, feature: str, why: Any) -> KlartextError:
        return KlartextError(
            f"The model for action {self.action_id!r} ({self.algorithm or type(self.estimator).__name__}) cannot "
            f"score a missing value of {feature!r}: {why}",
            "Register a model that accepts missing values (HistGradientBoosting, a decision tree or random "
            f"forest, or a Pipeline that imputes them), or write missing: refused for {feature!r} and fill it in.")

    @property
    def log_odds_trees(self) -> bool:
        """Whether the estimator is a gradient-boosted tree ensemble whose raw output is the
        log-odds of acceptance (so TreeSHAP explains it exactly)."""
        from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

        return isinstance(self.estimator, (HistGradientBoostingClassifier, GradientBoostingClassifier)) \
            and len(getattr(self.estimator, "classes_", ())) == 2

    def raw_output(self, X: np.ndarray) -> np.ndarray:
        """The model's output in log-odds: ``decision_function`` of boosted trees, otherwise
        the logit of the predicted probability."""
        if len(X) == 0:
            return np.empty(0)
        if self.log_odds_trees or self.pipeline_trees:
            return np.asarray(self.estimator.decision_function(self._input(X)), dtype=np.float64).ravel()
        p = self.estimator.predict_proba(self._input(X))[:, 1]
        return logit(p)

    @property
    def pipeline_trees(self) -> bool:
        """A scikit-learn Pipeline ending in boosted trees (explained exactly on its encoded
        columns, summed back to the original features)."""
        from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
        from sklearn.pipeline import Pipeline

        est = self.estimator
        return isinstance(est, Pipeline) and isinstance(
            est[-1], (HistGradientBoostingClassifier, GradientBoostingClassifier)) and len(est[-1].classes_) == 2

    def to_bytes(self) -> bytes:
        return imported("skops.io").dumps(self.estimator)

    @classmethod
    def external(cls, strategy: Strategy, action_id: str, estimator: Any, features: tuple[str, ...] | None = None,
                 *, frame: bool | None = None, training_fingerprint: str = "external",
                 metrics: dict[str, Any] | None = None) -> PropensityModel:
        """Wrap a user's fitted scikit-learn classifier (or Pipeline) as ``action_id``'s model.

        ``features`` defaults to the estimator's ``feature_names_in_`` (a Pipeline fitted on a
        DataFrame) or the strategy's model features plus the channel.  ``frame`` (default: when
        the estimator knows feature names) feeds it a DataFrame with the original values.
        The model must score a row built from the strategy, or a clear error says why not.
        """
        if action_id not in strategy.action_ids:
            raise KlartextError(f"Unknown action {action_id!r}.", f"Use one of: {', '.join(strategy.action_ids)}.")
        if not hasattr(estimator, "predict_proba") or len(getattr(estimator, "classes_", ())) != 2:
            raise KlartextError(f"The model for {action_id!r} is not a fitted binary classifier "
                                f"({type(estimator).__name__}).",
                                "Register a fitted scikit-learn classifier with predict_proba and two classes.")
        names = getattr(estimator, "feature_names_in_", None)
        feats = tuple(features) if features else tuple(names) if names is not None else \
            strategy.model_features + (CHANNEL_FEATURE,)
        known = {f.name for f in strategy.features} | {CHANNEL_FEATURE}
        unknown = [f for f in feats if f not in known]
        if unknown:
            raise KlartextError(f"The model for {action_id!r} reads {unknown[0]!r}, which strategy "
                                f"{strategy.name!r} does not declare.",
                                "Declare it under 'features' in the strategy or fit the model on declared features.")
        use_frame = (names is not None) if frame is None else frame
        spec = None
        if use_frame:
            cats = {f.name: list(f.values) for f in strategy.features if f.type == "category" and f.name in feats}
            if CHANNEL_FEATURE in feats:
                cats[CHANNEL_FEATURE] = list(strategy.channel_ids)
            spec = {"kind": "frame", "categories": cats,
                    "booleans": [f.name for f in strategy.features if f.type == "boolean" and f.name in feats]}
        m = cls(action_id, estimator, feats, training_fingerprint, metrics or {}, type(estimator).__name__, spec)
        probe = np.zeros((1, len(feats)))
        try:
            p = m.predict(probe)
        except Exception as exc:  # any failure here is the user's model not fitting the strategy
            raise KlartextError(f"The model for {action_id!r} cannot score a row of strategy {strategy.name!r}: "
                                f"{type(exc).__name__}: {exc}",
                                "Fit it on the strategy's features (names and types as declared).") from exc
        if not (0 <= p[0] <= 1):
            raise KlartextError(f"The model for {action_id!r} returned {p[0]!r}, not a probability.",
                                "Register a classifier whose predict_proba returns probabilities.")
        for j, f in enumerate(feats):  # each feature that may be missing, left out alone
            if f != CHANNEL_FEATURE and strategy.feature(f).missing:
                gap = probe.copy()
                gap[0, j] = np.nan
                m.predict(gap)  # raises, naming the feature, if the estimator cannot take it
        return m

    @classmethod
    def from_bytes(cls, blob: bytes, action_id: str, features: tuple[str, ...], fingerprint: str,
                   metrics: dict[str, Any], algorithm: str, version: str | None = None,
                   input: dict[str, Any] | None = None) -> PropensityModel:
        """A model from its skops artifact.  With ``version`` (the registry's), the artifact
        is only deserialised when the model is first used: a replay of one decision then
        loads just the models it scores."""
        if version is not None:
            return StoredModel(blob, action_id, features, fingerprint, metrics, algorithm, version, input)
        return cls(action_id, load_artifact(blob, action_id), features, fingerprint, metrics, algorithm, input)


_LOAD_LOCK = threading.Lock()


def allowed_model_types() -> frozenset[str]:
    """:data:`ALLOWED_MODEL_TYPES` plus the classes named in ``$KLARTEXT_MODEL_TYPES``.

    The variable is the operator's decision, never a model file's: each name must be an
    importable scikit-learn estimator class (a subclass of ``sklearn.base.BaseEstimator``),
    e.g. ``KLARTEXT_MODEL_TYPES=sklearn.naive_bayes.GaussianNB``; anything else is refused with
    its name.
    """
    raw = os.environ.get("KLARTEXT_MODEL_TYPES", "").strip()
    if not raw:
        return ALLOWED_MODEL_TYPES
    return ALLOWED_MODEL_TYPES | _extra_types(raw)


@functools.lru_cache(maxsize=8)
def _extra_types(raw: str) -> frozenset[str]:
    from sklearn.base import BaseEstimator

    out = set()
    for name in (x.strip() for x in raw.split(",")):
        if not name:
            continue
        module, _, cls = name.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), cls) if module else None
        except (ImportError, AttributeError, ValueError):
            obj = None
        if not (isinstance(obj, type) and issubclass(obj, BaseEstimator)):
            raise KlartextError(f"KLARTEXT_MODEL_TYPES names {name!r}, which is not a scikit-learn estimator class.",
                                "Name estimator classes by module and class, e.g. sklearn.naive_bayes.GaussianNB "
                                "(the name `skops.io.get_untrusted_types` prints).")
        out.add(name)
    return frozenset(out)


def artifact_types(blob: bytes, action_id: str) -> list[str]:
    """The type and function names a skops artifact would construct, checked against the
    allow-lists without constructing anything.

    Raises :class:`KlartextError` naming the first refused name (or the bound that was
    exceeded); returns the names, for skops' own ``trusted`` argument.
    """
    def refuse(what: str) -> KlartextError:
        return KlartextError(f"The stored model for action {action_id!r} {what}; it was not loaded.",
                             "Klartext loads only the scikit-learn types it supports (ALLOWED_MODEL_TYPES); "
                             "save a supported estimator with skops.io.dump, or allow your own estimator class "
                             "with $KLARTEXT_MODEL_TYPES.")

    if len(blob) > MAX_ARTIFACT_BYTES:
        raise refuse(f"is {len(blob):,} bytes, more than the {MAX_ARTIFACT_BYTES:,} allowed")
    try:
        z = zipfile.ZipFile(io.BytesIO(blob))
        members = z.infolist()
        if len(members) > MAX_ARTIFACT_MEMBERS:
            raise refuse(f"has {len(members):,} members, more than the {MAX_ARTIFACT_MEMBERS:,} allowed")
        unpacked = sum(m.file_size for m in members)
        if unpacked > MAX_ARTIFACT_UNPACKED:
            raise refuse(f"unpacks to {unpacked:,} bytes, more than the {MAX_ARTIFACT_UNPACKED:,} allowed")
        info = z.getinfo("schema.json")
        if info.file_size > MAX_SCHEMA_BYTES:
            raise refuse(f"has a schema of {info.file_size:,} bytes, more than the {MAX_SCHEMA_BYTES:,} allowed")
        schema = json.loads(z.read(info))
    except KlartextError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError, EOFError, OSError) as exc:
        raise refuse(f"is not a readable skops file ({type(exc).__name__})") from None
    allowed = allowed_model_types()
    names: set[str] = set()
    stack: list[Any] = [schema]
    while stack:  # iterative: a deeply nested file cannot exhaust the stack
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if "__loader__" in node:
            loader, module, cls = node.get("__loader__"), node.get("__module__"), node.get("__class__")
            if not all(isinstance(x, str) for x in (loader, module, cls)) or "." in cls:
                raise refuse("has a malformed entry")
            name = f"{module}.{cls}"
            if loader not in _ALLOWED_LOADERS:
                raise refuse(f"contains {name!r} stored as {loader}, which is never loaded")
            ok = name in ALLOWED_MODEL_FUNCTIONS if loader in ("FunctionNode", "PartialNode") else name in allowed
            if not ok:
                raise refuse(f"contains untrusted type {name!r}")
            names.add(name)
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return sorted(names)


def load_artifact(blob: bytes, action_id: str) -> Any:
    """Deserialise a skops artifact whose every type is on the allow-list, then check that
    its trees are well-formed (see :func:`check_structure`).

    One load at a time: numpy reads every array header with ``ast.literal_eval``, and
    CPython 3.11 builds AST objects with a per-interpreter recursion counter, so two threads
    parsing at once can fail with "AST constructor recursion depth mismatch" (gh-106905)."""
    sio = imported("skops.io")
    names = artifact_types(blob, action_id)
    with _LOAD_LOCK:
        for attempt in range(3):
            try:
                est = sio.loads(blob, trusted=names)
                break
            except SystemError as exc:  # that spurious error, raced by a thread we do not own
                if "recursion depth mismatch" not in str(exc) or attempt == 2:
                    raise
    check_structure(est, action_id)
    return est


def check_structure(estimator: Any, action_id: str) -> None:
    """Refuse trees whose node arrays point outside themselves.

    skops checks an object's type, not its content: scikit-learn's tree code follows child
    and feature indices without bounds checks, so a crafted file could read outside an array
    or loop forever the first time it scores.  Every child must come after its parent (which
    rules out cycles) and inside the tree, every split feature must exist.
    """
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    def bad(what: str) -> KlartextError:
        return KlartextError(f"The stored model for action {action_id!r} has a malformed tree ({what}); "
                             "it was not loaded.", "Re-export the fitted model with skops.io.dump.")

    def check(left: np.ndarray, right: np.ndarray, leaf: np.ndarray, feature: np.ndarray, n_features: int) -> None:
        n = len(left)
        idx = np.arange(n)
        inner = ~leaf
        for child, side in ((left, "left"), (right, "right")):
            c = child[inner].astype(np.int64)
            if len(c) and (c.min() <= -1 or c.max() >= n or (c <= idx[inner]).any()):
                raise bad(f"a {side} child outside the tree")
        f = feature[inner].astype(np.int64)
        if len(f) and (f.min() < 0 or f.max() >= n_features):
            raise bad(f"a split on feature {int(f.max() if f.max() >= n_features else f.min())} of {n_features}")

    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(estimator, -1)]
    while stack:
        obj, n_features = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        nf = getattr(obj, "n_features_in_", n_features)
        nf = nf if isinstance(nf, (int, np.integer)) else n_features
        if isinstance(obj, TreePredictor):
            nodes = obj.nodes
            if nodes.ndim != 1 or len(nodes) == 0:
                raise bad("no nodes")
            if nf < 0:
                raise bad("a tree without its ensemble")
            check(nodes["left"], nodes["right"], nodes["is_leaf"].astype(bool), nodes["feature_idx"], int(nf))
            cat = nodes["is_categorical"].astype(bool) & ~nodes["is_leaf"].astype(bool)
            bits = nodes["bitset_idx"][cat].astype(np.int64)
            if len(bits) and (bits.min() < 0 or bits.max() >= min(len(obj.raw_left_cat_bitsets),
                                                                   len(obj.binned_left_cat_bitsets))):
                raise bad("a category set outside the tree")
        elif isinstance(obj, Tree):
            n = obj.node_count
            left, right = obj.children_left, obj.children_right
            if n < 1 or len(left) != n or len(right) != n or obj.value.shape[0] != n:
                raise bad("inconsistent node counts")
            check(left, right, left == -1, obj.feature, int(obj.n_features))
            if ((left == -1) != (right == -1)).any():
                raise bad("a node with one child")
        elif isinstance(obj, dict):
            stack.extend((v, nf) for v in obj.values())
        elif isinstance(obj, (list, tuple)):
            stack.extend((v, nf) for v in obj)
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                stack.extend((v, nf) for v in obj.ravel().tolist())
        elif hasattr(obj, "__dict__"):
            stack.extend((v, nf) for v in vars(obj).values())


class StoredModel(PropensityModel):
    """A registered model whose artifact is deserialised on first use (see ``from_bytes``)."""

    def __init__(self, blob: bytes, action_id: str, features: tuple[str, ...], fingerprint: str,
                 metrics: dict[str, Any], algorithm: str, version: str, input: dict[str, Any] | None = None) -> None:
        self._blob = blob
        self._est = None
        self._lock = threading.Lock()
        self._version = version
        super().__init__(action_id, None, features, fingerprint, metrics, algorithm, input)

    @property
    def estimator(self) -> Any:  # type: ignore[override]
        if self._est is None:
            with self._lock:  # loaded once, even when two threads ask at the same time
                if self._est is None:
                    self._est = load_artifact(self._blob, self.action_id)
        return self._est

    @estimator.setter
    def estimator(self, value: Any) -> None:
        if value is not None:
            self._est = value

    @property
    def version(self) -> str:  # type: ignore[override]
        return self._version

    def to_bytes(self) -> bytes:
        return self._blob


class ModelSet:
    """The propensity models of a strategy, one per action."""

    def __init__(self, models: dict[str, PropensityModel]) -> None:
        self.models = models

    def __getitem__(self, action_id: str) -> PropensityModel:
        try:
            return self.models[action_id]
        except KeyError:
            raise NotFittedError(
                f"No propensity model for action {action_id!r}.",
                "Train models with `klartext demo` or register one for every action of the strategy.",
            ) from None

    def versions(self) -> dict[str, str]:
        return {a: m.version for a, m in sorted(self.models.items())}

    def check_covers(self, strategy: Strategy) -> None:
        missing = [a for a in strategy.action_ids if a not in self.models]
        if missing:
            raise NotFittedError(
                f"No propensity model for action {missing[0]!r} of strategy {strategy.name!r}.",
                "Train models for this strategy (`klartext demo` does it for the demo scenario).",
            )


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """SHA-256 (16 hex digits) of a DataFrame's values and column names, order-sensitive."""
    h = hashlib.sha256()
    h.update("|".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Reliability table: per equal-width probability bin, mean prediction vs observed rate."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append({"bin": b, "n": int(m.sum()), "mean_predicted": float(p[m].mean()),
                        "observed_rate": float(y[m].mean())})
    return out


def expected_calibration_error(y: np.ndarray, p: np.ndarray, cal: list[dict[str, float]] | None = None) -> float:
    """Σ over the bins of :func:`calibration_table` of (share of rows) × |mean predicted − observed|."""
    cal = calibration_table(y, p) if cal is None else cal
    n = len(y)
    return float(sum(c["n"] / n * abs(c["mean_predicted"] - c["observed_rate"]) for c in cal))


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    cal = calibration_table(y, p)
    n = len(y)
    ece = expected_calibration_error(y, p, cal)
    return {
        "n_test": int(n),
        "positive_rate": float(y.mean()),
        "auc": float(roc_auc_score(y, p)) if 0 < y.sum() < n else None,
        "brier": float(brier_score_loss(y, p)),
        "ece": float(ece),
        "calibration": cal,
    }


def population_reference(strategy: Strategy, X: np.ndarray, features: tuple[str, ...],
                         scores: np.ndarray) -> dict[str, Any]:
    """The training population's distribution of every model input and of the score
    (:mod:`decisioning.stability`), kept with the model so drift can be measured against it."""
    out = {}
    for j, name in enumerate(features):
        discrete = name == CHANNEL_FEATURE or strategy.feature(name).type in ("category", "boolean")
        out[name] = stability.bins(X[:, j], discrete)
    out[SCORE] = stability.bins(scores, False)
    return out


#: the score's key in a model's ``reference`` distributions
SCORE = "(score)"


def train_models(
    strategy: Strategy,
    history: pd.DataFrame,
    *,
    test_share: float = 0.2,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ModelSet:
    """Train one classifier per action on simulated or real interaction history.

    Parameters
    ----------
    history : DataFrame
        One row per past offer: ``action_id``, ``channel``, every model feature, and
        ``accepted`` (0/1).
    test_share : float
        Share held out (seeded) for the AUC and calibration recorded in the registry.
    """
    # scikit-learn first: the limit applies only to an OpenMP runtime already loaded (imported inside
    # it, the fits ran on two threads, ten times as long under the application's passive waiting)
    imported("sklearn.ensemble")
    with threadpool_limits(limits=1, user_api="openmp"):
        return _train(strategy, history, test_share, seed, progress)


def _train(strategy: Strategy, history: pd.DataFrame, test_share: float, seed: int,
           progress: Callable[[str], None] | None) -> ModelSet:
    # One OpenMP thread per fit: the models are small, and with the application's passive
    # OpenMP waiting (klartext/__init__.py) two threads took ten times as long (2.4 s instead
    # of 0.24 s for 6,400 rows on 2 cores).
    from sklearn.base import clone

    features = strategy.model_features + (CHANNEL_FEATURE,)
    out: dict[str, PropensityModel] = {}
    rng = np.random.default_rng(seed)
    for action in strategy.actions:
        rows = history[history["action_id"] == action.id]
        if len(rows) < 50 or rows["accepted"].nunique() < 2:
            raise KlartextError(
                f"Not enough history to train a model for action {action.id!r}: {len(rows)} rows, "
                f"{int(rows['accepted'].sum()) if len(rows) else 0} acceptances.",
                "Provide at least 50 past offers of each action with both outcomes.",
            )
        req = Requests.from_frame(strategy, rows.reset_index(drop=True))
        X = model_matrix(strategy, req, features)
        y = rows["accepted"].to_numpy(dtype=np.int64)
        test = rng.random(len(rows)) < test_share
        est = clone(default_estimator(strategy.model_params)).fit(X[~test], y[~test])
        metrics = evaluate(y[test], est.predict_proba(X[test])[:, 1])
        metrics["n_train"] = int((~test).sum())
        metrics["reference"] = population_reference(strategy, X[~test], features,
                                                    est.predict_proba(X[~test])[:, 1])
        fp = fingerprint_frame(rows[["channel", *strategy.model_features, "accepted"]])
        out[action.id] = PropensityModel(action.id, est, features, fp, metrics, type(est).__name__)
        if progress:
            progress(action.id)
    return ModelSet(out)

