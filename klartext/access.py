"""Who may see what: users with hashed passwords, roles, and the rule that anything reachable
beyond this machine needs them.

A users file has one user per line, ``name:role:hash`` (``#`` starts a comment); ``hash`` is
``scrypt$n$r$p$salt$key`` (hex) from :func:`hash_password`, or ``-`` for a user who signs in
only through a trusted reverse proxy (``--auth-header``).  ``klartext user add`` writes it.

Roles, each including the ones before it:

``viewer``
    aggregates only: the governance pages, ``GET /health``.
``reviewer``
    single decisions and customer look-ups: replay, customer history, explanations,
    ``GET /decisions/{id}``.
``admin``
    everything, including deciding and reporting outcomes through the service.

``decider`` is the role of a channel system that calls the service: ``POST /decide`` and
``POST /outcome`` (and ``/health``), but no reading of logged decisions.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from decisioning.errors import KlartextError

ROLES = ("viewer", "reviewer", "decider", "admin")
#: What each role may do.
GRANTS = {
    "viewer": {"aggregates"},
    "reviewer": {"aggregates", "decisions"},
    "decider": {"aggregates", "decide"},
    "admin": {"aggregates", "decisions", "decide"},
}
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_SCRYPT = (2**14, 8, 1)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str  # "-": proxy sign-in only

    def may(self, grant: str) -> bool:
        return grant in GRANTS[self.role]


def hash_password(password: str) -> str:
    """scrypt (RFC 7914, OpenSSL's through hashlib) with a random 16-byte salt."""
    n, r, p = _SCRYPT
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${key.hex()}"


def check_password(stored: str, password: str) -> bool:
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(bytes.fromhex(key)), maxmem=256 * 1024 * 1024)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got, bytes.fromhex(key))


def load_users(path: str | Path) -> dict[str, User]:
    """Read a users file; every problem is named with its line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KlartextError(f"Cannot read the users file {str(path)!r}: {type(exc).__name__}.",
                            "Create it with `klartext user add --file PATH --name NAME --role ROLE`.") from None
    users: dict[str, User] = {}
    for i, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or not _NAME.match(parts[0]) or parts[1] not in ROLES or not (
                parts[2] == "-" or parts[2].startswith("scrypt$")):
            raise KlartextError(f"{path}, line {i}: expected 'name:role:hash' with a role of "
                                f"{', '.join(ROLES)}.", "Write users with `klartext user add`.")
        users[parts[0]] = User(parts[0], parts[1], parts[2])
    if not users:
        raise KlartextError(f"The users file {str(path)!r} names no user.", "Add one with `klartext user add`.")
    return users


def add_user(path: str | Path, name: str, role: str, password: str | None) -> None:
    """Add or replace a user (``password`` None: proxy sign-in only)."""
    if not _NAME.match(name):
        raise KlartextError(f"User name {name!r} is not allowed.", "Use letters, digits and . _ @ - (at most 64).")
    if role not in ROLES:
        raise KlartextError(f"Unknown role {role!r}.", f"Use one of: {', '.join(ROLES)}.")
    if password is not None and len(password) < 12:
        raise KlartextError("The password is shorter than 12 characters.", "Choose a longer password (a passphrase).")
    p = Path(path)
    lines = ["# Klartext users: name:role:hash"]
    if p.exists():
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise KlartextError(f"Cannot read the users file {str(path)!r}: {type(exc).__name__}.",
                                "Pass a users file written by `klartext user add`, or a new path.") from None
        if any(x.strip() and not x.strip().startswith("#") for x in lines):
            load_users(p)  # a file that is not a users file is named, never appended to
    lines = [x for x in lines if x.split(":", 1)[0] != name]
    lines.append(f"{name}:{role}:{hash_password(password) if password is not None else '-'}")
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, p)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_auth_beyond_loopback(host: str, users: str | None, header: str | None, what: str) -> None:
    """Refuse to listen beyond this machine without a way to sign in."""
    if not is_loopback(host) and users is None:
        raise KlartextError(
            f"{what} would listen on {host!r}, reachable from other machines, without authentication.",
            "Give --users FILE (make one with `klartext user add`), optionally with --auth-header NAME behind a "
            "trusted reverse proxy; or listen on 127.0.0.1 only.")
    if header is not None and users is None:
        raise KlartextError("--auth-header needs --users: the header names a user, the file gives the role.",
                            "Add the proxy's users with `klartext user add --file FILE --name NAME --role ROLE "
                            "--proxy-only`.")
