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
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from decision_log.schema import CANDIDATE_HASH_COLUMNS, DECISION_HASH_COLUMNS

GENESIS = "0" * 64
#: Text columns with few distinct values, hashed through a per-value digest (cheap for both
#: the writer, which holds them dictionary-encoded, and the verifier).
LABEL_COLUMNS = frozenset({"channel", "direction", "action_id", "issue", "group", "stage", "rule",
                           "model_version", "strategy_version", "model_versions", "source"})
_CHUNK = 50_000


def _as_text(arr: pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        arr = pc.binary_join(arr, "\x1f")
    elif pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string()).cast(pa.large_string())
    return arr


def _is_text(arr: pa.Array) -> bool:
    t = arr.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    return not (pa.types.is_boolean(t) or pa.types.is_floating(t) or pa.types.is_integer(t)
                or pa.types.is_timestamp(t))


def _fixed(arr: pa.Array) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    nulls = arr.null_count > 0  # the fill / cast steps are skipped where they change nothing (small batches)
    if pa.types.is_boolean(t):
        arr = arr.fill_null(False) if nulls else arr
        return arr.to_numpy(zero_copy_only=False).astype(np.uint8).reshape(-1, 1)
    if pa.types.is_floating(t):
        arr = arr if t == pa.float64() else arr.cast(pa.float64())
        v = (arr.fill_null(0.0) if nulls else arr).to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(v, dtype="<f8").view(np.uint8).reshape(-1, 8)
    if pa.types.is_timestamp(t):
        arr = arr.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    arr = arr if arr.type == pa.int64() else arr.cast(pa.int64())
    v = (arr.fill_null(0) if nulls else arr).to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(v, dtype="<i8").view(np.uint8).reshape(-1, 8)


_LABEL_CACHE: dict[str, bytes] = {}


def _label_digest(v: str) -> bytes:
    d = _LABEL_CACHE.get(v)
    if d is None:
        if len(_LABEL_CACHE) > 100_000:
            _LABEL_CACHE.clear()
        d = _LABEL_CACHE[v] = hashlib.blake2b(v.encode(), digest_size=8).digest()
    return d


def _label_digests(arr: pa.Array) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr.cast(pa.string()))
    values = arr.dictionary.cast(pa.string()).to_pylist()
    table = np.frombuffer(bytes(8) + b"".join(map(_label_digest, values)), dtype=np.uint8).reshape(-1, 8)
    idx = arr.indices.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False) + 1
    if arr.null_count:
        idx[np.asarray(arr.is_null())] = 0
    return table[idx]


def _parts(table: pa.Table, columns: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fixed part per row, text offsets per row, text bytes) of ``table``."""
    blocks, texts = [], []
    for c in columns:
        arr = table.column(c)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        blocks.append(np.asarray(pc.is_valid(arr), dtype=np.uint8).reshape(-1, 1) if arr.null_count
                      else np.ones((len(arr), 1), dtype=np.uint8))
        if c in LABEL_COLUMNS:
            blocks.append(_label_digests(arr))
        elif _is_text(arr):
            txt = _as_text(arr)
            lengths = pc.binary_length(txt).fill_null(0).to_numpy(zero_copy_only=False)
            blocks.append(np.ascontiguousarray(lengths, dtype="<i4").view(np.uint8).reshape(-1, 4))
            texts.append(txt.fill_null(""))
        else:
            blocks.append(_fixed(arr))
    n = table.num_rows
    fixed = np.empty((n, sum(b.shape[1] for b in blocks)), dtype=np.uint8)
    pos = 0
    for b in blocks:
        fixed[:, pos: pos + b.shape[1]] = b
        pos += b.shape[1]
    if texts:
        joined = pc.binary_join_element_wise(*texts, pa.scalar("", pa.large_string()))
        _, off_buf, data_buf = joined.buffers()
        offsets = np.frombuffer(off_buf, dtype=np.int64, count=n + 1 + joined.offset)[joined.offset:]
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    else:
        offsets, data = np.zeros(n + 1, dtype=np.int64), np.empty(0, np.uint8)
    return fixed, offsets, data


def candidate_digests(candidates: pa.Table, starts: np.ndarray, ends: np.ndarray) -> list[bytes]:
    """Candidate digest of each decision, whose rows are ``candidates[starts[i]:ends[i]]``."""
    fix, off, txt = _parts(candidates, CANDIDATE_HASH_COLUMNS)
    width = fix.shape[1]
    flat, mv, off_l = memoryview(fix.reshape(-1)), memoryview(txt), off.tolist()
    out = []
    sha = hashlib.sha256
    for a, b in zip(starts.tolist(), ends.tolist()):
        h = sha(flat[a * width: b * width])
        h.update(mv[off_l[a]:off_l[b]])
        out.append(h.digest())
    return out


def _row_bytes(table: pa.Table, columns: list[str]) -> list[bytes]:
    """Each row's canonical bytes: its fixed part, then its text part."""
    fix, off, txt = _parts(table, columns)
    mv, off_l = memoryview(txt), off.tolist()
    return [fix[i].tobytes() + mv[off_l[i]:off_l[i + 1]] for i in range(len(fix))]


def decision_digests(decisions: pa.Table) -> list[bytes]:
    """Row digest of each decision."""
    sha = hashlib.sha256
    return [sha(b).digest() for b in _row_bytes(decisions, DECISION_HASH_COLUMNS)]


def decision_tails(decisions: pa.Table) -> list[bytes]:
    """Each decision row's canonical bytes after its ``seq`` block (``decisions`` without the
    ``seq`` column): the row digest is ``SHA-256(seq_block(seq) + tail)``, so the bytes can
    be made before the writer assigns the sequence numbers (see :func:`digests_with_seq`)."""
    return _row_bytes(decisions, [c for c in DECISION_HASH_COLUMNS if c != "seq"])


def digests_with_seq(seq: np.ndarray, tails: list[bytes]) -> list[bytes]:
    """Row digests from the sequence numbers and :func:`decision_tails` (``seq`` is the
    first column of :data:`DECISION_HASH_COLUMNS`: a validity byte and 8 bytes little-endian)."""
    sha = hashlib.sha256
    return [sha(b"\x01" + int(q).to_bytes(8, "little", signed=True) + t).digest() for q, t in zip(seq.tolist(), tails)]


def combine(row_digests: list[bytes], candidate_digests: list[bytes]) -> list[str]:
    """Record hashes from the two digests of each decision."""
    sha = hashlib.sha256
    return [sha(d + c).hexdigest() for d, c in zip(row_digests, candidate_digests)]


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


_DEC_SELECT = "SELECT " + ", ".join(f'"{c}"' for c in DECISION_HASH_COLUMNS) + " FROM decisions"
_CAND_SELECT = "SELECT " + ", ".join(f'"{c}"' for c in CANDIDATE_HASH_COLUMNS) + " FROM candidates"


def verify(con: duckdb.DuckDBPyConnection, progress: Callable[[int, int], None] | None = None) -> VerifyResult:
    """Recompute every record hash and the chain over the whole log, in chunks of decisions.

    ``progress(done, total)`` is called after each chunk.
    """
    stored = con.execute("SELECT seq, decision_id, record_hash, chain_hash FROM chain ORDER BY seq").fetchnumpy()
    all_seq = con.execute("SELECT seq, decision_id FROM decisions ORDER BY seq").fetchnumpy()
    n_st, n_rec = len(stored["seq"]), len(all_seq["seq"])
    head = str(stored["chain_hash"][-1]) if n_st else GENESIS
    prev = GENESIS
    n = min(n_st, n_rec)
    # position check first: cheap and names deletions / insertions / reorderings
    for i in range(n):
        if all_seq["seq"][i] != stored["seq"][i] or all_seq["decision_id"][i] != stored["decision_id"][i]:
            return VerifyResult(
                False, n_rec, head, int(stored["seq"][i]), str(stored["decision_id"][i]),
                f"the decision at position {i + 1} of the log is {all_seq['decision_id'][i]!r} but the chain "
                f"expects {stored['decision_id'][i]!r} (a decision was deleted, inserted or reordered)")
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        lo, hi = int(stored["seq"][start]), int(stored["seq"][stop - 1])
        dec = con.sql(_DEC_SELECT + " WHERE seq BETWEEN ? AND ? ORDER BY seq", params=[lo, hi]).to_arrow_table()
        ids = dec.column("decision_id")
        con.register("_k_ids", pa.table({"decision_id": ids}))
        try:
            cand = con.sql(
                _CAND_SELECT + " WHERE decision_id IN (SELECT decision_id FROM _k_ids) ORDER BY decision_id, action_id"
            ).to_arrow_table()
        finally:
            con.unregister("_k_ids")
        cand_ids = np.asarray(cand.column("decision_id").to_pylist(), dtype=object)
        dec_ids = np.asarray(ids.to_pylist(), dtype=object)
        # candidates are sorted by decision_id: each decision's rows are one contiguous range
        starts = np.searchsorted(cand_ids, dec_ids, side="left")
        ends = np.searchsorted(cand_ids, dec_ids, side="right")
        hashes = record_hashes(dec, cand, starts, ends)
        for k in range(stop - start):
            i = start + k
            if hashes[k] != stored["record_hash"][i]:
                return VerifyResult(False, n_rec, head, int(stored["seq"][i]), str(stored["decision_id"][i]),
                                    "its decision row or one of its candidate rows was changed since it was logged")
            expect = hashlib.sha256((prev + hashes[k]).encode()).hexdigest()
            if expect != stored["chain_hash"][i]:
                return VerifyResult(False, n_rec, head, int(stored["seq"][i]), str(stored["decision_id"][i]),
                                    "its chain link does not follow from the previous decision (the chain was altered)")
            prev = expect
        if progress:
            progress(stop, n)
    if n_rec > n_st:
        return VerifyResult(False, n_rec, head, int(all_seq["seq"][n]), str(all_seq["decision_id"][n]),
                            "this decision has no entry in the hash chain (it was added outside Klartext)")
    if n_st > n_rec:
        return VerifyResult(False, n_rec, head, int(stored["seq"][n]), str(stored["decision_id"][n]),
                            "the chain lists this decision but the log no longer holds it (it was deleted)")
    return VerifyResult(True, n_rec, head)


def links(con: duckdb.DuckDBPyConnection) -> VerifyResult:
    """The quick check: decisions and chain entries line up, and every chain hash follows
    from the previous one and the stored record hash.  It does not re-read the records
    (use :func:`verify` for that), so it finds deletions, insertions, reorderings and edits of
    the chain itself.  Both checks run inside DuckDB (its ``sha256`` is the standard one):
    each link is checked against the *stored* previous link, which, when every link holds,
    is the same as recomputing the chain from the start — under a second per million
    decisions."""
    n_rec = int(con.execute("SELECT count(*) FROM decisions").fetchall()[0][0])
    last = con.execute("SELECT chain_hash FROM chain ORDER BY seq DESC LIMIT 1").fetchall()
    head = last[0][0] if last else GENESIS
    row = con.execute("""
        SELECT coalesce(d.seq, c.seq) AS seq, d.decision_id, c.decision_id
        FROM decisions d FULL JOIN chain c USING (seq)
        WHERE d.decision_id IS DISTINCT FROM c.decision_id
        ORDER BY 1 LIMIT 1""").fetchall()
    if row:
        seq, logged, chained = row[0]
        if chained is None:
            problem = "this decision has no entry in the hash chain"
        elif logged is None:
            problem = "the chain lists this decision but the log no longer holds it (it was deleted)"
        else:
            problem = (f"the decision at seq {seq} of the log is {logged!r} but the chain expects {chained!r} "
                       "(a decision was deleted, inserted or reordered)")
        return VerifyResult(False, n_rec, head, int(seq), str(chained if chained is not None else logged), problem)
    row = con.execute(f"""
        SELECT seq, decision_id FROM (
            SELECT seq, decision_id, chain_hash,
                   sha256(coalesce(lag(chain_hash) OVER (ORDER BY seq), '{GENESIS}') || record_hash) AS expect
            FROM chain)
        WHERE expect IS DISTINCT FROM chain_hash
        ORDER BY seq LIMIT 1""").fetchall()
    if row:
        return VerifyResult(False, n_rec, head, int(row[0][0]), str(row[0][1]),
                            "its chain link does not follow from the previous decision (the chain was altered)")
    return VerifyResult(True, n_rec, head)
