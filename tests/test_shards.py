"""A sharded log: `klartext archive` seals old decisions into Parquet shards; every reader takes
the file and its shards as one log; `verify` names a deleted, added, reordered or changed shard."""

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from decision_log import queries, shards
from decision_log.replay import replay
from decision_log.store import DecisionLog

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def _cli(*args) -> Ran:
    """A klartext command, run in this process (as the console script runs it)."""
    from click.testing import CliRunner

    from klartext.cli import main

    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return Ran(res.exit_code, res.stdout, res.stderr)


def middle_day(db: Path) -> datetime:
    con = duckdb.connect(str(db), read_only=True)
    try:
        lo, hi = con.execute("SELECT min(ts), max(ts) FROM decisions").fetchall()[0]
    finally:
        con.close()
    mid = lo + (hi - lo) / 2
    return datetime(mid.year, mid.month, mid.day, tzinfo=UTC)


def archived(db: Path, days: tuple[datetime, ...]) -> list[shards.Shard]:
    with DecisionLog.open(db) as log:
        return [log.archive(d) for d in days]


def whole(db: Path) -> dict:
    """What readers see of a log: counts, the funnel, KPIs and the verified head."""
    with DecisionLog.open(db, read_only=True) as log:
        cur = log.con.cursor()
        res = log.verify()
        return {
            "ok": res.ok, "head": res.head_hash, "n": res.n_decisions,
            "decisions": cur.execute("SELECT count(*), min(seq), max(seq), count(DISTINCT seq) FROM decisions"
                                     ).fetchall()[0],
            "candidates": cur.execute("SELECT count(*) FROM candidates").fetchall()[0][0],
            "chain": cur.execute("SELECT count(*) FROM chain").fetchall()[0][0],
            "funnel": queries.funnel(cur, queries.Filters()).to_dict("list"),
            "kpis": queries.kpis(cur, queries.Filters()),
        }


@pytest.fixture
def archived_copy(demo_copy):
    """The demo log with its first half (by day) and then the next quarter archived in two shards."""
    before = whole(demo_copy)
    (first,) = archived(demo_copy, (middle_day(demo_copy),))
    (second,) = archived(demo_copy, (middle_day(demo_copy),))  # the middle of what the file kept
    assert first is not None and second is not None
    return demo_copy, before, (first, second)


def test_archived_log_reads_verifies_and_replays_as_one(archived_copy):
    db, before, (first, second) = archived_copy
    assert first.first_seq == 1 and second.first_seq == first.last_seq + 1 and second.prev == first.head
    after = whole(db)
    kpis, kpis_before = after.pop("kpis"), dict(before).pop("kpis")
    assert after == {k: v for k, v in before.items() if k != "kpis"}  # the figures and the verified head
    assert kpis == pytest.approx(kpis_before, rel=1e-12)  # sums in another order
    with DecisionLog.open(db) as log:  # the file itself keeps only the newer decisions
        left = log.con.execute("SELECT count(*), min(seq) FROM decisions").fetchall()[0]
    assert left == (before["decisions"][0] - second.last_seq, second.last_seq + 1)
    # decisions from both shards and the file replay bit for bit, and explain
    with DecisionLog.open(db, read_only=True) as log:
        ids = [r[0] for r in log.con.execute(
            "SELECT decision_id FROM decisions WHERE seq IN (?, ?, ?, ?) ORDER BY seq",
            [1, first.last_seq, second.first_seq, before["decisions"][2]]).fetchall()]
        results = replay(log, ids)
        assert [r.reproduced for r in results] == [True] * 4, [r.differences for r in results]
        from explain.api import Explainer

        exp = Explainer(log).explain(ids[0])
        assert exp.decision_id == ids[0] and exp.verified


def test_shards_are_plain_parquet_readable_without_klartext(archived_copy):
    db, before, (first, _) = archived_copy
    folder = shards.root_of(str(db)) / first.name
    assert sorted(p.name for p in folder.iterdir()) == ["candidates.parquet", "chain.parquet", "decisions.parquet",
                                                       "outcomes.parquet"]
    dec = pd.read_parquet(folder / "decisions.parquet")
    assert len(dec) == first.decisions and list(dec["seq"]) == list(range(1, first.last_seq + 1))
    assert pq.read_table(folder / "candidates.parquet").num_rows == first.candidates
    plain = duckdb.connect()
    n = plain.execute(f"SELECT count(*) FROM read_parquet('{shards.root_of(str(db))}/*/decisions.parquet')"
                      ).fetchall()[0][0]
    assert n == first.decisions + archived_copy[2][1].decisions
    manifest = json.loads((shards.root_of(str(db)) / "manifest.json").read_text())
    assert [s["name"] for s in manifest["shards"]] == ["000001", "000002"]


def test_decisions_after_an_archive_continue_the_chain(archived_copy, tiny_request):
    db, before, _ = archived_copy
    from klartext.jobs import decide_one

    with DecisionLog.open(db) as log:
        batch, _ = decide_one(log, tiny_request)
        assert log.last_seq() == before["decisions"][2] + 1
    with DecisionLog.open(db) as log:  # and archiving all of it leaves an empty file that goes on
        shard = log.archive(datetime(2100, 1, 1, tzinfo=UTC))
        assert shard.last_seq == before["decisions"][2] + 1
        assert log.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] == 0
        decide_one(log, tiny_request)
    res = DecisionLog.open(db, read_only=True).verify()
    assert res.ok and res.n_decisions == before["n"] + 2, res.problem


@pytest.fixture
def tiny_request():
    return json.loads((ROOT / "examples" / "customer.json").read_text())


def _parquet_edit(path: Path, fn) -> None:
    df = pd.read_parquet(path)
    fn(df)
    table = pq.read_table(path)
    import pyarrow as pa

    pq.write_table(pa.Table.from_pandas(df, schema=table.schema, preserve_index=False), path)


def _swap_dirs(root: Path, a: str, b: str) -> None:
    os.rename(root / a, root / "tmp")
    os.rename(root / b, root / a)
    os.rename(root / "tmp", root / b)


def _swap_manifest(root: Path) -> None:
    m = json.loads((root / "manifest.json").read_text())
    m["shards"].reverse()
    (root / "manifest.json").write_text(json.dumps(m))


TAMPER = {
    "deleted shard": (lambda r: shutil.rmtree(r / "000002"), "shard 000002", "deleted"),
    "deleted shard and its entry": (lambda r: (shutil.rmtree(r / "000002"), _drop_last(r)), "shard 000002",
                                    "deleted"),
    "added shard": (lambda r: shutil.copytree(r / "000002", r / "000003"), "shard 000003", "added"),
    "reordered shards": (lambda r: _swap_dirs(r, "000001", "000002"), "shard 000001", "shards swapped"),
    "reordered manifest": (_swap_manifest, "shard 000002", "reordered"),
    "changed decision row": (
        lambda r: _parquet_edit(r / "000001" / "decisions.parquet",
                                lambda df: df.__setitem__("chosen_action", df["chosen_action"].where(
                                    df.index != 40, "store_card"))),
        "in shard 000001", "changed since it was logged"),
    "changed candidate row": (
        lambda r: _parquet_edit(r / "000002" / "candidates.parquet",
                                lambda df: df.__setitem__("priority", df["priority"].where(df.index != 5, 99.0))),
        "in shard 000002", "changed since it was logged"),
    "deleted decision row": (
        lambda r: _parquet_edit(r / "000001" / "decisions.parquet", lambda df: df.drop(index=10, inplace=True)),
        "in shard 000001", "deleted"),
}


def _drop_last(root: Path) -> None:
    m = json.loads((root / "manifest.json").read_text())
    m["shards"].pop()
    (root / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("case", list(TAMPER))
def test_verify_names_a_changed_shard(archived_copy, case):
    db, before, (first, _) = archived_copy
    change, where, what = TAMPER[case]
    with DecisionLog.open(db, read_only=True) as log:
        row40 = log.con.execute("SELECT decision_id FROM decisions WHERE seq = 41").fetchall()[0][0]
    change(shards.root_of(str(db)))
    out = _cli("verify", "--db", db)
    assert out.returncode == 1, out.stdout + out.stderr
    assert where in out.stdout and what in out.stdout, out.stdout
    if case == "changed decision row":
        assert row40 in out.stdout  # names the decision, not only the shard
    with DecisionLog.open(db, read_only=True, damaged_ok=True) as log:
        assert not log.links().ok or case.startswith("changed")  # the quick check sees every structural change
    if case == "deleted shard":  # every other reader refuses the log by name
        with pytest.raises(Exception, match="Shard 000002 of the log .* is missing its file"):
            DecisionLog.open(db, read_only=True)


def test_an_archive_killed_before_it_committed_is_undone(demo_copy):
    before = whole(demo_copy)
    with DecisionLog.open(demo_copy) as log:  # the shard is written, the removal never commits
        root = log.manifest.root
        root.mkdir()
        shards.write(log.con, root, "000001", 1, 500, shards.integrity.GENESIS)
    assert DecisionLog.open(demo_copy, read_only=True).verify().ok  # a pending shard is not part of the log
    with DecisionLog.open(demo_copy) as log:
        assert log.manifest.shards == []
    assert not shards.pending(root, "000001").exists()
    assert whole(demo_copy)["head"] == before["head"]
    assert archived(demo_copy, (middle_day(demo_copy),))[0].first_seq == 1


def test_an_archive_killed_after_it_committed_is_finished(demo_copy, monkeypatch):
    before = whole(demo_copy)

    def killed(*_):
        raise KeyboardInterrupt

    day = middle_day(demo_copy)
    monkeypatch.setattr(shards, "publish", killed)
    with pytest.raises(KeyboardInterrupt), DecisionLog.open(demo_copy) as log:
        log.archive(day)
    monkeypatch.undo()
    root = shards.root_of(str(demo_copy))
    assert shards.pending(root, "000001").is_dir() and not (root / "manifest.json").exists()
    with DecisionLog.open(demo_copy) as log:  # the next writer puts the sealed shard in place
        assert [s.name for s in log.manifest.shards] == ["000001"]
    after = whole(demo_copy)
    assert after["ok"] and after["head"] == before["head"] and after["n"] == before["n"]


def test_archive_command(demo_copy):
    out = _cli("archive", "--db", str(demo_copy), "--before", "2000-01-01")
    assert out.returncode == 0 and "Nothing to archive" in out.stdout
    out = _cli("archive", "--db", str(demo_copy), "--before", "1 June")
    assert out.returncode != 0 and "'1 June' is not a date" in out.stderr and "180d" in out.stderr
    day = middle_day(demo_copy).date().isoformat()
    out = _cli("archive", "--db", str(demo_copy), "--before", day, "--lang", "de")
    assert out.returncode == 0 and "archiviert" in out.stdout and "000001" in out.stdout, out.stderr
    out = _cli("verify", "--db", str(demo_copy))
    assert out.returncode == 0 and "1 shard(s) intact" in out.stdout
    out = _cli("funnel", "--db", str(demo_copy))
    assert out.returncode == 0 and "2,000 interactions" in out.stdout, out.stdout + out.stderr


def test_a_hostile_manifest_is_refused_with_its_problem(archived_copy):
    db = archived_copy[0]
    path = shards.root_of(str(db)) / "manifest.json"
    for text, problem in (("{", "not valid JSON"), ('{"format": "x", "shards": []}', "not a Klartext shard manifest"),
                          (json.dumps({"format": shards.FORMAT, "shards": [{"name": "../../etc"}]}), "incomplete")):
        path.write_text(text)
        with pytest.raises(Exception) as info:
            DecisionLog.open(db, read_only=True)
        assert problem in str(info.value)
    m = json.loads(json.dumps({"format": shards.FORMAT, "shards": [
        {**{k: 1 for k in ("first_seq", "last_seq", "decisions", "candidates", "outcomes")},
         **{k: "x" for k in ("prev", "head", "outcomes_digest", "created", "link", "first_ts", "last_ts")},
         "name": "../x"}]}))
    path.write_text(json.dumps(m))
    with pytest.raises(Exception) as info:
        DecisionLog.open(db, read_only=True)
    assert "wrong kind" in str(info.value)
    m["shards"][0]["name"] = "000001"
    path.write_text(json.dumps(m))
    with pytest.raises(Exception) as info:
        DecisionLog.open(db, read_only=True)
    assert "wrong kind" in str(info.value)  # times that are not times


# -- purge ------------------------------------------------------------------------------------------


@pytest.fixture
def signing(tmp_path):
    from decision_log import checkpoints

    priv, pub = checkpoints.keygen(tmp_path / "signing.key")
    return priv, pub




def test_purge_leaves_a_signed_record_that_verify_tells_from_a_deletion(archived_copy, signing):
    from decision_log import checkpoints

    db, before, (first, second) = archived_copy
    with DecisionLog.open(db, read_only=True) as log:
        cut = log.con.execute("SELECT max(ts) FROM decisions WHERE seq = ?", [first.last_seq]).fetchall()[0][0]
        kept_ids = [r[0] for r in log.con.execute("SELECT decision_id FROM decisions WHERE seq > ? ORDER BY seq",
                                                  [first.last_seq]).fetchall()]
    day = (cut + pd.Timedelta(days=1)).date().isoformat()
    out = _cli("purge", "--db", str(db), "--before", day, "--key", str(signing[0]), "--by", "dpo", "--reason",
               "retention rule R-7", "--yes")
    assert out.returncode == 2 and "younger than six months" in out.stderr and "Art. 19" in out.stderr
    with DecisionLog.open(db) as log:  # nothing was purged by the refusal
        assert log.manifest.live == log.manifest.shards
    with DecisionLog.open(db) as log:
        record = log.purge(datetime.fromisoformat(day).replace(tzinfo=UTC), checkpoints.load_private(signing[0]),
                           "dpo", "retention rule R-7", allow_under_six_months=True)
    assert [s["name"] for s in record["shards"]] == ["000001"] and record["decisions"] == first.decisions
    assert not (shards.root_of(str(db)) / "000001").exists()
    out = _cli("verify", "--db", str(db))
    assert out.returncode == 0, out.stdout
    assert f"{first.decisions:,} decisions (positions 1 to {first.last_seq:,}) were purged" in out.stdout
    assert "by dpo" in out.stdout and "retention rule R-7" in out.stdout
    with DecisionLog.open(db, read_only=True) as log:  # every reader sees the rest
        assert [r[0] for r in log.con.execute("SELECT decision_id FROM decisions ORDER BY seq").fetchall()] == kept_ids
        assert replay(log, kept_ids[:3])[0].reproduced
        assert shards.purge_signature_problem(record, checkpoints.load_public(signing[1])) is None
    # an attacker who deletes the next shard and marks it "purged" in the manifest is named
    root = shards.root_of(str(db))
    m = json.loads((root / "manifest.json").read_text())
    m["shards"][1]["purged"] = "purge:1"
    (root / "manifest.json").write_text(json.dumps(m))
    shutil.rmtree(root / "000002")
    out = _cli("verify", "--db", str(db))
    assert out.returncode == 1 and "shard 000002 is marked purged" in out.stdout, out.stdout


def test_a_forged_purge_record_is_named(archived_copy, signing):
    from decision_log import checkpoints

    db, _, (first, _) = archived_copy
    with DecisionLog.open(db) as log:
        log.purge(datetime(2100, 1, 1, tzinfo=UTC), checkpoints.load_private(signing[0]), "dpo", "test",
                  allow_under_six_months=True)
    con = duckdb.connect(str(db))
    value = json.loads(con.execute("SELECT value FROM meta WHERE key = 'purge:1'").fetchall()[0][0])
    value["by"] = "someone else"
    con.execute("UPDATE meta SET value = ? WHERE key = 'purge:1'", [json.dumps(value)])
    con.close()
    out = _cli("verify", "--db", str(db))
    assert out.returncode == 1 and ("signature does not verify" in out.stdout or "meta" in out.stdout), out.stdout


def test_a_purge_killed_after_its_record_was_sealed_is_finished(archived_copy, signing, monkeypatch):
    from decision_log import checkpoints

    db, _, (first, _) = archived_copy
    real = shards.finish_purges

    def killed(*a, **k):
        raise KeyboardInterrupt

    with DecisionLog.open(db, read_only=True) as log:
        day = log.con.execute("SELECT max(ts) FROM decisions WHERE seq = ?", [first.last_seq]).fetchall()[0][0]
    with pytest.raises(KeyboardInterrupt), DecisionLog.open(db) as log:
        monkeypatch.setattr(shards, "finish_purges", killed)  # killed right after the record committed
        log.purge(day + pd.Timedelta(seconds=1), checkpoints.load_private(signing[0]), "dpo", "t",
                  allow_under_six_months=True)
    monkeypatch.setattr(shards, "finish_purges", real)
    assert (shards.root_of(str(db)) / "000001").exists()  # the record is sealed, the files are still there
    with DecisionLog.open(db) as log:  # the next writer finishes it
        assert log.manifest.shards[0].purged == "purge:1"
    assert not (shards.root_of(str(db)) / "000001").exists()
    assert DecisionLog.open(db, read_only=True).verify().ok


def test_a_reader_beside_a_service_sees_the_shards_too(archived_copy):
    """While `klartext serve` holds the file, readers read its live replica — and the shards."""
    from decision_log import live

    db, before, _ = archived_copy
    log = DecisionLog.open(db)
    rep = live.Replicator(log, interval_s=3600)
    try:
        live.wait_for_replica(db, 60)
        with DecisionLog.open_live(db) as reader:  # what a reader in another process opens (the file is held)
            assert reader.replica is not None
            assert reader.con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] == before["decisions"][0]
            res = reader.verify()
            assert res.ok and res.head_hash == before["head"], res.problem
    finally:
        rep.close()
        log.close()


def test_the_dashboard_reads_a_log_directory_with_shards(archived_copy, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    db, before, _ = archived_copy
    logdir = tmp_path / "logdir"
    logdir.mkdir()
    for suffix in ("", ".key", ".subject-keys", ".shards"):
        os.replace(str(db) + suffix, str(logdir / "log.duckdb") + suffix)
    monkeypatch.setenv("KLARTEXT_DB", str(logdir))
    at = AppTest.from_file(str(ROOT / "pages" / "overview.py"), default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.metric[0].value == f"{before['decisions'][0]:,}"


def test_an_outcome_of_an_archived_decision_is_logged_once(archived_copy):
    """A late outcome (a purchase weeks after the offer) may come after its decision was
    archived: the service and the writer find the decision in the shards, log the outcome in
    the head, and take a retry once; the dashboard counts it.  Before, it got a 404."""
    from fastapi.testclient import TestClient

    from klartext.serve import create_app

    db, before, (first, _second) = archived_copy
    with DecisionLog.open(db, read_only=True) as log:
        # (every demo contact has its outcome: an action of the decision that has none yet)
        did, aid = log.con.execute(
            "SELECT c.decision_id, c.action_id FROM candidates c JOIN decisions d USING (decision_id) "
            "WHERE d.seq <= ? AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.decision_id = c.decision_id "
            "AND o.action_id = c.action_id) ORDER BY ALL LIMIT 1", [first.last_seq]).fetchall()[0]
        n_before = log.con.execute("SELECT count(*) FROM outcomes").fetchall()[0][0]
    body = {"decision_id": did, "action_id": aid, "outcome": "accepted", "revenue": 80.0, "margin": 21.5}
    with TestClient(create_app(str(db))) as c:
        first_try = c.post("/outcome", json=body)
        retry = c.post("/outcome", json=body)
        other = c.post("/outcome", json={**body, "margin": 1.0})
        unknown = c.post("/outcome", json={**body, "decision_id": "01NOTADECISION0000000000000"})
    assert first_try.status_code == 200 and first_try.json()["logged"] == 1, first_try.text
    assert retry.status_code == 200 and retry.json()["duplicate"], retry.text
    assert other.status_code == 409 and unknown.status_code == 404
    with DecisionLog.open(db, read_only=True) as log:
        assert log.con.execute("SELECT count(*) FROM outcomes").fetchall()[0][0] == n_before + 1
        assert log.con.execute("SELECT margin FROM outcomes WHERE decision_id = ? AND action_id = ?",
                               [did, aid]).fetchall() == [(21.5,)]
        res = log.verify()
    assert res.ok, res.problem


def _setting_bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "KB": 1e3, "MB": 1e6,
                            "GB": 1e9, "TB": 1e12, "bytes": 1}[unit]


def test_archiving_keeps_duckdbs_memory_bounded(demo_copy, monkeypatch):
    """Archiving 1.75M decisions of a 2M demo log peaked at 20.5 GB: DuckDB took its default
    buffer (80% of the machine's memory) for the copy's sort and join.  Archive copies and
    deletes under a 1 GB limit (it spills beside the file: 1.6 GB peak, no slower) and gives
    the setting back."""
    seen = []
    real = shards.write

    def spy(con, *a, **k):
        seen.append(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
        return real(con, *a, **k)

    monkeypatch.setattr(shards, "write", spy)
    day = middle_day(demo_copy)
    with DecisionLog.open(demo_copy) as log:
        default = log.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        assert log.archive(day) is not None
        assert log.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == default
    assert seen and all(_setting_bytes(x) <= 2**30 for x in seen), seen
    assert _setting_bytes(default) > 2**30
    assert DecisionLog.open(demo_copy, read_only=True).verify().ok


def test_a_reader_whose_open_waited_for_a_seal_reads_the_shards_it_published(archived_copy):
    """A reader reads the manifest, then waits for the head while a writer seals decisions
    into a new shard and deletes them from the file (a worker file's rotation, an archive):
    once it has the head it reads the manifest again, so those decisions are not missed."""
    db, before, _ = archived_copy
    stale = shards.Manifest.load(shards.root_of(str(db)))  # what the reader read before it waited
    with DecisionLog.open(db) as log:  # the writer it waited for
        assert log.archive(datetime(2100, 1, 1, tzinfo=UTC)) is not None
    con = shards.reader(str(db), stale)
    try:
        n, lo, hi = con.execute("SELECT count(*), min(seq), max(seq) FROM decisions").fetchall()[0]
    finally:
        con.close()
    assert (n, lo, hi) == (before["decisions"][0], 1, before["decisions"][2])
    assert len(stale.shards) == 3
