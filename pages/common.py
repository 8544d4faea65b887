"""What every page shares: finding and opening the decision log once per process, the
sidebar filters, the explainer, and one way to show errors."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from decision_log import live, queries, shards
from decision_log.store import DecisionLog
from decisioning.errors import KlartextError
from explain import i18n
from explain.api import Explainer
from klartext import access

DEFAULT_DB = "klartext_demo.duckdb"


# -- language ---------------------------------------------------------------------------------

def lang() -> str:
    """The language the person chose in the sidebar (``?lang=de`` in the address also works;
    else ``$KLARTEXT_LANG``, else English)."""
    chosen = st.session_state.get("lang") or st.query_params.get("lang")
    return i18n.language(chosen)


def tr(key: str, **values: object) -> str:
    """The text of ``key`` (:mod:`explain.i18n`) in the chosen language."""
    return i18n.t(key, lang(), **values)


def fmt():
    """(number, percent) formatters in the chosen language: ``number(x, decimals=0, sign=False)``
    and ``percent(share, decimals=1)``."""
    lg = lang()

    def number(x: float, decimals: int = 0, sign: bool = False) -> str:
        text = i18n.number(abs(x) if sign else x, lg, decimals)
        # an ASCII minus: st.metric reads a delta's direction (arrow, colour) from a leading "-"
        return ("+" if x >= 0 else "-") + text if sign else text

    def percent(share: float, decimals: int = 1) -> str:
        return i18n.percent(share, lg, decimals)

    return number, percent


def date_format() -> str:
    """A date input's format in the chosen language: 05.12.2026 / 2026-12-05."""
    return "DD.MM.YYYY" if lang() == "de" else "YYYY-MM-DD"


def money(x: float | None, currency: str, decimals: int = 2) -> str:
    """An amount with the strategy's currency, in the chosen language: 1,234.50 EUR / 1.234,50 EUR."""
    if x is None or x != x:
        return "—"
    return f"{i18n.number(x, lang(), decimals)} {currency}"


@st.cache_resource(show_spinner=False, max_entries=4)
def _catalog(path: str, version: float | str) -> tuple[dict[str, str], str]:
    lg = _open(path, version)
    names: dict[str, str] = {}
    currency = "EUR"
    for (sv,) in lg.con.cursor().execute("SELECT version FROM strategies ORDER BY first_used").fetchall():
        s = lg.load_strategy(sv)  # the newest strategy's name of an action wins
        names |= {a.id: a.name for a in s.actions}
        currency = s.currency
    return names, currency


def catalog(lg: DecisionLog) -> tuple[dict[str, str], str]:
    """(action id → name, currency) from the log's strategies; an imported log has no names,
    and its actions are shown by id."""
    return _catalog(*log_key(lg))


def action_label(names: dict[str, str], action_id: str) -> str:
    """An action as people call it: its name from the strategy, else its id."""
    return names.get(action_id, action_id)


def language_choice() -> None:
    """The sidebar's language switch; the choice is kept in the address (``?lang=de``), so a
    link opens in the same language.  (Streamlit's own ``bind="query-params"`` would write the
    label, ``?lang=Deutsch``, and drop a ``?lang=de`` link.)"""
    codes = list(i18n.LANGUAGES)
    chosen = st.sidebar.selectbox("Sprache · Language", codes, index=codes.index(lang()),
                                  format_func=i18n.LANGUAGES.__getitem__, key="lang")
    if st.query_params.get("lang") != chosen:
        st.query_params["lang"] = chosen


def _cli_db() -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.db


def db_path() -> str:
    """The log path, fixed when the dashboard starts (`-- --db PATH`, else $KLARTEXT_DB, else
    the demo default): nobody can point the browser at another file on the host.  Every page
    reads the log through here, so every page — also one opened by its own URL — asks for a
    sign-in first when the dashboard has users."""
    current_user()
    path = _cli_db() or os.environ.get("KLARTEXT_DB") or DEFAULT_DB
    st.sidebar.caption(tr("common.log", name=md(Path(path).name)))
    return path


def record_view(lg, what: str, target: str, customer: str | None = None) -> None:
    """Record in the log's compliance register that the signed-in person sees ``what``
    (a decision, a customer's history) — once per browser session and thing, before it is
    shown; a view that cannot be recorded is not shown."""
    seen = st.session_state.setdefault("_recorded_views", set())
    if (what, target) in seen:
        return
    user = current_user()
    actor = user.name if user is not None else "local:" + getpass.getuser()
    try:
        with lg.register(wait_s=5.0) as reg:
            reg.record_access(actor, "dashboard", what, target, customer=customer)
    except KlartextError as exc:
        show_error(exc)
        st.stop()
    seen.add((what, target))


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(text: object) -> str:
    """Text from the log or a strategy, escaped for Markdown: a label or reason is shown as
    written, never as a link or an image the browser would fetch."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


# -- signing in -------------------------------------------------------------------------------

def _through_app() -> None:
    """Run every page through app.py, also for the first visitor of a fresh server.

    Streamlit cannot know that app.py declares the navigation until app.py has run once; until
    then it treats the ``pages/`` folder as Streamlit's older multipage layout.  The first
    visitor who opens a page's address (a shared link, a bookmark) then got that page file run
    on its own, with a sidebar listing every file in the folder (``app``, ``common``, …) and no
    language switch.  Telling Streamlit the app declares its navigation, and running again,
    goes through app.py, which opens the page the address names.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def current_user(entrypoint: bool = False) -> access.User | None:
    """The signed-in user, or None when the dashboard runs without a users file (loopback
    only: `klartext app` refuses anything else).  Shows the sign-in form and stops the page
    run until someone has signed in."""
    if not entrypoint:  # app.py itself declares the navigation
        _through_app()
    users_file = os.environ.get("KLARTEXT_USERS")
    if not users_file:
        return None
    users = _users(users_file)
    header = os.environ.get("KLARTEXT_AUTH_HEADER")
    if header:
        name = st.context.headers.get(header)
        if name:
            if name not in users:
                st.error(tr("signin.not_a_user", name=md(name)))
                st.stop()
            return users[name]
    name = st.session_state.get("_user")
    if name in users:
        return users[name]
    if entrypoint:  # app.py: no page list before signing in
        st.navigation([st.Page(_signing_in, title=tr("signin.button"))], position="hidden")
    st.title("Klartext")
    with st.form("sign_in"):
        st.write(tr("signin.intro"))
        who = st.text_input(tr("signin.user"))
        password = st.text_input(tr("signin.password"), type="password")
        if st.form_submit_button(tr("signin.button")):
            user = users.get(who)
            if user is not None and user.password_hash != "-" and access.check_password(user.password_hash, password):
                st.session_state["_user"] = who
                st.rerun()
            st.error(tr("signin.wrong"))
    st.stop()


def _signing_in() -> None:
    """The only page before signing in (the form itself is drawn by :func:`current_user`)."""


@st.cache_resource
def _users(path: str) -> dict[str, access.User]:
    return access.load_users(path)


def require(grant: str) -> None:
    """Stop a page the signed-in user's role does not grant (the navigation hides it too)."""
    user = current_user()
    if user is not None and not user.may(grant):
        st.error(tr("signin.not_allowed", name=md(user.name), role=user.role))
        st.stop()


def sign_out_button(user: access.User | None) -> None:
    if user is None or os.environ.get("KLARTEXT_AUTH_HEADER") and st.context.headers.get(
            os.environ["KLARTEXT_AUTH_HEADER"]):
        return
    st.sidebar.caption(tr("signin.as", name=md(user.name), role=user.role))
    if st.sidebar.button(tr("signin.out")):
        st.session_state.pop("_user", None)
        st.rerun()


class _Follower:
    """The live replicas of one log that a service holds (see ``decision_log.live``).

    Each page run leases the freshest replica it can open; a replica superseded by a newer
    one is closed as soon as no run uses it, so the service can refresh it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.logs: dict[int, DecisionLog] = {}  # generation → open replica
        self.users: dict[int, int] = {}
        self.newest = -1
        self.lock = threading.Lock()

    def acquire(self) -> int | None:
        with self.lock:
            found = DecisionLog.open_live(self.path, newer_than=self.newest)
            if found is not None:
                gen = found.replica.generation
                self.logs[gen], self.newest = found, gen
                self.users.setdefault(gen, 0)
                self._close_unused()
            if self.newest < 0:
                return None
            self.users[self.newest] = self.users.get(self.newest, 0) + 1
            return self.newest

    def release(self, gen: int) -> None:
        with self.lock:
            self.users[gen] = max(0, self.users.get(gen, 0) - 1)
            self._close_unused()

    def _close_unused(self) -> None:
        for gen in [g for g in self.logs if g != self.newest and not self.users.get(g)]:
            self.logs.pop(gen).close()
            self.users.pop(gen, None)

    def get(self, gen: int, hold: bool = False) -> DecisionLog:
        """The open replica of generation ``gen``; with ``hold``, held until :meth:`release`
        (as :meth:`acquire` holds the newest), from any thread."""
        with self.lock:
            if gen in self.logs:
                if hold:
                    self.users[gen] = self.users.get(gen, 0) + 1
                return self.logs[gen]
        raise KlartextError("The live view has moved on to newer decisions since this page started.",
                            "Reload the page.")


_FOLLOWERS: dict[str, _Follower] = {}
_FOLLOWERS_LOCK = threading.Lock()


def _follower(path: str) -> _Follower:
    with _FOLLOWERS_LOCK:
        return _FOLLOWERS.setdefault(path, _Follower(path))


class _FileLease:
    """The read-only log of one version of a file, open only while page runs use it.

    Between runs the dashboard lets go of the file (:meth:`DecisionLog.suspend`), so that
    `klartext decide`, `explain --sample` or an import can write it; a writer that arrives
    during a run waits for its end (``wait_s`` of the CLI).  What the log has read (strategies,
    models) stays cached across runs.  A page that finds a writer at work says so.
    """

    def __init__(self, path: str, mtime: float) -> None:
        self.path, self.mtime = path, mtime
        self.log: DecisionLog | None = None
        self.users = 0
        self.lock = threading.Lock()

    def acquire(self) -> DecisionLog:
        with self.lock:
            if self.log is None:
                self.log = DecisionLog.open(self.path, read_only=True, wait_s=5.0)
                self.log.file_version = self.mtime
            else:
                self.log.resume()
            self.users += 1
            return self.log

    def release(self) -> None:
        with self.lock:
            self.users = max(0, self.users - 1)
            if not self.users and self.log is not None and self.log.replica is None and not self.log.suspended:
                self.log.suspend()


@st.cache_resource(show_spinner=False, max_entries=4)
def _lease(path: str, mtime: float) -> _FileLease:
    # One per file version (a new or rewritten file gets a new one); pages take a cursor per
    # query, so sessions on their own threads never share a cursor.
    return _FileLease(path, mtime)


# whether this run of the app (each session's runs have a thread of their own) is still to start
# the reads ahead (:func:`prefetch`) when its page first shows the log: at the start of the page's
# run, not its end, so that on a fresh dashboard the read runs while the page is still being drawn
_AHEAD = threading.local()


@contextmanager
def live_run():
    """Wraps one run of the app: leases the freshest live replica when a service holds the
    log, else the log file itself, and gives it back at the end of the run (so that the
    dashboard holds the file only while a page runs)."""
    path = st.session_state.get("db_path") or _cli_db() or os.environ.get("KLARTEXT_DB") or DEFAULT_DB
    resolved = str(Path(shards.head_path(path)).resolve())  # a log directory: its file
    gen = _follower(resolved).acquire() if live.replicas(resolved) else None
    st.session_state["_live"] = (resolved, gen) if gen is not None else None
    lease = None
    if gen is None and Path(resolved).is_file():
        lease = _lease(resolved, _file_version(resolved))
        try:
            lease.acquire()
        except KlartextError:
            lease = None  # the page says what holds it (log())
    st.session_state["_file"] = (resolved, lease.mtime) if lease is not None else None
    _AHEAD.due = True
    try:
        yield
    finally:
        _AHEAD.due = False
        if gen is not None:
            _follower(resolved).release(gen)
        if lease is not None:
            lease.release()


def _open(path: str, version: float | str) -> DecisionLog:
    """The log for a key of :func:`log_key`: a file version, or a live replica generation."""
    if isinstance(version, str) and version.startswith("live:"):
        return _follower(path).get(int(version[5:]))
    lease = _lease(path, version)
    if st.session_state.get("_file") == (path, version):
        return lease.log  # leased for this run by live_run
    return lease.acquire()  # a page run outside app.py (tests): held from now on


@st.cache_resource(show_spinner=False, max_entries=4)
def _explainer(path: str, version: float | str) -> Explainer:
    return Explainer(_open(path, version))


def _key() -> tuple[str, float | str] | None:
    path = shards.head_path(db_path())  # a log directory: its file
    p = Path(path)
    if not p.exists():
        st.info(tr("common.no_log", path=path))
        return None
    resolved = str(p.resolve())
    leased = st.session_state.get("_live")
    if leased is not None and leased[0] == resolved:
        return resolved, f"live:{leased[1]}"
    held = st.session_state.get("_file")
    if held is not None and held[0] == resolved:
        return held
    if live.replicas(resolved):  # a page run outside app.py (tests): the newest replica, unleased
        f = _follower(resolved)
        gen = f.acquire()
        if gen is not None:
            f.release(gen)
            return resolved, f"live:{gen}"
    return resolved, _file_version(resolved)


def _file_version(resolved: str) -> float | str:
    """The version of a log file that keys the dashboard's caches: its mtime and — while
    ``klartext serve --workers`` runs, whose decisions are in the workers' files — each
    worker's replica generation, so new decisions show up."""
    mtime = Path(resolved).stat().st_mtime
    workers = shards.live_workers(shards.root_of(resolved))
    if not workers:
        return mtime
    return f"{mtime}|" + ",".join(f"{name}:{found[0].generation}" for name, found in workers)


def log() -> DecisionLog | None:
    """The open log, or None after showing how to create one."""
    key = _key()
    if key is None:
        return None
    try:
        lg = _open(*key)
    except KlartextError as exc:
        show_error(exc)
        return None
    if lg.replica is not None:
        r = lg.replica
        st.sidebar.caption(tr("common.live", pid=r.service_pid, time=r.updated[11:19],
                              n=i18n.number(r.decisions, lang())))
    if queries.decision_count(lg.con.cursor()) == 0:
        st.info(tr("common.empty_log", path=key[0]))
        return None
    explainer(lg)
    if getattr(_AHEAD, "due", False):  # (a page run outside app.py, as in tests, reads nothing ahead)
        _AHEAD.due = False
        prefetch(lg)
    return lg


def connection() -> duckdb.DuckDBPyConnection | None:
    """A fresh cursor on the log, or None after showing why there is none."""
    lg = log()
    return None if lg is None else lg.con.cursor()


def explainer(lg: DecisionLog) -> Explainer:
    """The process-wide explainer of this log (its in-memory cache survives reruns)."""
    return _explainer(*log_key(lg))


def filters(con: duckdb.DuckDBPyConnection, issues: bool = True) -> queries.Filters:
    """Sidebar filters for period, channels and issues (shared by the pages)."""
    ch = queries.choices(con)
    st.sidebar.markdown(f"**{tr('common.filters')}**")
    first, last = ch["first"], ch["last"]
    period = st.sidebar.date_input(tr("common.period"), value=(first, last), min_value=first, max_value=last, key="f_period",
                                   format=date_format())
    start, end = (period if isinstance(period, (tuple, list)) and len(period) == 2
                  else (period[0], period[0]) if isinstance(period, (tuple, list)) and period else (first, last))
    if isinstance(start, date) and isinstance(end, date) and start > end:
        st.sidebar.error(tr("common.period_reversed"))
        start, end = end, start
    channels = st.sidebar.multiselect(tr("common.channels"), ch["channels"], key="f_channels",
                                      placeholder=tr("common.all"))
    chosen_issues = st.sidebar.multiselect(tr("common.issues"), ch["issues"], key="f_issues",
                                                   placeholder=tr("common.all")) if issues else []
    return queries.Filters(start, end, tuple(channels), tuple(chosen_issues))


def show_error(exc: KlartextError) -> None:
    st.error(md(exc.message) + (f"\n\n**{tr('common.next_step')}** {md(exc.hint)}" if exc.hint else ""))


def table(df: pd.DataFrame, name: str, **kw) -> None:
    """A sortable table with a CSV download button."""
    st.dataframe(df, hide_index=True, width="stretch", **kw)
    st.download_button(tr("common.download_csv", name=name), df.to_csv(index=False).encode(), f"{name}.csv", "text/csv",
                       key=f"dl_{name}")


#: The factors of the newest strategy's decisions (:func:`analysis.tradeoff.load_factors`) are
#: read on a thread of their own, as soon as a page has shown a log version (:func:`prefetch`),
#: not when someone first opens the What-if: on 10 million decisions the read takes seconds
#: (a sample of 250,000 decisions, their candidate rows, and their sealed inputs opened for the
#: CLV).  Process-wide, shared by every session; the newest few versions are kept.
_FACTOR_READS_MAX = 3
_FACTOR_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="klartext-factors")


@st.cache_resource(show_spinner=False)
def _factor_reads() -> dict[tuple[str, float | str], Future]:
    """(path, version) → the read of its factors (cleared with Streamlit's resource caches)."""
    return {}


def _factor_read(path: str, version: float | str, again: bool = True) -> Future:
    """The (started or finished) read of the factors of one log version; one that failed is
    started again when ``again`` (a page asks for them; a prefetch does not)."""
    key, reads = (path, version), _factor_reads()
    with _FACTOR_LOCK:
        fut = reads.pop(key, None)
        if fut is None or (again and fut.done() and fut.exception() is not None):
            fut = _FACTOR_POOL.submit(_read_factors, path, version)
        reads[key] = fut  # the newest last
        held = {(p, h[0]) for p, h in _FACTOR_KEYS.items()}
        for old in [k for k in reads if k not in held][:max(0, len(reads) - _FACTOR_READS_MAX)]:
            del reads[old]
        return fut


def _read_factors(path: str, version: float | str):
    from analysis.tradeoff import load_factors

    with _held(path, version) as lg:
        return load_factors(lg)


@contextmanager
def _held(path: str, version: float | str):
    """The log of a key of :func:`log_key`, held (against a writer's suspension of the file, or
    the replica's closing) until the block ends, from any thread."""
    if isinstance(version, str) and version.startswith("live:"):
        f, gen = _follower(path), int(version[5:])
        lg = f.get(gen, hold=True)
        try:
            yield lg
        finally:
            f.release(gen)
        return
    lease = _lease(path, version)
    lg = lease.acquire()
    try:
        yield lg
    finally:
        lease.release()


def _factors(path: str, version: float | str):
    fut = _factor_read(path, version)
    if not fut.done():
        with st.spinner(tr("tradeoffs.reading_factors")):
            return fut.result()
    return fut.result()


def prefetch(lg: DecisionLog) -> None:
    """Start reading the factors of the log a page has just shown (once per version; see
    :func:`_factor_reads`), so that the re-deciding views find them read; then loading the
    newest strategy's models into the log's explainer (:meth:`Explainer.warm`: on the first
    view of a decision each model not yet loaded cost about 0.1 s — 1.2 s for a decision of
    nine actions).  A log with nothing to re-decide (only imported decisions) fails both once,
    quietly; the page that asks for the factors shows why.  Beside a running service each live
    replica is a log of its own, replaced within seconds: its models and their explainers are
    the ones built for the replica before (from the same rows), so that takes about 0.1 s."""
    path, version = log_key(lg)
    _factor_read(*factor_key(lg), again=False)
    ex = explainer(lg)
    with _FACTOR_LOCK:
        if ex in _WARMED:
            return
        _WARMED.add(ex)
    _FACTOR_POOL.submit(_warm, path, version, ex)


_WARMED: weakref.WeakSet[Explainer] = weakref.WeakSet()  # explainers whose models are loaded (or being loaded)


def _warm(path: str, version: float | str, ex: Explainer) -> None:
    with _held(path, version) as lg:
        strategy = lg.latest_strategy_version()
    ex.warm(strategy, hold=lambda: _held(path, version))  # the file is let go while models deserialise


@st.cache_resource(show_spinner="Reading the imported decisions' factors …", max_entries=2)
def _imported(path: str, mtime: float | str):
    from analysis.imported import load

    return load(_open(path, mtime).con.cursor())


def only_imported(lg: DecisionLog) -> bool:
    """Whether the log holds decisions but none made by Klartext (no strategy to re-run)."""
    from decision_log.queries import only_imported as do

    return do(lg.con.cursor())


def imported_factors(lg: DecisionLog):
    """The imported decisions' logged factors (:mod:`analysis.imported`), loaded once per log file."""
    return _imported(*log_key(lg))


@st.cache_data(show_spinner="Re-arbitrating the imported decisions …", max_entries=16)
def imported_what_if(path: str, mtime: float, spec: str) -> dict:
    from analysis.imported import what_if as do

    return do(_imported(path, mtime), json.loads(spec))


@st.cache_data(show_spinner="Dropping each factor and raising each lever in turn …", max_entries=4)
def imported_sensitivity(path: str, mtime: float) -> pd.DataFrame:
    from analysis.imported import sensitivity as do

    return do(_imported(path, mtime))


def filter_spec(con: duckdb.DuckDBPyConnection, f: queries.Filters) -> str:
    """The decisions a re-arbitrating view takes from the sidebar (period and channels) as a
    cache key: ``""`` when they select every decision."""
    ch = queries.choices(con)
    if not f.channels and (f.start is None or f.start <= ch["first"]) and (f.end is None or f.end >= ch["last"]):
        return ""
    return json.dumps({"start": str(f.start), "end": str(f.end), "channels": list(f.channels)})


@st.cache_resource(show_spinner="Loading the logged factors of the period and channels …", max_entries=8)
def _factors_in(path: str, mtime: float | str, fspec: str, _lg: DecisionLog | None = None):
    from analysis.tradeoff import load_factors

    if not fspec:
        return _factors(path, mtime)
    lg = _lg if _lg is not None else _open(path, mtime)
    spec = json.loads(fspec)
    f = queries.Filters(date.fromisoformat(spec["start"]), date.fromisoformat(spec["end"]), tuple(spec["channels"]))
    sv = lg.latest_strategy_version()
    seqs = queries.decision_seqs(lg.con.cursor(), sv, f)
    if not len(seqs):
        return _factors(path, mtime).subset(np.zeros(0, dtype=np.int64), population=0)
    # the selection's own decisions: every one, or a uniform sample where there are too many
    return load_factors(lg, sv, seqs=seqs)


def factors_in(lg: DecisionLog, fspec: str):
    """The logged factors of the newest strategy version's decisions that :func:`filter_spec`
    selects (a uniform sample of them past :data:`analysis.tradeoff.MAX_DECISIONS`), read once
    per log version (:func:`factor_key`) and selection."""
    return _factors_in(*factor_key(lg), fspec, _lg=lg)


#: A live log (a running service's replica) changes every second under load; the re-deciding
#: views keep the factors they read for this long, then read the newest replica's on the
#: background thread (:func:`_factor_reads`) and go on with the old ones until that read is
#: done — nobody waits for a re-read.  The page says when they were read.
FACTORS_MAX_AGE_S = 300.0
_FACTOR_KEYS: dict[str, tuple[float | str, float, datetime]] = {}  # path → (version, read at: monotonic, UTC)
_FACTOR_NEXT: dict[str, tuple[float | str, float, datetime]] = {}  # path → the read under way
_FACTOR_LOCK = threading.Lock()


def factor_key(lg: DecisionLog) -> tuple[str, float | str]:
    """(path, version) keying the re-deciding views (what-if, frontier, sensitivity, off-policy):
    :func:`log_key` for a file; for a live replica, the generation whose factors were read last
    (see :data:`FACTORS_MAX_AGE_S`; every dashboard session of this process shares it).  Not
    where running workers' files are attached: their decisions' positions move as the workers
    log (the off-policy view finds a sample's outcomes by position)."""
    path, version = log_key(lg)
    if not (isinstance(version, str) and version.startswith("live:")) or shards.attached_workers(lg.con):
        return path, version
    now = time.monotonic()
    with _FACTOR_LOCK:
        held, nxt, reads = _FACTOR_KEYS.get(path), _FACTOR_NEXT.get(path), _factor_reads()
        if held is None or (held[0] != version and (path, held[0]) not in reads):  # (caches cleared: start anew)
            held = _FACTOR_KEYS[path] = (version, now, datetime.now(UTC))
            _FACTOR_NEXT.pop(path, None)
            return path, version
        fut = reads.get((path, nxt[0])) if nxt is not None else None
        if nxt is not None and (fut is None or fut.done()):
            del _FACTOR_NEXT[path]
            if fut is not None and fut.exception() is None:
                held = _FACTOR_KEYS[path] = nxt
            nxt = None
        if nxt is not None or now - held[1] < FACTORS_MAX_AGE_S or version == held[0]:
            return path, held[0]
        _FACTOR_NEXT[path] = (version, now, datetime.now(UTC))
    _factor_read(path, version)  # read in the background; this run goes on with the held factors
    return path, held[0]


def factors_read_at(lg: DecisionLog) -> datetime | None:
    """When the re-deciding views of a live log read its factors (None: a file, read per version)."""
    path, version = log_key(lg)
    held = _FACTOR_KEYS.get(path)
    return held[2] if held is not None and factor_key(lg) == (path, held[0]) and version != held[0] else None


@st.cache_data(show_spinner="Sweeping the margin/retention balance …", max_entries=4)
def sweep(path: str, mtime: float, steps: int, fspec: str = "", _lg: DecisionLog | None = None) -> pd.DataFrame:
    from analysis.tradeoff import sweep as do_sweep

    return do_sweep(_factors_in(path, mtime, fspec, _lg), steps)


def log_key(lg: DecisionLog) -> tuple[str, float | str]:
    """(path, version) keying every cache: the file's mtime, or ``live:<generation>`` for a
    live replica, so new decisions show up."""
    p = Path(lg.path)
    if lg.replica is not None:
        return str(p.resolve()), f"live:{lg.replica.generation}"
    if lg.file_version is not None:  # the version this run leased, even if a writer changed the file since
        return str(p.resolve()), lg.file_version
    return str(p.resolve()), p.stat().st_mtime


def _setting(spec: str):
    from analysis.tradeoff import Setting

    d = __import__("json").loads(spec)
    return Setting(d["margin_weight"], d["retention_weight"], d["levers"])


@st.cache_data(show_spinner="Re-arbitrating the logged decisions …", max_entries=16)
def what_if(path: str, mtime: float, spec: str, fspec: str = "", _lg: DecisionLog | None = None) -> dict:
    """What-if results, cached per log version (:func:`factor_key`), setting (``spec``: JSON of
    weights and levers) and selection of decisions (``fspec``, :func:`filter_spec`).  ``_lg``:
    the page run's log, read where the factors are not cached yet."""
    from analysis.tradeoff import what_if as do

    return do(_factors_in(path, mtime, fspec, _lg), _setting(spec))


@st.cache_data(show_spinner="Dropping each factor and raising each lever in turn …", max_entries=4)
def sensitivity(path: str, mtime: float, fspec: str = "", _lg: DecisionLog | None = None) -> pd.DataFrame:
    from analysis.tradeoff import sensitivity as do

    return do(_factors_in(path, mtime, fspec, _lg))


@st.cache_data(show_spinner="Estimating off-policy with bootstrap intervals …", max_entries=16)
def off_policy(path: str, mtime: float, spec: str, reward: str, fspec: str = "",
               _lg: DecisionLog | None = None) -> dict:
    from analysis.tradeoff import first_actions
    from analysis.tradeoff import off_policy as do

    f = _factors_in(path, mtime, fspec, _lg)
    return do(_lg if _lg is not None else _open(path, mtime), f, first_actions(f, _setting(spec)), reward=reward,
              n_boot=200)


# -- the governance report (Governance report, Fairness, Model health) -------------------------------


def report_period(con: duckdb.DuckDBPyConnection):
    """The report's period (default: the last 28 days of the log) and what it is compared with,
    chosen in the sidebar and shared by the three governance pages."""
    from analysis.governance import Period, default_period

    first, last = con.execute("SELECT min(ts)::DATE, max(ts)::DATE FROM decisions WHERE source = 'klartext'"
                              ).fetchall()[0]
    if first is None:
        st.info(tr("report.page.no_klartext"))
        st.stop()
    st.sidebar.markdown(f"**{tr('report.page.period')}**")
    dp = default_period(first, last)
    default = (dp.start, dp.end)
    chosen = st.sidebar.date_input(tr("common.period"), value=default, min_value=first, max_value=last,
                                   key="gov_period", format=date_format())
    start, end = (chosen if isinstance(chosen, (tuple, list)) and len(chosen) == 2
                  else (chosen[0], chosen[0]) if isinstance(chosen, (tuple, list)) and chosen else default)
    if start > end:
        start, end = end, start
    compare = st.sidebar.radio(tr("report.page.compare"), ["previous", "none"], key="gov_compare",
                               format_func=lambda c: tr(f"report.page.compare_{c}"))
    return Period(start, end), ("previous" if compare == "previous" else None)


@st.cache_data(show_spinner=False, max_entries=6)
def _report(path: str, version: float | str, start: date, end: date, compare: str | None) -> dict:
    from analysis.governance import Period, build

    return build(_open(path, version), Period(start, end), compare, via="dashboard")


def governance_report(lg: DecisionLog, period, compare) -> dict | None:
    """The governance report's figures for the period (computed once per log version and period)."""
    with st.spinner(tr("report.page.computing")):
        try:
            return _report(*log_key(lg), period.start, period.end, compare)
        except KlartextError as exc:
            show_error(exc)
            return None


def governance_page(title: str, caption: str):
    """How the Governance report, Fairness and Model health pages start: heading, the log, the
    period picker and the report's figures.  Returns (log, period, compare, report, lang, Fmt)."""
    from explain.report import Fmt

    st.title(tr(title))
    st.caption(tr(caption))
    lg = log()
    if lg is None:
        st.stop()
    period, compare = report_period(lg.con.cursor())
    rep = governance_report(lg, period, compare)
    if rep is None:
        st.stop()
    return lg, period, compare, rep, lang(), Fmt(lang(), rep["strategy"]["currency"])
