"""What every page shares: finding and opening the decision log once per process, the
sidebar filters, the explainer, and one way to show errors."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import streamlit as st

from decision_log import queries
from decision_log.store import DecisionLog
from decisioning.errors import KlartextError
from explain.api import Explainer

DEFAULT_DB = "klartext_demo.duckdb"


def _cli_db() -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.db


def db_path() -> str:
    """The log path: sidebar entry, else `-- --db PATH`, else $KLARTEXT_DB, else the demo default."""
    if "db_path" not in st.session_state:
        st.session_state["db_path"] = _cli_db() or os.environ.get("KLARTEXT_DB") or DEFAULT_DB
    return st.sidebar.text_input("Decision log (DuckDB file)", key="db_path")


@st.cache_resource(show_spinner=False, max_entries=4)
def _open(path: str, mtime: float) -> DecisionLog:
    # One read-only log per file version (a new or rewritten file gets a new one); pages take
    # a cursor per query, so sessions on their own threads never share a cursor.
    return DecisionLog.open(path, read_only=True)


@st.cache_resource(show_spinner=False, max_entries=4)
def _explainer(path: str, mtime: float) -> Explainer:
    return Explainer(_open(path, mtime))


def _key() -> tuple[str, float] | None:
    path = db_path()
    p = Path(path)
    if not p.exists():
        st.info(f"No decision log at `{path}` yet. Create one with:\n\n```\nklartext demo --db {path}\n```")
        return None
    return str(p.resolve()), p.stat().st_mtime


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
    if queries.decision_count(lg.con.cursor()) == 0:
        st.info(f"The log `{key[0]}` holds no decisions yet. Fill it with:\n\n"
                f"```\nklartext demo --db {key[0]} --replace\n```")
        return None
    return lg


def connection() -> duckdb.DuckDBPyConnection | None:
    """A fresh cursor on the log, or None after showing why there is none."""
    lg = log()
    return None if lg is None else lg.con.cursor()


def explainer(lg: DecisionLog) -> Explainer:
    """The process-wide explainer of this log (its in-memory cache survives reruns)."""
    p = Path(lg.path)
    return _explainer(str(p.resolve()), p.stat().st_mtime)


def filters(con: duckdb.DuckDBPyConnection, issues: bool = True) -> queries.Filters:
    """Sidebar filters for period, channels and issues (shared by the pages)."""
    ch = queries.choices(con)
    st.sidebar.markdown("**Filters**")
    first, last = ch["first"], ch["last"]
    period = st.sidebar.date_input("Period", value=(first, last), min_value=first, max_value=last, key="f_period")
    start, end = (period if isinstance(period, (tuple, list)) and len(period) == 2
                  else (period[0], period[0]) if isinstance(period, (tuple, list)) and period else (first, last))
    if isinstance(start, date) and isinstance(end, date) and start > end:
        st.sidebar.error("The period's start is after its end.")
        start, end = end, start
    channels = st.sidebar.multiselect("Channels", ch["channels"], key="f_channels")
    chosen_issues = st.sidebar.multiselect("Issues", ch["issues"], key="f_issues") if issues else []
    return queries.Filters(start, end, tuple(channels), tuple(chosen_issues))


def show_error(exc: KlartextError) -> None:
    st.error(exc.message + (f"\n\n**Next step:** {exc.hint}" if exc.hint else ""))


def table(df: pd.DataFrame, name: str, **kw) -> None:
    """A sortable table with a CSV download button."""
    st.dataframe(df, hide_index=True, width="stretch", **kw)
    st.download_button(f"Download {name} (CSV)", df.to_csv(index=False).encode(), f"{name}.csv", "text/csv",
                       key=f"dl_{name}")


@st.cache_resource(show_spinner="Loading the logged factors …", max_entries=2)
def _factors(path: str, mtime: float):
    from explain.tradeoff import load_factors

    return load_factors(_open(path, mtime))


def factors(lg: DecisionLog):
    """The logged factors of the newest strategy version, loaded once per log file."""
    p = Path(lg.path)
    return _factors(str(p.resolve()), p.stat().st_mtime)


@st.cache_data(show_spinner="Sweeping the margin/retention balance …", max_entries=4)
def sweep(path: str, mtime: float, steps: int) -> pd.DataFrame:
    from explain.tradeoff import sweep as do_sweep

    return do_sweep(_factors(path, mtime), steps)


def log_key(lg: DecisionLog) -> tuple[str, float]:
    p = Path(lg.path)
    return str(p.resolve()), p.stat().st_mtime


def _setting(spec: str):
    from explain.tradeoff import Setting

    d = __import__("json").loads(spec)
    return Setting(d["margin_weight"], d["retention_weight"], d["levers"])


@st.cache_data(show_spinner="Re-arbitrating the logged decisions …", max_entries=16)
def what_if(path: str, mtime: float, spec: str) -> dict:
    """What-if results, cached per log file and setting (``spec``: JSON of weights and levers)."""
    from explain.tradeoff import what_if as do

    return do(_factors(path, mtime), _setting(spec))


@st.cache_data(show_spinner="Dropping each factor and raising each lever in turn …", max_entries=4)
def sensitivity(path: str, mtime: float) -> pd.DataFrame:
    from explain.tradeoff import sensitivity as do

    return do(_factors(path, mtime))


@st.cache_data(show_spinner="Estimating off-policy with bootstrap intervals …", max_entries=16)
def off_policy(path: str, mtime: float, spec: str, reward: str) -> dict:
    from explain.tradeoff import off_policy as do

    f = _factors(path, mtime)
    st_ = _setting(spec)
    return do(_open(path, mtime), f, f.first(f.arbitrate(st_), st_), reward=reward, n_boot=200)
