"""Decision requests: what the engine sees, validated against the strategy's feature schema.

One request = one customer interaction: the customer id, the channel, the customer's
features (historical CRM data and real-time context), and the contact history the contact
policies need (contacts per channel within each channel's period, and per action the
number of rejections and the days since the last one).  A batch of requests is held
column-wise (:class:`Requests`) so policies and models run vectorised; a single request is
a batch of one, so a decision made alone and the same decision made in a batch are
computed by the same code and agree exactly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from decisioning.errors import InputError
from decisioning.strategy import Strategy

#: Largest contact or rejection count a request may state.
MAX_COUNT = 1_000_000_000
#: Largest magnitude of an integer feature: every integer up to it is exact in float64.
MAX_INTEGER = 2**53

_TOP_KEYS = ("customer_id", "channel", "features", "contacts", "rejections", "assignment")


@dataclass
class Requests:
    """A column-wise batch of decision requests (validated; build with the ``from_*`` methods).

    Attributes
    ----------
    customer_id : ndarray of str, shape (n,)
    channel : ndarray of int, shape (n,)
        Index into ``strategy.channels``.
    features : dict of str to ndarray
        One column per strategy feature: float64 (number), int64 (integer), bool (boolean),
        object of str (category).
    contacts : ndarray of int64, shape (n, n_channels)
        Contacts within each channel's contact-policy period.
    rejections : ndarray of int64, shape (n, n_actions)
        Rejections of each action within the suppression window.
    days_since_rejection : ndarray of float64, shape (n, n_actions)
        Days since the last rejection (``inf`` when none).
    assigned, assigned_probability : ndarray (n,), optional
        An action assigned from outside — e.g. the arm of a randomised experiment — that the
        engine serves instead of its own choice (-1 = none), and the probability with which
        it was assigned.  Everything else (policies, scores, ranks) is still decided.
    """

    customer_id: np.ndarray
    channel: np.ndarray
    features: dict[str, np.ndarray]
    contacts: np.ndarray
    rejections: np.ndarray
    days_since_rejection: np.ndarray
    assigned: np.ndarray | None = None
    assigned_probability: np.ndarray | None = None
    #: Per request, whether the customer objected to direct marketing on its channel (GDPR
    #: Art. 21): set from the log's register of objections, never from a request body.
    objection: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.customer_id)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def from_dicts(cls, strategy: Strategy, items: list[Mapping[str, Any]]) -> Requests:
        """Validate JSON-like requests (see ``docs/strategy.md`` for the format)."""
        n, a, c = len(items), len(strategy.actions), len(strategy.channels)
        cols: dict[str, list] = {f.name: [None] * n for f in strategy.features}
        channel = np.zeros(n, dtype=np.int64)
        contacts = np.zeros((n, c), dtype=np.int64)
        rej = np.zeros((n, a), dtype=np.int64)
        days = np.full((n, a), np.inf)
        cust = np.empty(n, dtype=object)
        assigned = np.full(n, -1, dtype=np.int64)
        assigned_p = np.ones(n)
        for r, item in enumerate(items):
            _read_item(strategy, item, r, "request" if n == 1 else f"request {r}", cols, channel, contacts, rej, days,
                       cust, assigned, assigned_p)
        features = {f.name: _column(f, cols[f.name]) for f in strategy.features}
        if (assigned >= 0).any():
            return cls(cust, channel, features, contacts, rej, days, assigned, assigned_p)
        return cls(cust, channel, features, contacts, rej, days)

    @classmethod
    def from_logged(cls, strategy: Strategy, customers, channels, inputs, *, assignment: bool = True) -> Requests:
        """The requests of logged decisions: their customer, channel and ``inputs`` JSON (the
        log's ``decisions.inputs``: features, contacts, rejections and any assignment).
        ``assignment=False`` leaves an experiment's assignment out (a challenger decides
        freely on the same inputs)."""
        items, objected = [], []
        for customer, channel, text in zip(customers, channels, inputs):
            doc = json.loads(text)
            item = {"customer_id": customer, "channel": channel, "features": doc["features"],
                    "contacts": doc.get("contacts") or {}, "rejections": doc.get("rejections") or {}}
            if assignment and doc.get("assignment"):
                item["assignment"] = doc["assignment"]
            items.append(item)
            objected.append(doc.get("objection") is True)
        req = cls.from_dicts(strategy, items)
        if any(objected):
            req.objection = np.array(objected, dtype=bool)
        return req

    @classmethod
    def from_frame(
        cls,
        strategy: Strategy,
        frame: pd.DataFrame,
        *,
        customer_col: str = "customer_id",
        channel_col: str = "channel",
        contacts: np.ndarray | None = None,
        rejections: np.ndarray | None = None,
        days_since_rejection: np.ndarray | None = None,
        assigned: np.ndarray | None = None,
        assigned_probability: np.ndarray | None = None,
    ) -> Requests:
        """Validate a batch held as a DataFrame (one row per request), vectorised."""
        n = len(frame)
        columns = _feature_columns(strategy, frame)
        missing = [c for c in (customer_col, channel_col) if c not in frame.columns]
        missing += [f.name for f in strategy.features if columns.get(f.name) is None]
        if missing:
            more = ("" if missing[0] != customer_col or customer_col != "customer_id"
                    else " Name your id column with --id-column.")
            raise InputError(f"column {missing[0]!r} is missing from the customer table.",
                             f"Required columns: {customer_col}, {channel_col}, "
                             + ", ".join(f.name for f in strategy.features) + ". The table has: "
                             + ", ".join(map(str, frame.columns[:30])) + "." + more)
        ch = frame[channel_col].astype(object).to_numpy()
        cids = np.asarray(strategy.channel_ids, dtype=object)
        codes = _codes(ch, cids)
        if (codes < 0).any():
            r = int(np.flatnonzero(codes < 0)[0])
            raise InputError(f"row {r + 1}: channel {ch[r]!r} is not a channel of strategy {strategy.name!r}.",
                             f"Use one of: {', '.join(strategy.channel_ids)}.")
        features = {}
        for f in strategy.features:
            features[f.name] = _frame_column(f, frame[columns[f.name]])
        a, c = len(strategy.actions), len(strategy.channels)
        return cls(
            customer_id=frame[customer_col].astype(str).to_numpy(dtype=object),
            channel=codes,
            features=features,
            contacts=np.zeros((n, c), dtype=np.int64) if contacts is None else np.asarray(contacts, dtype=np.int64),
            rejections=np.zeros((n, a), dtype=np.int64) if rejections is None else np.asarray(rejections, dtype=np.int64),
            days_since_rejection=np.full((n, a), np.inf) if days_since_rejection is None
            else np.asarray(days_since_rejection, dtype=np.float64),
            assigned=None if assigned is None else np.asarray(assigned, dtype=np.int64),
            assigned_probability=None if assigned is None else np.broadcast_to(
                np.asarray(1.0 if assigned_probability is None else assigned_probability, dtype=np.float64), (n,)).copy(),
        )

    # -- views ----------------------------------------------------------------------------

    def take(self, rows: np.ndarray) -> Requests:
        return Requests(
            self.customer_id[rows], self.channel[rows],
            {k: v[rows] for k, v in self.features.items()},
            self.contacts[rows], self.rejections[rows], self.days_since_rejection[rows],
            None if self.assigned is None else self.assigned[rows],
            None if self.assigned_probability is None else self.assigned_probability[rows],
            None if self.objection is None else self.objection[rows],
        )

    @classmethod
    def concat(cls, parts: list[Requests]) -> Requests:
        """One batch of several validated batches, in order (a service validates each request
        as it arrives, then decides the group at once)."""
        if len(parts) == 1:
            return parts[0]
        any_assigned = any(p.assigned is not None for p in parts)
        return cls(
            np.concatenate([p.customer_id for p in parts]), np.concatenate([p.channel for p in parts]),
            {k: np.concatenate([p.features[k] for p in parts]) for k in parts[0].features},
            np.concatenate([p.contacts for p in parts]), np.concatenate([p.rejections for p in parts]),
            np.concatenate([p.days_since_rejection for p in parts]),
            np.concatenate([p.assigned if p.assigned is not None else np.full(len(p), -1, np.int64) for p in parts])
            if any_assigned else None,
            np.concatenate([p.assigned_probability if p.assigned is not None else np.ones(len(p)) for p in parts])
            if any_assigned else None,
            np.concatenate([p.objection if p.objection is not None else np.zeros(len(p), bool) for p in parts])
            if any(p.objection is not None for p in parts) else None,
        )

    def to_dict(self, strategy: Strategy, row: int) -> dict[str, Any]:
        """One request as JSON-ready dict (the inverse of :meth:`from_dicts`)."""
        feats = {}
        for f in strategy.features:
            v = self.features[f.name][row]
            v = v.item() if hasattr(v, "item") else v
            feats[f.name] = None if f.missing and v != v else v  # NaN: missing, JSON null
        contacts = {cid: int(self.contacts[row, j]) for j, cid in enumerate(strategy.channel_ids)
                    if self.contacts[row, j]}
        rej = {aid: {"count": int(self.rejections[row, j]), "days_since_last": float(self.days_since_rejection[row, j])}
               for j, aid in enumerate(strategy.action_ids) if self.rejections[row, j]}
        out = {"customer_id": str(self.customer_id[row]), "channel": strategy.channel_ids[int(self.channel[row])],
               "features": feats, "contacts": contacts, "rejections": rej}
        if self.assigned is not None and self.assigned[row] >= 0:
            out["assignment"] = {"action": strategy.action_ids[int(self.assigned[row])],
                                 "probability": float(self.assigned_probability[row])}
        return out



def _read_item(strategy: Strategy, item: Any, r: int, where: str, cols: dict[str, list], channel: np.ndarray,
               contacts: np.ndarray, rej: np.ndarray, days: np.ndarray, cust: np.ndarray, assigned: np.ndarray,
               assigned_p: np.ndarray) -> None:
    """Check request ``r`` of :meth:`Requests.from_dicts` and write it into row ``r`` of the
    batch's arrays; the first wrong value is named (``where``: which request)."""
    cids = strategy.channel_ids
    aids = strategy.action_ids
    if not isinstance(item, Mapping):
        raise InputError(f"{where}: expected a JSON object, got {item!r}.",
                         "Send {\"customer_id\": ..., \"channel\": ..., \"features\": {...}}.")
    for k in item:
        if k not in _TOP_KEYS:
            raise InputError(f"{where}: unknown field {k!r}.", f"Allowed fields: {', '.join(_TOP_KEYS)}.")
    for k in ("customer_id", "channel", "features"):
        if k not in item:
            raise InputError(f"{where}: field {k!r} is missing.", f"Add {k!r}; required fields: customer_id, channel, features.")
    cid = item["customer_id"]
    if not isinstance(cid, (str, int)) or isinstance(cid, bool) or str(cid) == "":
        raise InputError(f"{where}: customer_id must be a non-empty text or number, got {cid!r}.")
    cust[r] = str(cid)
    ch = item["channel"]
    if ch not in cids:
        raise InputError(f"{where}: channel {ch!r} is not a channel of strategy {strategy.name!r}.",
                         f"Use one of: {', '.join(cids)}.")
    channel[r] = cids.index(ch)
    feats = item["features"]
    if not isinstance(feats, Mapping):
        raise InputError(f"{where}: features must be a JSON object, got {feats!r}.")
    for k in feats:
        if k not in cols:
            raise InputError(f"{where}: unknown feature {k!r}.",
                             f"The strategy declares: {', '.join(cols)}.")
    for f in strategy.features:
        if f.name not in feats:
            if f.missing:
                cols[f.name][r] = math.nan
                continue
            raise InputError(f"{where}: feature {f.name!r} is missing.",
                             f"Add {f.name!r} ({f.type}, {f.label}) to features.")
        cols[f.name][r] = _check_scalar(f, feats[f.name], where)
    for k, v in (item.get("contacts") or {}).items():
        if k not in cids:
            raise InputError(f"{where}: contacts names unknown channel {k!r}.", f"Use one of: {', '.join(cids)}.")
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_COUNT:
            raise InputError(f"{where}: contacts.{k} must be a whole number from 0 to {MAX_COUNT:,}, got {v!r}.",
                             f"Send the number of contacts on {k} within its period.")
        contacts[r, cids.index(k)] = v
    for k, v in (item.get("rejections") or {}).items():
        if k not in aids:
            raise InputError(f"{where}: rejections names unknown action {k!r}.",
                             "Use action ids from the strategy file.")
        if not isinstance(v, Mapping) or set(v) != {"count", "days_since_last"}:
            raise InputError(f"{where}: rejections.{k} must be {{\"count\": int, \"days_since_last\": number}}, got {v!r}.")
        cnt, d = v["count"], v["days_since_last"]
        if isinstance(cnt, bool) or not isinstance(cnt, int) or not 0 <= cnt <= MAX_COUNT:
            raise InputError(f"{where}: rejections.{k}.count must be a whole number from 0 to {MAX_COUNT:,}, "
                             f"got {cnt!r}.", f"Send how often {k} was rejected.")
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or not 0 <= d <= 1e9:
            raise InputError(f"{where}: rejections.{k}.days_since_last must be a finite number from 0 to 1,000,000,000, got {d!r}.")
        rej[r, aids.index(k)] = cnt
        days[r, aids.index(k)] = float(d)
    asg = item.get("assignment")
    if asg is not None:
        if not isinstance(asg, Mapping) or set(asg) != {"action", "probability"}:
            raise InputError(f"{where}: assignment must be {{\"action\": id, \"probability\": number}}, "
                             f"got {asg!r}.")
        if asg["action"] not in aids:
            raise InputError(f"{where}: assignment names unknown action {asg['action']!r}.",
                             "Use action ids from the strategy file.")
        pr = asg["probability"]
        if isinstance(pr, bool) or not isinstance(pr, (int, float)) or not 0 < pr <= 1:
            raise InputError(f"{where}: assignment.probability must be a number in (0, 1], got {pr!r}.")
        assigned[r] = aids.index(asg["action"])
        assigned_p[r] = float(pr)

def _codes(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    lookup = {v: i for i, v in enumerate(known.tolist())}
    return np.fromiter((lookup.get(v, -1) for v in values.tolist()), dtype=np.int64, count=len(values))


def _check_scalar(f, v: Any, where: str) -> Any:
    def bad() -> InputError:  # built only for a bad value: this check runs for every value of a request
        kind = {"number": "a number", "integer": "a whole number", "boolean": "true or false",
                "category": "one of " + ", ".join(repr(x) for x in f.values)}[f.type]
        return InputError(f"{where}: feature {f.name!r} must be {kind}, got {v!r}.", f"Send {f.name} as {kind}.")

    if f.type == "boolean":
        if not isinstance(v, bool):
            raise bad()
        return v
    if f.type == "category":
        if not isinstance(v, str) or v not in f.values:
            raise bad()
        return v
    if f.missing and (v is None or (isinstance(v, float) and math.isnan(v))):
        return math.nan
    if v is None:
        raise InputError(f"{where}: feature {f.name!r} is empty.",
                         f"Send a value for {f.name} ({f.label}), or declare it with missing: allowed in the "
                         "strategy if its models accept missing values.")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise bad()
    if f.type == "integer" and not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
        raise bad()
    if not math.isfinite(v):
        raise InputError(f"{where}: feature {f.name!r} must be finite, got {v!r}.", f"Send a finite value for {f.name}.")
    if f.type == "integer" and abs(v) > MAX_INTEGER:
        raise InputError(f"{where}: feature {f.name!r} must be a whole number from -{MAX_INTEGER:,} to {MAX_INTEGER:,} "
                         f"(exact in the models' float64), got {v!r}.", f"Check the value of {f.name} ({f.label}).")
    if (f.min is not None and v < f.min) or (f.max is not None and v > f.max):
        _check_range(f, np.asarray([v], dtype=float), where)  # raises, with the message of the vectorised check
    return int(v) if f.type == "integer" else float(v)


def safe_name(column: str) -> str:
    """The identifier a strategy uses for a table column with any name: lower case, runs of
    anything but letters and digits as one ``_`` (``Customer Age (years)`` → ``customer_age_years``)."""
    out = re.sub(r"[^a-z0-9]+", "_", str(column).strip().lower()).strip("_")
    return out if out and out[0].isalpha() else f"c_{out}"


def _feature_columns(strategy: Strategy, frame: pd.DataFrame) -> dict[str, str | None]:
    """Which table column each feature reads: its own name, else the one column whose
    :func:`safe_name` it is (so ``Customer_Age`` feeds the feature ``customer_age``)."""
    by_safe: dict[str, list[str]] = {}
    for c in frame.columns:
        by_safe.setdefault(safe_name(c), []).append(c)
    out: dict[str, str | None] = {}
    for f in strategy.features:
        if f.name in frame.columns:
            out[f.name] = f.name
        else:
            found = by_safe.get(f.name, [])
            if len(found) > 1:
                raise InputError(f"feature {f.name!r} matches more than one column: {', '.join(map(repr, found))}.",
                                 "Rename one of them, or name the feature exactly like its column.")
            out[f.name] = found[0] if found else None
    return out


def _check_range(f, arr: np.ndarray, where: str, rows: bool = False) -> None:
    for bound, bad_mask, word in ((f.min, arr < f.min if f.min is not None else None, "at least"),
                                  (f.max, arr > f.max if f.max is not None else None, "at most")):
        if bad_mask is not None and bad_mask.any():
            r = int(np.flatnonzero(bad_mask)[0])
            at = f"row {r + 1}: " if rows else f"{where}: "
            val = arr[r]
            shown = int(val) if float(val).is_integer() else float(val)
            raise InputError(f"{at}feature {f.name!r} must be {word} {bound:g}, got {shown!r}.",
                             f"Check the value of {f.name} ({f.label}).")


def _column(f, values: list) -> np.ndarray:
    if f.type == "number" or f.missing:  # an integer that may be missing is held as float64 with NaN
        return np.asarray(values, dtype=np.float64)
    if f.type == "integer":
        return np.asarray(values, dtype=np.int64)
    if f.type == "boolean":
        return np.asarray(values, dtype=bool)
    return np.asarray(values, dtype=object)


def _frame_column(f, s: pd.Series) -> np.ndarray:
    if s.isna().any() and not f.missing:
        r = int(np.flatnonzero(s.isna().to_numpy())[0])
        raise InputError(f"row {r + 1}: feature {f.name!r} is empty.",
                         f"Fill in {f.name} ({f.label}) for every row, or declare it with missing: allowed in the "
                         "strategy if its models accept missing values.")
    if f.type == "category":
        arr = s.astype(object).to_numpy()
        known = set(f.values)
        bad = np.fromiter((v not in known for v in arr.tolist()), dtype=bool, count=len(arr))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise InputError(f"row {r + 1}: feature {f.name!r} must be one of {', '.join(map(repr, f.values))}, "
                             f"got {arr[r]!r}.",
                             f"Use a declared value for {f.name} or add it to the strategy's features.")
        return arr
    if f.type == "boolean":
        if s.dtype != bool:
            words = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
            text = s.astype(str).str.strip().str.lower()
            bad = ~text.isin(list(words))
            if bad.any():
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(f"row {r + 1}: feature {f.name!r} must be true or false, got {s.iloc[r]!r}.",
                                 f"Store {f.name} as true/false.")
            return text.map(words).to_numpy(dtype=bool)
        return s.to_numpy(dtype=bool)
    if f.missing and not pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        s = s.astype(object).where(~s.astype(str).str.strip().eq(""), None)  # a blank cell is a missing value
        if not (pd.to_numeric(s, errors="coerce").isna() & s.notna()).any():
            s = pd.to_numeric(s, errors="coerce")  # numbers and empty cells only (e.g. a column of None)
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        bad = (pd.to_numeric(s, errors="coerce").isna() & (s.notna() if f.missing else True)
               if not pd.api.types.is_bool_dtype(s) else pd.Series(True, index=s.index))
        r = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
        raise InputError(f"row {r + 1}: feature {f.name!r} must be a number, got {s.iloc[r]!r}.",
                         f"Store {f.name} as numbers (the column holds {str(s.dtype)!r} values).")
    arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
    given = ~np.isnan(arr) if f.missing else np.ones(len(arr), dtype=bool)
    if not np.isfinite(arr[given]).all():
        r = int(np.flatnonzero(given & ~np.isfinite(arr))[0])
        raise InputError(f"row {r + 1}: feature {f.name!r} must be finite, got {float(arr[r])!r}.", f"Fix {f.name} in that row.")
    if f.type == "integer":
        whole = np.where(given, arr == np.round(arr), True)
        if not whole.all():
            r = int(np.flatnonzero(~whole)[0])
            raise InputError(f"row {r + 1}: feature {f.name!r} must be a whole number, got {float(arr[r])!r}.",
                             f"Fix {f.name} in that row.")
        _check_range(f, arr, "", rows=True)
        return arr if f.missing else arr.astype(np.int64)
    _check_range(f, arr, "", rows=True)
    return arr
