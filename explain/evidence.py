"""The evidence file of one decision, for a reviewer to file: everything about it, checked at
export time, as JSON, as a printable HTML page and as PDF — the same content in each.

What it holds: who exported it and when; the decision's place in the hash chain (position,
record hash, chain hash) with its record and link re-checked now; whether replaying it now
gives the same result; the chosen actions with their reasons and attributions; the fate of
every action; why not each of the others; what happened afterwards (outcomes); and the inputs.
The HTML page has no scripts and no external resources (bars are drawn in CSS), so it opens
offline, prints without clipping and stays small (well under 1 MB).
"""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from decision_log.checkpoints import record_status
from decision_log.replay import replay
from decision_log.store import DecisionLog
from explain import i18n
from explain.api import Explainer
from explain.text import why_not_text

FORMAT = "klartext-evidence/1"


def _version() -> str:
    try:
        return metadata.version("klartext")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare copy
        return "unknown"


def evidence(log: DecisionLog, ex: Explainer, decision_id: str, exported_by: str, lang: str = "en") -> dict[str, Any]:
    """The evidence of ``decision_id`` as one JSON-ready dict (see the module docstring)."""
    e = ex.explain(decision_id)
    names = e.action_names()
    con = log.con.cursor()
    contrasts = [ex.why_not(decision_id, a) for a in e.candidates["action_id"] if e.chosen and a != e.chosen[0]]
    rep = replay(log, [decision_id])[0]
    outcomes = con.execute("SELECT action_id, outcome, revenue, margin, churned, ts FROM outcomes "
                           "WHERE decision_id = ? ORDER BY ts", [decision_id]).df()
    chosen = []
    for aid in e.chosen:
        ca = e.attributions.get(aid)
        item: dict[str, Any] = {"action_id": aid, "name": names.get(aid, aid), "reasons": e.reason_texts(aid, lang),
                                "reasons_told_to_customer": e.disclosed(aid)}
        if ca is not None:
            item["attributions"] = {
                "verified": ca.verified, "problems": ca.problems, "model_version": ca.model_version,
                "base_value": ca.base_value, "output": ca.raw_output, "unit": "log-odds",
                "features": [{"feature": f, "label": label, "value": float(v)}
                             for f, label, v in zip(ca.features, e.feature_phrases(ca.features, lang), ca.phi)]}
        chosen.append(item)
    why_not = []
    for c in contrasts:
        answer, notes = why_not_text(c, e, lang, names)
        why_not.append({"action_id": c.other, "name": names.get(c.other, c.other), "answer": answer,
                        "what_would_have_changed_it": notes, "facts": c.to_dict()})
    with log.register(read_only=True) as reg:  # the review trail (GDPR Art. 22(3)), oldest first
        reviews = [] if reg is None else json.loads(reg.reviews(decision_id).drop(columns=["customer"]).to_json(
            orient="records", date_format="iso"))
    return {
        "format": FORMAT,
        "language": lang,
        "exported": {"by": exported_by, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                     "klartext": _version(), "log": str(log.path).rsplit("/", 1)[-1]},
        "record": record_status(con, decision_id),
        "replay": {"reproduced": rep.reproduced, "replayable": rep.replayable, "note": rep.note,
                   "differences": len(rep.differences)},
        "decision": e.to_dict(),
        "chosen": chosen,
        "why_not": why_not,
        "outcomes": json.loads(outcomes.to_json(orient="records", date_format="iso")),
        "reviews": reviews,
        "erased_at": None if e.erased_at is None else str(e.erased_at),
    }


def to_json(ev: dict[str, Any]) -> str:
    return json.dumps(ev, indent=2, default=str, ensure_ascii=False)


# -- the printable page --------------------------------------------------------------------

_CSS = """
@page { size: A4; margin: 16mm 14mm; }
body { font-family: "DejaVu Sans", system-ui, sans-serif; font-size: 10pt; color: #1d2327; margin: 0; }
h1 { font-size: 16pt; margin: 0 0 4pt; } h2 { font-size: 12pt; margin: 14pt 0 4pt; border-bottom: 1px solid #ccc; }
.meta { color: #555; } .ok { color: #1b5e20; } .bad { color: #b71c1c; font-weight: bold; }
.box { border: 1px solid #ccc; padding: 6pt 8pt; margin: 6pt 0; break-inside: avoid; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; margin: 4pt 0; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 2pt 4pt; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; word-break: break-word; }
th { background: #f4f4f4; overflow-wrap: normal; word-break: normal; hyphens: auto; } tr { break-inside: avoid; }
code { font-size: 8.5pt; overflow-wrap: anywhere; }
.bar { display: inline-block; height: 8pt; vertical-align: middle; }
.up { background: #2e7d32; } .down { background: #c62828; }
td.num { text-align: right; white-space: nowrap; }
"""


def _esc(x: object) -> str:
    return html.escape("—" if x is None or (isinstance(x, float) and math.isnan(x)) else str(x))


def _num(x: object, lang: str, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, bool):
        return i18n.t("value.yes" if x else "value.no", lang)
    if isinstance(x, (int, float)):
        return i18n.significant(x, lang, digits)
    return _esc(x)


def _rows(headers: list[str], rows: list[list[str]], widths: list[int] | None = None) -> str:
    cols = "".join(f"<col style='width:{w}%'>" for w in widths) if widths else ""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><colgroup>{cols}</colgroup><tr>{head}</tr>{body}</table>"


def to_html(ev: dict[str, Any]) -> str:
    """The evidence as one printable HTML page (no scripts, no external resources)."""
    lg = ev["language"]

    def t(key: str, **v: object) -> str:
        return html.escape(i18n.t(key, lg, **v))

    d = ev["decision"]["decision"]
    rec, rep, exp = ev["record"], ev["replay"], ev["exported"]
    intact = rec["record_intact"] and rec["link_intact"]
    parts = [f"<!doctype html><html lang='{lg}'><head><meta charset='utf-8'>",
             f"<title>{t('evidence.title', id=d['decision_id'])}</title><style>{_CSS}</style></head><body>",
             f"<h1>{t('evidence.title', id=d['decision_id'])}</h1>",
             f"<p class='meta'>{t('evidence.exported', by=exp['by'], at=exp['at'], version=exp['klartext'], log=exp['log'])}</p>",
             "<div class='box'>",
             f"<p class='{'ok' if intact else 'bad'}'>"
             f"{t('evidence.intact' if intact else 'evidence.broken', seq=rec['seq'], n=rec['decisions'], at=rec['checked_at'])}</p>",
             f"<p>{t('evidence.record_hash')} <code>{_esc(rec['record_hash'])}</code><br>"
             f"{t('evidence.chain_hash')} <code>{_esc(rec['chain_hash'])}</code><br>"
             f"{t('evidence.previous_hash')} <code>{_esc(rec['previous_chain_hash'])}</code></p>",
             f"<p class='{'ok' if rep['reproduced'] else 'bad' if rep['replayable'] else 'meta'}'>"
             + (t("replay.verified") if rep["reproduced"] else t("replay.not_replayable", note=rep["note"])
                if not rep["replayable"] else t("replay.failed", n=rep["differences"], examples="…"))
             + "</p></div>",
             f"<p>{t('evidence.facts', ts=d['ts'], channel=d['channel'], customer=d['customer'], strategy=d.get('strategy_version'), source=d['source'])}</p>",
             f"<p><b>{t('col.chosen')}:</b> "
             + (", ".join(f"{_esc(c['name'])} ({_esc(c['action_id'])})" for c in ev["chosen"]) or t("replay.no_action"))
             + "</p>"]
    for c in ev["chosen"]:
        parts.append(f"<h2>{t('evidence.why', name=c['name'])}</h2><ul>")
        told = c.get("reasons_told_to_customer") or [True] * len(c["reasons"])
        parts += [f"<li>{_esc(r)}" + ("" if ok else f" <span class='meta'>({_esc(t('reason.internal_only'))})</span>")
                  + "</li>" for r, ok in zip(c["reasons"], told)]
        parts.append("</ul>")
        a = c.get("attributions")
        if a:
            status = t("evidence.attr_ok") if a["verified"] else t("replay.attributions_withheld",
                                                                   problems="; ".join(a["problems"]))
            parts.append(f"<p class='{'ok' if a['verified'] else 'bad'}'>{status}</p>")
            top = sorted(a["features"], key=lambda f: -abs(f["value"]))[:12]
            scale = max((abs(f["value"]) for f in top), default=1.0) or 1.0
            rows = [[_esc(f["label"]),
                     f"<span class='bar {'up' if f['value'] >= 0 else 'down'}' "
                     f"style='width:{abs(f['value']) / scale * 100:.0f}%'></span>",
                     _num(f["value"], lg, 3)] for f in top]
            parts.append(_rows([t("evidence.feature"), t("evidence.influence"), t("fig.log_odds")], rows, [45, 40, 15]))
    parts.append(f"<h2>{t('evidence.fates')}</h2>")
    names = {c["action_id"]: c["name"] for c in ev["why_not"]} | {c["action_id"]: c["name"] for c in ev["chosen"]}
    rows = []
    for r in ev["decision"]["candidates"]:
        p = r.get("propensity")
        rows.append([_esc(names.get(r["action_id"], r["action_id"])) + f"<br><code>{_esc(r['action_id'])}</code>",
                     _esc(r.get("stage_label") or r.get("stage")), _esc(r.get("reason")),
                     "—" if p is None or p != p else i18n.percent(p, lg), _num(r.get("value"), lg, 3),
                     _num(r.get("priority"), lg, 3), _num(r.get("rank"), lg), _num(bool(r.get("selected")), lg)])
    parts.append(_rows([t("col.action"), t("col.stage"), t("col.reason"), t("col.propensity"), t("term.value"),
                        t("col.priority"), t("col.rank"), t("col.selected")], rows, [21, 11, 26, 10, 8, 9, 6, 9]))
    if ev["why_not"]:
        parts.append(f"<h2>{t('evidence.why_not')}</h2>")
        parts.append(_rows([t("col.action"), t("evidence.answer")],
                           [[_esc(w["name"]), _esc(w["answer"]) + "".join(f"<br>→ {_esc(n)}" for n in
                                                                         w["what_would_have_changed_it"])]
                            for w in ev["why_not"]], [25, 75]))
    parts.append(f"<h2>{t('evidence.outcomes')}</h2>")
    if ev["outcomes"]:
        parts.append(_rows([t("col.action"), t("customer.outcome"), t("customer.revenue"), t("customer.margin"),
                            t("customer.churned"), t("col.time")],
                           [[_esc(names.get(o["action_id"], o["action_id"])), _esc(o["outcome"]),
                             _num(o["revenue"], lg), _num(o["margin"], lg), _num(o["churned"], lg), _esc(o["ts"])]
                            for o in ev["outcomes"]]))
    else:
        parts.append(f"<p>{t('evidence.no_outcome')}</p>")
    parts.append(f"<h2>{t('evidence.reviews')}</h2>")
    if ev.get("reviews"):
        parts.append(_rows([t("col.time"), t("evidence.review_status"), t("evidence.reviewer"), t("evidence.comment")],
                           [[_esc(r["ts"]), _esc(t(f"review.{r['status']}")), _esc(r["reviewer"]),
                             _esc(r.get("comment") or "")] for r in ev["reviews"]], [22, 16, 20, 42]))
    else:
        parts.append(f"<p>{t('evidence.no_review')}</p>")
    parts.append(f"<h2>{t('replay.tab_inputs')}</h2>")
    if ev.get("erased_at"):
        parts.append(f"<p>{t('erased.banner', date=_esc(ev['erased_at'][:10]))}</p>")
    feats = ev["decision"].get("inputs", {}).get("features", {})
    parts.append(_rows([t("evidence.feature"), t("evidence.value")],
                       [[_esc(k), _esc(v)] for k, v in feats.items()], [50, 50]))
    parts.append(f"<p class='meta'>{t('evidence.methods')}</p></body></html>")
    return "\n".join(parts)


def to_pdf(ev: dict[str, Any]) -> bytes:
    """The evidence page as PDF (WeasyPrint, a print engine: no browser needed)."""
    from weasyprint import HTML

    return HTML(string=to_html(ev)).write_pdf()
