"""Smaller edges of the security issue (item 10): importer values validated, not coerced;
damaged files give Error/Hint; a log path with a quote replicates."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from decision_log.importers import import_file
from decision_log.store import DecisionLog
from decisioning.errors import InputError
from klartext.cli import main

GENERIC = """decision_id,ts,customer,channel,action_id,stage,rank,selected
D1,2026-01-05 10:00,C1,web,a,ranked,1,true
D1,2026-01-05 10:00,C1,web,b,ranked,2,false
D2,2026-01-05 10:00,C2,web,a,ranked,1.5,true
D3,2026-01-05 10:00,C3,web,a,ranked,1,maybe
"""


def test_a_fractional_rank_and_an_unknown_truth_value_are_bad_rows(tmp_path):
    src = tmp_path / "g.csv"
    src.write_text(GENERIC)
    with DecisionLog.open(tmp_path / "g.duckdb") as log:
        rep = import_file(log, "generic", str(src))
        ids = [r[0] for r in log.con.execute("SELECT decision_id FROM decisions ORDER BY 1").fetchall()]
    assert ids == ["generic:D1"]
    assert [(b.row, b.column, b.value, b.problem) for b in rep.bad_examples] == [
        (3, "rank", "1.5", "not a valid integer"), (4, "selected", "maybe", "not a valid boolean")]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_damaged_file_is_an_error_with_a_hint_and_imports_nothing(tmp_path, suffix):
    bad = tmp_path / f"broken{suffix}"
    bad.write_bytes(b"PAR1\x00\x01garbage" * 10 if suffix == ".parquet" else b'a,b\n"unterminated,\x00\n')
    with DecisionLog.open(tmp_path / "x.duckdb") as log:
        if suffix == ".csv":  # a CSV this broken has no usable columns: named as such
            with pytest.raises(InputError):
                import_file(log, "generic", str(bad))
        else:
            with pytest.raises(InputError) as err:
                import_file(log, "generic", str(bad))
            assert err.value.message.startswith(f"{bad} cannot be read as Parquet: ")
            assert err.value.hint.startswith("Check that it is a complete Parquet export")
        assert log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] == 0


def test_run_with_a_damaged_customer_file_says_so(tmp_path, tiny_strategy):
    from tests.conftest import TINY_YAML

    (tmp_path / "s.yaml").write_text(TINY_YAML)
    bad = tmp_path / "customers.parquet"
    bad.write_bytes(b"PAR1 not really")
    out = CliRunner().invoke(main, ["run", "--db", str(tmp_path / "r.duckdb"), "--strategy", str(tmp_path / "s.yaml"),
                                    "--customers", str(bad)])
    assert out.exit_code == 2
    assert f"Error: {bad} cannot be read as Parquet: " in out.output
    assert "Traceback" not in out.output


def test_a_log_path_with_a_quote_is_replicated(tmp_path):
    import time

    from decision_log.live import Replicator, replicas

    db = tmp_path / "it's.duckdb"
    with DecisionLog.open(db) as log:
        rep = Replicator(log, interval_s=0.05)
        try:
            deadline = time.monotonic() + 20
            while len(replicas(db)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(replicas(db)) == 2  # both replicas of the quoted path were made
        finally:
            rep.close()
