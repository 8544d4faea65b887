"""Per-customer keys: personal inputs sealed so that erasing a customer destroys one key.

A Klartext decision's ``inputs`` (the features, contacts and rejections the engine saw) and
the reasons that quote them (``arrears_days=45 > 0``) are personal data.  They are stored
encrypted under a key of the customer's own; ``klartext erase`` destroys that key
(*crypto-shredding*).  The stored bytes stay as they were, so the hash chain that committed
to them still verifies, while nobody can read them again.

**Where the keys live.**  Not in the log: a DuckDB file keeps a deleted row's bytes in its
free blocks.  They are in ``<log>.subject-keys`` beside it: a header line and one record per
customer, the customer's pseudonym (32 hex digits) and their 32-byte key wrapped with AES key
wrap (RFC 3394) under a key-encryption key derived by HKDF-SHA256 from the log's pseudonym
key (``<log>.key`` or ``$KLARTEXT_PSEUDONYM_KEY``): the key file alone opens nothing.  New
customers' keys are appended and flushed to disk before the decisions they protect are
committed.  Erasing a customer rewrites the file without their record and puts it in place
by an atomic rename, so no file Klartext keeps holds the key afterwards.  (Copies outside
Klartext — a backup of the key file taken before the erasure — are the operator's to
expire; ``docs/compliance.md`` says how.)

**A sealed value** is the JSON text ``{"sealed":"AES-256-GCM/1","key":"…","nonce":"…","data":"…"}``
(base64): AES-256-GCM from ``cryptography`` with a random 96-bit nonce and the decision id
as associated data, so a sealed value cannot be moved to another decision unnoticed; ``key``
is the id of the customer's key it was sealed under (:func:`key_id`), the id an erasure
record names as destroyed.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from decisioning.errors import LogError

SCHEME = "AES-256-GCM/1"
#: Every sealed value starts with these characters (a plain ``inputs`` starts with ``{"features"``).
PREFIX = '{"sealed":"' + SCHEME + '",'
HEADER = b"klartext-subject-keys/1\n"
ID_BYTES = 32  #: a pseudonym: 32 hex digits
WRAPPED_BYTES = 40  #: a 32-byte key wrapped by RFC 3394
RECORD = ID_BYTES + WRAPPED_BYTES
_WRAP_INFO = b"klartext subject key wrapping/1"
_MERGE_AT = 50_000  #: fold newly added keys into the sorted arrays beyond this many
UNWRAPPED_MAX = 200_000  #: unwrapped keys kept in memory for reuse (the rest are unwrapped when needed)


def keys_path(path: str) -> Path:
    """Where the log at ``path`` keeps its customers' keys."""
    return Path(path + ".subject-keys")


def is_sealed(text: str | None) -> bool:
    return text is not None and text.startswith(PREFIX)


def wrapping_key(pseudonym_key: bytes) -> bytes:
    """The key-encryption key, derived from the log's pseudonym key (never stored)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_WRAP_INFO).derive(pseudonym_key)


class SubjectKeys:
    """The customers' keys of one log (see the module docstring).

    Parameters
    ----------
    path : Path or None
        The key file; None keeps the keys in memory only (a ``:memory:`` log).
    pseudonym_key : bytes
        The log's pseudonym key, from which the key-encryption key is derived.
    read_now : bool
        Read the keys at once: a writer seals every decision's inputs, and its first decision
        should not wait seconds for them.  Otherwise they are read by the first use of a key.
    """

    def __init__(self, path: Path | None, pseudonym_key: bytes, *, read_now: bool = False) -> None:
        self.path = path
        self._kek = wrapping_key(pseudonym_key)
        self._lock = threading.RLock()
        # the records as read (pseudonym, wrapped key), not reordered (millions of them: gathering
        # 400 MB into sorted order took longer than reading and sorting); an index sorted by the
        # pseudonyms' first 8 bytes points into them
        self._rec = np.zeros((0, RECORD), dtype=np.uint8)
        self._head = np.zeros(0, dtype=np.uint64)  #: the first 8 bytes of each pseudonym (a number), sorted
        self._order = np.zeros(0, dtype=np.int64)  #: the record of each, in that order
        self._new: dict[bytes, bytes] = {}  #: added since the index was last merged
        self._unwrapped: dict[bytes, bytes] = {}
        self._stat: tuple[int, int] | None = None  #: (inode, size) of the file as read
        self._read = 0  #: bytes of the file read
        self._check_header()
        if read_now:
            self.refresh()

    def _check_header(self) -> None:
        """Refuse a file that is not a key file at once; its records (millions of customers: seconds
        to sort) are read by the first use of a key, so a process that opens no sealed value never
        reads them."""
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(len(HEADER))
        except FileNotFoundError:
            return
        if head != HEADER and not HEADER.startswith(head):  # (a prefix: another process is writing it)
            raise LogError(f"{self.path} is not a Klartext key file of customers' keys.",
                           "Restore it from your backup; without it no sealed input can be read.")

    # -- reading ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read what another process added (or a rewrite after an erasure) since the last read."""
        if self.path is None:
            return
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                if self._stat is not None:  # the file was removed: no key is known any more
                    self._reset()
                return
            if self._stat is not None and st.st_ino == self._stat[0] and st.st_size == self._stat[1]:
                return
            if self._stat is None or st.st_ino != self._stat[0] or st.st_size < self._read:
                self._reset()
            with open(self.path, "rb") as fh:
                if self._read == 0:
                    head = fh.read(len(HEADER))
                    if HEADER.startswith(head) and head != HEADER:  # another process is writing its first record
                        return
                    if head != HEADER:
                        raise LogError(f"{self.path} is not a Klartext key file of customers' keys.",
                                       "Restore it from your backup; without it no sealed input can be read.")
                    self._read = len(HEADER)
                fh.seek(self._read)
                data = fh.read()
                st = os.fstat(fh.fileno())
            whole = len(data) // RECORD * RECORD  # a record being appended right now is read next time
            self._add(np.frombuffer(data[:whole], dtype=np.uint8).reshape(-1, RECORD))
            self._read += whole
            self._stat = (st.st_ino, self._read if whole != len(data) else st.st_size)

    def _reset(self) -> None:
        self._rec = np.zeros((0, RECORD), dtype=np.uint8)
        self._head = np.zeros(0, dtype=np.uint64)
        self._order = np.zeros(0, dtype=np.int64)
        self._new.clear()
        self._unwrapped.clear()
        self._stat, self._read = None, 0

    def _add(self, records: np.ndarray) -> None:
        if not len(records):
            return
        if len(records) < _MERGE_AT:
            for rec in records:
                self._new[rec[:ID_BYTES].tobytes()] = rec[ID_BYTES:].tobytes()
            self._merge(force=False)
            return
        self._merge(force=True)
        self._insert(records)

    def _insert(self, records: np.ndarray) -> None:
        """Add records (``(n, RECORD)`` bytes) to the index, each after any with the same
        pseudonym's head already there (the first record of a pseudonym is the one found)."""
        head, order = _index(records)
        if not len(self._order):  # the first read of the file: the records stay where they were read
            self._rec, self._head, self._order = records, head, order
            return
        at = np.searchsorted(self._head, head, side="right")
        self._head = np.insert(self._head, at, head)
        self._order = np.insert(self._order, at, order + len(self._rec))
        self._rec = np.concatenate([self._rec, records])

    def _merge(self, force: bool) -> None:
        if not self._new or (not force and len(self._new) < _MERGE_AT):
            return
        records = np.frombuffer(b"".join(pid + w for pid, w in self._new.items()), dtype=np.uint8).reshape(-1, RECORD)
        self._new = {}
        self._insert(records)

    def __len__(self) -> int:
        with self._lock:
            self.refresh()
            return len(self._order) + len(self._new)

    def _find(self, ids: np.ndarray) -> np.ndarray:
        """The place in the index of each pseudonym (``S32`` array), -1 where it has none."""
        out = np.full(len(ids), -1, dtype=np.int64)
        m = len(self._order)
        if not m or not len(ids):
            return out
        q = np.ascontiguousarray(ids, dtype=f"S{ID_BYTES}").view(np.uint8).reshape(len(ids), ID_BYTES)
        qh = _heads(q)
        pos = np.minimum(np.searchsorted(self._head, qh), m - 1)  # the first with that head
        same = self._head[pos] == qh
        hit = same & (self._rec[self._order[pos], :ID_BYTES] == q).all(axis=1)
        out[hit] = pos[hit]
        for i in np.flatnonzero(same & ~hit).tolist():  # another id with the same head came first (rare)
            j, want = int(pos[i]) + 1, q[i].tobytes()
            while j < m and self._head[j] == qh[i]:
                if self._rec[self._order[j], :ID_BYTES].tobytes() == want:
                    out[i] = j
                    break
                j += 1
        return out

    def _wrapped_of(self, ids: np.ndarray) -> list[bytes | None]:
        """The wrapped key of each pseudonym (``S32`` array), None where there is none."""
        out: list[bytes | None] = [None] * len(ids)
        pos = self._find(ids)
        for i in np.flatnonzero(pos >= 0).tolist():
            out[i] = self._rec[self._order[pos[i]], ID_BYTES:].tobytes()
        if self._new:
            get = self._new.get
            for i, pid in enumerate(ids.tolist()):
                if out[i] is None:
                    out[i] = get(pid)
        return out

    def _unwrap(self, pid: bytes, wrapped: bytes) -> tuple[bytes, str]:
        key = self._unwrapped.get(pid)  # emptied by every re-read of the file and every erasure
        if key is None:
            try:
                key = (aes_key_unwrap(self._kek, wrapped), key_id(wrapped))
            except InvalidUnwrap as exc:
                raise LogError(f"The key file {self.path} does not belong to this log's pseudonym key "
                               f"(customer {pid.decode()}'s key does not unwrap).",
                               "Use the log's own .key (or $KLARTEXT_PSEUDONYM_KEY) and its .subject-keys.") from exc
            self._remember(pid, key)
        return key

    def _remember(self, pid: bytes, key: tuple[bytes, str]) -> None:
        """Keep an unwrapped key for the next use; at most :data:`UNWRAPPED_MAX` of them (a 10M
        customer log would otherwise hold every key in the clear: a gigabyte, and needlessly)."""
        if len(self._unwrapped) >= UNWRAPPED_MAX:
            self._unwrapped.clear()
        self._unwrapped[pid] = key

    def keys(self, pseudonyms: Sequence[str], create: bool = False) -> list[tuple[bytes, str] | None]:
        """Each customer's key and its id (None where there is none: erased, or never had one); with
        ``create``, a new key for every customer who has none, on disk before this returns."""
        ids = np.asarray(pseudonyms, dtype=f"S{ID_BYTES}")
        with self._lock:
            self.refresh()
            wrapped = self._wrapped_of(ids)
            if create and any(w is None for w in wrapped):
                self._create(ids[[i for i, w in enumerate(wrapped) if w is None]])
                wrapped = self._wrapped_of(ids)
            return [None if w is None else self._unwrap(pid, w) for pid, w in zip(ids.tolist(), wrapped)]

    def _create(self, ids: np.ndarray) -> None:
        with self._file_lock() if self.path is not None else nullcontext():
            self.refresh()  # another process may have added some of them meanwhile
            have = self._wrapped_of(ids)
            missing = list(dict.fromkeys(pid for pid, w in zip(ids.tolist(), have) if w is None))
            if not missing:
                return
            fresh = os.urandom(32 * len(missing))
            new = {}
            for k, pid in enumerate(missing):
                key = fresh[32 * k: 32 * k + 32]
                new[pid] = aes_key_wrap(self._kek, key)
                self._remember(pid, (key, key_id(new[pid])))
            if self.path is not None:
                self._append(b"".join(pid + w for pid, w in new.items()))
            self._new.update(new)
            self._merge(force=False)

    def _append(self, data: bytes) -> None:
        fresh = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            if fresh or os.fstat(fd).st_size == 0:
                data = HEADER + data
            os.write(fd, data)
            os.fsync(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if fresh:
            fsync_dir(self.path.parent)
        self._read = st.st_size
        self._stat = (st.st_ino, st.st_size)

    @contextmanager
    def _file_lock(self):
        """One writer of the key file at a time, across processes (a lock file beside it: the
        key file itself is replaced by a rename when a customer is erased)."""
        fd = os.open(str(self.path) + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- erasing ------------------------------------------------------------------------

    def erase(self, pseudonym: str) -> str | None:
        """Destroy one customer's key: the file is rewritten without it and replaced
        atomically.  Returns the destroyed key's id (:func:`key_id`), None when there was no key."""
        pid = pseudonym.encode()
        with self._lock:
            if self.path is None:
                w = self._wrapped_of(np.array([pid], dtype=f"S{ID_BYTES}"))[0]
                if w is None:
                    return None
                self._drop(pid)
                return key_id(w)
            with self._file_lock():
                self.refresh()
                w = self._wrapped_of(np.array([pid], dtype=f"S{ID_BYTES}"))[0]
                if w is None:
                    return None
                self._drop(pid)
                self._merge(force=True)
                body = self._rec[self._order]  # every record still indexed, by pseudonym
                tmp = Path(str(self.path) + ".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, HEADER + body.tobytes())
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.path)
                fsync_dir(self.path.parent)
                self._reset()
                self.refresh()
            return key_id(w)

    def _drop(self, pid: bytes) -> None:
        self._new.pop(pid, None)
        self._unwrapped.pop(pid, None)
        pos = int(self._find(np.array([pid], dtype=f"S{ID_BYTES}"))[0])
        if pos >= 0:  # (the record stays in memory, out of the index, until the file is read again)
            self._head = np.delete(self._head, pos)
            self._order = np.delete(self._order, pos)

    # -- sealing ------------------------------------------------------------------------

    def seal(self, pseudonyms: Sequence[str], decision_ids: Sequence[str], texts: Sequence[str]) -> list[str]:
        """Each text sealed under its customer's key (made where the customer has none)."""
        keys = self.keys(pseudonyms, create=True)
        return seal_with(keys, decision_ids, texts)

    def open(self, pseudonyms: Sequence[str], decision_ids: Sequence[str],
             stored: Sequence[str | None]) -> list[str | None]:
        """The plain text of each stored value: as it is where it was not sealed, None where
        its customer's key is gone (erased)."""
        idx = [i for i, s in enumerate(stored) if is_sealed(s)]
        out = list(stored)
        for at in range(0, len(idx), OPEN_CHUNK):  # the key file's lock is let go between chunks
            part = idx[at:at + OPEN_CHUNK]
            for i, key in zip(part, self.keys([pseudonyms[i] for i in part])):
                out[i] = None if key is None else open_with(key, decision_ids[i], stored[i])
        return out


def _heads(rows: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each row as one (native) number: their order is the bytes' order."""
    if not len(rows):
        return np.zeros(0, dtype=np.uint64)
    return np.ascontiguousarray(rows[:, :8]).view(">u8").ravel().astype(np.uint64)


def _index(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted heads (:func:`_heads`) of ``rows`` (an id in the first :data:`ID_BYTES` bytes
    of each) and the stable sorting order of the rows by id, as ``np.argsort(ids, kind="stable")``
    gives it, about four times faster on millions: a sort of numbers, then the runs of ids that
    share their first 8 bytes (hex digits: 32 bits, a few thousand pairs among millions) by the
    whole id and, where ids are equal, by their position."""
    head = _heads(rows)
    order = np.argsort(head)
    h = head[order]
    tie = np.flatnonzero(h[1:] == h[:-1])
    if len(tie):
        at = np.union1d(tie, tie + 1)  # every position of a run (the runs lie in one piece, in order)
        sub = order[at]
        ids = np.ascontiguousarray(rows[sub, :ID_BYTES]).view(f"S{ID_BYTES}").ravel()
        order[at] = sub[np.lexsort((sub, ids, h[at]))]
    return h, order.astype(np.int64, copy=False)


#: Values opened per hold of the key file's lock: a read of 250,000 (the dashboard's factors,
#: seconds) does not keep a page that opens one decision waiting until it is done.
OPEN_CHUNK = 10_000


def key_id(wrapped: bytes) -> str:
    """The id of a customer's key as a sealed value names it (16 hex digits of the SHA-256 of
    the wrapped key): a value sealed under a key that was since destroyed names another id
    than the customer's current key."""
    return hashlib.sha256(wrapped).hexdigest()[:16]


def seal_with(keys: Sequence[tuple[bytes, str]], decision_ids: Sequence[str], texts: Sequence[str]) -> list[str]:
    nonces = os.urandom(12 * len(texts))
    b64 = base64.b64encode
    out = []
    for k, ((key, kid), did, text) in enumerate(zip(keys, decision_ids, texts)):
        nonce = nonces[12 * k: 12 * k + 12]
        data = AESGCM(key).encrypt(nonce, text.encode(), did.encode())
        out.append(f'{PREFIX}"key":"{kid}","nonce":"{b64(nonce).decode()}","data":"{b64(data).decode()}"}}')
    return out


_KEY_AT = len(PREFIX) + len('"key":"')
_NONCE_AT = _KEY_AT + 16 + len('","nonce":"')
_DATA_AT = _NONCE_AT + 16 + len('","data":"')


def open_with(key: tuple[bytes, str], decision_id: str, stored: str) -> str | None:
    """The plain text of a sealed value; None where it was sealed under an earlier key of the
    customer's (destroyed by an erasure; the customer has come back since)."""
    try:
        if stored[_DATA_AT - 10:_DATA_AT] != '","data":"' or not stored.endswith('"}'):  # not as seal_with writes it
            doc = json.loads(stored)
            kid, nonce, data = doc["key"], doc["nonce"], doc["data"]
        else:
            kid, nonce, data = stored[_KEY_AT:_KEY_AT + 16], stored[_NONCE_AT:_NONCE_AT + 16], stored[_DATA_AT:-2]
        if kid != key[1]:
            return None
        return AESGCM(key[0]).decrypt(base64.b64decode(nonce), base64.b64decode(data), decision_id.encode()).decode()
    except (InvalidTag, KeyError, TypeError, ValueError) as exc:
        raise LogError(f"The sealed inputs of decision {decision_id} do not open with their customer's key "
                       "(they were changed, or moved from another decision).",
                       "Run `klartext verify`: it names the decision whose stored bytes changed.") from exc


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a new or renamed file in it) to disk, where the OS allows."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
