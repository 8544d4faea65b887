"""The service's journal: a decided group is durable once it is here, before DuckDB has it.

A DuckDB transaction costs about 3 ms however few its rows (three insert statements and the
commit), which with 8 clients in lock step is the larger part of every request.  So the
service's writer (:class:`decision_log.writer.Writer` with ``journal``) numbers and chains a
group, appends its three tables (decisions, candidates, chain — the rows exactly as they
will be inserted, pseudonymised and sealed) to ``<log file>.journal`` as one frame,
``fdatasync``-s the file (0.2 ms here) and only then answers.  A loading thread inserts what
was journaled into the log's file behind the answers, several groups per transaction, and
everything the service does with its own log afterwards (outcomes, the decision's record,
contact history, summaries) waits for that load.

When a writer opens the file again (a restart after a crash, ``klartext serve``, the sealing
of a worker's file) :func:`recover` loads the frames the file does not have yet — every
acknowledged decision — and empties the journal.  A frame cut short by the crash was never
acknowledged and is dropped; a frame that does not continue the file's chain, or whose
checksum is wrong before the last one, stops the open with the journal named.

Frame: ``KLJ1`` · body length (8 bytes, little-endian) · SHA-256 of the body · body; the
body is a JSON header (length-prefixed: the chain head before and after the frame, the
number of decisions) and the three tables as Arrow IPC streams (each length-prefixed).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import threading
from pathlib import Path

import duckdb
import pyarrow as pa

from decision_log import integrity
from decision_log.rows import Chained
from decision_log.schema import INSERT_CHAINED, execute_over
from decisioning.errors import LogError

MAGIC = b"KLJ1"
_HEAD = struct.Struct("<4sQ32s")
_LEN = struct.Struct("<Q")
TABLES = ("_k_dec", "_k_cand", "_k_chain")
#: The journal is emptied once everything in it is in the file and it has grown past this.
TRUNCATE_AT = 4 << 20


def path_of(log_file: str | Path) -> Path:
    return Path(f"{log_file}.journal")


def _ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def frame(c: Chained) -> bytes:
    """One group as a journal frame."""
    header = json.dumps({"prev": list(c.prev), "head": list(c.head), "n": c.n}).encode()
    parts = [_LEN.pack(len(header)), header]
    for name in TABLES:
        data = _ipc(c.tables[name])
        parts += [_LEN.pack(len(data)), data]
    body = b"".join(parts)
    return _HEAD.pack(MAGIC, len(body), hashlib.sha256(body).digest()) + body


class Journal:
    """The append side, owned by one writer (see the module docstring)."""

    def __init__(self, log_file: str | Path) -> None:
        self.path = path_of(log_file)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()
        self.size = os.fstat(self._fd).st_size
        self.last: int | None = None  #: the last journaled decision's seq

    def append(self, c: Chained) -> None:
        """Write the group's frame and make it durable (fdatasync); raises if it is not."""
        data = frame(c)
        with self._lock:
            written = os.write(self._fd, data)
            if written != len(data):  # (a full disk): the partial frame is dropped by recover()
                raise OSError(f"only {written} of {len(data)} bytes written")
            os.fdatasync(self._fd)
            self.size += written
            self.last = c.head[0]

    def loaded(self, seq: int) -> None:
        """Everything up to decision ``seq`` is in the log's file: empty the journal if nothing
        after it was journaled and it has grown past :data:`TRUNCATE_AT` (a crash before the
        truncation is durable leaves frames that :func:`recover` skips: the file has them)."""
        with self._lock:
            if self.size >= TRUNCATE_AT and self.last == seq:
                try:
                    os.ftruncate(self._fd, 0)
                    self.size = 0
                except OSError:  # it stays as it is: the next open skips what the file has
                    pass

    def close(self, remove: bool) -> None:
        os.close(self._fd)
        if remove:
            self.path.unlink(missing_ok=True)


def read(path: Path) -> list[tuple[dict, dict[str, pa.Table]]]:
    """The journal's whole frames in order; a last frame cut short or torn mid-write (never
    acknowledged) is left out."""
    data = path.read_bytes()
    frames, pos = [], 0
    while pos < len(data):
        where = f"{path} at byte {pos:,}"
        if len(data) - pos < _HEAD.size:  # a frame's header cut short
            break
        magic, length, digest = _HEAD.unpack_from(data, pos)
        if magic != MAGIC:
            raise LogError(f"The journal {where} holds no frame (it was overwritten or is not a Klartext journal).",
                           "Move the journal aside to examine it; the log's file itself is intact, but the "
                           "decisions in the journal are not in it.")
        body = data[pos + _HEAD.size: pos + _HEAD.size + length]
        if len(body) < length:  # a frame cut short
            break
        if hashlib.sha256(body).digest() != digest:
            if pos + _HEAD.size + length == len(data):  # the last frame, torn mid-write
                break
            raise LogError(f"The journal {where} holds a frame that does not match its checksum, followed by others.",
                           "It was changed after it was written. Move the journal aside to examine it; "
                           "the log's file itself is intact.")
        frames.append(_parse(body, where))
        pos += _HEAD.size + length
    return frames


def _parse(body: bytes, where: str) -> tuple[dict, dict[str, pa.Table]]:
    try:
        (n,) = _LEN.unpack_from(body, 0)
        header = json.loads(body[8:8 + n])
        pos, tables = 8 + n, {}
        for name in TABLES:
            (k,) = _LEN.unpack_from(body, pos)
            tables[name] = pa.ipc.open_stream(body[pos + 8: pos + 8 + k]).read_all()
            pos += 8 + k
        header["prev"], header["head"] = tuple(header["prev"]), tuple(header["head"])
        for at in (header["prev"], header["head"]):
            if len(at) != 2 or type(at[0]) is not int or not isinstance(at[1], str):
                raise ValueError(f"a chain position {list(at)!r} is not (seq, hash)")
        if type(header["n"]) is not int or header["n"] != header["head"][0] - header["prev"][0]:
            raise ValueError(f"n = {header['n']!r} does not match its positions")
    except (ValueError, KeyError, TypeError, struct.error, pa.ArrowException) as exc:
        raise LogError(f"The journal {where} holds a frame that cannot be read ({exc}).",
                       "Move the journal aside to examine it; the log's file itself is intact.") from exc
    return header, tables


def _unloaded(con: duckdb.DuckDBPyConnection, path: Path, base: tuple[int, str]) -> list[tuple[dict, dict[str, pa.Table]]]:
    """The journal's frames that the log's file (on ``con``) lacks, checked to continue it
    (``base``: the chain's head where the file holds no decision: the last shard's, or the genesis)."""
    frames = read(path)
    row = con.execute("SELECT seq, chain_hash FROM chain ORDER BY seq DESC LIMIT 1").fetchall()
    head = (int(row[0][0]), row[0][1]) if row else base
    todo = [(h, t) for h, t in frames if h["head"][0] > head[0]]
    for h, _t in todo:
        if tuple(h["prev"]) != head:
            raise LogError(f"The journal {path} does not continue the log's file: a frame follows decision "
                           f"{h['prev'][0]} (chain {str(h['prev'][1])[:12]}…), the file ends at decision {head[0]} "
                           f"(chain {head[1][:12]}…).",
                           "Move the journal aside to examine it; the log's file itself is intact.")
        head = tuple(h["head"])
    return todo


def pending(con: duckdb.DuckDBPyConnection, log_file: str | Path, base: tuple[int, str] = (0, integrity.GENESIS)) -> int:
    """How many journaled decisions the log's file (read on ``con``) lacks: a service that
    stopped before loading them; :func:`recover` loads them."""
    path = path_of(log_file)
    return sum(h["n"] for h, _t in _unloaded(con, path, base)) if path.exists() else 0


def recover(con: duckdb.DuckDBPyConnection, log_file: str | Path, base: tuple[int, str] = (0, integrity.GENESIS)) -> int:
    """Load into the log's file (open for writing on ``con``) every journaled group it lacks,
    in one transaction, then remove the journal; returns the number of decisions loaded
    (``base``: see :func:`_unloaded`)."""
    path = path_of(log_file)
    if not path.exists():
        return 0
    todo = _unloaded(con, path, base)
    if todo:
        tables = {k: pa.concat_tables([t[k] for _h, t in todo]) for k in TABLES}
        try:
            execute_over(con, f"BEGIN TRANSACTION; {INSERT_CHAINED}; COMMIT", **tables)
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:  # the statement that failed ended it already
                pass
            raise
    path.unlink()
    return sum(h["n"] for h, _t in todo)
