"""Customer pseudonyms: the keyed HMAC-SHA256 of a raw customer id, under the log's key.

The key is 32 random bytes, kept beside the log as ``<log>.key`` (hex, mode 0600) or given
as hex in ``$KLARTEXT_PSEUDONYM_KEY``; it is never written into the log, which records
only its public fingerprint (:func:`key_id`).  A customer's pseudonym is the first 32 hex
digits of ``HMAC-SHA256(key, customer id as UTF-8)``: the same in every Klartext version, so
a raw id finds a customer's decisions, and without the key nobody can tell whose they are.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import numpy as np

from decision_log import _native
from decisioning.errors import LogError

KEY_ENV = "KLARTEXT_PSEUDONYM_KEY"


def of(key: bytes, customer_ids: np.ndarray | list) -> np.ndarray:
    """The pseudonyms (32 hex digits, an object array) of raw customer ids."""
    return np.array(hmac_hex(key, [str(c) for c in customer_ids], 32), dtype=object)


def hmac_hex(key: bytes, messages: list[str], width: int = 64) -> list[str]:
    """The first ``width`` (even, at most 64) hex digits of HMAC-SHA256 of each UTF-8 message
    under ``key``: ``hmac.digest(key, m, "sha256").hex()[:width]``, in compiled code for a batch."""
    if len(messages) < 64 or not _native.available():
        return [hmac.digest(key, m.encode(), "sha256").hex()[:width] for m in messages]
    if len(key) > 64:  # RFC 2104: a key longer than a block is hashed first
        key = hashlib.sha256(key).digest()
    encoded = [m.encode() for m in messages]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), np.uint8) if offsets[-1] else np.zeros(0, np.uint8)
    return _native.hmac_hex(key, offsets, data, width).view(f"S{width}").ravel().astype(str).tolist()


def parse_key(text: str, where: str) -> bytes:
    """A pseudonym key from its hex text (the ``.key`` file's format, also for the variable)."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) < 16:
        raise LogError(f"{where} is not a pseudonym key: expected at least 32 hex digits, got {len(text.strip())} "
                       "characters.",
                       "Use the hex content of the log's .key file; for a new log, "
                       "`python -c 'import secrets; print(secrets.token_hex(32))'` makes one.")
    return key


def key_id(key: bytes) -> str:
    """A public fingerprint of a pseudonym key (recorded in ``meta``; reveals nothing of it)."""
    return hmac.new(key, b"klartext pseudonym key id", "sha256").hexdigest()[:16]


def key_path(path: str) -> Path:
    """Where a log keeps its pseudonym key: ``<log>.key`` beside it."""
    return Path(path + ".key")


def load_key(path: str, create: bool) -> bytes | None:
    """The key from ``$KLARTEXT_PSEUDONYM_KEY`` or ``<log>.key``: one format for both, hex
    of at least 16 bytes; a new random one only when ``create``."""
    env = os.environ.get(KEY_ENV)
    if env:
        return parse_key(env, f"${KEY_ENV}")
    if path == ":memory:":
        return secrets.token_bytes(32)
    keyfile = key_path(path)
    if keyfile.exists():
        return parse_key(keyfile.read_text(), str(keyfile))
    if not create:
        return None
    key = secrets.token_bytes(32)
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex())
    return key
