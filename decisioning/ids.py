"""Time-sortable decision ids (ULID layout: 48-bit milliseconds + 80 bits, Crockford base32).

Ids made by one process are strictly increasing in the order they are issued within the
same millisecond (the low 64 bits are a counter started at a random offset), so sorting by
id sorts by time and, within a millisecond, by issue order.
"""

from __future__ import annotations

import os
import threading

import numpy as np

_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)
_lock = threading.Lock()
_state = {
    "prefix": int.from_bytes(os.urandom(2), "big"),
    "counter": int.from_bytes(os.urandom(6), "big"),
}


def new_ids(ts_ms: np.ndarray) -> np.ndarray:
    """One id per timestamp (milliseconds since the epoch), as an object array of str."""
    ts_ms = np.asarray(ts_ms, dtype=np.uint64)
    n = len(ts_ms)
    with _lock:
        start = _state["counter"]
        _state["counter"] += n
    return run_ids(ts_ms, _state["prefix"], np.arange(start, start + n, dtype=np.uint64))


def run_ids(ts_ms: np.ndarray, prefix: int, counter: np.ndarray) -> np.ndarray:
    """Ids made from a 16-bit ``prefix`` and a 64-bit ``counter`` per row, not from this
    process's state: a batch run gives every row of its table the id ``(run prefix, start +
    row)``, so the decision — and the exploration keyed by its id — is the same whichever
    process or Spark partition decides it."""
    ts_ms = np.asarray(ts_ms, dtype=np.uint64)
    counter = np.asarray(counter, dtype=np.uint64)
    n = len(ts_ms)
    hi = (ts_ms << np.uint64(16)) | np.uint64(prefix & 0xFFFF)  # 48 + 16 bits
    lo = counter  # 64 bits
    # 128 bits -> 26 base32 digits (the first carries 3 bits)
    digits = np.empty((n, 26), dtype=np.uint8)
    for k in range(26):
        shift = 5 * (25 - k)  # bit offset of this digit from the right of the 128-bit value
        if shift >= 64:
            part = hi >> np.uint64(shift - 64)
        elif shift + 5 <= 64:
            part = lo >> np.uint64(shift)
        else:  # straddles the two words
            part = (lo >> np.uint64(shift)) | (hi << np.uint64(64 - shift))
        digits[:, k] = (part & np.uint64(31)).astype(np.uint8)
    chars = _ALPHABET[digits]
    return np.array(chars.view("S26").ravel().astype(str), dtype=object)


def id_time_ms(decision_id: str) -> int:
    """The millisecond timestamp encoded in an id."""
    value = 0
    for ch in decision_id[:10]:
        value = value * 32 + int(np.flatnonzero(_ALPHABET == ord(ch))[0])
    return value
