"""Compiled assembly and hashing of the log's canonical bytes (numba and OpenSSL).

Private to the log's hashing: :mod:`decision_log.integrity` (which defines the byte layout
and describes the columns) and :mod:`decision_log.pseudonyms` are the only modules that
import this one.  A column is described as a tuple
``(kind, width, validity, payload, codes, text offsets, text bytes)`` (see
``integrity.label_column`` and its siblings).

For speed the digests are computed with OpenSSL's one-shot ``SHA256`` — the library behind
hashlib — called from compiled code: each group's bytes are assembled into a small buffer
that stays in cache and hashed at once, with no Python call per decision.  Where OpenSSL
cannot be found this way, :func:`available` is False and hashlib is used instead.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import njit, types

NO_CODES = np.empty(0, np.int32)
NO_OFFSETS = np.zeros(1, np.int64)
NO_BYTES = np.empty(0, np.uint8)
NO_TABLE = np.empty((0, 0), np.uint8)
for _a in (NO_CODES, NO_OFFSETS, NO_BYTES, NO_TABLE):
    _a.flags.writeable = False
FIXED, LABEL, TEXT, SKIP = 0, 1, 2, 3
_SLOTS = 24  #: column specs are padded to a multiple of this many (one compiled specialisation)


def ro(a: np.ndarray) -> np.ndarray:
    """A read-only view: every array handed to the compiled assembly has the same numba type."""
    a = a.view()
    a.flags.writeable = False
    return a


NO_VALID = ro(np.empty(0, np.uint8))


def column(kind: int, width: int, valid: np.ndarray, payload: np.ndarray = NO_TABLE, codes: np.ndarray = NO_CODES,
           offsets: np.ndarray = NO_OFFSETS, data: np.ndarray = NO_BYTES) -> tuple:
    """A column as the compiled code reads it (every array a read-only view, so that every
    column has the same numba type)."""
    return (kind, width, ro(valid), ro(payload), ro(codes), ro(offsets), ro(data))


def _memmove() -> types.ExternalFunction:
    """The C library's ``memmove`` (ctypes knows where it is on every platform), callable from
    compiled code under a name of its own."""
    import ctypes

    import llvmlite.binding as llvm

    llvm.add_symbol("klartext_memmove", ctypes.cast(ctypes.memmove, ctypes.c_void_p).value)
    return types.ExternalFunction("klartext_memmove", types.uintp(types.uintp, types.uintp, types.uintp))


_MEMMOVE = _memmove()


@njit(cache=True, nogil=True)
def _text_lengths(lengths, r0, r1, cols):  # pragma: no cover - compiled; checked against the rules in the tests
    """Add the length of the text part of each row ``r0:r1`` to ``lengths[row - r0]``."""
    for c in cols:
        kind, w, valid, payload, codes, offs, data = c
        if kind == TEXT:
            for i in range(r0, r1):
                if valid[i] != 0:
                    lengths[i - r0] += offs[codes[i] + 1] - offs[codes[i]]


@njit(cache=True, nogil=True)
def _put_fixed(buf, where, r0, r1, cols):  # pragma: no cover - compiled; checked against the rules in the tests
    """The fixed part of each row ``r0:r1`` into ``buf`` from ``where[row - r0]`` on (the bytes
    there are zero), column by column, so a block's output stays in cache."""
    pos = 0
    for c in cols:
        kind, w, valid, payload, codes, offs, data = c
        if kind == SKIP:
            continue
        for i in range(r0, r1):
            if valid[i] == 0:
                continue  # validity byte 0 and a zero payload
            q = where[i - r0] + pos
            buf[q] = 1
            if kind == FIXED or kind == LABEL:
                j = i if kind == FIXED else codes[i]
                if w == 8:  # unrolled: most columns are 8 bytes wide
                    buf[q + 1] = payload[j, 0]
                    buf[q + 2] = payload[j, 1]
                    buf[q + 3] = payload[j, 2]
                    buf[q + 4] = payload[j, 3]
                    buf[q + 5] = payload[j, 4]
                    buf[q + 6] = payload[j, 5]
                    buf[q + 7] = payload[j, 6]
                    buf[q + 8] = payload[j, 7]
                else:
                    for k in range(w):
                        buf[q + 1 + k] = payload[j, k]
            else:
                code = codes[i]
                ln = offs[code + 1] - offs[code]
                for k in range(4):
                    buf[q + 1 + k] = (ln >> (8 * k)) & 0xFF
        pos += 1 + w


@njit(cache=True, nogil=True)
def _put_text(buf, at, r0, r1, cols):  # pragma: no cover - compiled; checked against the rules in the tests
    """The text part of each row ``r0:r1`` into ``buf`` from ``at[row - r0]`` on (``at`` is
    advanced past it)."""
    for c in cols:
        kind, w, valid, payload, codes, offs, data = c
        if kind != TEXT:
            continue
        for i in range(r0, r1):
            if valid[i] == 0:
                continue
            code = codes[i]
            j = at[i - r0]
            a, b = offs[code], offs[code + 1]
            _MEMMOVE(buf.ctypes.data + j, data.ctypes.data + a, b - a)
            at[i - r0] = j + b - a


_BLOCK = 256  #: rows assembled together


@njit(cache=True, nogil=True)
def _fill(fixed, lengths, cols):  # pragma: no cover - compiled; checked against the rules in the tests
    """Each row's fixed part into ``fixed`` (zeros) and the length of its text part into
    ``lengths``, a block of rows at a time."""
    n, width = fixed.shape
    flat = fixed.reshape(-1)
    where = np.empty(_BLOCK, np.int64)
    for b0 in range(0, n, _BLOCK):
        b1 = min(n, b0 + _BLOCK)
        for i in range(b0, b1):
            where[i - b0] = i * width
        _put_fixed(flat, where, b0, b1, cols)
        _text_lengths(lengths[b0:b1], b0, b1, cols)


@njit(cache=True, nogil=True)
def _fill_text(text, offsets, cols):  # pragma: no cover - compiled; checked against the rules in the tests
    """Each row's text part into ``text`` from ``offsets[row]`` on."""
    n = offsets.shape[0] - 1
    for b0 in range(0, n, _BLOCK):
        b1 = min(n, b0 + _BLOCK)
        _put_text(text, offsets[b0:b1].copy(), b0, b1, cols)


_SHA256 = types.ExternalFunction("SHA256", types.uintp(types.uintp, types.intp, types.uintp))


def _load_openssl() -> bool:
    """Make OpenSSL's ``SHA256`` callable from compiled code (False where it is not found)."""
    try:
        import _hashlib  # noqa: F401  (maps OpenSSL's libcrypto into this process)
        import ctypes

        import llvmlite.binding as llvm

        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "/libcrypto" in ln})
        for path in paths:
            if hasattr(ctypes.CDLL(path), "SHA256"):
                llvm.load_library_permanently(path)
                return True
    except (ImportError, OSError, AttributeError):
        pass
    return False


@njit(cache=True, nogil=True)
def _hash_groups(cols, starts, ends, width, out):  # pragma: no cover - compiled; checked against digests()
    """``out[g]`` = SHA-256 of rows ``starts[g]:ends[g]``: their fixed parts, then their text
    parts, as :func:`assemble` lays them out.  Adjoining groups are assembled a block of
    about 512 rows at a time into one reused buffer, and each group hashed from it."""
    G = starts.shape[0]
    cap = 1 << 20
    buf = np.empty(cap, np.uint8)
    rows_cap = 1024
    fpos = np.empty(rows_cap, np.int64)  # where each row of the block puts its fixed part
    tpos = np.empty(rows_cap, np.int64)  # ... and its text part
    base = np.empty(G + 1, np.int64)
    dst = out.ctypes.data
    g0 = 0
    while g0 < G:
        g1 = g0 + 1
        while g1 < G and starts[g1] == ends[g1 - 1] and ends[g1] - starts[g0] <= 2 * _BLOCK:  # adjoining groups
            g1 += 1
        r0, r1 = starts[g0], ends[g1 - 1]
        nr = r1 - r0
        if nr > rows_cap:
            rows_cap = nr
            fpos, tpos = np.empty(rows_cap, np.int64), np.empty(rows_cap, np.int64)
        tpos[:nr] = 0
        _text_lengths(tpos, r0, r1, cols)
        at = 0
        for g in range(g0, g1):  # layout: each group's fixed parts, then its text parts
            base[g] = at
            a, b = starts[g], ends[g]
            t = at + (b - a) * width
            for i in range(a, b):
                fpos[i - r0] = at + (i - a) * width
                ln = tpos[i - r0]
                tpos[i - r0] = t
                t += ln
            at = t
        base[g1] = at
        if at > cap:
            while cap < at:
                cap *= 2
            buf = np.empty(cap, np.uint8)
        for g in range(g0, g1):
            buf[base[g]:base[g] + (ends[g] - starts[g]) * width] = 0
        _put_fixed(buf, fpos, r0, r1, cols)
        _put_text(buf, tpos, r0, r1, cols)
        src = buf.ctypes.data
        for g in range(g0, g1):
            _SHA256(src + base[g], base[g + 1] - base[g], dst + 32 * g)
        g0 = g1


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


@njit(cache=True, nogil=True)
def _link(record_in, prev, records, chain_out, hexdigits):  # pragma: no cover - compiled; checked against chain()
    """Record hashes (hex of SHA-256 of each row of ``record_in``: row digest || candidate
    digest) into ``records`` and the chain from ``prev`` (64 hex bytes) into ``chain_out``:
    ``chain[k] = hex(SHA-256(chain[k-1] || record[k]))``, all as ASCII hex."""
    link = np.empty(128, np.uint8)
    digest = np.empty(32, np.uint8)
    link[:64] = prev
    for i in range(record_in.shape[0]):
        _SHA256(record_in[i].ctypes.data, 64, digest.ctypes.data)
        for k in range(32):
            records[i, 2 * k] = hexdigits[digest[k] >> 4]
            records[i, 2 * k + 1] = hexdigits[digest[k] & 15]
        link[64:] = records[i]
        _SHA256(link.ctypes.data, 128, digest.ctypes.data)
        for k in range(32):
            chain_out[i, 2 * k] = hexdigits[digest[k] >> 4]
            chain_out[i, 2 * k + 1] = hexdigits[digest[k] & 15]
        link[:64] = chain_out[i]


@njit(cache=True, nogil=True)
def _hmac_hex(inner_pad, outer_pad, data, offs, width, out, hexdigits):  # pragma: no cover - compiled; checked against hmac
    """``out[i]`` = the first ``width`` hex digits of HMAC-SHA256 of message ``i``
    (``data[offs[i]:offs[i + 1]]``), the key given as its two 64-byte pads (RFC 2104)."""
    longest = 0
    for i in range(offs.shape[0] - 1):
        longest = max(longest, offs[i + 1] - offs[i])
    inner = np.empty(64 + longest, np.uint8)
    inner[:64] = inner_pad
    outer = np.empty(96, np.uint8)
    outer[:64] = outer_pad
    digest = np.empty(32, np.uint8)
    for i in range(offs.shape[0] - 1):
        a, b = offs[i], offs[i + 1]
        _MEMMOVE(inner.ctypes.data + 64, data.ctypes.data + a, b - a)
        _SHA256(inner.ctypes.data, 64 + b - a, outer[64:].ctypes.data)
        _SHA256(outer.ctypes.data, 96, digest.ctypes.data)
        for k in range(width // 2):
            out[i, 2 * k] = hexdigits[digest[k] >> 4]
            out[i, 2 * k + 1] = hexdigits[digest[k] & 15]




def assemble(cols: list[tuple], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fixed part per row, text offsets per row, text bytes) of ``n`` rows described by ``cols``."""
    width = sum(1 + c[1] for c in cols)
    cols = _padded(cols)  # a fixed count of columns: every table uses one compiled specialisation
    fixed, lengths = np.zeros((n, width), np.uint8), np.zeros(n, np.int64)
    _fill(fixed, lengths, cols)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    text = np.empty(int(offsets[-1]), np.uint8)
    _fill_text(text, offsets, cols)
    return fixed, offsets, text


_AVAILABLE: bool | None = None  #: whether the compiled hashing works here (decided on first use)


def available() -> bool:
    """Whether OpenSSL's SHA256 is callable from compiled code here and gives a known answer."""
    global _AVAILABLE
    if _AVAILABLE is None:
        ok = _load_openssl()
        if ok:
            try:  # a known answer through the compiled path, or hashlib it is
                valid, one = ro(np.ones(1, np.uint8)), ro(np.zeros(1, np.int32))
                cols = [(FIXED, 8, valid, ro(np.array([7], "<i8").view(np.uint8).reshape(1, 8)), NO_CODES, NO_OFFSETS,
                         NO_BYTES),
                        (TEXT, 4, valid, NO_TABLE, one, ro(np.array([0, 3], np.int64)), ro(np.frombuffer(b"abc", np.uint8)))]
                got = group_digests(cols, np.zeros(1, np.int64), np.ones(1, np.int64))
                fix, _, txt = assemble(cols, 1)
                ok = got[0].tobytes() == hashlib.sha256(fix.tobytes() + txt.tobytes()).digest()
            except Exception:  # noqa: BLE001 - any failure to link or run means: use hashlib
                ok = False
        _AVAILABLE = ok
    return _AVAILABLE


def _padded(cols: list[tuple]) -> tuple:
    slots = max(_SLOTS, -(-len(cols) // 8) * 8)
    return tuple(cols) + ((SKIP, 0, NO_VALID, NO_TABLE, NO_CODES, NO_OFFSETS, NO_BYTES),) * (slots - len(cols))


def group_digests(cols: list[tuple], starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """SHA-256 of each group of rows ``starts[g]:ends[g]`` (a ``(groups, 32)`` uint8 array)."""
    out = np.empty((len(starts), 32), np.uint8)
    width = sum(1 + c[1] for c in cols)
    _hash_groups(_padded(cols), np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64),
                 width, out)
    return out


def link(digest_pairs: np.ndarray, prev: str) -> tuple[np.ndarray, np.ndarray]:
    """Record hashes and chain hashes (``(n, 64)`` ASCII hex) of ``(n, 64)`` digest pairs,
    the chain following ``prev``."""
    n = len(digest_pairs)
    records, chain = np.empty((n, 64), np.uint8), np.empty((n, 64), np.uint8)
    _link(np.ascontiguousarray(digest_pairs), np.frombuffer(prev.encode(), np.uint8), records, chain, _HEX)
    return records, chain


def hmac_hex(key: bytes, offsets: np.ndarray, data: np.ndarray, width: int) -> np.ndarray:
    """The first ``width`` hex digits (an ``(n, width)`` uint8 array) of HMAC-SHA256 under
    ``key`` (at most 64 bytes) of each message ``data[offsets[i]:offsets[i + 1]]``."""
    k = np.zeros(64, np.uint8)
    k[:len(key)] = np.frombuffer(key, np.uint8)
    out = np.empty((len(offsets) - 1, width), np.uint8)
    _hmac_hex(k ^ 0x36, k ^ 0x5C, data, offsets, width, out, _HEX)
    return out
