"""`klartext run`: decide for every customer of a table and log it — in this process, or on
Apache Spark (:mod:`klartext.spark`).

Both engines decide a row the same way: the row's decision id is made from the run's
timestamp, a 16-bit run prefix and the row's number in the table
(:func:`decisioning.ids.run_ids`), and exploration is keyed by that id, so a row is decided
identically whichever process or Spark partition decides it (rows are numbered in file order
for one input file; with several files, in the order Spark reads them).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from decisioning.errors import InputError
from decisioning.ids import run_ids
from decisioning.inputs import Requests
from decisioning.strategy import Strategy


@dataclass(frozen=True)
class Plan:
    """What every row of one run shares: its time, its id prefix and how the table is read."""

    ts_us: int
    prefix: int
    id_column: str = "customer_id"
    channel_column: str = "channel"
    channel: str | None = None  #: the channel of every row, when the table has no channel column

    @classmethod
    def now(cls, **kw) -> Plan:
        return cls(int(time.time() * 1e6), int.from_bytes(os.urandom(2), "big"), **kw)

    def frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.channel:
            frame = frame.assign(**{self.channel_column: self.channel})
        return frame

    def requests(self, strategy: Strategy, frame: pd.DataFrame) -> Requests:
        return Requests.from_frame(strategy, frame, customer_col=self.id_column, channel_col=self.channel_column)

    def ids(self, rows: np.ndarray) -> np.ndarray:
        """The decision ids of the table's rows ``rows`` (their numbers in the table)."""
        rows = np.asarray(rows, dtype=np.int64)
        return run_ids(np.full(len(rows), self.ts_us // 1000, dtype=np.int64), self.prefix, rows.astype(np.uint64))


@dataclass
class RunResult:
    decisions: int
    chosen: pd.Series  #: action (or "(no action)") → decisions, most chosen first
    versions: list[tuple[str, str, int]]  #: (strategy name, version, decisions) per version that decided
    seconds: float
    shards: list[str] = field(default_factory=list)  #: the shards a Spark run wrote
    partitions: list[dict] = field(default_factory=list)  #: a Spark run's partitions: rows and seconds per step


#: Rows of the customer table read, checked and decided at a time by ``klartext run`` in
#: this process: its memory stays that of one slice whatever the table's size (a whole table
#: of 1M customers, read at once, peaked at 3.4 GB).
SLICE = 250_000


class Table:
    """A customer table (CSV or Parquet) read in slices of :data:`SLICE` rows, in file order,
    as often as asked; an unreadable file is an error that names it and what to do."""

    def __init__(self, path: str, slice_rows: int = SLICE) -> None:
        suffix = Path(path).suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise InputError(f"{path}: unknown file type {suffix!r}.", "Use a .csv or .parquet file.")
        self.path, self.kind, self.slice_rows = path, "Parquet" if suffix == ".parquet" else "CSV", slice_rows
        self.rows: int | None = None  #: known once the file was read through (at once for Parquet)
        if self.kind == "Parquet":
            with self._reading():
                import pyarrow.parquet as pq

                self.rows = pq.ParquetFile(path).metadata.num_rows

    @contextmanager
    def _reading(self):
        try:
            yield
        except InputError:
            raise
        except Exception as exc:  # pyarrow and pandas raise many kinds for a damaged file: all mean the same
            raise InputError(f"{self.path} cannot be read as {self.kind}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}",
                             f"Check that it is a complete {self.kind} file (re-export it); nothing was "
                             "decided.") from None

    def slices(self):
        """(offset, frame) of each slice, the offset being its first row's number in the table."""
        offset = 0
        with self._reading():
            if self.kind == "Parquet":
                import pyarrow.parquet as pq

                it = (b.to_pandas() for b in pq.ParquetFile(self.path).iter_batches(batch_size=self.slice_rows))
            else:
                it = pd.read_csv(self.path, chunksize=self.slice_rows)
            for frame in it:
                yield offset, frame.reset_index(drop=True)
                offset += len(frame)
        self.rows = offset


def parts(deciders, pseudonymise: Callable[[np.ndarray], np.ndarray], frame: pd.DataFrame, plan: Plan
          ) -> list[tuple[object, np.ndarray, Requests]]:
    """(engine, row numbers within ``frame``, requests) per strategy version that decides
    some of ``frame``'s rows (the canary's customers get the canary's), every part checked
    before any is decided."""
    if deciders.canary is None:
        return [(deciders.champion, np.arange(len(frame)), plan.requests(deciders.champion.strategy, frame))]
    if plan.id_column not in frame.columns:  # the refusal that names the missing column
        plan.requests(deciders.champion.strategy, frame)
    arm = deciders.route(pseudonymise(frame[plan.id_column].astype(str).to_numpy(dtype=object)))
    return [(e, np.flatnonzero(arm == k), plan.requests(e.strategy, frame[arm == k]))
            for k, e in enumerate(deciders.engines) if (arm == k).any()]


def summary(chosen: list[pd.Series], versions: dict[tuple[str, str], int], seconds: float,
            shard_names: list[str] | None = None) -> RunResult:
    counts = pd.concat(chosen).groupby(level=0).sum().sort_values(ascending=False, kind="stable") if chosen \
        else pd.Series(dtype=np.int64)
    return RunResult(int(counts.sum()), counts, [(n, v, k) for (n, v), k in versions.items()], seconds,
                     shard_names or [])


def chosen_counts(strategy: Strategy, chosen: list) -> pd.Series:
    return pd.Series([strategy.action_ids[c[0]] if len(c) else "(no action)" for c in chosen]).value_counts()


@contextmanager
def _rows_of_table(offset: int):
    """A refusal of a slice's "row N" names the row's number in the table (N + ``offset``)."""
    try:
        yield
    except InputError as exc:
        m = re.match(r"row (\d+): ", exc.message)
        if not offset or m is None:
            raise
        raise InputError(f"row {int(m.group(1)) + offset}: {exc.message[m.end():]}", exc.hint) from None


def run_local(db: str, table: pd.DataFrame | Table, strategy: Strategy | None, plan: Plan,
              on_logged: Callable[[int], None] | None = None, wait_s: float = 15.0) -> RunResult:
    """Decide every row of ``table`` (a frame, or a :class:`Table` read slice by slice) in
    this process and log it to ``db``.  Every slice is checked before the first is decided:
    a table with a bad row anywhere logs nothing."""
    from decision_log import lifecycle
    from decision_log.store import DecisionLog
    from decision_log.writer import decide_and_log

    def slices():
        return [(0, table)] if isinstance(table, pd.DataFrame) else table.slices()

    if strategy is not None:  # checked before the log is opened: a bad table writes nothing
        for offset, frame in slices():
            with _rows_of_table(offset):
                plan.requests(strategy, plan.frame(frame))
    elif not DecisionLog.has_shards(db) and not Path(db).exists():
        raise InputError(f"No decision log at {db!r}, so there is no strategy deciding yet.",
                         "Pass --strategy FILE for a new log.")
    t = time.perf_counter()
    chosen, versions = [], {}
    with DecisionLog.open(db, wait_s=wait_s) as log:
        d = lifecycle.arrangement(log, strategy, ready=False)  # (a --strategy it runs is the champion)
        if strategy is None or d.canary is not None:  # the deciding versions check their customers first
            for offset, frame in slices():
                with _rows_of_table(offset):
                    parts(d, log.pseudonymise, plan.frame(frame), plan)
        for offset, frame in slices():
            for engine, rows, req in parts(d, log.pseudonymise, plan.frame(frame), plan):
                ts = np.full(len(req), plan.ts_us, dtype=np.int64)
                # each chunk's counts as it is decided, not the decided batches (a quarter of a
                # million decisions' batches take about a gigabyte)
                decide_and_log(log, engine, req, ts, on_logged=on_logged, decision_ids=plan.ids(rows + offset),
                               keep=False, after=lambda _r, _q, b, s=engine.strategy: chosen.append(
                                   chosen_counts(s, b.chosen)))
                key = (engine.strategy.name, engine.strategy.version)
                versions[key] = versions.get(key, 0) + len(rows)
    return summary(chosen, versions, time.perf_counter() - t)
