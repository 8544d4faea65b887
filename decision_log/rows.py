"""A decision batch as the rows the log stores, hashed up to their sequence numbers.

:func:`prepare` turns the engine's batch and :func:`prepare_imported` another system's rows
into a :class:`PreparedBatch`: the ``decisions`` rows typed as the log stores them (less
``seq``), the ``candidates`` rows, and what the hash chain needs of both
(:mod:`decision_log.integrity`).  Neither touches the log, so a batch is prepared on another
thread than the one that writes it; the writer numbers, chains and inserts
(:meth:`~decision_log.store.DecisionLog.append_prepared`).  The columns and their types
come from :mod:`decision_log.record`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from decision_log import integrity, record
from decision_log.schema import arrow_of, execute_over
from decision_log.subjects import SubjectKeys
from decisioning.engine import DecisionBatch
from decisioning.errors import LogError
from decisioning.stages import STAGES
from decisioning.strategy import Strategy


@dataclass(frozen=True)
class PreparedBatch:
    """Decisions ready to be logged: their rows as stored and their hash inputs."""

    strategy: Strategy | None  #: None for decisions imported from another system
    decisions: pa.Table  #: the ``decisions`` rows as stored, less ``seq`` (the writer numbers them)
    tails: list[tuple]  #: their columns after ``seq``, described for the hash (:func:`integrity.decision_tails`)
    candidates: pa.Table  #: the ``candidates`` rows, a decision's rows together in ``ordinal`` order
    candidate_digests: np.ndarray  #: (n, 32) SHA-256 of each decision's candidate rows

    @property
    def n(self) -> int:
        return self.decisions.num_rows


@dataclass(frozen=True)
class Chained:
    """A prepared batch numbered and chained: the three tables as inserted (``_k_dec``,
    ``_k_cand``, ``_k_chain``), the chain's head before and after it."""

    tables: dict[str, pa.Table]
    n: int
    prev: tuple[int, str]  #: (seq, chain hash) of the decision before the first
    head: tuple[int, str]  #: (seq, chain hash) of the last
    strategy: Strategy | None


def prepare(batch: DecisionBatch, strategy: Strategy, pseudonyms: np.ndarray, source: str = "klartext",
            keys: SubjectKeys | None = None) -> PreparedBatch:
    """The engine's ``batch`` (decided with ``strategy``) as the log's rows; ``pseudonyms``
    are its customers' (:meth:`~decision_log.store.DecisionLog.pseudonymise`).

    With ``keys`` each decision's inputs are sealed under its customer's key
    (:mod:`decision_log.subjects`), and a reason that quotes them is stored without the
    values (the rule's own text): a view writes it again from the opened inputs
    (:func:`decisioning.engine.logged_reason`), so the values are stored once, sealed."""
    if batch.strategy_version != strategy.version:
        raise LogError("The batch was decided with another strategy version than the one given.",
                       "Pass the strategy the engine used.")
    n = len(batch)
    rows = _CandidateRows.of(batch, strategy, sealed=keys is not None)
    dec, cand = engine_rows(batch, strategy, pseudonyms, source, rows)
    A = len(strategy.actions)
    starts = np.arange(n, dtype=np.int64) * A
    digests = integrity.group_digests(_candidate_columns(batch, strategy, rows), n * A, starts, starts + A)
    extras = _extras(batch, compact=keys is not None)
    if keys is not None:  # sealed: the compact document (COMPACT), like the clear one by Python for a small batch
        plain = (_compact_inputs(dec, strategy) if n <= SMALL_BATCH else _compact_by_duckdb(dec, strategy))
        plain = _with_extras(plain, extras)
        sealed = keys.seal(pseudonyms, batch.decision_id.tolist(), plain)
        typed = _typed_rows(dec, pa.array(sealed, pa.string()))
        return PreparedBatch(strategy, _json_columns(typed), integrity.decision_tails(typed), cand, digests)
    typed = _typed_small(dec, extras) if n <= SMALL_BATCH else None
    if typed is None:
        inputs = _query(_INPUTS_JSON, None, _k_dec=dec).column("inputs")
        if extras:
            inputs = pa.array(_with_extras(inputs.to_pylist(), extras), pa.string())
        typed = _typed_rows(dec, inputs)
    return PreparedBatch(strategy, _json_columns(typed), integrity.decision_tails(typed), cand, digests)


def _extras(batch: DecisionBatch, compact: bool = False) -> dict[int, str]:
    """Per decision that has them, the members its inputs' JSON gets after the engine's (a
    JSON text to insert before the closing brace): ``"objection":true`` (``"o":true`` in the
    compact document) where the customer objected to direct marketing on this channel."""
    objection = batch.requests.objection
    if objection is None:
        return {}
    member = ',"o":true' if compact else ',"objection":true'
    return {r: member for r in np.flatnonzero(objection).tolist()}


def _with_extras(texts: list[str], extras: dict[int, str]) -> list[str]:
    """``texts`` (JSON objects) with each row's extra members (:func:`_extras`) inserted
    before its closing brace, in place."""
    for r, more in extras.items():
        texts[r] = texts[r][:-1] + more + "}"
    return texts


#: The plain text of sealed inputs: ``{"v":1,"s":<strategy version>,"f":[features in the
#: strategy's order],"c":[contacts in channel order],"r":{rejections},"a":{assignment},"o":true}``
#: (``r``, ``a``, ``o`` only where there are): the names are the strategy's, so they are not
#: repeated (a third of the clear document's size, which is what is encrypted and stored).
#: :func:`expand` gives back the document a log in clear stores.
COMPACT = '{"v":1,'


def _compact_inputs(dec: pa.Table, strategy: Strategy) -> list[str]:
    """The compact documents (:data:`COMPACT`) of a small batch, written in Python."""
    names = [f.name for f in strategy.features]
    feats = dec.column("features").combine_chunks()
    cols = [feats.field(i).to_pylist() for i in range(feats.type.num_fields)]
    order = [feats.type.get_field_index(nm) for nm in names]
    conts = dec.column("contacts").combine_chunks()
    ccols = [conts.field(i).to_pylist() for i in range(conts.type.num_fields)]
    rej, asg = dec.column("rejections").to_pylist(), dec.column("assignment").to_pylist()
    head = COMPACT + '"s":' + json.dumps(strategy.version) + ',"f":'
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode
    out = []
    for r in range(dec.num_rows):
        text = head + dumps([cols[k][r] for k in order]) + ',"c":' + dumps([c[r] for c in ccols])
        if rej[r] != "{}":
            text += ',"r":' + rej[r]
        if asg[r] is not None:
            text += ',"a":' + asg[r]
        out.append(text + "}")
    return out


_COMPACT_SQL: dict[str, str] = {}


def _compact_by_duckdb(dec: pa.Table, strategy: Strategy) -> list[str]:
    """:func:`_compact_inputs` for a large batch, written by DuckDB's JSON functions (as the
    clear document is)."""
    sql = _COMPACT_SQL.get(strategy.version)
    if sql is None:
        f = ", ".join(f"struct_extract(features, '{x.name}')" for x in strategy.features)
        c = ", ".join(f"struct_extract(contacts, '{x}')" for x in strategy.channel_ids)
        sql = _COMPACT_SQL[strategy.version] = (
            f"SELECT '{COMPACT}\"s\":' || to_json(strategy_version::VARCHAR)::VARCHAR || ',\"f\":' || "
            f"json_array({f})::VARCHAR || ',\"c\":' || json_array({c})::VARCHAR || "
            "CASE WHEN rejections = '{}' THEN '' ELSE ',\"r\":' || rejections END || "
            "CASE WHEN assignment IS NULL THEN '' ELSE ',\"a\":' || assignment END || '}' AS inputs FROM _k_dec")
    return _query(sql, None, _k_dec=dec).column("inputs").to_pylist()


def expand(text: str, strategy: Strategy) -> str:
    """The inputs' JSON document as a log in clear stores it, from the compact one
    (:data:`COMPACT`) that was sealed."""
    doc = json.loads(text)
    out: dict = {"features": dict(zip([f.name for f in strategy.features], doc["f"])),
                 "contacts": dict(zip(strategy.channel_ids, doc["c"])), "rejections": doc.get("r", {})}
    if "a" in doc:
        out["assignment"] = doc["a"]
    if doc.get("o"):
        out["objection"] = True
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def prepare_imported(decisions: pa.Table, candidates: pa.Table,
                     con: duckdb.DuckDBPyConnection | None = None) -> PreparedBatch:
    """Decisions of another system: ``decisions`` with the columns of the log's rows (less
    ``seq``, any compatible types; ``inputs`` as JSON text) and their ``candidates`` rows, in
    decision order and within a decision in ``ordinal`` order.  Both are typed as the log
    stores them and hashed from those types, with ``con`` (an importer's: the log's, which
    holds the file's rows already) or this thread's own in-memory DuckDB."""
    typed = _query(_TYPED_IMPORTED, con, _k_dec=decisions)
    cand = (candidates if candidates.schema.equals(_CANDIDATE_SCHEMA)
            else _query(_TYPED_CANDIDATES, con, _k_cand=candidates))
    ids = np.asarray(cand.column("decision_id").to_pylist(), dtype=object)
    dec_ids = np.asarray(typed.column("decision_id").to_pylist(), dtype=object)
    starts, ends = np.searchsorted(ids, dec_ids, side="left"), np.searchsorted(ids, dec_ids, side="right")
    return PreparedBatch(None, typed, integrity.decision_tails(typed), cand,
                         integrity.candidate_digests(cand, starts, ends))


_SCRATCH = threading.local()


def _query(sql: str, con: duckdb.DuckDBPyConnection | None, **tables: pa.Table) -> pa.Table:
    """``sql`` over the named Arrow tables, on ``con`` or else this thread's in-memory DuckDB
    (so the log's connection stays the writer's alone)."""
    if con is None:
        con = getattr(_SCRATCH, "con", None)
    if con is None:
        con = _SCRATCH.con = duckdb.connect()
    return arrow_of(execute_over(con, sql, **tables))


#: The inputs' JSON of the engine's decisions, as the log stores it (DuckDB's JSON functions
#: write it; the other columns of the typed rows are the engine's Arrow columns as they are).
_INPUTS_EXPR = """CASE WHEN assignment IS NULL
         THEN json_object('features', features, 'contacts', contacts, 'rejections', json(rejections))
         ELSE json_object('features', features, 'contacts', contacts, 'rejections', json(rejections),
                          'assignment', json(assignment)) END"""
_INPUTS_JSON = f"SELECT {_INPUTS_EXPR} AS inputs FROM _k_dec"
_TYPED_IMPORTED = record.typed_select("decisions", "_k_dec", without=("seq",))
_TYPED_CANDIDATES = record.typed_select("candidates", "_k_cand")
#: The Arrow schema of ``candidates`` rows as DuckDB returns them (an importer that builds its
#: rows with it is hashed and inserted as it is).
_CANDIDATE_SCHEMA = record.arrow_schema("candidates")
_JSON = pa.json_(pa.string())


def _json_columns(table: pa.Table, names: tuple[str, ...] = ("inputs", "model_versions")) -> pa.Table:
    """``table`` with these text columns typed as Arrow JSON (no copy): DuckDB stores such a
    column's text as given instead of parsing it to check it.  Only for text that is JSON by
    construction (written by json.dumps or by DuckDB's own JSON functions)."""
    for name in names:
        i = table.column_names.index(name)
        col = table.column(i)
        chunks = [c.cast(pa.string()) if c.type != pa.string() else c for c in col.chunks]
        table = table.set_column(i, pa.field(name, _JSON), pa.chunked_array(
            [pa.ExtensionArray.from_storage(_JSON, c) for c in chunks], type=_JSON))
    return table


#: Up to this many decisions, prepare() writes the inputs' JSON itself (a live group: a
#: DuckDB query costs milliseconds however few rows it has); beyond, DuckDB writes it faster.
SMALL_BATCH = 64


def _typed_small(dec: pa.Table, extras: dict[int, str] | None = None) -> pa.Table | None:
    """The decision rows typed (:func:`_typed_rows`) with ``inputs`` written in Python: compact
    JSON of the document :data:`_INPUTS_JSON` writes (DuckDB keeps a JSON text as it is
    given, so the hash covers exactly what is stored).  None when a value has no JSON form
    (a non-finite number): DuckDB's path then decides."""
    feats, conts = dec.column("features").to_pylist(), dec.column("contacts").to_pylist()
    rej, asg = dec.column("rejections").to_pylist(), dec.column("assignment").to_pylist()
    try:
        inputs = []
        for f, c, r, a in zip(feats, conts, rej, asg):
            doc = {"features": f, "contacts": c, "rejections": json.loads(r)}
            if a is not None:
                doc["assignment"] = json.loads(a)
            inputs.append(json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    except ValueError:
        return None
    return _typed_rows(dec, pa.array(_with_extras(inputs, extras or {}), pa.string()))


def _typed_rows(dec: pa.Table, inputs: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The engine's decision rows as the log stores them, less ``seq``: its Arrow columns with
    the log's types (:mod:`decision_log.record`; dictionaries decoded) and the inputs' JSON."""
    out = {}
    for c in record.DECISIONS[1:]:
        if c.name == "inputs":
            out[c.name] = inputs
            continue
        arr = dec.column(c.name).combine_chunks()
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        out[c.name] = arr if arr.type == c.arrow else arr.cast(c.arrow)
    return pa.table(out)


def _candidate_columns(batch: DecisionBatch, s: Strategy, rows: _CandidateRows | None = None) -> list[tuple]:
    """The candidate rows that :func:`_arrow_tables` makes, described for the hash straight
    from the batch's arrays (no Arrow calls: for a live service's small groups they cost more
    than the hashing).  The tests check that both hash to the same digests."""
    r = rows if rows is not None else _CandidateRows.of(batch, s)
    c = r.cells
    aids = s.action_ids
    label, text, fixed = integrity.label_column, integrity.text_column, integrity.fixed_column

    def floats(v: np.ndarray) -> tuple:
        return fixed(v, ~np.isnan(v))

    return [
        text(r.decision, batch.decision_id.tolist()),
        fixed(r.ts_us),
        label(r.channel, s.channel_ids),
        label(r.action, aids),
        label(r.action, [a.issue for a in s.actions]),
        label(r.action, [a.group for a in s.actions]),
        label(c["stage"], STAGES),
        label(c["rule"], batch.rule_names),
        text(c["reason"], r.reason_texts),
        floats(c["propensity"]), floats(c["value"]), floats(c["context_weight"]), floats(c["lever"]), floats(c["priority"]),
        fixed(c["rank"], c["rank"] != 0),
        fixed(c["selected"]),
        label(r.model, [batch.model_versions.get(a, "") for a in aids]),
    ]


#: The engine's (n, A) arrays that become candidate columns as they are.
_CELLS = ("stage", "rule", "reason", "propensity", "value", "context_weight", "lever", "priority", "rank", "selected")


@dataclass(frozen=True)
class _CandidateRows:
    """A batch's (n, A) arrays laid out as the log's candidate rows: one per action of the
    catalog per decision, within a decision in ``action_id`` order (the order the hash reads).
    Made once per batch for both the Arrow table and the hash."""

    decision: np.ndarray  #: the row's decision (index into the batch)
    action: np.ndarray  #: its action (catalogue position)
    ts_us: np.ndarray
    channel: np.ndarray
    cells: dict[str, np.ndarray]  #: the batch's arrays named in :data:`_CELLS`, in row order
    model: np.ndarray  #: the action again where a model scored it, else -1
    reason_texts: pa.Array  #: the batch's reasons (``reason`` indexes them), as Arrow strings

    @classmethod
    def of(cls, batch: DecisionBatch, s: Strategy, sealed: bool = False) -> _CandidateRows:
        """``sealed``: a reason that quotes the customer's data is stored without the values
        (the rule's own text; the values are in the sealed inputs, see :func:`prepare`)."""
        n, A = batch.stage.shape
        texts = batch.reasons
        if sealed:
            texts = [t if p is None else p for t, p in zip(texts, batch.public_reasons)]
        action, lay_out = _candidate_order(n, s.action_ids)
        cells = {name: lay_out(getattr(batch, name)) for name in _CELLS}
        return cls(
            decision=np.repeat(np.arange(n, dtype=np.int32), A), action=action,
            ts_us=np.repeat(batch.ts_us, A), channel=np.repeat(batch.requests.channel, A), cells=cells,
            model=np.where(np.isnan(cells["propensity"]), -1, action).astype(np.int32),
            reason_texts=pa.array(texts or [""], pa.string()))


def _candidate_order(n: int, aids: tuple[str, ...]) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Within a decision, candidate rows are stored in ``action_id`` order (the order the hash
    reads): each row's catalogue position, and a function that lays an (n, A) array of the
    engine out in that row order."""
    perm = np.argsort(np.asarray(aids, dtype=object), kind="stable")

    def cells(x: np.ndarray) -> np.ndarray:
        return x[:, perm].ravel()

    return np.tile(perm.astype(np.int32), n), cells


def engine_rows(batch: DecisionBatch, s: Strategy, pseudo: np.ndarray, source: str,
                rows: _CandidateRows | None = None) -> tuple[pa.Table, pa.Table]:
    """The engine's decision rows (its own Arrow types, the inputs still in their parts) and
    candidate rows (as stored) of ``batch``."""
    n, A = batch.stage.shape
    req = batch.requests
    ch = req.channel
    ts = pa.array(batch.ts_us, pa.timestamp("us", tz="UTC"))
    directions = [c.direction for c in s.channels]
    features = pa.StructArray.from_arrays(
        [pa.array(req.features[f.name], from_pandas=f.missing) for f in s.features],  # NaN → null: missing
        [f.name for f in s.features])
    contacts = pa.StructArray.from_arrays(
        [pa.array(req.contacts[:, j]) for j in range(len(s.channels))], list(s.channel_ids))
    aids = s.action_ids
    rejections = _rejections_json(req.rejections, req.days_since_rejection, aids)
    assignment = pa.nulls(n, pa.string())
    if req.assigned is not None and (req.assigned >= 0).any():
        assignment = pa.array([json.dumps({"action": aids[a], "probability": float(p)}) if a >= 0 else None
                               for a, p in zip(req.assigned.tolist(), req.assigned_probability.tolist())], pa.string())
    slots = batch.slots
    taken = slots >= 0  # a row's slots are filled from the first, in slot order
    offsets = np.concatenate([[0], np.cumsum(taken.sum(axis=1))]).astype(np.int32)
    chosen_actions = pa.ListArray.from_arrays(pa.array(offsets), _dict_array(slots[taken], aids).cast(pa.string()))
    first = slots[:, 0] if slots.shape[1] else np.full(n, -1, np.int32)
    trigger = (pa.array(req.features["trigger"].astype(object), pa.string())
               if "trigger" in req.features else pa.nulls(n, pa.string()))
    dec = pa.table({
        "decision_id": pa.array(batch.decision_id, pa.string()),
        "ts": ts,
        "customer": pa.array(pseudo, pa.string()),
        "channel": _dict_array(ch, s.channel_ids),
        "direction": _dict_array(ch, directions),
        "trigger": trigger,
        "features": features,
        "contacts": contacts,
        "rejections": pa.array(rejections, pa.string()),
        "assignment": assignment,
        "strategy_version": _repeated(batch.strategy_version, n),
        "model_versions": _repeated(json.dumps(batch.model_versions), n),
        "chosen_action": _dict_array(first, aids, null_below_zero=True),
        "chosen_actions": chosen_actions,
        "selection_probability": pa.array(batch.selection_probability),
        "explored": pa.array(batch.explored),
        "latency_us": pa.array(batch.latency_us),
        "source": _repeated(source, n),
    })
    cr = rows if rows is not None else _CandidateRows.of(batch, s)
    c = cr.cells
    versions = [batch.model_versions.get(a, "") for a in aids]
    cand = pa.table({
        "decision_id": pa.DictionaryArray.from_arrays(pa.array(cr.decision), pa.array(batch.decision_id, pa.string())),
        "ts": pa.array(cr.ts_us, pa.timestamp("us", tz="UTC")),
        "channel": _dict_array(cr.channel, s.channel_ids),
        "action_id": _dict_array(cr.action, aids),
        "issue": _dict_array(cr.action, [a.issue for a in s.actions]),
        "group": _dict_array(cr.action, [a.group for a in s.actions]),
        "stage": _dict_array(c["stage"], list(STAGES)),
        "rule": _dict_array(c["rule"], batch.rule_names or [""], null_below_zero=True),
        "reason": _dict_array(c["reason"], cr.reason_texts, null_below_zero=True),
        "propensity": _float_array(c["propensity"]),
        "value": _float_array(c["value"]),
        "context_weight": _float_array(c["context_weight"]),
        "lever": _float_array(c["lever"]),
        "priority": _float_array(c["priority"]),
        "rank": pa.array(c["rank"], mask=c["rank"] == 0),
        "selected": pa.array(c["selected"]),
        "model_version": _dict_array(cr.model, versions, null_below_zero=True),
        "ordinal": pa.array(np.tile(np.arange(A, dtype=np.int32), n)),
    })
    return dec, cand



def _dict_array(codes: np.ndarray, dictionary: list[str] | np.ndarray | pa.Array,
                null_below_zero: bool = False) -> pa.Array:
    codes = np.asarray(codes)
    mask = codes < 0 if null_below_zero else None
    idx = pa.array(np.where(codes < 0, 0, codes).astype(np.int32), mask=mask)
    values = dictionary if isinstance(dictionary, pa.Array) else pa.array(list(dictionary), pa.string())
    return pa.DictionaryArray.from_arrays(idx, values)


def _repeated(text: str, n: int) -> pa.Array:
    """A string array of ``n`` copies of ``text``, built from its buffers."""
    raw = text.encode()
    offsets = np.arange(n + 1, dtype=np.int64) * len(raw)
    return pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(raw * n)]).cast(
        pa.string())


def _rejections_json(count: np.ndarray, days: np.ndarray, aids: tuple[str, ...]) -> np.ndarray:
    """Each row's rejection history as the JSON object ``json.dumps`` writes for
    ``{action: {"count": k, "days_since_last": d}}`` (the actions rejected, in catalogue
    order; ``"{}"`` where none), formatted in one pass over the rejected cells."""
    out = np.full(len(count), "{}", dtype=object)
    rr, jj = np.nonzero(count)
    if not len(rr):
        return out
    d = days[rr, jj]
    if not np.isfinite(d).all():  # json.dumps writes NaN / Infinity its own way
        for r in np.unique(rr).tolist():
            js = np.flatnonzero(count[r])
            out[r] = json.dumps({aids[j]: {"count": int(count[r, j]), "days_since_last": float(days[r, j])} for j in js})
        return out
    keys = [json.dumps(a) for a in aids]
    parts = [f'{keys[j]}: {{"count": {k}, "days_since_last": {x!r}}}'
             for j, k, x in zip(jj.tolist(), count[rr, jj].astype(np.int64).tolist(), d.astype(np.float64).tolist())]
    rows, starts = np.unique(rr, return_index=True)
    ends = np.append(starts[1:], len(rr))
    for r, a, b in zip(rows.tolist(), starts.tolist(), ends.tolist()):
        out[r] = "{" + ", ".join(parts[a:b]) + "}"
    return out


def _float_array(x: np.ndarray) -> pa.Array:
    x = np.ascontiguousarray(x, dtype=np.float64)
    nan = np.isnan(x)
    return pa.array(x, mask=nan if nan.any() else None)
