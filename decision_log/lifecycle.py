"""The strategy lifecycle on the record: propose → simulate → approve → activate → roll back.

Every step is a sealed row of the compliance register's ``strategy_steps`` table (who, when,
why), so ``klartext verify`` names a changed, added or removed step like any other sealed
row, and a running service — which holds the log itself — can follow the steps another
process records (the register is a file of its own, see :mod:`decision_log.register`).

The steps and what each one requires:

``proposed``
    A strategy file's text, under its version (the text's hash).  The log's deciding version
    at that moment becomes the *champion* the first time anything is proposed.
``simulated``
    The proposal's figures against the champion (champion/challenger on the logged inputs
    and off-policy estimates, :func:`analysis.lifecycle.simulate`), stored as JSON.
``approved``
    Refused without a simulation against the *current* champion, and refused to the person
    who proposed it (four eyes).
``activated``
    ``share`` < 1: a **canary** — the customers whose keyed hash (:func:`canary_bucket`) falls
    below the share get the new version, the rest the champion; raising the share keeps
    every customer already in it.  ``share`` = 1: the version becomes the champion.
``rolled_back``
    Ends a canary (everyone gets the champion again), or, without one, restores the
    champion before the last full activation.

:func:`state` folds the steps into what decides now (:class:`State`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from decision_log.register import Register, _has, _now, _via, _who
from decisioning.errors import InputError, LogError
from decisioning.strategy import Strategy

STEPS = ("proposed", "simulated", "approved", "activated", "rolled_back")


@dataclass(frozen=True)
class Step:
    ts: datetime
    step: str
    version: str
    actor: str
    via: str
    note: str | None
    share: float | None
    base_version: str | None
    detail: dict | None
    seal_seq: int


@dataclass
class State:
    """What decides now, and the record that led there."""

    champion: str | None = None  #: the version every customer outside a canary gets
    canary: str | None = None  #: the version a canary's customers get
    share: float = 0.0  #: the canary's share of customers
    since: datetime | None = None  #: when the current arrangement began
    steps: list[Step] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  #: proposed version → its strategy text
    previous: list[str] = field(default_factory=list)  #: earlier champions, newest last
    invalid: list[tuple[Step, str]] = field(default_factory=list)  #: recorded steps the rules forbid, and why

    @property
    def managed(self) -> bool:
        """Whether the log's strategy is managed by the lifecycle (anything was proposed)."""
        return bool(self.steps)

    def of(self, version: str) -> list[Step]:
        return [s for s in self.steps if s.version == version]

    def simulation(self, version: str) -> Step | None:
        sims = [s for s in self.of(version) if s.step == "simulated"]
        return sims[-1] if sims else None

    def approval(self, version: str) -> Step | None:
        """The version's approval, if it was given against the current champion."""
        sims = self.simulation(version)
        if sims is None or sims.base_version != self.champion:
            return None
        ok = [s for s in self.of(version) if s.step == "approved" and s.seal_seq > sims.seal_seq]
        return ok[-1] if ok else None

    def status(self, version: str) -> str:
        """proposed, simulated, approved, canary, active, retired (an earlier champion) or rolled_back."""
        if version == self.champion:
            return "active"
        if version == self.canary:
            return "canary"
        steps = [s.step for s in self.of(version)]
        if not steps:
            return "unknown"
        if steps[-1] == "rolled_back":
            return "rolled_back"
        if "activated" in steps:
            return "retired"
        if self.approval(version) is not None:
            return "approved"
        return steps[-1]

    def versions(self) -> list[str]:
        """Every version the record names, the earliest first (the first champion leads)."""
        out: list[str] = []
        for s in self.steps:
            for v in (s.base_version, s.version):
                if v and v not in out:
                    out.append(v)
        return out


def _row(r: tuple) -> Step:
    ts, step, version, actor, via, note, share, base, _text, detail, seq = r
    return Step(ts, step, version, actor, via, note, share, base, json.loads(detail) if detail else None, int(seq))


def stamp(reg: Register | None) -> tuple:
    """A cheap fingerprint of the recorded steps (their count and newest seal): what a
    follower polls before it reads and verifies them."""
    if reg is None or not _has(reg.con, "strategy_steps"):
        return (0, None)
    return tuple(reg.con.execute("SELECT count(*), max(seal_seq) FROM strategy_steps").fetchall()[0])


def _allowed(st: State, s: Step) -> str | None:
    """Why step ``s`` could not have been taken after the steps before it (None: it could):
    the rules the recording functions enforce, checked again on what is read back, so a row
    slipped into the register (or re-sealed after an edit) does not steer what decides."""
    if s.step not in STEPS:
        return f"unknown step {s.step!r}"
    if s.step == "proposed":
        return "proposed twice" if s.version in st.texts else None
    if s.step == "rolled_back":
        if s.version == st.canary or (s.version == st.champion and st.previous and s.base_version == st.previous[-1]):
            return None
        return "nothing of that version to roll back"
    if s.version not in st.texts:
        return "never proposed"
    if s.step == "approved":
        sim = st.simulation(s.version)
        proposer = next(x for x in st.steps if x.step == "proposed" and x.version == s.version).actor
        if sim is None or sim.base_version != st.champion:
            return "no simulation against the version deciding then"
        return "approved by its proposer" if s.actor == proposer else None
    if s.step == "activated":
        if s.share is None or not (0 < s.share <= 1):
            return f"share {s.share!r}"
        if st.approval(s.version) is None:
            return "not approved against the version deciding then"
        if st.canary is not None and st.canary != s.version:
            return "another canary was running"
    return None


def state(reg: Register | None, verify: bool = True) -> State:
    """Fold the register's steps into the current :class:`State` (an empty one without any).

    ``verify``: the steps' seals are checked first (their rows and the register's seal chain;
    a :class:`~decisioning.errors.LogError` names a changed, added or removed step).  Steps
    that break the lifecycle's rules are not applied; they are listed in ``State.invalid``."""
    st = State()
    if reg is None or not _has(reg.con, "strategy_steps"):
        return st
    if verify:
        from decision_log import register as _register
        from decision_log import seals

        problem = seals.verify(reg.con, {"strategy_steps": _register.TABLES["strategy_steps"]})
        if problem is not None:
            raise LogError(f"The strategy lifecycle's record does not verify ({problem.table}: {problem.problem}); "
                           "nothing follows from it until it does.",
                           "Run `klartext verify` and restore the compliance register (LOG.compliance.duckdb) from a "
                           "trusted copy.")
    rows = reg.con.execute("SELECT ts, step, version, actor, via, note, share, base_version, text, detail, seal_seq "
                           "FROM strategy_steps ORDER BY seal_seq").fetchall()
    for r in rows:
        s = _row(r)
        why = _allowed(st, s)
        if why is not None:
            st.invalid.append((s, why))
            continue
        st.steps.append(s)
        if s.step == "proposed":
            st.texts[s.version] = r[8]
            if st.champion is None:
                st.champion, st.since = s.base_version, s.ts
        elif s.step == "activated":
            if s.share is not None and s.share < 1:
                st.canary, st.share = s.version, float(s.share)
            else:
                if st.champion is not None:
                    st.previous.append(st.champion)
                st.champion, st.canary, st.share = s.version, None, 0.0
            st.since = s.ts
        elif s.step == "rolled_back":
            if s.version == st.canary:
                st.canary, st.share = None, 0.0
            else:
                st.champion = s.base_version
                if st.previous and st.previous[-1] == s.base_version:
                    st.previous.pop()
            st.since = s.ts
    return st


def _record(reg: Register, st: State, step: str, version: str, actor: str, via: str, note: str | None = None,
            share: float | None = None, base: str | None = None, text: str | None = None,
            detail: dict | None = None) -> Step:
    """Write one step (``st``: the state the caller checked it against)."""
    if st.invalid:  # nothing is added to a record that holds steps its rules forbid
        bad, why = st.invalid[0]
        raise LogError(f"The strategy lifecycle's record holds a step its rules forbid: {bad.step} of {bad.version} "
                       f"at {bad.ts:%Y-%m-%d %H:%M} by {bad.actor} ({why}).",
                       "Run `klartext verify` and restore the compliance register from a trusted copy.")
    row = (_now(), step, version, _who(actor), _via(via), (note or "").strip() or None, share, base, text,
           None if detail is None else json.dumps(detail, sort_keys=True, default=str))
    reg._write("strategy_steps", [row])
    seq = reg.con.execute("SELECT max(seal_seq) FROM strategy_steps").fetchall()[0][0]
    return _row((*row, seq))


def _known(st: State, version: str) -> None:
    if version not in st.texts:
        known = ", ".join(sorted(st.texts)) or "none yet"
        raise InputError(f"Strategy version {version!r} was never proposed (proposed: {known}).",
                         "Propose it first: `klartext strategy propose FILE --db LOG` prints its version.")


def find(st: State, text: str) -> str:
    """The version a (possibly shortened) version text names; ``active``, ``canary`` name those,
    ``proposed`` the newest proposal."""
    if text == "active" and st.champion:
        return st.champion
    if text == "canary" and st.canary:
        return st.canary
    if text == "proposed":
        proposals = [s.version for s in st.steps if s.step == "proposed"]
        if proposals:
            return proposals[-1]
    hits = [v for v in st.versions() if v.startswith(text)] if len(text) >= 4 else [v for v in st.versions() if v == text]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise InputError(f"No strategy version {text!r} in the lifecycle record.",
                         "`klartext strategy status --db LOG` lists the versions (the first 8 characters suffice).")
    raise InputError(f"{text!r} names several versions: {', '.join(hits)}.", "Give more of the version.")


def propose(reg: Register, strategy: Strategy, champion: str | None, actor: str, via: str,
            note: str | None = None) -> Step:
    """Record ``strategy`` as a proposal; ``champion`` is the log's deciding version (it becomes
    the lifecycle's first champion when nothing was proposed before)."""
    st = state(reg)
    if strategy.version in st.texts:
        first = next(s for s in st.of(strategy.version) if s.step == "proposed")
        raise InputError(f"Strategy version {strategy.version} ({strategy.name}) was proposed already, on "
                         f"{first.ts:%Y-%m-%d %H:%M} by {first.actor}; it is {st.status(strategy.version)}.",
                         f"Go on with `klartext strategy simulate {strategy.version[:8]}`, or change the file.")
    base = st.champion if st.managed else champion
    if strategy.version == base:
        raise InputError(f"Strategy version {strategy.version} is the one deciding now.",
                         "Propose a changed file; its version is the hash of its text.")
    return _record(reg, st, "proposed", strategy.version, actor, via, note, base=base, text=strategy.text)


def record_simulation(reg: Register, version: str, detail: dict, actor: str, via: str) -> Step:
    st = state(reg)
    _known(st, version)
    if st.status(version) in ("active", "canary", "retired"):
        raise InputError(f"Strategy version {version} is {st.status(version)}; a simulation is for a proposal.",
                         "Propose a new version to simulate it.")
    return _record(reg, st, "simulated", version, actor, via, base=st.champion, detail=detail)


def approve(reg: Register, version: str, actor: str, via: str, note: str | None) -> Step:
    st = state(reg)
    _known(st, version)
    status = st.status(version)
    if status in ("active", "canary", "retired"):
        raise InputError(f"Strategy version {version} is {status} already.", "Approve a proposal instead.")
    sim = st.simulation(version)
    if sim is None:
        raise InputError(f"Strategy version {version} has no stored simulation, so there is nothing to approve it on.",
                         f"Run `klartext strategy simulate {version[:8]}` first; its figures are stored with the "
                         "proposal.")
    if sim.base_version != st.champion:
        raise InputError(f"Strategy version {version} was simulated against {sim.base_version}, but "
                         f"{st.champion} decides now.", f"Simulate it again: `klartext strategy simulate {version[:8]}`.")
    if not (note or "").strip():
        raise InputError("An approval needs a note saying why.", 'Add --note "…" (e.g. what in the simulation '
                         "convinced you).")
    proposer = next(s for s in st.of(version) if s.step == "proposed").actor
    if _who(actor) == proposer:
        raise InputError(f"{proposer} proposed version {version}; the same person cannot approve it (four eyes).",
                         "Ask someone else to approve it with --by THEIR_NAME.")
    if st.approval(version) is not None:
        raise InputError(f"Strategy version {version} is approved already.",
                         f"Activate it: `klartext strategy activate {version[:8]} --share 0.1`.")
    return _record(reg, st, "approved", version, actor, via, note, base=st.champion)


def activate(reg: Register, version: str, share: float, actor: str, via: str, note: str | None = None) -> Step:
    st = state(reg)
    _known(st, version)
    if not (0 < share <= 1):
        raise InputError(f"--share must be above 0 and at most 1, got {share!r}.",
                         "Write --share 0.1 for a canary of one customer in ten, --share 1 to let it decide for all.")
    if version == st.champion:
        raise InputError(f"Strategy version {version} decides for every customer already.", "Nothing to do.")
    if st.canary is not None and st.canary != version:
        raise InputError(f"Version {st.canary} is a canary at {st.share:.0%} now; one canary at a time.",
                         f"End it first: `klartext strategy rollback`, or activate {st.canary[:8]} with --share 1.")
    if st.approval(version) is None:
        raise InputError(f"Strategy version {version} is not approved against the version deciding now "
                         f"({st.champion}).", f"It needs `klartext strategy approve {version[:8]} --by NAME --note …` "
                         "after a simulation against the version deciding now.")
    return _record(reg, st, "activated", version, actor, via, note, share=float(share), base=st.champion)


def rollback(reg: Register, actor: str, via: str, note: str | None) -> Step:
    st = state(reg)
    if not (note or "").strip():
        raise InputError("A rollback needs a note saying why.", 'Add --note "…".')
    if st.canary is not None:
        return _record(reg, st, "rolled_back", st.canary, actor, via, note, share=0.0, base=st.champion)
    if not st.previous:
        raise InputError("There is nothing to roll back: no canary runs and no earlier version was replaced.",
                         "`klartext strategy status` shows what decides now.")
    return _record(reg, st, "rolled_back", st.champion, actor, via, note, base=st.previous[-1])


# -- who gets which version -------------------------------------------------------------


def canary_bucket(salt: str, pseudonyms: np.ndarray | list[str]) -> np.ndarray:
    """Each customer's place in [0, 1) for the canary of version ``salt``: the first 8 bytes of
    SHA-256(salt | pseudonym).  The pseudonym is the log's keyed HMAC of the customer id, so
    nobody without the log's key can tell or steer who is in a canary; the same customer
    always falls in the same place, so raising the share keeps those already in."""
    out = np.empty(len(pseudonyms), dtype=np.float64)
    pre = salt.encode() + b"|"
    for i, p in enumerate(pseudonyms):
        out[i] = int.from_bytes(hashlib.sha256(pre + str(p).encode()).digest()[:8], "big") / 2.0**64
    return out


def in_canary(st: State, pseudonyms: np.ndarray | list[str]) -> np.ndarray:
    """Which of these customers the current canary gets (all False without one)."""
    if st.canary is None:
        return np.zeros(len(pseudonyms), dtype=bool)
    return canary_bucket(st.canary, pseudonyms) < st.share


def describe(st: State) -> dict[str, Any]:
    """The state as JSON-ready dict (``klartext strategy status --json``, ``/health``)."""
    return {"managed": st.managed, "champion": st.champion, "canary": st.canary, "share": st.share,
            "since": None if st.since is None else st.since.isoformat(timespec="seconds"),
            "steps": len(st.steps)}


# -- the engines that decide ----------------------------------------------------------------


@dataclass(frozen=True)
class Deciders:
    """The engines of a :class:`State`, fully loaded: a decider switches to another one only
    when it is complete, so no request meets a half-loaded strategy."""

    state: State
    champion: Any  #: decisioning.engine.Engine
    canary: Any = None

    def route(self, pseudonyms: np.ndarray | list[str]) -> np.ndarray:
        """Per customer, the index of the engine that decides: 0 champion, 1 canary."""
        return in_canary(self.state, pseudonyms).astype(np.int8)

    @property
    def engines(self) -> list:
        return [self.champion] + ([self.canary] if self.canary is not None else [])


def strategy_of(log, st: State, version: str) -> Strategy:
    """A version's strategy: its proposal's text, else the log's copy (``log``: a DecisionLog)."""
    from decisioning.strategy import parse_strategy

    if version in st.texts:
        return parse_strategy(st.texts[version], source=f"strategy {version} (proposed)")
    return log.load_strategy(version)


def engine_for(log, strategy: Strategy, ready: bool = True):
    """An engine for ``strategy`` with the log's newest models for its actions; ``ready``:
    prepared and every model deserialised now (a service: not on a request)."""
    from decisioning.engine import Engine

    e = Engine(strategy, log.latest_models_for(strategy))
    if ready:
        e.prepare()
        for m in e.models.models.values():
            _ = m.estimator
    return e


def deciders(log, st: State, ready: bool = True) -> Deciders:
    """Engines for the state's champion and canary (see :func:`engine_for`)."""
    champion, canary = (None if v is None else engine_for(log, strategy_of(log, st, v), ready)
                        for v in (st.champion, st.canary))
    return Deciders(st, champion, canary)


def arrangement(log, strategy: Strategy | None = None, ready: bool = True, models=None) -> Deciders:
    """What decides in ``log`` now: where the strategy is managed, the active version and its
    canary (a ``strategy`` file other than the active version is refused); else ``strategy``,
    or the log's newest, with ``models`` where given (else the log's newest for its actions)."""
    st = current(log)
    if st.managed:
        if strategy is not None and strategy.version != st.champion:
            raise InputError(
                f"The strategy of {log.path} is managed (`klartext strategy status`): {st.champion} decides now, not "
                f"{strategy.version} from {strategy.source}.",
                "Leave out --strategy to decide with the active version (and its canary; a running service follows "
                "each activation and rollback), or propose, simulate, approve and activate the file with "
                "`klartext strategy`.")
        return deciders(log, st, ready)
    s = strategy or log.load_strategy(log.latest_strategy_version())
    if models is not None:
        from decisioning.engine import Engine

        return Deciders(st, Engine(s, models))
    return Deciders(st, engine_for(log, s, ready))


def current(log, verify: bool = True) -> State:
    """The lifecycle state of ``log`` (a DecisionLog; an empty state when nothing is recorded),
    its record verified first (see :func:`state`)."""
    with log.register(read_only=True) as reg:
        return state(reg, verify)
