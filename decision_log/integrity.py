"""The hash chain that makes the decision log tamper-evident.

Each decision's *record hash* is the SHA-256 of a canonical byte form of its ``decisions``
row followed by all of its ``candidates`` rows in ``action_id`` order.  The *chain hash* of
decision ``k`` is ``SHA-256(chain_hash[k-1] || record_hash[k])``, starting from 64 zeros.
:func:`verify` recomputes both from the stored rows: a changed value changes that
decision's record hash; a deleted, inserted or reordered decision breaks the chain there.
Deleting the newest decisions together with their chain rows is only visible against a
head hash kept elsewhere, which is why :func:`verify` reports the head hash.

Canonical bytes (stable across DuckDB versions, computed vectorised with numpy / Arrow):

* a row's *fixed part* holds, per column in :data:`DECISION_HASH_COLUMNS` /
  :data:`CANDIDATE_HASH_COLUMNS` order, a validity byte (0 for NULL) and then: DOUBLE → its
  8 IEEE-754 bytes, BIGINT / INTEGER / TIMESTAMP (µs) → 8 bytes little-endian, BOOLEAN →
  1 byte (all zeros for NULL); a label column (:data:`LABEL_COLUMNS`: few distinct values,
  e.g. ``stage``) → the 8-byte BLAKE2b digest of its UTF-8 bytes; any other text (VARCHAR,
  JSON, lists joined with U+001F) → the length of its UTF-8 bytes as 4 bytes little-endian;
* a row's *text part* is the UTF-8 bytes of its text columns, concatenated in order;
* a decision's *row digest* is the SHA-256 of its fixed part and text part; its *candidate
  digest* is the SHA-256 of the fixed parts of its candidate rows (in ``action_id`` order)
  followed by their text parts; its record hash is the SHA-256 of the two digests.  (Two
  digests let the writer hash the candidates while the decision is still being logged.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from decision_log import _native, explanations, record, seals, summaries
from decision_log.schema import CANDIDATE_HASH_COLUMNS, DECISION_HASH_COLUMNS, candidate_order, has_column, has_table
from decisioning.errors import LogError
from decisioning.strategy import strategy_version

GENESIS = "0" * 64
#: Text columns with few distinct values, hashed through a per-value digest (cheap for both
#: the writer, which holds them dictionary-encoded, and the verifier).
LABEL_COLUMNS = record.LABEL_COLUMNS
_CHUNK = 50_000


def _plain(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array; an extension type (DuckDB's JSON) as its storage."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if isinstance(arr.type, pa.ExtensionType):
        arr = arr.storage
    return arr


def _is_text(arr: pa.Array) -> bool:
    t = arr.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    return not (pa.types.is_boolean(t) or pa.types.is_floating(t) or pa.types.is_integer(t)
                or pa.types.is_timestamp(t))


_LABEL_CACHE: dict[str, bytes] = {}


def _label_digest(v: str) -> bytes:
    d = _LABEL_CACHE.get(v)
    if d is None:
        if len(_LABEL_CACHE) > 100_000:
            _LABEL_CACHE.clear()
        d = _LABEL_CACHE[v] = hashlib.blake2b(v.encode(), digest_size=8).digest()
    return d


def _valid(arr: pa.Array) -> np.ndarray:
    if not arr.null_count:
        return np.ones(len(arr), np.uint8)
    return np.asarray(pc.is_valid(arr), dtype=np.uint8)


def _codes(arr: pa.DictionaryArray) -> np.ndarray:
    idx = arr.indices
    idx = idx.fill_null(-1) if idx.null_count else idx
    return np.ascontiguousarray(idx.to_numpy(zero_copy_only=False), dtype=np.int32)


def _strings(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets as int64, data bytes) of a string array (no copy of the bytes)."""
    if pa.types.is_dictionary(arr.type) or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())
    n = len(arr)
    _, off_buf, data_buf = arr.buffers()
    wide = pa.types.is_large_string(arr.type)
    offsets = np.frombuffer(off_buf, dtype=np.int64 if wide else np.int32, count=n + 1 + arr.offset)[arr.offset:]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None and len(data_buf) else _native.NO_BYTES
    return offsets.astype(np.int64), data


def _column(name: str, arr: pa.Array) -> tuple:
    """How the compiled assembly reads one column: (kind, width, validity, payload, codes,
    text offsets, text bytes).  A label's payload is its table of value digests (row k for
    dictionary code k), a fixed column's the little-endian bytes of each row."""
    arr = _plain(arr)
    if name in LABEL_COLUMNS:
        if not pa.types.is_dictionary(arr.type):
            arr = pc.dictionary_encode(arr.cast(pa.string()))
        return label_column(_codes(arr), arr.dictionary.cast(pa.string()).to_pylist())
    n = len(arr)
    valid = _valid(arr)
    if _is_text(arr):
        t = arr.type
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            arr = pc.binary_join(arr, "\x1f")
        if pa.types.is_dictionary(arr.type) and not arr.dictionary.null_count:
            codes = _codes(arr)
            offsets, data = _strings(arr.dictionary)
        else:
            if pa.types.is_dictionary(arr.type):
                arr = arr.cast(arr.type.value_type)
            codes = np.arange(n, dtype=np.int32)
            offsets, data = _strings(arr)
        return _native.column(_native.TEXT, 4, valid, codes=codes, offsets=offsets, data=data)
    t = arr.type
    if pa.types.is_boolean(t):
        v = (arr.fill_null(False) if arr.null_count else arr).to_numpy(zero_copy_only=False)
    elif pa.types.is_floating(t):
        v = (arr if t == pa.float64() else arr.cast(pa.float64())).to_numpy(zero_copy_only=False)  # NaN where null
    else:
        if pa.types.is_timestamp(t):
            arr = arr.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        arr = arr if arr.type == pa.int64() else arr.cast(pa.int64())
        v = (arr.fill_null(0) if arr.null_count else arr).to_numpy(zero_copy_only=False)
    return fixed_column(v, valid)


def _parts(table: pa.Table, columns: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fixed part per row, text offsets per row, text bytes) of ``table``."""
    return assemble([_column(c, table.column(c)) for c in columns], table.num_rows)


def assemble(cols: list[tuple], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fixed part per row, text offsets per row, text bytes) of ``n`` rows whose columns,
    in hash order, are described by :func:`label_column`, :func:`text_column` and
    :func:`fixed_column` (or read from an Arrow table by :func:`_parts`)."""
    return _native.assemble(cols, n)


def label_column(codes: np.ndarray, values: list[str] | tuple[str, ...]) -> tuple:
    """A label column given as codes into ``values`` (-1: NULL)."""
    codes = np.ascontiguousarray(codes, dtype=np.int32)
    table = np.frombuffer(b"".join(map(_label_digest, values)) or bytes(8), dtype=np.uint8).reshape(-1, 8)
    return _native.column(_native.LABEL, 8, (codes >= 0).view(np.uint8), table, codes)


def text_column(codes: np.ndarray, values: list[str] | np.ndarray | pa.Array) -> tuple:
    """A text column given as codes into ``values`` (-1: NULL; an Arrow string array without
    nulls is read from its buffers)."""
    codes = np.ascontiguousarray(codes, dtype=np.int32)
    if isinstance(values, pa.Array):
        offsets, data = _strings(values)
        return _native.column(_native.TEXT, 4, (codes >= 0).view(np.uint8), codes=codes, offsets=offsets, data=data)
    encoded = [v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8) if offsets[-1] else _native.NO_BYTES
    return _native.column(_native.TEXT, 4, (codes >= 0).view(np.uint8), codes=codes, offsets=offsets, data=data)


def fixed_column(values: np.ndarray, valid: np.ndarray | None = None) -> tuple:
    """A DOUBLE (float64), BIGINT / INTEGER / TIMESTAMP (int64 µs) or BOOLEAN column."""
    values = np.asarray(values)
    n = len(values)
    v = values.astype(np.uint8) if values.dtype == bool else np.ascontiguousarray(
        values, dtype="<f8" if values.dtype.kind == "f" else "<i8")
    ok = np.ones(n, np.uint8) if valid is None else np.ascontiguousarray(valid, dtype=bool).view(np.uint8)
    return _native.column(_native.FIXED, v.itemsize, ok, v.view(np.uint8).reshape(n, v.itemsize))


def digests(parts: tuple[np.ndarray, np.ndarray, np.ndarray], starts: np.ndarray, ends: np.ndarray) -> list[bytes]:
    """SHA-256 of rows ``starts[i]:ends[i]`` of :func:`assemble`'s parts: their fixed parts, then
    their text parts."""
    fix, off, txt = parts
    width = fix.shape[1]
    flat, mv, off_l = memoryview(fix.reshape(-1)), memoryview(txt), off.tolist()
    out = []
    sha = hashlib.sha256
    for a, b in zip(starts.tolist(), ends.tolist()):
        h = sha(flat[a * width: b * width])
        h.update(mv[off_l[a]:off_l[b]])
        out.append(h.digest())
    return out


def group_digests(cols: list[tuple], n: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """SHA-256 (a ``(groups, 32)`` uint8 array) of each group of rows ``starts[g]:ends[g]`` of
    the ``n`` rows whose columns, in hash order, ``cols`` describes (see :func:`assemble`):
    the same digests as :func:`digests` of :func:`assemble`'s parts."""
    if len(starts) and _native.available():
        return _native.group_digests(cols, starts, ends)
    got = digests(assemble(cols, n), np.asarray(starts), np.asarray(ends))
    return np.frombuffer(b"".join(got), np.uint8).reshape(len(got), 32)


def record_and_chain(row_digests: np.ndarray, candidate_digests: np.ndarray, prev: str) -> tuple[np.ndarray, np.ndarray]:
    """Record hashes and chain hashes (each an ``(n, 64)`` array of ASCII hex digits) of
    decisions with these digests, the chain following ``prev``."""
    n = len(row_digests)
    records, links_ = np.empty((n, 64), np.uint8), np.empty((n, 64), np.uint8)
    if n and _native.available():
        return _native.link(np.hstack([row_digests, candidate_digests]), prev)
    sha = hashlib.sha256
    for i in range(n):
        rec = sha(row_digests[i].tobytes() + candidate_digests[i].tobytes()).hexdigest()
        prev = sha((prev + rec).encode()).hexdigest()
        records[i], links_[i] = np.frombuffer(rec.encode(), np.uint8), np.frombuffer(prev.encode(), np.uint8)
    return records, links_


def hex_list(hexes: np.ndarray) -> list[str]:
    """An ``(n, 64)`` array of ASCII hex digits as a list of str."""
    return np.ascontiguousarray(hexes).view("S64").ravel().astype(str).tolist()


def hex_strings(hexes: np.ndarray) -> pa.Array:
    """An ``(n, 64)`` array of ASCII hex digits as an Arrow string array (no per-row objects)."""
    n = len(hexes)
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * 64).tobytes())
    return pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(np.ascontiguousarray(hexes).tobytes())])


def candidate_digests(candidates: pa.Table, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Candidate digest of each decision, whose rows are ``candidates[starts[i]:ends[i]]``."""
    return group_digests([_column(c, candidates.column(c)) for c in CANDIDATE_HASH_COLUMNS], candidates.num_rows,
                         starts, ends)


def compile_assembly() -> None:
    """Compile (or load from numba's on-disk cache) the assembly and hashing of canonical
    bytes, so the first logged decision of a process does not wait for it."""
    if _native.available():  # its known-answer check compiles the hashing of groups
        record_and_chain(np.zeros((1, 32), np.uint8), np.zeros((1, 32), np.uint8), GENESIS)
    else:  # hashlib's path assembles the bytes first
        _parts(pa.table({"seq": pa.array([1], pa.int64())}), ["seq"])


def _rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(n, dtype=np.int64)
    return starts, starts + 1


def decision_digests(decisions: pa.Table) -> np.ndarray:
    """Row digest of each decision."""
    cols = [_column(c, decisions.column(c)) for c in DECISION_HASH_COLUMNS]
    return group_digests(cols, decisions.num_rows, *_rows(decisions.num_rows))


def decision_tails(decisions: pa.Table) -> list[tuple]:
    """The columns of each decision row after its ``seq`` block (``decisions`` without the
    ``seq`` column), described for the hash: the row digest is that of ``seq`` and these
    (see :func:`digests_with_seq`), so they can be read before the writer assigns the
    sequence numbers."""
    return [_column(c, decisions.column(c)) for c in DECISION_HASH_COLUMNS if c != "seq"]


def digests_with_seq(seq: np.ndarray, tails: list[tuple]) -> np.ndarray:
    """Row digests from the sequence numbers and :func:`decision_tails` (``seq`` is the
    first column of :data:`DECISION_HASH_COLUMNS`)."""
    return group_digests([fixed_column(np.asarray(seq, np.int64)), *tails], len(seq), *_rows(len(seq)))


def combine(row_digests: np.ndarray, candidate_digests: np.ndarray) -> list[str]:
    """Record hashes from the two digests of each decision."""
    sha = hashlib.sha256
    return [sha(d.tobytes() + c.tobytes()).hexdigest() for d, c in zip(row_digests, candidate_digests)]


def record_hashes(decisions: pa.Table, candidates: pa.Table, starts: np.ndarray, ends: np.ndarray) -> list[str]:
    """Record hash of each decision; its candidate rows (in action_id order) are
    ``candidates[starts[i]:ends[i]]``."""
    return combine(decision_digests(decisions), candidate_digests(candidates, starts, ends))


def chain(prev: str, record_hashes: list[str]) -> list[str]:
    """Chain hashes for ``record_hashes`` following ``prev``."""
    out = []
    for h in record_hashes:
        prev = hashlib.sha256((prev + h).encode()).hexdigest()
        out.append(prev)
    return out


@dataclass
class VerifyResult:
    """Outcome of :func:`verify`.

    ``first_bad_decision`` names the first decision (in log order) whose record or chain
    link does not match; ``problem`` says what was found.
    """

    ok: bool
    n_decisions: int
    head_hash: str
    first_bad_seq: int | None = None
    first_bad_decision: str | None = None
    problem: str | None = None
    #: The sealed table a problem was found in (None: the decision chain).
    table: str | None = None
    #: What was not checked, and why.
    notes: list[str] = field(default_factory=list)
    #: (seq, chain hash) of the newest seal entry, when the log has seals.
    seal_head: tuple[int, str] | None = None
    #: (seq, chain hash) of the compliance register's newest seal entry, when it has one.
    register_head: tuple[int, str] | None = None


DECISION_SELECT = "SELECT " + ", ".join(f'"{c}"' for c in DECISION_HASH_COLUMNS) + " FROM decisions"
CANDIDATE_SELECT = "SELECT " + ", ".join(f'"{c}"' for c in CANDIDATE_HASH_COLUMNS) + " FROM candidates"


@dataclass(frozen=True)
class Anchor:
    """A full verification that passed (kept in the compliance register): the decision chain's
    head then (``seq``, ``chain_hash``) and the seal chain's (``seal_seq``, ``seal_hash``)."""

    seq: int
    chain_hash: str
    seal_seq: int
    seal_hash: str


def verify(con: duckdb.DuckDBPyConnection, progress: Callable[[int, int], None] | None = None,
           since: Anchor | None = None, genesis: str = GENESIS, rest: bool = True) -> VerifyResult:
    """Recompute every record hash and the chain over the whole log, in chunks of decisions.

    ``progress(done, total)`` is called after each chunk.  ``since``: an earlier full
    verification; then the positions of all decisions and the whole seal chain are checked,
    the chain must still pass through the anchor's head, and only the decisions and sealed
    writes after it are re-read (an edit of an older row's values, with the chain left as it
    was, is found by a full verification only).

    ``genesis``: the chain hash the first decision links to (a log whose older decisions are
    in shards, :mod:`decision_log.shards`, continues the last shard's chain).  ``rest=False``
    checks the decision chain only (a shard, which has no strategies, models or seals).
    """
    stored = con.execute("SELECT seq, decision_id, record_hash, chain_hash FROM chain ORDER BY seq").fetchnumpy()
    all_seq = con.execute("SELECT seq, decision_id FROM decisions ORDER BY seq").fetchnumpy()
    n_st, n_rec = len(stored["seq"]), len(all_seq["seq"])
    head = str(stored["chain_hash"][-1]) if n_st else genesis
    prev = genesis
    n = min(n_st, n_rec)
    first = 0
    if since is not None and since.seq > 0:
        at = int(np.searchsorted(stored["seq"], since.seq))
        if at >= n_st or int(stored["seq"][at]) != since.seq or str(stored["chain_hash"][at]) != since.chain_hash:
            return VerifyResult(False, n_rec, head, since.seq, None,
                                f"the chain no longer passes through the head verified earlier (decision {since.seq}, "
                                f"{since.chain_hash[:16]}…): it was rebuilt or shortened since")
        first, prev = at + 1, since.chain_hash
    # position check first: cheap and names deletions / insertions / reorderings
    for i in range(n):
        if all_seq["seq"][i] != stored["seq"][i] or all_seq["decision_id"][i] != stored["decision_id"][i]:
            return VerifyResult(
                False, n_rec, head, int(stored["seq"][i]), str(stored["decision_id"][i]),
                f"the decision at position {i + 1} of the log is {all_seq['decision_id'][i]!r} but the chain "
                f"expects {stored['decision_id'][i]!r} (a decision was deleted, inserted or reordered)")
    order = candidate_order(con)
    if order.endswith("ordinal"):
        bad_order = _first_misnumbered(con, int(stored["seq"][first - 1]) if first else None)
        if bad_order is not None:
            seq = con.execute("SELECT seq FROM decisions WHERE decision_id = ?", [bad_order]).fetchall()
            return VerifyResult(False, n_rec, head, int(seq[0][0]) if seq else None, bad_order,
                                "the order of its candidate rows was changed (their ordinals are no longer 0, 1, "
                                "2, … as logged)", table="candidates")
    for start in range(first, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        records, chained, _ = _hashes(con, int(stored["seq"][start]), int(stored["seq"][stop - 1]), order, prev)
        bad_record = np.asarray(records, dtype=object) != stored["record_hash"][start:stop]
        bad_link = np.asarray(chained, dtype=object) != stored["chain_hash"][start:stop]
        bad = np.flatnonzero(bad_record | bad_link)
        if len(bad):
            k = int(bad[0])
            i = start + k
            link_prev = prev if k == 0 else chained[k - 1]
            stored_record = str(stored["record_hash"][i])
            if bad_record[k] and hashlib.sha256((link_prev + stored_record).encode()).hexdigest() \
                    != stored["chain_hash"][i] and not bad_link[k]:
                problem = ("its record hash in the chain table was changed (the decision's rows still match "
                           "the chain)")
            elif bad_record[k]:
                problem = "its decision row or one of its candidate rows was changed since it was logged"
            else:
                problem = "its chain link does not follow from the previous decision (the chain was altered)"
            return VerifyResult(False, n_rec, head, int(stored["seq"][i]), str(stored["decision_id"][i]), problem)
        prev = chained[-1]
        if progress:
            progress(stop, n)
    return _verify_rest(con, n_rec, n_st, head, all_seq, stored, since, rest)


def _hashes(con: duckdb.DuckDBPyConnection, lo: int, hi: int, order: str, prev: str
            ) -> tuple[list[str], list[str], pa.ChunkedArray]:
    """The record hashes of the decisions ``lo`` … ``hi`` (by seq) recomputed from their rows,
    the chain over them following ``prev`` (hex), and their ids."""
    dec = con.sql(DECISION_SELECT + " WHERE seq BETWEEN ? AND ? ORDER BY seq", params=[lo, hi]).to_arrow_table()
    ids = dec.column("decision_id")
    con.register("_k_ids", pa.table({"decision_id": ids}))
    try:
        cand = con.sql(
            CANDIDATE_SELECT + f" WHERE decision_id IN (SELECT decision_id FROM _k_ids) ORDER BY {order}"
        ).to_arrow_table()
    finally:
        con.unregister("_k_ids")
    cand_ids = np.asarray(cand.column("decision_id").to_pylist(), dtype=object)
    dec_ids = np.asarray(ids.to_pylist(), dtype=object)
    # candidates are sorted by decision_id: each decision's rows are one contiguous range
    starts = np.searchsorted(cand_ids, dec_ids, side="left")
    ends = np.searchsorted(cand_ids, dec_ids, side="right")
    # recomputed record hashes, and the chain over them from the last verified link: up to
    # the first mismatch this is the stored chain, as a link-by-link check would see it
    records, chained = record_and_chain(decision_digests(dec), candidate_digests(cand, starts, ends), prev)
    return hex_list(records), hex_list(chained), ids


def renumber(con: duckdb.DuckDBPyConnection, first_seq: int, name: str) -> int:
    """Move the decisions of a log file that was written with positions of its own (a service
    worker's, see :mod:`decision_log.shards`) to ``first_seq``, ``first_seq + 1``, … and
    rebuild their chain (a chain of its own, from :data:`GENESIS`), in one transaction — after checking the chain as it
    is, so a changed row is refused rather than sealed into a new chain (also where nothing
    needs to move).  Returns how far the positions moved.  Run again on a file it already
    moved, it moves nothing."""
    found = verify(con, rest=False)
    if not found.ok:
        raise LogError(f"Decision {found.first_bad_decision} (position {found.first_bad_seq}) of {name}: "
                       f"{found.problem}.", "Keep the file for investigation; nothing of it was sealed.")
    row = con.execute("SELECT min(seq) FROM decisions").fetchall()[0][0]
    if row is None or int(row) == first_seq:
        return 0
    delta = first_seq - int(row)
    order = candidate_order(con)
    con.execute("BEGIN")
    try:
        con.execute("UPDATE decisions SET seq = seq + ?", [delta])
        seqs = con.execute("SELECT seq FROM decisions ORDER BY seq").fetchnumpy()["seq"]
        con.execute("DELETE FROM chain")
        link = GENESIS
        for start in range(0, len(seqs), _CHUNK):
            part = seqs[start:start + _CHUNK]
            records, chained, ids = _hashes(con, int(part[0]), int(part[-1]), order, link)
            con.register("_k_chain", pa.table({"seq": pa.array(part, pa.int64()), "decision_id": ids,
                                               "record_hash": pa.array(records, pa.string()),
                                               "chain_hash": pa.array(chained, pa.string())}))
            try:
                con.execute("INSERT INTO chain SELECT seq, decision_id, record_hash, chain_hash FROM _k_chain")
            finally:
                con.unregister("_k_chain")
            link = chained[-1]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return delta


def _verify_rest(con: duckdb.DuckDBPyConnection, n_rec: int, n_st: int, head: str, all_seq: dict,
                 stored: dict, since: Anchor | None = None, rest: bool = True) -> VerifyResult:
    """:func:`verify` after the chain of the first ``min(n_rec, n_st)`` decisions held: a
    decision without a chain entry or the reverse, orphaned candidate rows, stored
    explanations, strategy texts, model artifacts and the sealed tables."""
    n = min(n_st, n_rec)
    if n_rec > n_st:
        return VerifyResult(False, n_rec, head, int(all_seq["seq"][n]), str(all_seq["decision_id"][n]),
                            "this decision has no entry in the hash chain (it was added outside Klartext)")
    if n_st > n_rec:
        return VerifyResult(False, n_rec, head, int(stored["seq"][n]), str(stored["decision_id"][n]),
                            "the chain lists this decision but the log no longer holds it (it was deleted)")
    orphan = con.execute("SELECT decision_id, action_id FROM candidates ANTI JOIN decisions USING (decision_id) "
                         "LIMIT 1").fetchall()
    if orphan:
        return VerifyResult(False, n_rec, head, None, orphan[0][0], table="candidates",
                            problem=f"the candidate row of action {orphan[0][1]!r} for decision {orphan[0][0]!r} "
                                    "belongs to no decision in the log (it was added outside Klartext, or its "
                                    "decision was deleted)")
    if not rest:
        return VerifyResult(True, n_rec, head)
    bad_expl = explanations.first_unsealed(con)
    if bad_expl is not None:
        did, action, problem = bad_expl
        seq = con.execute("SELECT seq FROM decisions WHERE decision_id = ?", [did]).fetchall()
        return VerifyResult(False, n_rec, head, int(seq[0][0]) if seq else None, did,
                            f"its stored explanation of action {action!r}: {problem}")
    for version, text in con.execute("SELECT version, text FROM strategies ORDER BY version").fetchall():
        if strategy_version(text) != version:
            return VerifyResult(False, n_rec, head, table="strategies",
                                problem=f"the text of strategy {version} was changed: its SHA-256 is now "
                                        f"{strategy_version(text)} (the version is the hash of the text)")
    sha = "artifact_sha256" if has_column(con, "models", "artifact_sha256") else "NULL"
    for version, action, blob, want in con.execute(f"SELECT version, action_id, artifact, {sha} FROM models "
                                                   "ORDER BY version, action_id").fetchall():
        if want is not None and hashlib.sha256(blob).hexdigest() != want:
            return VerifyResult(False, n_rec, head, table="models",
                                problem=f"the artifact of model {version} (action {action!r}) was changed: it does "
                                        "not match its registered SHA-256")
    notes = []
    if has_table(con, "seals"):
        gone = [t for (t,) in con.execute("SELECT DISTINCT tbl FROM seals ORDER BY 1").fetchall()
                if t in summaries.SEALED and not has_table(con, t)]
        if gone:
            return VerifyResult(False, n_rec, head, table=gone[0],
                                problem=f"the table {gone[0]} is gone, though the seal chain holds writes to it")
        tables = {**seals.TABLES, **{t: c for t, c in summaries.SEALED.items() if has_table(con, t)}}
        bad = seals.verify(con, tables, since=None if since is None else (since.seal_seq, since.seal_hash))
        if bad is not None:
            return VerifyResult(False, n_rec, head, table=bad.table, problem=bad.problem)
        wrong = summaries.check(con, after_seal=0 if since is None else since.seal_seq)
        if wrong is not None:
            return VerifyResult(False, n_rec, head, table=wrong[0], problem=wrong[1])
    else:
        notes.append("outcomes, strategies, models and meta of this log are not sealed (it was written by a release "
                     "before seals): open it writable once, e.g. `klartext decisions --db PATH`, to seal them")
    return VerifyResult(True, n_rec, head, notes=notes, seal_head=seals.head(con) if not notes else None)


def _first_misnumbered(con: duckdb.DuckDBPyConnection, after_seq: int | None = None) -> str | None:
    """A decision whose candidate ordinals are not exactly 0, 1, …, k-1 (None: all are).

    The record hash reads a decision's candidate rows in ``ordinal`` order, so a swapped pair
    of ordinals changes what it reads; with this check an ordinal can be neither duplicated,
    skipped nor renumbered unseen either — the ordinals are covered by the seal."""
    only = "" if after_seq is None else \
        f"WHERE decision_id IN (SELECT decision_id FROM decisions WHERE seq > {int(after_seq)})"
    row = con.execute(f"""
        SELECT decision_id FROM candidates {only} GROUP BY decision_id
        HAVING count(ordinal) <> count(*) OR min(ordinal) <> 0 OR max(ordinal) <> count(*) - 1
            OR count(DISTINCT ordinal) <> count(*)
        LIMIT 1""").fetchall()
    return row[0][0] if row else None


#: Decisions per statement of :func:`links` (one progress step): about half a second each on two cores.
LINK_CHUNK = 1_000_000


def links(con: duckdb.DuckDBPyConnection, genesis: str = GENESIS,
          progress: Callable[[int, int], None] | None = None, chunk: int = LINK_CHUNK) -> VerifyResult:
    """The quick check: decisions and chain entries line up, and every chain hash follows
    from the previous one and the stored record hash.  It does not re-read the records
    (use :func:`verify` for that), so it finds deletions, insertions, reorderings and edits of
    the chain itself.  Both checks run inside DuckDB (its ``sha256`` is the standard one),
    ``chunk`` decisions (by seq) per statement, ``progress(done, total)`` after each: each
    link is checked against the *stored* previous link, which, when every link holds, is the
    same as recomputing the chain from the start — about half a second per million decisions."""
    n_rec = int(con.execute("SELECT count(*) FROM decisions").fetchall()[0][0])
    last = con.execute("SELECT chain_hash FROM chain ORDER BY seq DESC LIMIT 1").fetchall()
    head = last[0][0] if last else genesis
    lo, hi = con.execute("SELECT min(s), max(s) FROM (SELECT min(seq) s FROM decisions UNION ALL "
                         "SELECT max(seq) FROM decisions UNION ALL SELECT min(seq) FROM chain UNION ALL "
                         "SELECT max(seq) FROM chain)").fetchall()[0]
    prev, done = genesis, 0
    for a in range(int(lo), int(hi) + 1, chunk) if lo is not None else ():
        b = min(a + chunk - 1, int(hi))
        bad = _misaligned(con, a, b)
        if bad is None:
            bad = _unlinked(con, a, b, prev)
        if bad is not None:
            seq, decision, problem = bad
            return VerifyResult(False, n_rec, head, seq, decision, problem)
        end = con.execute("SELECT chain_hash FROM chain WHERE seq BETWEEN $a AND $b ORDER BY seq DESC LIMIT 1",
                          {"a": a, "b": b}).fetchall()
        prev = end[0][0] if end else prev
        done = min(n_rec, done + (b - a + 1))
        if progress is not None:
            progress(done, n_rec)
    return VerifyResult(True, n_rec, head)


def _misaligned(con: duckdb.DuckDBPyConnection, a: int, b: int) -> tuple[int, str, str] | None:
    """The first seq in ``[a, b]`` where the log's decision and the chain's differ."""
    row = con.execute("""
        SELECT coalesce(d.seq, c.seq) AS seq, d.decision_id, c.decision_id
        FROM (SELECT seq, decision_id FROM decisions WHERE seq BETWEEN $a AND $b) d
        FULL JOIN (SELECT seq, decision_id FROM chain WHERE seq BETWEEN $a AND $b) c USING (seq)
        WHERE d.decision_id IS DISTINCT FROM c.decision_id
        ORDER BY 1 LIMIT 1""", {"a": a, "b": b}).fetchall()
    if not row:
        return None
    seq, logged, chained = row[0]
    if chained is None:
        problem = "this decision has no entry in the hash chain"
    elif logged is None:
        problem = "the chain lists this decision but the log no longer holds it (it was deleted)"
    else:
        problem = (f"the decision at seq {seq} of the log is {logged!r} but the chain expects {chained!r} "
                   "(a decision was deleted, inserted or reordered)")
    return int(seq), str(chained if chained is not None else logged), problem


def _unlinked(con: duckdb.DuckDBPyConnection, a: int, b: int, prev: str) -> tuple[int, str, str] | None:
    """The first chain entry in ``[a, b]`` whose hash does not follow from the entry before it
    (``prev``: the last hash before ``a``).  The window only pairs each entry with the one before;
    the hashing runs after it, in parallel."""
    row = con.execute("""
        SELECT seq, decision_id FROM (
            SELECT seq, decision_id, chain_hash, record_hash, lag(chain_hash) OVER (ORDER BY seq) AS before
            FROM chain WHERE seq BETWEEN $a AND $b)
        WHERE sha256(coalesce(before, $prev) || record_hash) IS DISTINCT FROM chain_hash
        ORDER BY seq LIMIT 1""", {"a": a, "b": b, "prev": prev}).fetchall()
    if not row:
        return None
    return int(row[0][0]), str(row[0][1]), "its chain link does not follow from the previous decision (the chain was altered)"
