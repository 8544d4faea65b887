"""What a person reads, in German and English: one catalogue, looked up by key.

Klartext's users are above all German retailers, so every text of the dashboard (and, step by
step, of the reports and the CLI's messages for business users) is written in both
languages here.  :func:`t` looks a key up; a missing key or language is an error the tests
find (``tests/test_i18n.py`` checks that every entry has both languages with the same
placeholders), never a silent fallback.
"""

from __future__ import annotations

import os

LANGUAGES = {"en": "English", "de": "Deutsch"}
DEFAULT = "en"
LANG_ENV = "KLARTEXT_LANG"

#: key → (English, German)
TEXT: dict[str, tuple[str, str]] = {
    # navigation
    "nav.governance": ("Governance", "Steuerung"),
    "nav.decisions": ("Decisions", "Entscheidungen"),
    "nav.models": ("Models", "Modelle"),
    "nav.language": ("Language", "Sprache"),
    # page titles and what each page is for
    "overview.title": ("Overview", "Überblick"),
    "overview.caption": ("How decisions, acceptance, margin and retention develop — for the governance board.",
                         "Wie sich Entscheidungen, Annahme, Marge und Kundenbindung entwickeln — für das "
                         "Steuerungsgremium."),
    "tradeoffs.title": ("KPI trade-offs", "Zielkonflikte der Kennzahlen"),
    "tradeoffs.caption": ("Margin against retention: what the logged decisions earned, what another balance of the "
                          "KPI weights would have chosen, and what a change would be worth — estimated from the log.",
                          "Marge gegen Kundenbindung: was die protokollierten Entscheidungen erbracht haben, was eine "
                          "andere Gewichtung der Kennzahlen gewählt hätte und was eine Änderung wert wäre — aus dem "
                          "Protokoll geschätzt."),
    "replay.title": ("Decision replay", "Entscheidung nachvollziehen"),
    "replay.caption": ("Find a decision, see everything that shaped it, and why not another action.",
                       "Eine Entscheidung finden, alles sehen, was sie bestimmt hat, und warum keine andere Aktion."),
    "customer.title": ("Customer history", "Kundenhistorie"),
    "customer.caption": ("Every decision about one customer and what happened, in time order — the compliance "
                         "inquiry.",
                         "Jede Entscheidung über einen Kunden und was danach geschah, in zeitlicher Reihenfolge — "
                         "die Auskunftsanfrage."),
    "funnel.title": ("Funnel & policies", "Trichter & Regeln"),
    "funnel.caption": ("How many actions survive each stage, which rules remove the most, and who is left with "
                       "nothing good.",
                       "Wie viele Aktionen jede Stufe überstehen, welche Regeln die meisten entfernen und wer ohne "
                       "gutes Angebot bleibt."),
    "explanations.title": ("Explanations", "Erklärungen"),
    "explanations.caption": ("What drives each action's model: mean |SHAP| over explained decisions, by segment and "
                             "period, and how each feature's value moves the prediction.",
                             "Was das Modell jeder Aktion antreibt: mittlerer |SHAP|-Wert über die erklärten "
                             "Entscheidungen, nach Segment und Zeitraum, und wie der Wert jedes Merkmals die Vorhersage "
                             "verschiebt."),
    "models.title": ("Models", "Modelle"),
    "models.caption": ("The model registry: every propensity model version, its features, quality and training "
                       "data, and which decisions it scored.",
                       "Das Modellverzeichnis: jede Version eines Neigungsmodells, ihre Merkmale, Güte und "
                       "Trainingsdaten und die Entscheidungen, die sie bewertet hat."),
    "integrity.title": ("Integrity", "Integrität"),
    "integrity.caption": ("Recompute every decision's hash from its row and all its candidate rows, and the chain "
                          "that links them: any change, deletion or reordering is found and named.",
                          "Den Hash jeder Entscheidung aus ihrer Zeile und allen Kandidatenzeilen neu berechnen, und "
                          "die Kette, die sie verbindet: jede Änderung, Löschung oder Umordnung wird gefunden und "
                          "benannt."),
    # the overview
    "overview.no_decisions": ("No decisions in this period and channel selection. Widen the filters.",
                              "Keine Entscheidungen in diesem Zeitraum und dieser Kanalauswahl. Erweitern Sie die "
                              "Filter."),
    "overview.decisions": ("Decisions", "Entscheidungen"),
    "overview.with_action": ("With an action", "Mit Aktion"),
    "overview.acceptance": ("Acceptance rate", "Annahmequote"),
    "overview.acceptance_help": ("Accepted outcomes per action shown, over the {n} with a logged outcome.",
                                 "Angenommene Aktionen je gezeigter Aktion, über die {n} mit protokolliertem Ergebnis."),
    "overview.margin": ("Margin of accepted actions", "Marge angenommener Aktionen"),
    "overview.margin_help": ("Realised margin, net of incentives and contact cost.",
                             "Realisierte Marge nach Anreizen und Kontaktkosten."),
    "overview.no_outcomes": ("no outcomes", "keine Ergebnisse"),
    "overview.no_outcomes_help": ("No outcome is logged for the actions shown, so there is no acceptance rate (not "
                                  "0%). Add outcomes: `klartext import-outcomes`, or POST /outcome to a running "
                                  "service.",
                                  "Für die gezeigten Aktionen ist kein Ergebnis protokolliert, also gibt es keine "
                                  "Annahmequote (nicht 0 %). Ergebnisse ergänzen: `klartext import-outcomes` oder "
                                  "POST /outcome an den laufenden Dienst."),
    "overview.churn_reached": ("Churn, reached", "Abwanderung, erreicht"),
    "overview.churn_delta": ("{pp} pp vs. not reached", "{pp} Prozentpunkte ggü. nicht erreicht"),
    "overview.churn_not_reached": ("Churn, not reached", "Abwanderung, nicht erreicht"),
    "overview.churn_not_reached_help": ("{n} decisions without an action", "{n} Entscheidungen ohne Aktion"),
    "overview.shown_per_day": ("Actions shown per day", "Gezeigte Aktionen pro Tag"),
    "overview.margin_per_day": ("Margin of accepted actions per day", "Marge angenommener Aktionen pro Tag"),
    "overview.action_mix": ("Action mix", "Aktionsmix"),
    "overview.by": ("By", "Nach"),
    "overview.actions_shown": ("actions shown", "gezeigte Aktionen"),
    "overview.margin_of_accepted": ("margin of accepted", "Marge der angenommenen"),
    "overview.strategy_versions": ("Strategy versions", "Strategieversionen"),
    # the integrity check
    "integrity.holds": ("The log holds **{n}** decisions. A full check reads every row (about 10 s per 100,000 "
                        "decisions on a 2-core machine); the CLI does the same: `klartext verify --db PATH`.",
                        "Das Protokoll enthält **{n}** Entscheidungen. Eine vollständige Prüfung liest jede Zeile "
                        "(etwa 10 s je 100.000 Entscheidungen auf einem Rechner mit 2 Kernen); die Kommandozeile tut "
                        "dasselbe: `klartext verify --db PATH`."),
    "integrity.links_button": ("Check the chain links only (fast)", "Nur die Kettenglieder prüfen (schnell)"),
    "integrity.links_ok": ("Chain links intact for all {n} decisions (records not re-read).",
                           "Kettenglieder aller {n} Entscheidungen intakt (Datensätze nicht neu gelesen)."),
    "integrity.links_failed": ("Chain check FAILED at decision `{decision}` (position {seq}): {problem}.",
                               "Kettenprüfung FEHLGESCHLAGEN bei Entscheidung `{decision}` (Position {seq}): "
                               "{problem}."),
    "integrity.verify_button": ("Verify the hash chain", "Hash-Kette prüfen"),
    "integrity.verifying": ("Verifying …", "Prüfe …"),
    "integrity.progress": ("Verified {done} of {total} decisions", "{done} von {total} Entscheidungen geprüft"),
    "integrity.verified": ("Verified: all {n} decisions and their candidates are unchanged.",
                           "Geprüft: alle {n} Entscheidungen und ihre Kandidaten sind unverändert."),
    "integrity.failed": ("Verification FAILED at decision `{decision}` (position {seq}): {problem}.",
                         "Prüfung FEHLGESCHLAGEN bei Entscheidung `{decision}` (Position {seq}): {problem}."),
    "integrity.head": ("Head hash of the chain: `{head}` — keep it outside the database; a later check that prints "
                       "the same head proves nothing before it was changed.",
                       "Kopf-Hash der Kette: `{head}` — bewahren Sie ihn außerhalb der Datenbank auf; eine spätere "
                       "Prüfung mit demselben Kopf beweist, dass nichts davor verändert wurde."),
    # the model registry
    "models.none": ("No model registered in this log (imported decisions carry their own scores).",
                    "In diesem Protokoll ist kein Modell registriert (importierte Entscheidungen bringen ihre eigenen "
                    "Bewertungen mit)."),
    "models.versions": ("Model versions", "Modellversionen"),
    "models.median_auc": ("Median AUC", "Median der AUC"),
    "models.worst_ece": ("Worst calibration error (ECE)", "Größter Kalibrierungsfehler (ECE)"),
    "models.auc_chart": ("AUC on held-out history", "AUC auf zurückgehaltener Historie"),
    "models.pick": ("Model", "Modell"),
    "models.calibration": ("Calibration of {action}", "Kalibrierung von {action}"),
    "models.card": ("**Version** `{version}` · {algorithm}  \n**Training data fingerprint** `{fingerprint}`  \n"
                    "**Trained on** {n_train} rows, tested on {n_test}  \n**AUC** {auc} · **Brier** {brier} · "
                    "**ECE** {ece}  \n**Scored** {scored} candidates",
                    "**Version** `{version}` · {algorithm}  \n**Fingerabdruck der Trainingsdaten** `{fingerprint}`"
                    "  \n**Trainiert auf** {n_train} Zeilen, getestet auf {n_test}  \n**AUC** {auc} · **Brier** "
                    "{brier} · **ECE** {ece}  \n**Bewertet** {scored} Kandidaten"),
    "models.features": ("**Features:** {features}", "**Merkmale:** {features}"),
    # names of the dimensions a view is cut by
    "by.issue": ("issue", "Thema"),
    "by.group": ("group", "Gruppe"),
    "by.channel": ("channel", "Kanal"),
    "by.action_id": ("action", "Aktion"),
}


def number(x: float, lang: str, decimals: int = 0) -> str:
    """``x`` with the thousands and decimal separators of ``lang`` (1,234.5 / 1.234,5)."""
    text = f"{x:,.{decimals}f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".") if lang == "de" else text


def percent(share: float, lang: str, decimals: int = 1) -> str:
    """A share as a percentage: 12.3% / 12,3 % (German puts a space before the sign)."""
    return number(share * 100, lang, decimals) + (" %" if lang == "de" else "%")


def language(requested: str | None = None) -> str:
    """The language to use: ``requested`` if Klartext has it, else ``$KLARTEXT_LANG``, else English."""
    for cand in (requested, os.environ.get(LANG_ENV)):
        if cand and cand.lower()[:2] in LANGUAGES:
            return cand.lower()[:2]
    return DEFAULT


def t(key: str, lang: str, **values: object) -> str:
    """The text of ``key`` in ``lang`` (``"en"`` or ``"de"``), with ``values`` filled in."""
    text = TEXT[key][list(LANGUAGES).index(lang)]
    return text.format(**values) if values else text
