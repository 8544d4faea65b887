"""One definition each (issue #18): the decision record (decision_log/record.py: DDL, typed
SELECTs, the writer's Arrow schema, the hash's column order and the docs follow from it) and
the stages (decisioning/stages.py: the engine's steps, the strategy's policy sections, funnels,
labels and charts follow from it).  Each test adds one in a copy of the code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from decision_log import record, rows, schema
from decision_log.store import DecisionLog

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_show_the_columns_as_defined():
    doc = (ROOT / "docs" / "decision-record.md").read_text()
    for table in record.TABLES:
        assert record.markdown(table) in doc, f"paste the output of `python -m decision_log.record` ({table})"


def test_every_derived_form_follows_the_definition(tmp_path):
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    for stmt in schema.DDL:
        con.execute(stmt)
    for table, cols in record.TABLES.items():
        got = con.execute(f"SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                          f"WHERE table_name = '{table}' ORDER BY ordinal_position").fetchall()
        names = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}
        assert [(c.name, names.get(c.sql, c.sql), "YES" if c.nullable else "NO") for c in cols] == got
    assert schema.DECISION_HASH_COLUMNS == [c.name for c in record.DECISIONS]
    assert schema.CANDIDATE_HASH_COLUMNS == [c.name for c in record.CANDIDATES if c.name != "ordinal"]
    assert rows._CANDIDATE_SCHEMA.names == [c.name for c in record.CANDIDATES]
    assert [ln.split(" AS ")[-1].strip(' ",') for ln in rows._TYPED_IMPORTED.splitlines()[1:-1]] == \
        [c.name for c in record.DECISIONS if c.name != "seq"]


ADD = '''    Column("note", "VARCHAR", pa.string(), True, "-", "A note on the row.", since="9.9"),
)

TABLES = '''

SCRIPT = r'''
import sys
from decision_log import record, schema
from decision_log.store import DecisionLog
from decisioning.engine import Engine
from decisioning.inputs import Requests
from decisioning.models import train_models
from decisioning.strategy import parse_strategy
from tests.conftest import TINY_YAML, tiny_customers, tiny_history

assert "note" not in schema.CANDIDATE_HASH_COLUMNS and "| `note` | VARCHAR | yes | - |" in record.markdown("candidates")
s = parse_strategy(TINY_YAML, source="tiny.yaml")
models = train_models(s, tiny_history(s, 300, seed=0))
with DecisionLog.open(sys.argv[1]) as log:  # a log of the release before: it gets the column
    assert log.verify().ok
    log.register_models(models)
    log.append(Engine(s, models).decide(Requests.from_frame(s, tiny_customers(50, seed=3))), s)
    cols = [r[0] for r in log.con.execute("DESCRIBE candidates").fetchall()]
    assert cols[-1] == "note", cols
    n, notes = log.con.execute("SELECT count(*), count(note) FROM candidates").fetchall()[0]
    assert n == 50 * len(s.actions) + 10 * len(s.actions) and notes == 0
    assert log.verify().ok  # the decisions before the column and after it
    log.con.execute("UPDATE candidates SET stage = 'edited' WHERE rowid = 7")
    assert not log.verify().ok
print("ok")
'''


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    for pkg in ("decision_log", "decisioning", "explain", "analysis", "klartext", "tests"):
        shutil.copytree(ROOT / pkg, copy / pkg, ignore=shutil.ignore_patterns("__pycache__", "data"))
    return copy


def _run(copy: Path, script: str, *args: str) -> None:
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=copy, capture_output=True, text=True,
                         env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin", "HOME": str(copy.parent)})
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_a_column_is_one_line_in_a_copy_of_the_code(tmp_path, tiny_strategy, tiny_models):
    # an existing log made by today's code
    from decisioning.engine import Engine
    from decisioning.inputs import Requests
    from tests.conftest import tiny_customers

    db = tmp_path / "old.duckdb"
    with DecisionLog.open(db) as log:
        log.register_models(tiny_models)
        log.append(Engine(tiny_strategy, tiny_models).decide(Requests.from_frame(tiny_strategy, tiny_customers(10))),
                   tiny_strategy)
    copy = _copy(tmp_path)
    rec = copy / "decision_log" / "record.py"
    text = rec.read_text()
    assert text.count("\n)\n\nTABLES = ") == 1
    rec.write_text(text.replace("\n)\n\nTABLES = ", "\n" + ADD, 1))  # the one line
    _run(copy, SCRIPT, str(db))


STAGE = '''    Stage("consent", "No marketing consent", "Consent", "Policies", "#8e24aa", True, policy=True),
    Stage("applicability",'''

STAGE_SCRIPT = r'''
from decision_log import queries
from decision_log.replay import replay
from decision_log.store import DecisionLog
from decisioning.engine import Engine
from decisioning.inputs import Requests
from decisioning.models import train_models
from decisioning.strategy import parse_strategy
from explain.api import Explainer
from explain.text import explanation_text
from tests.conftest import TINY_YAML, tiny_customers, tiny_history

yaml = TINY_YAML.replace("policies:\n", """policies:
  consent:
    - name: no_consent_over_75
      description: Customers over 75 asked to be contacted by staff only.
      exclude_if: age > 75
      applies_to: all
""", 1)
s = parse_strategy(yaml, source="tiny.yaml")
assert [r.stage for r in s.rules][:2] == ["eligibility", "consent"]
models = train_models(s, tiny_history(s, 300, seed=0))
customers = tiny_customers(300, seed=3)
with DecisionLog.open("consent.duckdb") as log:
    log.register_models(models)
    batch = Engine(s, models).decide(Requests.from_frame(s, customers))
    log.append(batch, s)
    assert log.verify().ok
    old = customers["age"].to_numpy() > 75
    got = log.con.execute("SELECT count(DISTINCT decision_id) FROM candidates WHERE stage = 'consent' "
                          "AND rule = 'no_consent_over_75'").fetchall()[0][0]
    assert got == old.sum() > 0, (got, old.sum())
    fun = queries.funnel(log.con.cursor())
    order = [st for st in fun["stage"] if st in ("eligibility", "consent", "applicability")]
    assert order == ["eligibility", "consent", "applicability"], list(fun["stage"])
    assert "No marketing consent" in set(fun["label"])
    ids = [r[0] for r in log.con.execute("SELECT decision_id FROM decisions ORDER BY seq").fetchall()]
    assert all(r.reproduced for r in replay(log, ids))
    did = log.con.execute("SELECT decision_id FROM candidates WHERE stage = 'consent' LIMIT 1").fetchall()[0][0]
    text = explanation_text(Explainer(log).explain(did))
    assert "consent      consent/no_consent_over_75: age=" in text, text
print("ok")
'''


def _one_edit_then_run(tmp_path: Path, path: str, anchor: str, new: str, script: str) -> None:
    """In a copy of the code, replace the one place ``anchor`` stands in ``path`` by ``new`` (the
    one definition), then run ``script`` against that copy."""
    copy = _copy(tmp_path)
    source = copy / path
    text = source.read_text()
    assert text.count(anchor) == 1
    source.write_text(text.replace(anchor, new, 1))
    _run(copy, script)


def test_a_stage_is_one_line_in_a_copy_of_the_code(tmp_path):
    _one_edit_then_run(tmp_path, "decisioning/stages.py", "    Stage(\"applicability\",", STAGE, STAGE_SCRIPT)


KPI = """    KPI("margin_if_all_accept", "Margin if every offer is accepted", "currency", "Σ net margin of the actions shown.",
        (Term("net_margin", times_p=False),)),
)
KPIS: """

KPI_SCRIPT = r'''
import numpy as np
from analysis import tradeoff as T
from decisioning.engine import Engine
from decisioning.inputs import Requests
from decisioning.models import train_models
from decisioning.strategy import parse_strategy
from tests.conftest import TINY_YAML, tiny_customers, tiny_history

s = parse_strategy(TINY_YAML, source="tiny.yaml")
models = train_models(s, tiny_history(s, 300, seed=0))
batch = Engine(s, models).decide(Requests.from_frame(s, tiny_customers(400, seed=3)))
f = T.from_batch(s, batch)
assert T.KPIS[-1] == "margin_if_all_accept"
sel = f.arbitrate()
want = float((sel * f.tables.net_margin[None, :]).sum())
assert want > 0
assert abs(f.kpis(sel)["margin_if_all_accept"] - want) < 1e-9  # the dense reference
assert abs(T.evaluate(f, [T.Setting()]).kpi_dict(0)["margin_if_all_accept"] - want) < 1e-9  # the compiled pass
sw = T.sweep(f, 5)  # and every view that lists the KPIs
assert "margin_if_all_accept" in sw.columns and abs(sw[sw["current"]]["margin_if_all_accept"].iloc[0] - want) < 1e-9
assert "margin_if_all_accept" in T.what_if(f, T.Setting(margin_weight=0.5))["what_if"]
print("ok")
'''


def test_a_kpi_is_one_entry_in_a_copy_of_the_code(tmp_path):
    _one_edit_then_run(tmp_path, "analysis/kpis.py", ")\nKPIS: ", KPI, KPI_SCRIPT)


def test_the_compiled_hashing_is_private_to_the_hashing_modules():
    """Speed tricks stay behind one interface: only integrity.py and pseudonyms.py import
    decision_log._native (numba, OpenSSL, memmove)."""
    import re

    users = sorted(str(p.relative_to(ROOT)) for pkg in ("decisioning", "decision_log", "explain", "analysis",
                                                       "klartext", "pages") for p in (ROOT / pkg).rglob("*.py")
                   if re.search(r"^\s*(from decision_log import .*\b_native\b|import decision_log\._native|"
                                r"from decision_log\._native import)", p.read_text(), re.M))
    assert users == ["decision_log/integrity.py", "decision_log/pseudonyms.py"]
