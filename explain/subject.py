"""The customer's own explanation (GDPR Art. 15(1)(h), AI Act Art. 86), written for customers.

For one customer and a period: every decision Klartext made about them — when, where, what
it showed them — the main reasons in plain words (what raised the chance that an offer suits
them, never log-odds), the data it used with the values, what they can do (object to
marketing, contest a decision and have a person review it, ask for erasure, complain), and
optionally who at the organisation looked at their data.  German or English; JSON, a
printable HTML page (no scripts, no external resources) or PDF.

Making one is itself recorded in the access log (``subject_export``).
"""

from __future__ import annotations

import html
import json
from datetime import UTC, date, datetime
from typing import Any

from decision_log.store import DecisionLog
from decisioning.errors import LogError
from explain import i18n
from explain.api import Explainer
from explain.evidence import _CSS, _esc, _rows

FORMAT = "klartext-subject/1"


def subject_report(log: DecisionLog, ex: Explainer, customer: str, lang: str, exported_by: str, *,
                   start: date | None = None, end: date | None = None, with_access: bool = True,
                   contact: str | None = None, via: str = "cli", pseudonym: str | None = None) -> dict[str, Any]:
    """Everything the customer with raw id ``customer`` is told, as one JSON-ready dict
    (``pseudonym``: the customer is known by it only; ``customer`` is then how the page
    names them)."""
    pseudo = pseudonym or str(log.pseudonymise([customer])[0])
    where, params = ["customer = ?"], [pseudo]
    if start is not None:
        where.append("ts >= ?")
        params.append(datetime(start.year, start.month, start.day, tzinfo=UTC))
    if end is not None:
        where.append("ts < ? + INTERVAL 1 DAY")
        params.append(datetime(end.year, end.month, end.day, tzinfo=UTC))
    ids = [r[0] for r in log.con.cursor().execute(
        f"SELECT decision_id FROM decisions WHERE {' AND '.join(where)} ORDER BY ts", params).fetchall()]
    with log.register() as reg:  # recorded before anything is read out
        reg.record_access(exported_by, via, "subject_export", pseudo, customer=pseudo)
        reviews = reg.reviews()
    reviews = reviews[reviews["decision_id"].isin(ids)]
    decisions = []
    for did in ids:
        e = ex.explain(did)
        names = e.action_names()
        d = e.decision
        s = e.strategy
        channel = d["channel"]
        if s is not None and channel in s.channel_ids:
            channel = s.channel(channel).label
        item: dict[str, Any] = {"decision_id": did, "ts": str(d["ts"]), "channel": channel,
                                "offered": [names.get(a, a) for a in e.chosen], "erased": e.erased,
                                "erased_at": None if e.erased_at is None else str(e.erased_at)}
        if not e.erased:
            told = {a: e.customer_reasons(a, lang) for a in e.chosen}  # only what the strategy discloses
            item["reasons"] = {names.get(a, a): told[a][0] for a in e.chosen}
            item["other_factors"] = {names.get(a, a): round(told[a][1], 4) for a in e.chosen if told[a][1] > 0}
            feats = list(e.inputs.get("features", {}))
            item["data"] = e.feature_phrases(feats, lang)
        item["reviews"] = [
            {"ts": str(x.ts), "status": x.status, "comment": x.comment if isinstance(x.comment, str) else None}
            for x in reviews[reviews["decision_id"] == did].itertuples()]
        decisions.append(item)
    access = []
    if with_access:
        with log.register(read_only=True) as reg:
            df = reg.access_log(customer=pseudo) if reg is not None else None
        if df is not None:
            access = [{"ts": str(r.ts), "who": r.actor, "via": r.via, "what": r.what} for r in df.itertuples()]
    return {"format": FORMAT, "language": lang, "customer": customer,
            "period": {"from": None if start is None else start.isoformat(), "to": None if end is None else end.isoformat()},
            "made": {"by": exported_by, "at": datetime.now(UTC).isoformat(timespec="seconds")},
            "contact": contact, "decisions": decisions, "access": access if with_access else None}


def to_json(rep: dict[str, Any]) -> str:
    return json.dumps(rep, indent=2, ensure_ascii=False, default=str)


def to_html(rep: dict[str, Any]) -> str:
    """The explanation as one printable page, written for the customer."""
    lg = rep["language"]

    def t(key: str, **v: object) -> str:
        return html.escape(i18n.t(key, lg, **v))

    parts = [f"<!doctype html><html lang='{lg}'><head><meta charset='utf-8'><title>{t('subject.title')}</title>",
             f"<style>{_CSS} ul.data {{ columns: 2; column-gap: 16pt; }} ul.data li {{ break-inside: avoid; }}</style>"
             "</head><body>",
             f"<h1>{t('subject.title')}</h1>",
             f"<p>{t('subject.for', customer=rep['customer'], at=rep['made']['at'][:10])}</p>",
             f"<p>{t('subject.intro')}</p>"]
    p = rep["period"]
    if p["from"] or p["to"]:
        parts.append(f"<p class='meta'>{t('subject.period', start=p['from'] or '…', end=p['to'] or '…')}</p>")
    ds = rep["decisions"]
    parts.append(f"<h2>{t('subject.decisions', n=len(ds))}</h2>")
    if not ds:
        parts.append(f"<p>{t('subject.none')}</p>")
    for k, d in enumerate(ds, 1):
        parts.append(f"<h3>{k}. {t('subject.when', date=d['ts'][:16] + ' UTC', channel=d['channel'])}</h3>")
        parts.append("<p>" + (t("subject.offered", offers=", ".join(i18n.quoted(o, lg) for o in d["offered"]))
                              if d["offered"] else t("subject.nothing")) + "</p>")
        if d["erased"]:
            parts.append(f"<p class='meta'>{t('subject.erased', date=(d['erased_at'] or '')[:10] or '—')}</p>")
            continue
        for name, reasons in d.get("reasons", {}).items():
            parts.append(f"<p><b>{t('subject.why', name=name)}</b></p>")
            other = d.get("other_factors", {}).get(name)
            items = [f"<li>{_esc(r)}</li>" for r in reasons]
            if other:
                items.append(f"<li>{t('subject.other_factors', share=i18n.percent(other, lg, 0))}</li>")
            parts.append("<ul>" + "".join(items) + "</ul>" if items
                         else f"<p class='meta'>{t('subject.no_reasons')}</p>")
        parts.append(f"<p><b>{t('subject.data')}</b></p>")
        parts.append("<ul class='data'>" + "".join(f"<li>{_esc(x)}</li>" for x in d.get("data", [])) + "</ul>")
        for r in d["reviews"]:
            parts.append(f"<p class='meta'>{t('subject.review', date=r['ts'][:10], status=i18n.t('review.' + r['status'], lg))}"
                         + (f": {_esc(r['comment'])}" if r.get("comment") else "") + "</p>")
    parts.append(f"<h2>{t('subject.rights')}</h2><ul>")
    for key in ("subject.right_object", "subject.right_contest", "subject.right_access", "subject.right_erase",
                "subject.right_complain"):
        parts.append(f"<li>{t(key)}</li>")
    parts.append("</ul>")
    if rep.get("contact"):
        parts.append(f"<p>{t('subject.contact', contact=rep['contact'])}</p>")
    if rep.get("access") is not None:
        parts.append(f"<h2>{t('subject.access')}</h2>")
        if rep["access"]:
            parts.append(_rows([t("col.time"), t("subject.who"), t("subject.what")],
                               [[_esc(a["ts"][:19]), _esc(a["who"]), t(f"access.{a['what']}")] for a in rep["access"]],
                               [30, 30, 40]))
        else:
            parts.append(f"<p>{t('subject.access_none')}</p>")
    parts.append(f"<p class='meta'>{t('subject.footer')}</p></body></html>")
    return "\n".join(parts)


def to_pdf(rep: dict[str, Any]) -> bytes:
    from weasyprint import HTML

    return HTML(string=to_html(rep)).write_pdf()


def parse_day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise LogError(f"{option} {text!r} is not a date.", "Write it as YYYY-MM-DD, e.g. 2026-11-01.") from None
