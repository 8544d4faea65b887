"""What every page shares: finding and opening the decision log once per process."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import duckdb
import streamlit as st

from decisioning.errors import KlartextError

DEFAULT_DB = "klartext_demo.duckdb"


def _cli_db() -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.db


def db_path() -> str:
    """The log path: sidebar entry, else `-- --db PATH`, else $KLARTEXT_DB, else the demo default."""
    default = _cli_db() or os.environ.get("KLARTEXT_DB") or DEFAULT_DB
    return st.sidebar.text_input("Decision log (DuckDB file)", value=default, key="db_path")


@st.cache_resource(show_spinner=False)
def _open(path: str, mtime: float) -> duckdb.DuckDBPyConnection:
    # One read-only connection per file version; pages take a cursor per query.
    from decision_log.store import DecisionLog

    return DecisionLog.open(path, read_only=True).con


def connection() -> duckdb.DuckDBPyConnection | None:
    """A cursor on the log, or None after showing how to create one."""
    path = db_path()
    p = Path(path)
    if not p.exists():
        st.info(f"No decision log at `{path}` yet. Create one with:\n\n"
                f"```\nklartext demo --db {path}\n```")
        return None
    try:
        return _open(str(p.resolve()), p.stat().st_mtime).cursor()
    except KlartextError as exc:
        show_error(exc)
        return None


def show_error(exc: KlartextError) -> None:
    st.error(exc.message + (f"\n\n**Next step:** {exc.hint}" if exc.hint else ""))
