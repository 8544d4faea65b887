"""Model files are hostile input: nothing in one may run code, read outside its arrays or
exhaust memory (security issue, item 1)."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from click.testing import CliRunner
from numpy.testing._private.utils import runstring
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from decision_log.replay import replay
from decision_log.store import DecisionLog
from decisioning import models as M
from decisioning.errors import KlartextError, LogError
from klartext.cli import main

RNG = np.random.default_rng(3)
XN = RNG.random((300, 3))
Y = (XN[:, 0] + RNG.normal(0, 0.3, 300) > 0.5).astype(int)
HINT = ("Klartext loads only the scikit-learn types it supports (ALLOWED_MODEL_TYPES); save a supported "
        "estimator with skops.io.dump, or allow your own estimator class with $KLARTEXT_MODEL_TYPES.")


def _refused(blob: bytes) -> KlartextError:
    with pytest.raises(KlartextError) as err:
        M.load_artifact(blob, "a1")
    return err.value


def _schema_edit(blob: bytes, edit) -> bytes:
    """The same artifact with its schema.json changed by ``edit(schema)`` (an attacker's tool)."""
    src = zipfile.ZipFile(io.BytesIO(blob))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "schema.json":
                schema = json.loads(data)
                edit(schema)
                data = json.dumps(schema).encode()
            dst.writestr(info.filename, data)
    return out.getvalue()


def _func_node(schema) -> dict:
    """The FunctionTransformer's ``func`` entry of a pipeline's first step."""
    return schema["content"]["content"]["steps"]["content"][0]["content"][1]["content"]["content"]["func"]


def _gadget() -> bytes:
    """The reported gadget: a 'pipeline' of scikit-learn and ``numpy.*`` parts whose
    FunctionTransformer calls ``numpy.testing._private.utils.runstring`` (which is exec)."""
    pipe = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(XN, Y)
    pipe.steps[0][1].func = functools.partial(runstring, "open('PWNED', 'w')")
    return sio.dumps(pipe)


def test_the_reported_gadget_is_refused_before_anything_is_built():
    err = _refused(_gadget())
    assert err.message == ("The stored model for action 'a1' contains untrusted type "
                           "'numpy.testing._private.utils.runstring'; it was not loaded.")
    assert err.hint == HINT


@pytest.mark.parametrize("module, cls, loader", [
    ("builtins", "exec", "FunctionNode"),
    ("builtins", "eval", "FunctionNode"),
    ("os", "system", "FunctionNode"),
    ("subprocess", "getoutput", "FunctionNode"),
    ("numpy", "load", "FunctionNode"),                       # numpy.* that is not a pure function
    ("numpy.f2py", "compile", "FunctionNode"),
    ("numpy.testing._private.utils", "runstring", "PartialNode"),
    ("sklearn.utils._testing", "assert_run_python_script_without_output", "FunctionNode"),
    ("operator", "methodcaller", "OperatorFuncNode"),
    ("operator", "attrgetter", "OperatorFuncNode"),
    ("sklearn.pipeline", "Pipeline", "MethodNode"),           # a bound method of an allowed class
    ("builtins", "bytes", "BytesNode"),
    ("collections", "OrderedDict", "ConstructorFromReduceNode"),
])
def test_known_skops_gadgets_are_refused_by_name(module, cls, loader):
    def edit(schema):
        node = _func_node(schema)
        node.update({"__module__": module, "__class__": cls, "__loader__": loader})

    blob = _schema_edit(sio.dumps(make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(XN, Y)), edit)
    err = _refused(blob)
    name = f"{module}.{cls}"
    if loader in ("FunctionNode", "PartialNode"):
        assert err.message == f"The stored model for action 'a1' contains untrusted type {name!r}; it was not loaded."
    else:
        assert err.message == (f"The stored model for action 'a1' contains {name!r} stored as {loader}, "
                               "which is never loaded; it was not loaded.")


def test_a_dotted_class_name_cannot_smuggle_a_module():
    def edit(schema):
        _func_node(schema).update({"__module__": "numpy", "__class__": "testing._private.utils.runstring"})

    blob = _schema_edit(sio.dumps(make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(XN, Y)), edit)
    assert _refused(blob).message == "The stored model for action 'a1' has a malformed entry; it was not loaded."


@pytest.mark.parametrize("kind", ["hgb", "gb", "rf", "et", "lr", "pipeline", "calibrated", "log1p"])
def test_every_supported_model_kind_loads_and_predicts_the_same(kind):
    X = pd.DataFrame({"a": XN[:, 0], "b": XN[:, 1], "s": RNG.choice(["x", "y"], len(XN))})
    est, data = {
        "hgb": (HistGradientBoostingClassifier(max_iter=5), XN),
        "gb": (GradientBoostingClassifier(n_estimators=5), XN),
        "rf": (RandomForestClassifier(n_estimators=3, random_state=0), XN),
        "et": (ExtraTreesClassifier(n_estimators=3, random_state=0), XN),
        "lr": (LogisticRegression(), XN),
        "pipeline": (make_pipeline(ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), ["s"])],
                                                     remainder=StandardScaler()),
                                   HistGradientBoostingClassifier(max_iter=5)), X),
        "calibrated": (CalibratedClassifierCV(LogisticRegression()), XN),
        "log1p": (make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()), XN),
    }[kind]
    est.fit(data, Y)
    loaded = M.load_artifact(sio.dumps(est), "a1")
    np.testing.assert_array_equal(loaded.predict_proba(data), est.predict_proba(data))


@pytest.mark.parametrize("field, value, what", [
    ("left", 10_000, "a left child outside the tree"),
    ("right", 0, "a right child outside the tree"),          # a cycle back to the root
    ("feature_idx", 7, "a split on feature 7 of 3"),
])
def test_a_boosted_tree_pointing_outside_itself_is_refused(field, value, what):
    est = HistGradientBoostingClassifier(max_iter=3).fit(XN, Y)
    est._predictors[1][0].nodes[field][0] = value
    err = _refused(sio.dumps(est))
    assert err.message == f"The stored model for action 'a1' has a malformed tree ({what}); it was not loaded."


def test_a_decision_tree_pointing_outside_itself_is_refused():
    est = GradientBoostingClassifier(n_estimators=2).fit(XN, Y)
    tree = est.estimators_[1, 0].tree_
    state = tree.__getstate__()
    state["nodes"]["left_child"][0] = 999
    tree.__setstate__(state)
    err = _refused(sio.dumps(est))
    assert err.message == ("The stored model for action 'a1' has a malformed tree (a left child outside the tree); "
                           "it was not loaded.")


def test_a_zip_bomb_is_refused_unread(monkeypatch):
    monkeypatch.setattr(M, "MAX_ARTIFACT_UNPACKED", 1_000_000)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("schema.json", "{}")
        z.writestr("1.npy", b"\0" * 2_000_000)
    assert _refused(out.getvalue()).message == ("The stored model for action 'a1' unpacks to 2,000,002 bytes, more "
                                                "than the 1,000,000 allowed; it was not loaded.")
    assert _refused(b"not a zip").message == ("The stored model for action 'a1' is not a readable skops file "
                                              "(BadZipFile); it was not loaded.")


def test_deep_nesting_is_refused_not_a_recursion_error():
    deep = "[" * 100_000 + "]" * 100_000
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("schema.json", deep)
    assert "is not a readable skops file" in _refused(out.getvalue()).message


def test_own_estimator_classes_are_allowed_by_name_only(monkeypatch):
    svc = GaussianNB().fit(XN, Y)
    assert _refused(sio.dumps(svc)).message == ("The stored model for action 'a1' contains untrusted type "
                                                "'sklearn.naive_bayes.GaussianNB'; it was not loaded.")
    monkeypatch.setenv("KLARTEXT_MODEL_TYPES", "sklearn.naive_bayes.GaussianNB")
    assert isinstance(M.load_artifact(sio.dumps(svc), "a1"), GaussianNB)
    monkeypatch.setenv("KLARTEXT_MODEL_TYPES", "os.system")
    with pytest.raises(KlartextError) as err:
        M.load_artifact(sio.dumps(svc), "a1")
    assert err.value.message == "KLARTEXT_MODEL_TYPES names 'os.system', which is not a scikit-learn estimator class."


def test_model_register_refuses_the_gadget_and_writes_nothing(tmp_path, tiny_strategy, monkeypatch):
    from tests.conftest import TINY_YAML

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    (tmp_path / "evil.skops").write_bytes(_gadget())
    out = CliRunner().invoke(main, ["model", "register", "--db", "x.duckdb", "--strategy", "tiny.yaml",
                                    "--action", "reactivate_20", "--model", "evil.skops"])
    assert out.exit_code != 0
    assert "contains untrusted type 'numpy.testing._private.utils.runstring'; it was not loaded." in out.output
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "x.duckdb").exists()


def test_a_gadget_planted_in_the_log_is_refused_by_replay(demo_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blob = _gadget()
    with DecisionLog.open(demo_copy) as log:
        did, action, version = log.con.execute(
            "SELECT decision_id, action_id, model_version FROM candidates WHERE propensity IS NOT NULL "
            "LIMIT 1").fetchall()[0]
        # the attacker also updates the registered SHA-256, so only the allow-list stands in the way
        log.con.execute("UPDATE models SET artifact = ?, artifact_sha256 = ? WHERE version = ? AND action_id = ?",
                        [blob, hashlib.sha256(blob).hexdigest(), version, action])
    with DecisionLog.open(demo_copy, read_only=True) as log, pytest.raises(KlartextError) as err:
        replay(log, [did])
    assert "contains untrusted type 'numpy.testing._private.utils.runstring'" in err.value.message
    assert not (tmp_path / "PWNED").exists()


def test_an_artifact_changed_after_registration_is_refused_before_it_is_read(demo_copy):
    with DecisionLog.open(demo_copy) as log:
        did, action, version = log.con.execute(
            "SELECT decision_id, action_id, model_version FROM candidates WHERE propensity IS NOT NULL "
            "LIMIT 1").fetchall()[0]
        other = log.con.execute("SELECT artifact FROM models WHERE action_id <> ? LIMIT 1", [action]).fetchall()[0][0]
        log.con.execute("UPDATE models SET artifact = ? WHERE version = ? AND action_id = ?", [other, version, action])
        sha = log.con.execute("SELECT artifact_sha256 FROM models WHERE version = ? AND action_id = ?",
                              [version, action]).fetchall()[0][0]
    with DecisionLog.open(demo_copy, read_only=True) as log, pytest.raises(LogError) as err:
        replay(log, [did])
    assert err.value.message == (f"The stored artifact of model {version!r} (action {action!r}) does not match its "
                                 f"registered SHA-256 {sha[:16]}…; it was not loaded.")


def test_a_model_built_from_a_row_is_reused_only_for_the_very_same_row(demo_copy):
    # a live replica of a log a service writes is a new log every few seconds: each rebuilt (and
    # deserialised, ~0.1 s a model) the models the replay had already loaded from the same rows
    from decision_log import store

    with DecisionLog.open(demo_copy, read_only=True) as a, DecisionLog.open(demo_copy, read_only=True) as b:
        versions = dict(a.con.execute("SELECT action_id, arg_max(version, created) FROM models GROUP BY 1").fetchall())
        first, again = a.load_models(versions), b.load_models(versions)
        assert all(first[x] is again[x] for x in versions)
        aid = sorted(versions)[0]
        row = a.model_rows({aid: versions[aid]})[aid]
        assert store.model_from_row(aid, row, "x") is first[aid]
        other_features = (row[0], row[1], ["recency_days", *row[2][1:]], *row[3:])
        assert store.model_from_row(aid, other_features, "x") is not first[aid]  # any column differs: built anew
        other_artifact = (row[0], row[1] + b" ", *row[2:-1], None)
        assert store.model_from_row(aid, other_artifact, "x") is not first[aid]


def test_training_runs_on_one_openmp_thread_in_a_fresh_process():
    """The fits run under a limit of one OpenMP thread, which applies only to a runtime already
    loaded: with scikit-learn imported where first needed, it was loaded inside the limit and
    the demo's models trained on two threads, ten times as long under passive waiting."""
    import subprocess
    import sys
    from pathlib import Path

    code = """
from threadpoolctl import threadpool_info
from decisioning import models
def spy(*a, **k):
    threads = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]
    print(threads)
    raise SystemExit(0 if threads and set(threads) == {1} else 1)
models._train = spy
models.train_models(None, None)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stdout + out.stderr
