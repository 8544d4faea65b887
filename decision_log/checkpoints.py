"""Signed checkpoints of a log's heads, and proofs for one decision.

A hash chain shows that nothing *inside* it changed, but whoever can write the file can also
delete its newest decisions or rebuild the whole chain after an edit.  A checkpoint is the
answer: the heads of the decision chain and of the seal chain (:mod:`decision_log.seals`),
signed with an Ed25519 key that is kept **outside** the log (``klartext keygen``).  Anyone
holding the public key and a checkpoint can then tell that the log still extends exactly
what was signed (:func:`check`), and a reviewer can check one decision against a checkpoint
without the log at all (:func:`prove`, :func:`check_proof`): the proof carries the decision's
rows, the chain hash before it, and the record hashes after it up to the signed head.
"""

from __future__ import annotations

import base64
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from decision_log import integrity, shards
from decision_log.schema import candidate_order
from decisioning.errors import LogError

FORMAT = "klartext-checkpoint/1"
PROOF_FORMAT = "klartext-proof/1"


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _raw_public(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def keygen(path: str | Path) -> tuple[Path, Path]:
    """A new Ed25519 signing key at ``path`` (PEM, readable by its owner only) and its public
    key at ``path.pub``.  Refuses to overwrite either."""
    path = Path(path)
    pub = Path(str(path) + ".pub")
    for p in (path, pub):
        if p.exists():
            raise LogError(f"{p} exists already; a signing key is never overwritten.",
                           "Choose another --out, or keep using the key you have.")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return path, pub


def _load_pem(path: str | Path, private: bool):
    what, hint = (("an Ed25519 signing key", "Make one with `klartext keygen --out FILE` and keep it outside the "
                                             "log's folder.") if private else
                  ("an Ed25519 public key", "Use the .pub file that `klartext keygen` wrote beside the signing key."))
    try:
        data = Path(path).read_bytes()
        key = serialization.load_pem_private_key(data, password=None) if private \
            else serialization.load_pem_public_key(data)
    except (OSError, ValueError, TypeError) as exc:
        raise LogError(f"{path} is not {what} ({type(exc).__name__}).", hint) from None
    if not isinstance(key, Ed25519PrivateKey if private else Ed25519PublicKey):
        raise LogError(f"{path} is not {what}.", hint)
    return key


def load_private(path: str | Path) -> Ed25519PrivateKey:
    return _load_pem(path, private=True)


def load_public(path: str | Path) -> Ed25519PublicKey:
    return _load_pem(path, private=False)


def make(con: duckdb.DuckDBPyConnection, key: Ed25519PrivateKey, log_name: str,
         verified: integrity.VerifyResult | None = None) -> dict[str, Any]:
    """Verify the log (``verified``: the caller's full verification of it, e.g.
    :meth:`DecisionLog.verify`, which also checks its shards), then sign its heads.  A log that
    does not verify is not signed."""
    res = verified if verified is not None else integrity.verify(con)
    if not res.ok:
        raise LogError(f"The log does not verify, so it is not signed: {res.problem}.",
                       "Run `klartext verify` and restore the log before taking a checkpoint.")
    if res.seal_head is None:
        raise LogError("The log's outcomes, strategies and models are not sealed yet.", res.notes[0] + ".")
    last = con.execute("SELECT seq FROM chain ORDER BY seq DESC LIMIT 1").fetchall()
    payload = {
        "format": FORMAT, "log": log_name, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "decisions": res.n_decisions, "head_seq": int(last[0][0]) if last else 0, "head_hash": res.head_hash,
        "seal_seq": res.seal_head[0], "seal_hash": res.seal_head[1], "public_key": _raw_public(key.public_key()),
    }
    return {**payload, "signature": base64.b64encode(key.sign(_canonical(payload))).decode()}


def _signed(checkpoint: dict[str, Any], public: Ed25519PublicKey) -> dict[str, Any]:
    """The checkpoint's payload once its signature checks out under ``public``."""
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT or "signature" not in checkpoint:
        raise LogError("This is not a Klartext checkpoint.", "Use a file written by `klartext checkpoint`.")
    payload = {k: v for k, v in checkpoint.items() if k != "signature"}
    try:
        public.verify(base64.b64decode(checkpoint["signature"]), _canonical(payload))
    except (InvalidSignature, ValueError, TypeError):
        raise LogError("The checkpoint's signature is not valid for this public key: the checkpoint was changed, "
                       "or it was signed with another key.",
                       "Use the checkpoint and the public key exactly as they were issued.") from None
    return payload


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    try:
        checkpoint = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LogError(f"{path} is not a readable checkpoint ({type(exc).__name__}).",
                       "Use a file written by `klartext checkpoint`.") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise LogError(f"{path} is not a Klartext checkpoint (it holds {type(checkpoint).__name__} JSON).",
                       "Use a file written by `klartext checkpoint`.")
    return checkpoint


def check(con: duckdb.DuckDBPyConnection, checkpoint: dict[str, Any], public: Ed25519PublicKey) -> str | None:
    """Whether the log still extends what the checkpoint signed: None, or what is wrong."""
    p = _signed(checkpoint, public)
    n_now = con.execute("SELECT count(*), coalesce(max(seq), 0) FROM chain").fetchall()[0]
    if n_now[1] < p["head_seq"]:
        return (f"the checkpoint of {p['created']} signed {p['decisions']:,} decisions up to position "
                f"{p['head_seq']}, but the log now ends at position {n_now[1]}: decisions after it were deleted")
    row = con.execute("SELECT chain_hash FROM chain WHERE seq = ?", [p["head_seq"]]).fetchall()
    if p["head_seq"] and (not row or row[0][0] != p["head_hash"]):
        return (f"the chain up to position {p['head_seq']} is not the one signed on {p['created']}: the log was "
                "re-chained or rewritten since the checkpoint")
    row = con.execute("SELECT chain_hash FROM seals WHERE seq = ?", [p["seal_seq"]]).fetchall()
    if not row or row[0][0] != p["seal_hash"]:
        return (f"the seal chain up to write {p['seal_seq']} is not the one signed on {p['created']}: outcomes, "
                "strategies, models or meta were rewritten since the checkpoint")
    return None


def _ipc(table: pa.Table) -> str:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return base64.b64encode(sink.getvalue()).decode()


def _from_ipc(text: str) -> pa.Table:
    return pa.ipc.open_stream(io.BytesIO(base64.b64decode(text))).read_all()


def _record_rows(con: duckdb.DuckDBPyConnection, seq: int, decision_id: str) -> tuple[pa.Table, pa.Table, str]:
    """One decision's row and candidate rows as the hash reads them, and the chain hash before it."""
    dec = con.sql(integrity.DECISION_SELECT + " WHERE seq = ?", params=[seq]).to_arrow_table()
    cand = con.sql(integrity.CANDIDATE_SELECT + f" WHERE decision_id = ? ORDER BY {candidate_order(con)}",
                   params=[decision_id]).to_arrow_table()
    return dec, cand, shards.previous_hash(con, seq)


def _recompute(dec: pa.Table, cand: pa.Table, previous_chain_hash: str) -> tuple[str, str]:
    """(record hash, chain hash) of one decision, computed from its rows."""
    record, chained = integrity.record_and_chain(integrity.decision_digests(dec), integrity.candidate_digests(
        cand, np.array([0]), np.array([cand.num_rows])), previous_chain_hash)
    return integrity.hex_list(record)[0], integrity.hex_list(chained)[0]


def prove(con: duckdb.DuckDBPyConnection, decision_id: str, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A proof that ``decision_id`` is in the log the checkpoint signed: its rows, the chain
    hash before it and every record hash after it up to the signed head."""
    seq = con.execute("SELECT seq FROM chain WHERE decision_id = ?", [decision_id]).fetchall()
    if not seq:
        raise LogError(f"Decision {decision_id!r} is not in the log.", "Look up ids with `klartext decisions`.")
    seq = int(seq[0][0])
    if seq > checkpoint.get("head_seq", 0):
        raise LogError(f"Decision {decision_id!r} (position {seq}) was logged after the checkpoint "
                       f"(which ends at position {checkpoint.get('head_seq')}).",
                       "Take a new checkpoint with `klartext checkpoint`, then prove it against that one.")
    side = shards.fresh_chains(con, seq, checkpoint["head_seq"])
    if side:
        raise LogError(f"Decision {decision_id!r} (position {seq}) is in a shard followed by shard {side[0]}, which "
                       "Spark wrote side by side with a chain of its own: a proof cannot pass from one chain to the "
                       "next yet.",
                       "`klartext evidence` shows the decision's place in its shard's chain, and `klartext verify` "
                       "checks every shard and the manifest that links them; a proof works for decisions after the "
                       "last such shard.")
    dec, cand, prev_hash = _record_rows(con, seq, decision_id)
    after = [r[0] for r in con.execute("SELECT record_hash FROM chain WHERE seq > ? AND seq <= ? ORDER BY seq",
                                       [seq, checkpoint["head_seq"]]).fetchall()]
    return {"format": PROOF_FORMAT, "decision_id": decision_id, "seq": seq, "previous_chain_hash": prev_hash,
            "decision": _ipc(dec), "candidates": _ipc(cand), "later_record_hashes": after,
            "checkpoint": checkpoint}


def record_status(con: duckdb.DuckDBPyConnection, decision_id: str) -> dict[str, Any]:
    """One decision's place in the hash chain, checked now: its record hash recomputed from
    its decision and candidate rows, and its chain hash from the one before it.

    Returns ``seq`` (its position), ``record_hash``, ``chain_hash``, ``previous_chain_hash``,
    ``decisions`` (the log's length), ``record_intact`` and ``link_intact`` (booleans), and
    ``checked_at`` (UTC).  A full ``klartext verify`` also checks every other record and table.
    """
    row = con.execute("SELECT seq, record_hash, chain_hash FROM chain WHERE decision_id = ?", [decision_id]).fetchall()
    if not row:
        raise LogError(f"Decision {decision_id!r} is not in the log's chain.", "Look up ids with `klartext decisions`.")
    seq, stored, chained = int(row[0][0]), row[0][1], row[0][2]
    dec, cand, prev_hash = _record_rows(con, seq, decision_id)
    recomputed = _recompute(dec, cand, prev_hash)[0] if dec.num_rows == 1 else None
    return {"seq": seq, "record_hash": stored, "chain_hash": chained, "previous_chain_hash": prev_hash,
            "decisions": int(con.execute("SELECT count(*) FROM chain").fetchall()[0][0]),
            "record_intact": recomputed == stored,
            "link_intact": integrity.chain(prev_hash, [stored])[0] == chained,
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds")}


def check_proof(proof: dict[str, Any], public: Ed25519PublicKey) -> dict[str, Any]:
    """Check a proof without the log: the checkpoint's signature, the decision's record hash
    recomputed from its rows, and the chain from it to the signed head.  Returns the decision
    row as a dict; raises :class:`LogError` naming what does not hold."""
    if not isinstance(proof, dict) or proof.get("format") != PROOF_FORMAT:
        raise LogError("This is not a Klartext proof.", "Use a file written by `klartext prove`.")
    p = _signed(proof["checkpoint"], public)
    try:
        dec, cand = _from_ipc(proof["decision"]), _from_ipc(proof["candidates"])
    except (ValueError, TypeError, KeyError, pa.ArrowException):
        raise LogError("The proof's rows cannot be read.", "Use the proof exactly as `klartext prove` wrote it.") from None
    if dec.num_rows != 1 or dec.column("decision_id")[0].as_py() != proof["decision_id"] \
            or dec.column("seq")[0].as_py() != proof["seq"]:
        raise LogError("The proof's decision row is not the decision it names.", "The proof was changed.")
    if any(x != proof["decision_id"] for x in cand.column("decision_id").to_pylist()):
        raise LogError("The proof holds candidate rows of another decision.", "The proof was changed.")
    head = _recompute(dec, cand, proof["previous_chain_hash"])[1]
    for h in proof["later_record_hashes"]:
        head = integrity.chain(head, [h])[0]
    if proof["seq"] + len(proof["later_record_hashes"]) != p["head_seq"] or head != p["head_hash"]:
        raise LogError(f"Decision {proof['decision_id']!r} as the proof states it does not lead to the signed head "
                       f"of {p['created']}: its rows or the chain in the proof were changed.",
                       "Ask for a new proof from the log's owner.")
    row = dec.to_pylist()[0]
    row["candidates"] = cand.num_rows
    row["checkpoint"] = {k: p[k] for k in ("log", "created", "decisions", "head_hash")}
    return row
