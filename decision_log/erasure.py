"""Erasing a customer at their request (GDPR Art. 17) without breaking the seal.

The customer's key is destroyed (:meth:`decision_log.subjects.SubjectKeys.erase`), which
makes the sealed inputs of every decision about them unreadable while every stored byte —
and so the hash chain — stays as it was; then the erasure is recorded, sealed, in the
compliance register (:mod:`decision_log.register`) under the customer's pseudonym.  The
decisions keep counting in funnels and KPIs (their stages, rules, scores and outcomes are
the organisation's record of what it did); replay and explanations say they were erased.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from decision_log import subjects
from decision_log.store import DecisionLog
from decisioning.errors import LogError


@dataclass(frozen=True)
class Erasure:
    customer: str  #: the pseudonym
    decisions: int  #: decisions about the customer in the log
    sealed: int  #: of them, with inputs sealed under the destroyed key
    key_fingerprint: str | None  #: the destroyed key's id, as its sealed values name it (None: there was no key left)
    erased_at: datetime


def erase(log: DecisionLog, customer: str, actor: str, via: str, reference: str | None = None,
          raw_id: bool = True) -> Erasure:
    """Erase ``customer`` (a raw id, or a pseudonym with ``raw_id=False``)."""
    pseudo = str(log.pseudonymise([customer])[0]) if raw_id else customer
    con = log.con.cursor()
    total, sealed, clear = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE starts_with(inputs::VARCHAR, $p)), "
        "count(*) FILTER (WHERE source = 'klartext' AND NOT starts_with(inputs::VARCHAR, $p)) "
        "FROM decisions WHERE customer = $c", {"p": subjects.PREFIX, "c": pseudo}).fetchall()[0]
    if clear:
        raise LogError(f"{clear:,} decision(s) about this customer were logged with their inputs in clear (a log "
                       "written before inputs were sealed, or with sealing off): destroying a key cannot erase them.",
                       "Erasing them would change stored bytes and break the hash chain. Keep the log under its "
                       "retention period and erase at its end, or start a new log (new logs seal inputs).")
    if not log.seals_inputs and total == 0:
        raise LogError(f"The log {log.path!r} holds no decision about this customer, and does not seal inputs.",
                       "Check the customer id (the raw id the decisions were requested with).")
    if log.seals_inputs and log.subject_keys is None:
        raise LogError(f"The log {log.path!r} seals inputs, but its pseudonym key is not available.",
                       f"Put {log.path}.key beside the log or set $KLARTEXT_PSEUDONYM_KEY.")
    destroyed = log.subject_keys.erase(pseudo) if log.subject_keys is not None else None
    with log.register() as reg:
        when = reg.record_erasure(pseudo, actor, via, reference, int(total), destroyed)
        reg.record_access(actor, via, "erasure", pseudo, customer=pseudo, why=reference)
    return Erasure(pseudo, int(total), int(sealed), destroyed, when)
