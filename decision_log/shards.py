"""A sharded log: sealed Parquet shards beside the log's DuckDB file, one manifest over them.

A log outgrows one file in two ways: it keeps years of decisions (the AI Act's Art. 19 asks
for at least six months), and more than one process writes it.  Its decisions then live in
*shards*: ``<log>.shards/000001/``, ``000002/``, … each holding plain Parquet files —
``decisions``, ``candidates``, ``chain`` and ``outcomes`` — that DuckDB, Spark, polars and
pandas read without Klartext.  The log's DuckDB file (the *head*) keeps what is still being
written, the strategies, models, explanations and every sealed table.

**One verifiable head.**  Each shard carries its own stretch of the hash chain: its ``chain``
rows link every decision to the one before, starting from the chain hash ``prev`` that the
manifest names (the previous decision's, where decisions were archived out of one chain, or
the genesis, where shards were written side by side).  ``<log>.shards/manifest.json`` lists
the shards in order with their sequence ranges, row counts, chain heads and a digest of their
outcome rows, and chains the entries: each entry's ``link`` is the SHA-256 of the previous
link and the entry's fields.  Every link is also written, sealed, into the head's ``meta``
table (``shard:<name>``), so the seal chain — and the signed checkpoints that anchor it —
commit to the whole list: a shard that is deleted, added, moved or changed is named by
:func:`verify`.  The head's own decisions continue the chain after the last shard.

**Reading.**  :func:`reader` opens the head read-only inside an in-memory DuckDB and lays a
view over every table, the four shard tables as the union of the head's rows and the shards'
Parquet files.  Every reader of the log — dashboard, ``verify``, ``replay``, ``explain``,
``report``, queries — runs its SQL on that connection unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from decision_log import integrity, live, schema, seals, summaries
from decision_log.subjects import fsync_dir as _fsync_dir
from decisioning.errors import LogError

FORMAT = "klartext-shards/1"
MANIFEST = "manifest.json"
#: The tables a shard holds, in the order they are written.
TABLES = ("decisions", "candidates", "chain", "outcomes")
#: The head's ``meta`` key that seals a shard's manifest link.
META_PREFIX = "shard:"
_NAME = re.compile(r"^[0-9]{6}$")
#: Service workers' open files (``klartext serve --workers N``): ``<log>.shards/.workers/worker-K.duckdb``.
WORKERS = ".workers"
_WORKER = re.compile(r"^worker-([0-9]{1,4})\.duckdb$")
#: The head's ``meta`` key that says a worker file (by the id in its own ``meta``) is sealed into shards.
WORKER_META = "worker-file:"
#: The head's ``meta`` key by which the supervisor issues a worker file's id before the worker
#: starts: a file whose id was never issued is not a worker's, and is not sealed.
ISSUED_META = "worker-issued:"
_WORKER_ALIAS = "klartext_worker_"  #: how :func:`reader` names an attached worker replica
_MAX_MANIFEST = 64 << 20  #: a manifest larger than this is refused unread (hostile input)
#: How long a reader waits for a worker's freshest replica while the worker refreshes it.
WORKER_REPLICA_WAIT_S = 0.5


def root_of(head: str) -> Path:
    """Where the shards of the log whose DuckDB file is ``head`` live."""
    return Path(head + ".shards")


def worker_path(root: Path, k: int) -> Path:
    """The open file of service worker ``k`` (its decisions until they are sealed into a shard)."""
    return root / WORKERS / f"worker-{int(k)}.duckdb"


def worker_files(root: Path) -> list[Path]:
    """The workers' files beside the shards, by worker number."""
    d = root / WORKERS
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _WORKER.match(p.name))]
    return [p for _, p in sorted(found)]


def remove_worker_file(f: Path) -> None:
    """A worker's file, its WAL, its journal and its live replicas (once sealed, or empty)."""
    for p in (f, Path(str(f) + ".wal"), Path(str(f) + ".journal")):
        p.unlink(missing_ok=True)
    shutil.rmtree(live.live_dir(f), ignore_errors=True)


def live_workers(root: Path) -> list[tuple[str, list[live.ReplicaInfo]]]:
    """The workers of a running service that keep live replicas, with them (freshest first)."""
    out = []
    for p in worker_files(root):
        found = live.replicas(p)
        if found:
            out.append((p.stem, found))
    return out


def head_path(path: str) -> str:
    """The log's DuckDB file for a path a user gave: a directory (``--db LOGDIR``) keeps it
    as ``LOGDIR/log.duckdb``; any other path is the file itself."""
    return str(Path(path) / "log.duckdb") if Path(path).is_dir() else path


@dataclass(frozen=True)
class Shard:
    """One entry of the manifest (see the module docstring)."""

    name: str
    first_seq: int
    last_seq: int
    decisions: int
    candidates: int
    outcomes: int
    prev: str  #: the chain hash its first decision links to
    head: str  #: the chain hash of its last decision
    outcomes_digest: str  #: :func:`decision_log.seals.write_digest` of its outcome rows
    first_ts: str  #: when its oldest decision was made (ISO 8601, UTC)
    last_ts: str  #: when its newest decision was made
    created: str
    link: str = ""
    #: The sealed purge record (``purge:<n>`` in the log's meta) that deleted its files, if one did.
    purged: str | None = None

    def body(self) -> list:
        """What the link commits to: everything that can be read back from the files (not
        ``created``), so that a shard sealed by a run that was killed before it saved the
        manifest can be put back in (:func:`recover`)."""
        return [self.name, self.first_seq, self.last_seq, self.decisions, self.candidates, self.outcomes,
                self.prev, self.head, self.outcomes_digest, self.first_ts, self.last_ts]

    def file(self, root: Path, table: str) -> Path:
        return root / self.name / f"{table}.parquet"


def link(prev_link: str, shard: Shard) -> str:
    """The manifest link of ``shard`` after the entry whose link is ``prev_link``."""
    return hashlib.sha256(json.dumps([prev_link, *shard.body()], separators=(",", ":")).encode()).hexdigest()


@dataclass
class Manifest:
    """The ordered list of a log's shards (``<log>.shards/manifest.json``)."""

    root: Path
    shards: list[Shard] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path) -> Manifest:
        """The manifest at ``root`` (empty when there is none).  A manifest that is not one
        Klartext wrote is refused with what is wrong with it, not half-read."""
        path = root / MANIFEST
        if not path.exists():
            return cls(root)
        where = f"The shard manifest {path}"
        fix = "Restore it from your backup; `klartext verify` names what else changed."
        if path.stat().st_size > _MAX_MANIFEST:
            raise LogError(f"{where} is {path.stat().st_size:,} bytes, more than a manifest can be.", fix)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LogError(f"{where} is not valid JSON: {exc}.", fix) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("shards"), list):
            raise LogError(f"{where} is not a Klartext shard manifest (format {FORMAT!r} with a list of shards).", fix)
        shards = []
        for i, e in enumerate(data["shards"]):
            try:
                s = Shard(**{k: e[k] for k in Shard.__dataclass_fields__ if k != "purged"}, purged=e.get("purged"))
            except (TypeError, KeyError) as exc:
                raise LogError(f"{where}: entry {i + 1} is incomplete ({exc}).", fix) from exc
            ints = (s.first_seq, s.last_seq, s.decisions, s.candidates, s.outcomes)
            texts = (s.name, s.prev, s.head, s.outcomes_digest, s.first_ts, s.last_ts, s.created, s.link)
            if not all(type(v) is int and v >= 0 for v in ints) or not all(isinstance(v, str) for v in texts) \
                    or not _NAME.match(s.name) or not (s.purged is None or isinstance(s.purged, str)):
                raise LogError(f"{where}: entry {i + 1} has a value of the wrong kind ({json.dumps(e)[:200]}).", fix)
            try:
                datetime.fromisoformat(s.first_ts), datetime.fromisoformat(s.last_ts)
            except ValueError:
                raise LogError(f"{where}: entry {i + 1} has a value of the wrong kind (its times are not ISO 8601: "
                               f"{s.first_ts[:40]!r}, {s.last_ts[:40]!r}).", fix) from None
            shards.append(s)
        return cls(root, shards)

    def save(self) -> None:
        """Write the manifest atomically (a temporary file, flushed, then renamed)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / (MANIFEST + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"format": FORMAT, "shards": [asdict(s) for s in self.shards]}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / MANIFEST)
        _fsync_dir(self.root)

    @property
    def tail(self) -> tuple[int, str]:
        """(seq, chain hash) of the last shard's last decision; (0, genesis) without shards."""
        return (self.shards[-1].last_seq, self.shards[-1].head) if self.shards else (0, integrity.GENESIS)

    @property
    def head_link(self) -> str:
        return self.shards[-1].link if self.shards else integrity.GENESIS

    def next_name(self) -> str:
        return f"{max((int(s.name) for s in self.shards), default=0) + 1:06d}"

    @property
    def live(self) -> list[Shard]:
        """The shards whose decisions are kept (not purged)."""
        return [s for s in self.shards if s.purged is None]

    def files(self, table: str, since: datetime | None = None) -> list[str]:
        """The Parquet files of ``table`` of the kept shards (``since``: of those with a
        decision made at or after it)."""
        return [str(s.file(self.root, table)) for s in self.live
                if since is None or datetime.fromisoformat(s.last_ts) >= since]

    def total(self) -> int:
        """How many decisions the kept shards hold."""
        return sum(s.decisions for s in self.live)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def history_source(manifest: Manifest | None, since: datetime) -> str:
    """``decisions`` as the contact history of a writer reads it: its file's decisions and those
    of every shard with a decision since ``since`` (a Spark batch run's, archived ones are older
    than any contact window).  Columns: decision_id, ts, customer, channel, chosen_action."""
    cols = "decision_id, ts, customer, channel, chosen_action"
    files = manifest.files("decisions", since) if manifest is not None else []
    if not files:
        return "decisions"
    return f"(SELECT {cols} FROM decisions UNION ALL SELECT {cols} FROM {_parquet(files)})"


def _parquet(files: list[str]) -> str:
    return "read_parquet([" + ", ".join(_sql_text(f) for f in files) + "])"


#: The outcome columns a digest reads (the sealed columns of the head's outcomes, see :mod:`seals`).
OUTCOME_COLUMNS = seals.TABLES["outcomes"]


def outcomes_digest(con: duckdb.DuckDBPyConnection, source: str) -> tuple[int, str]:
    """(rows, digest) of the outcome rows ``source`` (a table or a read_parquet(...)) holds."""
    rows = con.execute(f"SELECT {', '.join(OUTCOME_COLUMNS)} FROM {source}").fetchall()
    return len(rows), seals.write_digest([seals.row_digest(r) for r in rows])


def pending(root: Path, name: str) -> Path:
    """Where shard ``name`` is written before the log has sealed it (hidden from readers)."""
    return root / f".pending-{name}"


def prepared(root: Path, name: str) -> Path:
    """Where a rotation writes shard ``name`` before it holds the head (a writable open's
    :func:`recover` removes pending shards, not these); :meth:`DecisionLog.seal_workers` moves
    it to :func:`pending` under the hold."""
    return root / f".prepared-{name}"


def write(con: duckdb.DuckDBPyConnection, root: Path, name: str, lo: int, hi: int, prev: str,
          with_outcomes: bool | str = False, into: Path | None = None) -> Shard:
    """Copy the decisions ``lo`` … ``hi`` (by seq) of the log ``con`` reads, with their
    candidate and chain rows (and, ``with_outcomes``, their outcomes; ``"all"``: every outcome
    the file holds, as a service worker's, whose outcomes may be of other workers' decisions), as Parquet into
    :func:`pending` ``(root, name)`` (or ``into``), flushed to disk: :func:`commit` seals it
    and moves it into place.  Returns its entry (without its manifest link)."""
    if (root / name).exists():
        raise LogError(f"A shard {root / name} exists already.", "Run `klartext verify` on the log: the manifest "
                                                                  "does not list a shard that is on disk.")
    tmp = into or pending(root, name)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    ids = f"SELECT decision_id FROM decisions WHERE seq BETWEEN {int(lo)} AND {int(hi)}"
    queries = {
        "decisions": f"SELECT * FROM decisions WHERE seq BETWEEN {int(lo)} AND {int(hi)} ORDER BY seq",
        "candidates": f"SELECT c.* FROM candidates c JOIN decisions d USING (decision_id) "
                      f"WHERE d.seq BETWEEN {int(lo)} AND {int(hi)} ORDER BY d.seq, c.ordinal",
        "chain": f"SELECT * FROM chain WHERE seq BETWEEN {int(lo)} AND {int(hi)} ORDER BY seq",
        "outcomes": (f"SELECT {', '.join(OUTCOME_COLUMNS).replace('epoch_us(ts)', 'ts')} FROM outcomes "
                     + ("" if with_outcomes == "all" else f"WHERE decision_id IN ({ids}) ")
                     + "ORDER BY decision_id, action_id"
                     if with_outcomes else
                     f"SELECT {', '.join(OUTCOME_COLUMNS).replace('epoch_us(ts)', 'ts')} FROM outcomes LIMIT 0"),
    }
    for table, query in queries.items():
        con.execute(f"COPY ({query}) TO {_sql_text(str(tmp / f'{table}.parquet'))} "
                    "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)")
    shard = describe(tmp, name, prev)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    return shard


def describe(directory: Path, name: str, prev: str) -> Shard:
    """The manifest entry of the shard files in ``directory`` (read back from the files)."""
    c = duckdb.connect()
    try:
        f = {t: _parquet([str(directory / f"{t}.parquet")]) for t in TABLES}
        lo, hi, n, t0, t1 = c.execute(f"SELECT min(seq), max(seq), count(*), min(ts), max(ts) FROM {f['decisions']}"
                                      ).fetchall()[0]
        head = c.execute(f"SELECT chain_hash FROM {f['chain']} ORDER BY seq DESC LIMIT 1").fetchall()
        n_cand = c.execute(f"SELECT count(*) FROM {f['candidates']}").fetchall()[0][0]
        n_out, digest = outcomes_digest(c, f["outcomes"])
    finally:
        c.close()
    if not n:
        raise LogError(f"The shard {directory} holds no decision.", "A shard is written for one decision at least.")
    return Shard(name, int(lo), int(hi), int(n), int(n_cand), n_out, prev, head[0][0] if head else prev, digest,
                 _iso(t0), _iso(t1), datetime.now(UTC).isoformat(timespec="seconds"))


def _iso(ts) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


# -- reading -------------------------------------------------------------------------------

# -- purging -------------------------------------------------------------------------------

PURGE_FORMAT = "klartext-purge/1"
PURGE_PREFIX = "purge:"


def purge_records(head_con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    """The purge records the log sealed into its ``meta``, by key (``purge:1``, …)."""
    out = {}
    for k, v in head_con.execute("SELECT key, value FROM meta WHERE starts_with(key, ?)", [PURGE_PREFIX]).fetchall():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = {"format": "unreadable"}
    return out


def _canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_purge(payload: dict, key) -> dict:
    """The purge record ``payload`` signed with the Ed25519 ``key`` (a checkpoint key from
    ``klartext keygen``): whoever holds the public key can tell it from a forged one."""
    import base64

    from cryptography.hazmat.primitives import serialization

    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    payload = {**payload, "format": PURGE_FORMAT, "public_key": base64.b64encode(raw).decode()}
    return {**payload, "signature": base64.b64encode(key.sign(_canonical(payload))).decode()}


def purge_signature_problem(record: dict, public=None) -> str | None:
    """What is wrong with a purge record's signature (None: it is valid under the key it names,
    and under ``public`` where given)."""
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(record, dict) or record.get("format") != PURGE_FORMAT or "signature" not in record:
        return "it is not a Klartext purge record"
    payload = {k: v for k, v in record.items() if k != "signature"}
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(record["public_key"]))
        key.verify(base64.b64decode(record["signature"]), _canonical(payload))
        if public is not None:
            public.verify(base64.b64decode(record["signature"]), _canonical(payload))
    except (InvalidSignature, ValueError, TypeError, KeyError):
        return "its signature does not verify (the record was changed)"
    return None


def missing(manifest: Manifest) -> list[str]:
    """The files of listed shards that are not on disk."""
    return [f for t in TABLES for f in manifest.files(t) if not Path(f).is_file()]


def reader(head: str, manifest: Manifest, wait_s: float = 0.0, damaged_ok: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that reads the whole log: the head file attached
    read-only as ``h`` and a view per table, the shard tables over the head and every shard.

    A listed shard whose files are gone is refused by name (``damaged_ok``: read what is
    there, for ``verify`` to say what is wrong).

    Once the head is attached no writer can seal shards, so the manifest is read again then:
    where a writer published shards while the attach waited for the head (a rotation of a
    running worker's file, whose file is gone now), ``manifest`` takes the new list — the
    reader never misses the decisions that moved."""
    con = duckdb.connect()
    try:
        schema.while_locked(lambda: con.execute(f"ATTACH {_sql_text(head)} AS h (READ_ONLY)"), wait_s)
        if manifest.root is not None:
            fresh = Manifest.load(manifest.root)
            if [x.link for x in fresh.shards] != [x.link for x in manifest.shards]:
                manifest.shards = fresh.shards
        gone = missing(manifest)
        if gone and not damaged_ok:
            name = Path(gone[0]).parent.name
            raise LogError(f"Shard {name} of the log {head!r} is missing its file {gone[0]}.",
                           f"Restore {Path(gone[0]).parent} from your backup; `klartext verify --db {head}` says "
                           "what else changed.")
    except BaseException:
        con.close()
        raise
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = 'h' AND schema_name = 'main'").fetchall()]
    # where a stretch of the chain starts, and the hash its first decision links to
    con.execute("CREATE TABLE shard_starts (seq BIGINT, prev VARCHAR, shard VARCHAR)")
    con.executemany("INSERT INTO shard_starts VALUES (?, ?, ?)",
                    [(s.first_seq, s.prev, s.name) for s in manifest.shards] + [(manifest.tail[0] + 1, manifest.tail[1],
                                                                                   None)])
    workers = _attach_workers(con, manifest)
    for t in tables:
        files = [f for f in manifest.files(t) if f not in gone]
        parts = [f"SELECT * FROM h.main.{t}"] + ([f"SELECT * FROM {_parquet(files)}"] if t in TABLES and files else [])
        if t in ("decisions", "chain"):
            parts += [f"SELECT * REPLACE (seq + {off} AS seq) FROM {alias}.main.{t}" for alias, off in workers]
        elif t in ("candidates", "outcomes"):
            parts += [f"SELECT * FROM {alias}.main.{t}" for alias, _ in workers]
        elif t == "strategies" and workers:  # a version a worker followed from a proposal: once
            every = " UNION ALL BY NAME ".join(parts + [f"SELECT * FROM {a}.main.{t}" for a, _ in workers])
            parts = [f"SELECT * EXCLUDE (k_n) FROM (SELECT *, row_number() OVER (PARTITION BY version ORDER BY "
                     f"first_used) AS k_n FROM ({every})) WHERE k_n = 1"]
        con.execute(f"CREATE VIEW {t} AS " + " UNION ALL BY NAME ".join(parts))
    if "outcomes" in tables:  # what the dashboard's summaries count, with where each outcome is kept
        parts = ["SELECT *, NULL::BIGINT AS k_upto FROM h.main.outcomes",
                 *_shard_outcomes(manifest, gone),
                 *[f"SELECT *, {summaries.NOT_YET}::BIGINT AS k_upto FROM {alias}.main.outcomes" for alias, _ in workers]]
        con.execute(f"CREATE VIEW {summaries.READER_OUTCOMES} AS " + " UNION ALL BY NAME ".join(parts))
    return con


def _shard_outcomes(manifest: Manifest, gone: list[str] | tuple = ()) -> list[str]:
    """SELECTs of the outcome rows the kept shards hold, each with its shard's last position
    as ``k_upto`` (see :class:`decision_log.summaries.Rows`)."""
    out = []
    for s in manifest.live:
        f = str(s.file(manifest.root, "outcomes"))
        if s.outcomes and f not in gone:
            out.append(f"SELECT *, {int(s.last_seq)}::BIGINT AS k_upto FROM {_parquet([f])}")
    return out


def summary_rows(manifest: Manifest | None) -> summaries.Rows:
    """The rows of the whole log as its head's writer reads them for the summaries: the
    file's own tables and every kept shard's Parquet files."""
    if manifest is None or not manifest.live:
        return summaries.Rows()
    union = {t: f"(SELECT * FROM {t} UNION ALL BY NAME SELECT * FROM {_parquet(manifest.files(t))})"
             for t in ("decisions", "candidates")}
    outcomes = " UNION ALL BY NAME ".join(["SELECT *, NULL::BIGINT AS k_upto FROM outcomes", *_shard_outcomes(manifest)])
    return summaries.Rows(union["decisions"], union["candidates"], f"({outcomes})")


def _attach_workers(con: duckdb.DuckDBPyConnection, manifest: Manifest) -> list[tuple[str, int]]:
    """Attach the freshest live replica of each running service worker (read-only), and say
    where its decisions go in the log: after the shards and the head's own decisions, worker
    by worker (where sealing them will put them; until then a live decision's position may
    move, its id does not).  Each worker's file starts a chain of its own."""
    if manifest.root is None or not (manifest.root / WORKERS).is_dir():
        return []
    base = max(manifest.tail[0], con.execute("SELECT coalesce(max(seq), 0) FROM h.main.decisions").fetchall()[0][0])
    out = []
    for f in worker_files(manifest.root):
        alias = f"{_WORKER_ALIAS}{len(out)}"
        # the freshest replica; one being refreshed is locked for a moment: wait for it (the
        # other may be older than what the dashboard keyed its caches by), then the other
        if live.open_replica(f, wait_s=WORKER_REPLICA_WAIT_S, connect=lambda p, a=alias: con.execute(
                f"ATTACH {_sql_text(p)} AS {a} (READ_ONLY)")) is None:
            continue
        name = f.stem
        n, lo = con.execute(f"SELECT count(*), coalesce(min(seq), 1) FROM {alias}.main.decisions").fetchall()[0]
        if n:
            con.execute("INSERT INTO shard_starts VALUES (?, ?, ?)", [base + 1, integrity.GENESIS, name])
        out.append((alias, int(base - (lo - 1))))
        base += n
    return out


def attached_workers(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The aliases under which :func:`reader` attached running workers' replicas."""
    return [r[0] for r in con.execute(
        "SELECT database_name FROM duckdb_databases() WHERE starts_with(database_name, ?) ORDER BY 1",
        [_WORKER_ALIAS]).fetchall()]


def worker_cursor(con: duckdb.DuckDBPyConnection, alias: str) -> duckdb.DuckDBPyConnection:
    """A cursor whose tables are an attached worker replica's own."""
    cur = con.cursor()
    cur.execute(f"USE {alias}")
    return cur


def previous_hash(con: duckdb.DuckDBPyConnection, seq: int) -> str:
    """The chain hash decision ``seq`` links to: the one before it, or — where a shard starts
    a chain of its own (written side by side by Spark) — the shard's starting hash."""
    if schema.has_table(con, "shard_starts"):
        row = con.execute("SELECT prev FROM shard_starts WHERE seq = ?", [seq]).fetchall()
        if row:
            return row[0][0]
    row = con.execute("SELECT chain_hash FROM chain WHERE seq = ?", [seq - 1]).fetchall()
    return row[0][0] if row else integrity.GENESIS


def fresh_chains(con: duckdb.DuckDBPyConnection, after: int, upto: int) -> list[str]:
    """The shards that start a chain of their own between positions ``after`` (excluded) and
    ``upto``: a chain path from one to the other has to pass through the manifest there."""
    if not schema.has_table(con, "shard_starts"):
        return []
    return [r[0] for r in con.execute(
        "SELECT s.shard FROM shard_starts s LEFT JOIN chain c ON c.seq = s.seq - 1 WHERE s.seq > ? AND s.seq <= ? "
        "AND s.shard IS NOT NULL AND s.prev IS DISTINCT FROM coalesce(c.chain_hash, ?) ORDER BY s.seq",
        [after, upto, integrity.GENESIS]).fetchall()]


def head_cursor(con: duckdb.DuckDBPyConnection, sharded: bool) -> duckdb.DuckDBPyConnection:
    """A cursor whose tables are the head file's own (not the shards')."""
    cur = con.cursor()
    if sharded:
        cur.execute("USE h")
    return cur


def shard_connection(root: Path, shard: Shard) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table of ``shard``."""
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM {_parquet([str(shard.file(root, t))])}")
    return con


# -- verifying -----------------------------------------------------------------------------

def sealed_links(head_con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The manifest links the head sealed into its ``meta`` table, by shard name."""
    rows = head_con.execute("SELECT key, value FROM meta WHERE starts_with(key, ?)", [META_PREFIX]).fetchall()
    return {k[len(META_PREFIX):]: v for k, v in rows}


def check_manifest(manifest: Manifest, sealed: dict[str, str], purges: dict[str, dict] | None = None
                   ) -> str | None:
    """What is wrong with the list of shards (None: it is the one the log sealed, in its
    order, every kept shard's files are there and no others, and every purged shard is named
    by a purge record the log sealed)."""
    purges = purges or {}
    root = manifest.root
    listed = {s.name for s in manifest.shards}
    on_disk = {p.name for p in root.iterdir() if not p.name.startswith(".") and p.name != MANIFEST} \
        if root.exists() else set()
    purged_names = {s.name for s in manifest.shards if s.purged is not None}
    for name in sorted(on_disk - listed):
        if name in sealed:
            return (f"shard {name} is on disk and was sealed by the log, but the manifest no longer lists it (its "
                    "entry was removed from the manifest)")
        return f"shard {name} is on disk but neither the manifest nor the log lists it (it was added outside Klartext)"
    prev_link, expect_seq = integrity.GENESIS, None
    for i, s in enumerate(manifest.shards):
        if s.name not in sealed:
            return (f"shard {s.name} (position {i + 1} in the manifest) was never sealed by the log (it was added "
                    "outside Klartext)")
        if expect_seq is not None and s.first_seq != expect_seq:
            return (f"shard {s.name} (position {i + 1} in the manifest) starts at decision {s.first_seq}, but the "
                    f"shard before it ends at {expect_seq - 1} (shards were reordered, or one was deleted)")
        want = link(prev_link, s)
        if want != s.link or sealed[s.name] != s.link:
            return (f"shard {s.name} (position {i + 1} in the manifest): its entry does not match the link the log "
                    "sealed for it (the manifest was edited, or its shards reordered)")
        if s.purged is not None:
            record = purges.get(s.purged)
            if record is None or s.link not in {e.get("link") for e in record.get("shards", [])}:
                return (f"shard {s.name} is marked purged ({s.purged}), but the log holds no purge record that names "
                        "it (its decisions were deleted outside Klartext)")
            prev_link, expect_seq = s.link, s.last_seq + 1
            continue
        if not (root / s.name).is_dir():
            return f"shard {s.name} is listed in the manifest but its directory is missing (it was deleted)"
        for t in TABLES:
            if not s.file(root, t).is_file():
                return f"shard {s.name}: its file {t}.parquet is missing (it was deleted)"
        prev_link, expect_seq = s.link, s.last_seq + 1
    for name in sorted(set(sealed) - listed):
        return f"shard {name} was sealed by the log but is missing from the manifest and the disk (it was deleted)"
    for name, record in purges.items():
        named = {e.get("name") for e in record.get("shards", [])}
        if not named <= purged_names:
            return (f"the purge record {name} of {record.get('at')} names shard {sorted(named - purged_names)[0]}, "
                    "which the manifest does not mark purged (the manifest was edited)")
        problem = purge_signature_problem(record)
        if problem:
            return f"the purge record {name}: {problem}"
    return None


def verify_shard(root: Path, s: Shard, progress: Callable[[int, int], None] | None = None
                 ) -> integrity.VerifyResult:
    """Recompute every record hash and chain link of one shard from its rows, and compare its
    counts, chain head and outcome digest with its manifest entry."""
    con = shard_connection(root, s)
    try:
        try:
            lo, hi, n = con.execute("SELECT min(seq), max(seq), count(*) FROM decisions").fetchall()[0]
            if (lo, hi, n) != (s.first_seq, s.last_seq, s.decisions):
                return integrity.VerifyResult(
                    False, 0, integrity.GENESIS,
                    problem=f"it holds decisions {lo} to {hi} ({n:,}), the manifest says {s.first_seq} to "
                            f"{s.last_seq} ({s.decisions:,}) (decisions were deleted or added, or shards swapped)")
            res = integrity.verify(con, progress=progress, genesis=s.prev, rest=False)
            if not res.ok:
                return res
            n_cand = con.execute("SELECT count(*) FROM candidates").fetchall()[0][0]
            n_out, digest = outcomes_digest(con, "outcomes")
        except duckdb.Error as exc:
            return integrity.VerifyResult(False, 0, integrity.GENESIS,
                                          problem=f"its Parquet files cannot be read ({str(exc).splitlines()[0]})")
    finally:
        con.close()
    problem = None
    if res.head_hash != s.head:
        problem = "its chain ends at another hash than the manifest sealed (the chain was rebuilt)"
    elif n_cand != s.candidates:
        problem = f"it holds {n_cand:,} candidate rows, the manifest says {s.candidates:,}"
    elif (n_out, digest) != (s.outcomes, s.outcomes_digest):
        problem = (f"its outcome rows ({n_out:,}) are not the ones sealed ({s.outcomes:,}): an outcome was changed, "
                   "added or deleted")
    if problem:
        return integrity.VerifyResult(False, res.n_decisions, res.head_hash, problem=problem, table="outcomes"
                                      if "outcome" in problem else None)
    return res


def verify(manifest: Manifest, head_con: duckdb.DuckDBPyConnection,
           progress: Callable[[int, int], None] | None = None) -> integrity.VerifyResult | None:
    """The manifest and every shard (None: all intact).  A problem names the shard and, where
    it is in the chain, the decision."""
    problem = check_manifest(manifest, sealed_links(head_con), purge_records(head_con))
    if problem:
        return integrity.VerifyResult(False, manifest.total(), manifest.head_link, problem=problem, table="shards")
    total, done = manifest.total(), 0
    for s in manifest.live:
        res = verify_shard(manifest.root, s, None if progress is None else
                           (lambda d, _n, base=done: progress(base + d, total)))
        if not res.ok:
            res.problem = f"in shard {s.name}: {res.problem}"
            res.n_decisions = total
            return res
        done += s.decisions
    return None


def finish_purges(con: duckdb.DuckDBPyConnection, manifest: Manifest, done: list[str] | None = None) -> None:
    """Mark the shards a sealed purge record names as purged in the manifest and delete their
    files (what a purge killed after its record committed had left)."""
    changed = False
    for key, record in purge_records(con).items():
        links = {e.get("link") for e in record.get("shards", []) if isinstance(e, dict)}
        for i, s in enumerate(manifest.shards):
            if s.link in links and s.purged is None:
                manifest.shards[i] = replace(s, purged=key)
                changed = True
    if changed:
        manifest.save()
        if done is not None:
            done.append("a purge that was killed after its record was sealed: finished")
    for s in manifest.shards:
        if s.purged is not None and (manifest.root / s.name).exists():
            gone = manifest.root / f".purged-{s.name}"
            os.replace(manifest.root / s.name, gone)
            shutil.rmtree(gone, ignore_errors=True)
    for p in manifest.root.glob(".purged-*"):
        shutil.rmtree(p, ignore_errors=True)


def seal_links(con: duckdb.DuckDBPyConnection, manifest: Manifest, new: list[Shard]) -> list[Shard]:
    """Link ``new`` (written by :func:`write`, still pending) after the manifest's shards and
    insert their links, sealed, into the head's ``meta`` — inside the caller's transaction.
    Returns the linked entries; :func:`publish` then moves them into place."""
    linked, prev_link = [], manifest.head_link
    for s in new:
        s = replace(s, link=link(prev_link, s))
        seals.insert_meta(con, META_PREFIX + s.name, s.link, in_transaction=True)
        linked.append(s)
        prev_link = s.link
    return linked


def publish(manifest: Manifest, linked: list[Shard]) -> None:
    """After the links are committed: rename the pending shards into place and save the
    manifest.  Killed in between, :func:`recover` finishes it."""
    for s in linked:
        if pending(manifest.root, s.name).exists():
            os.replace(pending(manifest.root, s.name), manifest.root / s.name)
    _fsync_dir(manifest.root)
    manifest.shards.extend(linked)
    manifest.save()


def recover(con: duckdb.DuckDBPyConnection, manifest: Manifest) -> list[str]:
    """Finish or undo what a killed archive or run left (a writable open calls this).

    A shard the log sealed but the manifest does not list yet is put back in when its files
    give exactly the sealed link (a forged one cannot); a pending shard the log never sealed
    was never part of the log and is removed.  Returns what was done, in words."""
    done = []
    if not manifest.root.exists():
        return done
    sealed = sealed_links(con)
    listed = {s.name for s in manifest.shards}
    for name in sorted(set(sealed) - listed):
        where = manifest.root / name if (manifest.root / name).is_dir() else pending(manifest.root, name)
        if not where.is_dir():
            break
        prev_head = manifest.tail[1]
        found = None
        for prev in dict.fromkeys((prev_head, integrity.GENESIS)):
            try:
                s = describe(where, name, prev)
            except (LogError, duckdb.Error):
                break
            s = replace(s, link=link(manifest.head_link, s))
            if s.link == sealed[name]:
                found = s
                break
        if found is None:
            break
        publish(manifest, [found])
        listed.add(name)
        done.append(f"shard {name} was sealed but not yet in the manifest: put back in")
    finish_purges(con, manifest, done)
    for p in sorted(manifest.root.glob(".pending-*")):
        if p.name[len(".pending-"):] not in sealed:
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"the unfinished shard {p.name} (never sealed) was removed")
    return done
