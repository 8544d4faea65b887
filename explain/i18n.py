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
    # every page's frame
    "common.log": ("Decision log: {name}", "Entscheidungsprotokoll: {name}"),
    "common.filters": ("Filters", "Filter"),
    "common.period": ("Period", "Zeitraum"),
    "common.period_reversed": ("The period's start is after its end.", "Der Beginn des Zeitraums liegt nach seinem Ende."),
    "common.channels": ("Channels", "Kanäle"),
    "common.issues": ("Issues", "Themen"),
    "common.all": ("all", "alle"),
    "common.next_step": ("Next step:", "Nächster Schritt:"),
    "common.download_csv": ("Download {name} (CSV)", "{name} herunterladen (CSV)"),
    "common.no_log": ("No decision log at `{path}` yet. Create one with:\n\n```\nklartext demo --db {path}\n```",
                      "Noch kein Entscheidungsprotokoll unter `{path}`. Legen Sie eines an mit:\n\n```\n"
                      "klartext demo --db {path}\n```"),
    "common.empty_log": ("The log `{path}` holds no decisions yet. Fill it with:\n\n```\nklartext demo --db {path} "
                         "--replace\n```",
                         "Das Protokoll `{path}` enthält noch keine Entscheidungen. Füllen Sie es mit:\n\n```\n"
                         "klartext demo --db {path} --replace\n```"),
    "common.live": (":green[●] **Live** — `klartext serve` (pid {pid}) holds this log; showing its replica as of {time} "
                    "UTC ({n} decisions). Reload for newer ones.",
                    ":green[●] **Live** — `klartext serve` (PID {pid}) hält dieses Protokoll; gezeigt wird sein "
                    "Abbild von {time} UTC ({n} Entscheidungen). Neu laden für neuere."),
    # signing in
    "signin.intro": ("Sign in to see this decision log.", "Melden Sie sich an, um dieses Entscheidungsprotokoll zu sehen."),
    "signin.user": ("User", "Benutzer"),
    "signin.password": ("Password", "Passwort"),
    "signin.button": ("Sign in", "Anmelden"),
    "signin.wrong": ("Unknown user or wrong password.", "Unbekannter Benutzer oder falsches Passwort."),
    "signin.not_a_user": ("{name} (from your sign-in) is not a Klartext user. Ask an admin to add you.",
                          "{name} (aus Ihrer Anmeldung) ist kein Klartext-Benutzer. Bitten Sie einen Administrator, "
                          "Sie hinzuzufügen."),
    "signin.not_allowed": ("{name} ({role}) may not open this page: it shows single decisions and customers.",
                           "{name} ({role}) darf diese Seite nicht öffnen: sie zeigt einzelne Entscheidungen und "
                           "Kunden."),
    "signin.as": ("Signed in as {name} ({role})", "Angemeldet als {name} ({role})"),
    "signin.out": ("Sign out", "Abmelden"),
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
    "overview.churn_delta": ("{pp} pp vs. not reached", "{pp} Pp. ggü. nicht erreicht"),
    "overview.churn_not_reached": ("Churn, not reached", "Abwanderung, nicht erreicht"),
    "overview.churn_not_reached_help": ("{n} decisions without an action", "{n} Entscheidungen ohne Aktion"),
    "overview.shown_per_day": ("Actions shown per day", "Gezeigte Aktionen pro Tag"),
    "overview.margin_per_day": ("Margin of accepted actions per day", "Marge angenommener Aktionen pro Tag"),
    "overview.shown_per_week": ("Actions shown per week", "Gezeigte Aktionen pro Woche"),
    "overview.margin_per_week": ("Margin of accepted actions per week", "Marge angenommener Aktionen pro Woche"),
    "overview.shown_per_month": ("Actions shown per month", "Gezeigte Aktionen pro Monat"),
    "overview.margin_per_month": ("Margin of accepted actions per month", "Marge angenommener Aktionen pro Monat"),
    "overview.trends": ("Acceptance, margin and churn over time", "Annahme, Marge und Abwanderung im Zeitverlauf"),
    "overview.per": ("Per", "Je"),
    "overview.grain_day": ("day", "Tag"),
    "overview.grain_week": ("week", "Woche"),
    "overview.grain_month": ("month", "Monat"),
    "overview.trends_caption": ("Churn compares customers who were shown an action with those who were not, among "
                                "the decisions with an outcome; a dotted line marks the first decision of a strategy "
                                "version.",
                                "Die Abwanderung vergleicht Kunden, denen eine Aktion gezeigt wurde, mit denen ohne, "
                                "unter den Entscheidungen mit Ergebnis; eine gepunktete Linie markiert die erste "
                                "Entscheidung einer Strategieversion."),
    "fig.acceptance_rate": ("Acceptance rate", "Annahmequote"),
    "fig.margin": ("Margin", "Marge"),
    "fig.margin_currency": ("Margin of accepted actions ({currency})", "Marge angenommener Aktionen ({currency})"),
    "fig.churn": ("Churn: reached vs not reached", "Abwanderung: erreicht und nicht erreicht"),
    "fig.churn_reached": ("churn, reached", "Abwanderung, erreicht"),
    "fig.churn_not_reached": ("churn, not reached", "Abwanderung, nicht erreicht"),
    "fig.strategy": ("strategy {version}", "Strategie {version}"),
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
    "integrity.links_button": ("Check the chain links only (fast: about 1 s per million decisions)",
                               "Nur die Kettenglieder prüfen (schnell: etwa 1 s je Million Entscheidungen)"),
    "integrity.linking": ("Checking the chain links …", "Prüfe die Kettenglieder …"),
    "integrity.links_progress": ("Checked the links of {done} of {total} decisions",
                                 "Kettenglieder von {done} der {total} Entscheidungen geprüft"),
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
    "integrity.table_failed": ("Verification FAILED in {table}: {problem}.", "Prüfung FEHLGESCHLAGEN in {table}: {problem}."),
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
    # values and reasons (explain/reasons.py)
    "value.missing": ("missing", "fehlt"),
    "value.yes": ("yes", "ja"),
    "value.no": ("no", "nein"),
    "value.channel": ("Channel", "Kanal"),
    "predicts.acceptance": ("the chance of accepting {action}", "die Chance, dass {action} angenommen wird"),
    "predicts.conversion": ("the chance of buying after {action}", "die Chance eines Kaufs nach {action}"),
    "predicts.click": ("the chance of clicking {action}", "die Chance eines Klicks auf {action}"),
    "predicts.response": ("the chance of responding to {action}", "die Chance einer Reaktion auf {action}"),
    "predicts.churn_risk": ("the predicted risk of churning, which {action} addresses",
                            "das vorhergesagte Abwanderungsrisiko, auf das {action} zielt"),
    "reason.feature_up": ("{phrase} raised {what} — {strength}", "{phrase} erhöhte {what} — {strength}"),
    "reason.feature_down": ("{phrase} lowered {what} — {strength}", "{phrase} senkte {what} — {strength}"),
    "reason.strong": ("a strong effect", "ein starker Effekt"),
    "reason.moderate": ("a moderate effect", "ein mittlerer Effekt"),
    "reason.slight": ("a slight effect", "ein schwacher Effekt"),
    "reason.context_weight": ("{description} — weighted ×{weight} by the rule “{name}”",
                              "{description} — gewichtet ×{weight} durch die Regel „{name}“"),
    "reason.lever": ("Business lever ×{lever} for {action} (issue {issue})",
                     "Geschäftshebel ×{lever} für {action} (Thema {issue})"),
    # decision replay
    "replay.find_id": ("Decision id (or its start)", "Entscheidungs-ID (oder ihr Anfang)"),
    "replay.find_customer": ("Customer (pseudonym or raw id)", "Kunde (Pseudonym oder Kundennummer)"),
    "replay.find_action": ("Chosen action", "Gewählte Aktion"),
    "replay.any": ("any", "alle"),
    "replay.no_match": ("No decision matches {what} in this period. Check the id, clear a filter, or widen the period.",
                        "Keine Entscheidung passt zu {what} in diesem Zeitraum. Prüfen Sie die ID, entfernen Sie einen "
                        "Filter oder erweitern Sie den Zeitraum."),
    "replay.no_action_dash": ("— no action —", "— keine Aktion —"),
    "replay.no_action": ("no action", "keine Aktion"),
    "replay.decision": ("Decision {id}", "Entscheidung {id}"),
    "replay.verified": ("Replay verified: re-executed now with the pinned strategy and models, every candidate matches "
                        "exactly.",
                        "Nachvollzug bestätigt: jetzt mit der festgehaltenen Strategie und den Modellen erneut "
                        "ausgeführt, jeder Kandidat stimmt exakt überein."),
    "replay.not_replayable": ("Not replayable: {note}.", "Nicht nachvollziehbar: {note}."),
    "erased.banner": ("Erased on {date} at the customer's request. The data this decision was made on was destroyed "
                      "with the customer's key, so it can no longer be re-run or explained. What Klartext decided "
                      "(stages, rules, scores, the chosen action) and its place in the hash chain remain.",
                      "Gelöscht am {date} auf Wunsch der Kundin bzw. des Kunden. Die Daten, auf denen diese "
                      "Entscheidung beruht, wurden mit dem Schlüssel der Person vernichtet; sie lässt sich daher "
                      "nicht mehr nachvollziehen oder erklären. Was Klartext entschieden hat (Stufen, Regeln, "
                      "Bewertungen, die gewählte Aktion) und ihr Platz in der Hash-Kette bleiben erhalten."),
    "evidence.reviews": ("Reviews by a person", "Prüfungen durch einen Menschen"),
    "evidence.no_review": ("No one has reviewed or contested this decision.",
                           "Niemand hat diese Entscheidung geprüft oder angefochten."),
    "evidence.review_status": ("Review status", "Prüfstatus"),
    "evidence.reviewer": ("By", "Von"),
    "evidence.comment": ("Comment", "Kommentar"),
    "review.reviewed": ("reviewed", "geprüft"),
    "review.contested": ("contested", "angefochten"),
    "review.upheld": ("upheld", "bestätigt"),
    "review.overridden": ("overridden", "aufgehoben"),
    "compliance.title": ("Compliance", "Compliance-Prüfung"),
    "compliance.caption": ("Reviews of automated decisions by a person (GDPR Art. 22(3)), a weekly quality sample, "
                           "who looked at what, objections and erasures — from the sealed compliance register.",
                           "Prüfungen automatisierter Entscheidungen durch einen Menschen (Art. 22 Abs. 3 DSGVO), "
                           "eine wöchentliche Stichprobe, wer was angesehen hat, Widersprüche und Löschungen – aus "
                           "dem versiegelten Compliance-Register."),
    "compliance.tab_queue": ("Review queue", "Prüfwarteschlange"),
    "compliance.tab_qa": ("Weekly QA sample", "Wöchentliche Stichprobe"),
    "compliance.tab_access": ("Access log", "Zugriffsprotokoll"),
    "compliance.tab_rights": ("Objections and erasures", "Widersprüche und Löschungen"),
    "compliance.status": ("Latest review status", "Letzter Prüfstatus"),
    "compliance.queue_empty": ("No decision whose latest review is “{status}”.",
                               "Keine Entscheidung, deren letzte Prüfung „{status}“ ist."),
    "compliance.queue_count": ("{n} decision(s) whose latest review is “{status}”.",
                               "{n} Entscheidung(en), deren letzte Prüfung „{status}“ ist."),
    "compliance.mark": ("Record a review", "Prüfung erfassen"),
    "compliance.mark_button": ("Record (sealed, cannot be changed)", "Erfassen (versiegelt, nicht änderbar)"),
    "compliance.unknown_decision": ("Decision {id} is not in this log.", "Entscheidung {id} ist nicht in diesem Protokoll."),
    "compliance.marked": ("Decision {id} marked “{status}” by {by}.", "Entscheidung {id} als „{status}“ erfasst von {by}."),
    "compliance.week": ("Week", "Woche"),
    "compliance.sample_size": ("Sample size", "Stichprobengröße"),
    "compliance.sample": ("A random sample of {k} of the {n} decisions of week {week} — the same sample for every "
                          "reviewer.",
                          "Eine Zufallsstichprobe von {k} der {n} Entscheidungen der Woche {week} – für alle "
                          "Prüfenden dieselbe."),
    "compliance.sample_done": ("{done} of the {k} have a review.", "{done} der {k} sind geprüft."),
    "compliance.access_user": ("Only this person", "Nur diese Person"),
    "compliance.access_customer": ("Only this customer (id or pseudonym)", "Nur diese Person (Kundennummer oder Pseudonym)"),
    "compliance.access_empty": ("No access recorded.", "Kein Zugriff erfasst."),
    "compliance.via": ("Through", "Über"),
    "compliance.target": ("Decision or customer", "Entscheidung oder Person"),
    "compliance.customer": ("Customer (pseudonym)", "Person (Pseudonym)"),
    "compliance.why": ("Why", "Warum"),
    "compliance.what_decision": ("a decision", "eine Entscheidung"),
    "compliance.what_customer": ("a customer's history", "den Verlauf einer Person"),
    "compliance.what_subject_export": ("a customer's explanation", "eine Auskunft an eine Person"),
    "compliance.what_erasure": ("an erasure", "eine Löschung"),
    "compliance.what_objection": ("an objection", "einen Widerspruch"),
    "compliance.what_review": ("a review", "eine Prüfung"),
    "compliance.what_access_log": ("the access log", "das Zugriffsprotokoll"),
    "compliance.objections": ("Standing objections to direct marketing: {n}", "Bestehende Werbewidersprüche: {n}"),
    "compliance.all_channels": ("all channels", "alle Kanäle"),
    "compliance.objection_rows": ("{n} candidate actions were removed by the rule “objection” so far.",
                                  "{n} Kandidaten-Aktionen hat die Regel „objection“ bisher entfernt."),
    "compliance.no_violations": ("Marketing shown to a customer while their objection stood: none (checked over "
                                 "{n} objection(s) and every decision after each).",
                                 "Werbung für eine Person trotz bestehenden Widerspruchs: keine (geprüft über {n} "
                                 "Widerspruch/Widersprüche und jede Entscheidung danach)."),
    "compliance.violations": ("{n} decision(s) showed marketing to a customer while their objection stood:",
                              "{n} Entscheidung(en) zeigten einer Person Werbung trotz bestehenden Widerspruchs:"),
    "compliance.erasures": ("Erasures at the customer's request: {n}", "Löschungen auf Wunsch der Person: {n}"),
    "customer.subject": ("The customer's own explanation", "Auskunft für die Person"),
    "customer.subject_help": ("Every decision about this customer with its main reasons in plain words, the data "
                              "used and their rights, written for the customer (GDPR Art. 15, AI Act Art. 86), in "
                              "the dashboard's language. Making it is recorded in the access log.",
                              "Jede Entscheidung über diese Person mit den wichtigsten Gründen in einfachen Worten, "
                              "den verwendeten Daten und ihren Rechten, geschrieben für die Person selbst "
                              "(Art. 15 DSGVO, Art. 86 KI-Verordnung), in der Sprache des Dashboards. Das Erstellen "
                              "wird im Zugriffsprotokoll vermerkt."),
    "customer.subject_make": ("Prepare the explanation (PDF)", "Auskunft erstellen (PDF)"),
    "customer.subject_download": ("Download the explanation", "Auskunft herunterladen"),
    "subject.title": ("Your personal explanation: the offers we chose for you, and why",
                      "Ihre persönliche Auskunft: welche Angebote wir für Sie ausgewählt haben, und warum"),
    "subject.for": ("For customer {customer}, made on {at}.", "Für Kundennummer {customer}, erstellt am {at}."),
    "subject.intro": ("When you visit our shop, open our app or get a message from us, a computer program chooses "
                      "which offer to show you, if any. It looks at what you have bought and how you use our "
                      "services, estimates which offer might suit you, and follows rules we set. Below is every "
                      "such choice about you, the main reasons for it and the data it used.",
                      "Wenn Sie unseren Shop besuchen, unsere App öffnen oder eine Nachricht von uns erhalten, "
                      "wählt ein Computerprogramm aus, welches Angebot wir Ihnen zeigen – oder ob wir gar keines "
                      "zeigen. Es berücksichtigt, was Sie gekauft haben und wie Sie unsere Dienste nutzen, schätzt "
                      "ab, welches Angebot zu Ihnen passen könnte, und hält sich an Regeln, die wir festgelegt "
                      "haben. Unten finden Sie jede dieser Entscheidungen über Sie, die wichtigsten Gründe dafür und "
                      "die Daten, die dabei verwendet wurden."),
    "subject.period": ("Period: {start} to {end}.", "Zeitraum: {start} bis {end}."),
    "subject.decisions": ("Our choices about you ({n})", "Unsere Entscheidungen über Sie ({n})"),
    "subject.none": ("We made no such choice about you in this period.",
                     "In diesem Zeitraum haben wir keine solche Entscheidung über Sie getroffen."),
    "subject.when": ("{date}, {channel}", "{date}, Kanal {channel}"),
    "subject.offered": ("We showed you: {offers}.", "Wir haben Ihnen gezeigt: {offers}."),
    "subject.nothing": ("We did not show you an offer.", "Wir haben Ihnen kein Angebot gezeigt."),
    "subject.why": ("Why we chose “{name}” for you:", "Warum wir „{name}“ für Sie ausgewählt haben:"),
    "subject.other_factors": ("Other factors the company does not disclose in detail: {share} of what raised this "
                              "offer's priority.", "Weitere Faktoren, die das Unternehmen nicht im Einzelnen offenlegt: "
                              "{share} dessen, was die Priorität dieses Angebots erhöht hat."),
    "reason.customer_sees": ("a customer is told this", "wird Kundinnen und Kunden genannt"),
    "reason.internal_only": ("internal only", "nur intern"),
    "subject.no_reasons": ("The program's reasons for this choice could not be confirmed, so we do not list them; "
                           "ask us and a person will look into it.",
                           "Die Gründe des Programms für diese Wahl ließen sich nicht bestätigen, daher nennen wir "
                           "sie nicht; fragen Sie uns, dann prüft ein Mensch die Entscheidung."),
    "subject.data": ("The data we used:", "Die Daten, die wir verwendet haben:"),
    "subject.erased": ("At your request we erased the data of this choice on {date}; we only keep that it happened "
                       "and what we showed you.",
                       "Auf Ihren Wunsch haben wir die Daten zu dieser Entscheidung am {date} gelöscht; wir "
                       "bewahren nur auf, dass sie stattfand und was wir Ihnen gezeigt haben."),
    "subject.review": ("Reviewed by a person on {date}: {status}", "Von einem Menschen geprüft am {date}: {status}"),
    "subject.rights": ("What you can do", "Was Sie tun können"),
    "subject.right_object": ("Object to marketing: tell us and we stop choosing marketing offers for you — on every "
                             "channel or only on those you name (GDPR Art. 21). Service messages, such as delivery "
                             "updates, continue.",
                             "Werbung widersprechen: Sagen Sie es uns, dann wählen wir keine Werbeangebote mehr für "
                             "Sie aus – auf allen Kanälen oder nur auf denen, die Sie nennen (Art. 21 DSGVO). "
                             "Service-Nachrichten, etwa zur Lieferung, erhalten Sie weiter."),
    "subject.right_contest": ("Contest a choice and ask for a person: a member of our staff reviews it, can change "
                              "it, and tells you the result (GDPR Art. 22(3)).",
                              "Einer Entscheidung widersprechen und einen Menschen verlangen: Eine Mitarbeiterin "
                              "oder ein Mitarbeiter prüft sie, kann sie ändern und teilt Ihnen das Ergebnis mit "
                              "(Art. 22 Abs. 3 DSGVO)."),
    "subject.right_access": ("Ask again at any time: you may receive this explanation whenever you like "
                             "(GDPR Art. 15).",
                             "Jederzeit erneut fragen: Diese Auskunft erhalten Sie, so oft Sie möchten (Art. 15 DSGVO)."),
    "subject.right_erase": ("Have your data erased: we then destroy the key your data is stored under, so that "
                            "nobody can read it again (GDPR Art. 17).",
                            "Ihre Daten löschen lassen: Wir vernichten dann den Schlüssel, unter dem Ihre Daten "
                            "gespeichert sind, sodass niemand sie wieder lesen kann (Art. 17 DSGVO)."),
    "subject.right_complain": ("Complain to a data protection authority if you think we handle your data wrongly "
                               "(GDPR Art. 77).",
                               "Sich bei einer Datenschutzaufsichtsbehörde beschweren, wenn Sie meinen, dass wir "
                               "Ihre Daten falsch behandeln (Art. 77 DSGVO)."),
    "subject.contact": ("Contact: {contact}", "Kontakt: {contact}"),
    "subject.access": ("Who at our company looked at your data", "Wer in unserem Unternehmen Ihre Daten angesehen hat"),
    "subject.access_none": ("No one has looked at your data.", "Niemand hat Ihre Daten angesehen."),
    "subject.who": ("Who", "Wer"),
    "subject.what": ("What", "Was"),
    "subject.footer": ("Made by Klartext from the sealed record of each decision.",
                       "Erstellt von Klartext aus dem versiegelten Protokoll jeder Entscheidung."),
    "access.decision": ("one of our choices about you", "eine unserer Entscheidungen über Sie"),
    "access.customer": ("the list of our choices about you", "die Liste unserer Entscheidungen über Sie"),
    "access.subject_export": ("this explanation", "diese Auskunft"),
    "access.erasure": ("the erasure of your data", "die Löschung Ihrer Daten"),
    "access.objection": ("your objection", "Ihren Widerspruch"),
    "access.review": ("the review of a choice", "die Prüfung einer Entscheidung"),
    "access.access_log": ("this list of who looked", "diese Liste der Zugriffe"),
    "erased.unknown_date": ("an unrecorded date", "einem nicht erfassten Datum"),
    "erased.inputs": ("The inputs were erased at the customer's request.",
                      "Die Eingaben wurden auf Wunsch der Person gelöscht."),
    "replay.failed": ("Replay FAILED: {n} difference(s), e.g. {examples}",
                      "Nachvollzug FEHLGESCHLAGEN: {n} Abweichung(en), z. B. {examples}"),
    "replay.explored": ("explored", "erkundet"),
    "replay.selection_help": ("The chance with which the engine picked what it showed (100% unless it explored at "
                              "random).",
                              "Die Wahrscheinlichkeit, mit der die Engine das Gezeigte gewählt hat (100 %, außer sie "
                              "hat zufällig erkundet)."),
    "replay.latency": ("Engine time", "Rechenzeit der Engine"),
    "replay.latency_help": ("Time the engine took for this decision. For a batch run it is the batch's time divided by "
                            "its decisions, not this decision's own.",
                            "Die Zeit, die die Engine für diese Entscheidung brauchte. Bei einem Stapellauf ist es die "
                            "Zeit des Stapels geteilt durch seine Entscheidungen, nicht die dieser einen."),
    "replay.facts": ("{ts} · customer `{customer}` · strategy `{strategy}` · source `{source}`",
                     "{ts} · Kunde `{customer}` · Strategie `{strategy}` · Quelle `{source}`"),
    "replay.tab_why": ("Why this action", "Warum diese Aktion"),
    "replay.tab_all": ("Every action", "Alle Aktionen"),
    "replay.tab_inputs": ("Inputs", "Eingaben"),
    "replay.tab_why_not": ("Why not …?", "Warum nicht …?"),
    "replay.none_chosen": ("No action was chosen: every action was filtered or stayed below the no-action threshold. "
                           "See **Every action** for each one's stage and reason.",
                           "Keine Aktion wurde gewählt: jede Aktion wurde herausgefiltert oder blieb unter der "
                           "Schwelle. Unter **Alle Aktionen** stehen Stufe und Grund jeder Aktion."),
    "replay.action_id": ("Action id: {id}", "Aktions-ID: {id}"),
    "replay.priority_line": ("Priority **{priority}** = chance of acceptance {propensity} × value {value} × context "
                             "weight {weight} × lever {lever}",
                             "Priorität **{priority}** = Annahmechance {propensity} × Wert {value} × Kontextgewicht "
                             "{weight} × Hebel {lever}"),
    "replay.no_factors": ("The source logged no complete set of priority factors for this action.",
                          "Die Quelle hat für diese Aktion keine vollständigen Prioritätsfaktoren protokolliert."),
    "replay.attributions_checked": ("What moved the model's estimate for this customer, from the average customer "
                                    "to this one (checked: the pinned model gives the logged score again).",
                                    "Was die Schätzung des Modells für diesen Kunden bewegt hat, vom durchschnittlichen "
                                    "Kunden bis zu diesem (geprüft: das festgehaltene Modell ergibt wieder den "
                                    "protokollierten Wert)."),
    "replay.technical": ("Technical detail", "Technische Details"),
    "replay.attributions_detail": ("Model {model} re-scores the logged inputs to {rescored} (logged {logged}); base + "
                                   "Σ attributions = output (residual {residual}); attributions in log-odds. "
                                   "{algorithm}, {library}.",
                                   "Modell {model} bewertet die protokollierten Eingaben erneut mit {rescored} "
                                   "(protokolliert {logged}); Basis + Σ Beiträge = Ausgabe (Rest {residual}); Beiträge "
                                   "in Log-Odds. {algorithm}, {library}."),
    "replay.attributions_withheld": ("Attributions withheld — {problems}", "Beiträge zurückgehalten — {problems}"),
    "replay.component_rows": ("Component rows ({n})", "Komponentenzeilen ({n})"),
    "replay.component_caption": ("The source logged each action once per strategy component it passed, in this "
                                 "order; the grid above shows each action where it got furthest.",
                                 "Die Quelle hat jede Aktion einmal je durchlaufener Strategiekomponente protokolliert, "
                                 "in dieser Reihenfolge; das Raster oben zeigt jede Aktion dort, wo sie am weitesten "
                                 "kam."),
    "replay.no_winner": ("No winner to compare with: this decision chose no action.",
                         "Kein Gewinner zum Vergleich: diese Entscheidung hat keine Aktion gewählt."),
    "replay.why_not_pick": ("Why {winner} and not …", "Warum {winner} und nicht …"),
    "replay.tested": ("Values the rule tested: ", "Von der Regel geprüfte Werte: "),
    "replay.contrast_caption": ("The priority of “{winner}” was ×{times} that of “{other}”. Each bar is how many times "
                                "higher one factor made it (bars multiply to the total; red bars favoured “{other}”).",
                                "Die Priorität von „{winner}“ war das {times}-Fache der von „{other}“. Jeder Balken "
                                "zeigt, um welchen Faktor ein Teil sie erhöht hat (die Balken multiplizieren sich zum "
                                "Gesamtwert; rote Balken sprachen für „{other}“)."),
    "replay.propensity_caption": ("The chance-of-acceptance bar above, split by what each model saw (factors of the "
                                  "odds, from the two models' attributions):",
                                  "Der Balken der Annahmechance oben, aufgeteilt nach dem, was jedes Modell gesehen "
                                  "hat (Faktoren der Odds, aus den Beiträgen beider Modelle):"),
    "replay.cf_verified": (" (checked by re-running the ranking)", " (geprüft durch erneutes Ranking)"),
    "replay.evidence": ("**Evidence file** of this decision, for filing: its place in the hash chain checked now, "
                        "replay, reasons, every action's fate, why not each other action, outcomes and inputs, "
                        "with who exported it and when.",
                        "**Nachweis** dieser Entscheidung zum Ablegen: ihre Stelle in der Hash-Kette jetzt geprüft, "
                        "Nachvollzug, Gründe, der Verbleib jeder Aktion, warum nicht jede andere, Ergebnisse und "
                        "Eingaben, mit wer ihn wann exportiert hat."),
    "replay.local_user": ("{user} (local account)", "{user} (lokales Konto)"),
    "replay.export_pdf": ("Evidence file (PDF)", "Nachweis (PDF)"),
    "replay.export_json": ("Evidence file (JSON)", "Nachweis (JSON)"),
    "replay.export_html": ("Evidence file (HTML)", "Nachweis (HTML)"),
    # customer history
    "customer.input": ("Customer: raw id (hashed here with the log's key) or pseudonym",
                       "Kunde: Kundennummer (hier mit dem Schlüssel des Protokolls pseudonymisiert) oder Pseudonym"),
    "customer.enter": ("Enter a customer. Raw ids are never stored: they are turned into the keyed pseudonym here. "
                       "Example pseudonym from the log: `{example}`",
                       "Geben Sie einen Kunden ein. Kundennummern werden nie gespeichert: sie werden hier in das "
                       "verschlüsselte Pseudonym umgewandelt. Beispiel-Pseudonym aus dem Protokoll: `{example}`"),
    "customer.unknown": ("No decision about {q} in this log (pseudonym `{pseudonym}`). Check the id, or that this log "
                         "uses the same pseudonym key (`<log>.key` or $KLARTEXT_PSEUDONYM_KEY).",
                         "Keine Entscheidung über {q} in diesem Protokoll (Pseudonym `{pseudonym}`). Prüfen Sie die "
                         "Nummer, oder ob dieses Protokoll denselben Pseudonym-Schlüssel verwendet (`<log>.key` oder "
                         "$KLARTEXT_PSEUDONYM_KEY)."),
    "customer.decisions": ("Decisions", "Entscheidungen"),
    "customer.accepted": ("Actions accepted", "Angenommene Aktionen"),
    "customer.revenue": ("Revenue", "Umsatz"),
    "customer.margin": ("Margin", "Marge"),
    "customer.span": ("Pseudonym `{pseudonym}` · from {first} to {last}", "Pseudonym `{pseudonym}` · vom {first} bis {last}"),
    "customer.none_reported": ("— none reported —", "— nichts gemeldet —"),
    "customer.replay": ("Replay", "Nachvollziehen"),
    "customer.open": ("Open", "Öffnen"),
    "customer.replay_help": ("This decision in Decision replay", "Diese Entscheidung in „Entscheidung nachvollziehen“"),
    "customer.direction": ("Direction", "Richtung"),
    "customer.trigger": ("Trigger", "Auslöser"),
    "customer.outcome": ("Outcome", "Ergebnis"),
    "customer.accepted_col": ("Accepted", "Angenommen"),
    "customer.churned": ("Churned", "Abgewandert"),
    "customer.revenue_col": ("Revenue ({currency})", "Umsatz ({currency})"),
    "customer.margin_col": ("Margin ({currency})", "Marge ({currency})"),
    "customer.strategy": ("Strategy version", "Strategieversion"),
    "direction.inbound": ("inbound", "eingehend"),
    "direction.outbound": ("outbound", "ausgehend"),
    # the flow's stages (decisioning/stages.py) and their groups, as the funnel names them
    "stage.eligibility": ("Eligibility", "Berechtigung"),
    "stage.applicability": ("Applicability", "Anwendbarkeit"),
    "stage.suitability": ("Suitability", "Eignung"),
    "stage.contact": ("Contact policy", "Kontaktregeln"),
    "stage.incentive": ("Other incentive level won", "Andere Anreizstufe gewann"),
    "stage.arbitration": ("Below no-action threshold", "Unter der Schwelle für keine Aktion"),
    "stage.ranked": ("Ranked, not shown", "Gerankt, nicht gezeigt"),
    "stage.selected": ("Selected", "Ausgewählt"),
    "stage_group.Policies": ("Policies", "Regeln"),
    "stage_group.Contact policies": ("Contact policies", "Kontaktregeln"),
    "stage_group.Incentives": ("Incentives", "Anreize"),
    "stage_group.Arbitration": ("Arbitration", "Arbitrierung"),
    "stage_group.Output": ("Output", "Ausgabe"),
    # funnel & policies
    "funnel.how_far": ("How far interactions get, and where candidate actions stop",
                       "Wie weit Interaktionen kommen, und wo Kandidaten-Aktionen enden"),
    "funnel.bar_per": ("One bar per", "Ein Balken je"),
    "funnel.by_stage": ("stage", "Stufe"),
    "funnel.by_group": ("stage group", "Stufengruppe"),
    "funnel.none": ("No decision in this selection.", "Keine Entscheidung in dieser Auswahl."),
    "funnel.reach_caption": ("An interaction *reaches* a stage when at least one of its candidate rows stopped there "
                             "or later. Stages are in the flow's order (an imported log keeps its source's order, "
                             "e.g. Pega's Stage_pyOrder).",
                             "Eine Interaktion *erreicht* eine Stufe, wenn mindestens eine ihrer Kandidatenzeilen dort "
                             "oder später endete. Die Stufen stehen in der Reihenfolge des Ablaufs (ein importiertes "
                             "Protokoll behält die seiner Quelle, z. B. Pegas Stage_pyOrder)."),
    "funnel.label": ("Stage name", "Name der Stufe"),
    "funnel.stage_group": ("Stage group", "Stufengruppe"),
    "funnel.order": ("Order", "Reihenfolge"),
    "funnel.rows": ("Candidate rows ending here", "Kandidatenzeilen, die hier enden"),
    "funnel.stopping": ("Interactions stopping here", "Interaktionen, die hier enden"),
    "funnel.reaching": ("Interactions reaching it", "Interaktionen, die sie erreichen"),
    "funnel.reaching_share": ("Share reaching it", "Anteil, der sie erreicht"),
    "funnel.rules": ("Rules that remove the most actions", "Regeln, die die meisten Aktionen entfernen"),
    "funnel.no_rules": ("No action was removed by a rule in this selection.",
                        "In dieser Auswahl wurde keine Aktion durch eine Regel entfernt."),
    "funnel.removed": ("candidate actions removed", "entfernte Kandidaten-Aktionen"),
    "funnel.share_removed": ("Share of all candidate rows", "Anteil an allen Kandidatenzeilen"),
    "funnel.examples": ("Example decisions for rule", "Beispielentscheidungen für die Regel"),
    "funnel.paste": ("Paste a decision id into **Decision replay** to see the whole decision.",
                     "Fügen Sie eine Entscheidungs-ID in **Entscheidung nachvollziehen** ein, um die ganze Entscheidung "
                     "zu sehen."),
    "funnel.weak": ("Customers with no action, or only weak ones", "Kunden ohne Aktion oder nur mit schwachen"),
    "funnel.weak_below": ("A weak action has a chance of acceptance below", "Eine schwache Aktion hat eine Annahmechance unter"),
    "funnel.no_action_share": ("no action", "keine Aktion"),
    "funnel.only_low_share": ("only weak actions", "nur schwache Aktionen"),
    "funnel.no_action": ("Decisions with no action", "Entscheidungen ohne Aktion"),
    "funnel.only_low": ("Decisions with only weak actions", "Entscheidungen nur mit schwachen Aktionen"),
    "funnel.share": ("share of decisions", "Anteil der Entscheidungen"),
    "fig.scatter_hover": ("margin per contact %{{x:,.2f}} {currency}, churn %{{y:.1%}}<br>contacts "
                          "%{{customdata[0]:,}}, margin %{{customdata[1]:,.0f}} {currency}",
                          "Marge je Kontakt %{{x:,.2f}} {currency}, Abwanderung %{{y:.1%}}<br>Kontakte "
                          "%{{customdata[0]:,}}, Marge %{{customdata[1]:,.0f}} {currency}"),
    "fig.churn_without": ("churn without an action {churn}", "Abwanderung ohne Aktion {churn}"),
    "fig.margin_per_contact": ("realised margin per contact ({currency})", "realisierte Marge je Kontakt ({currency})"),
    "fig.churn_of_reached": ("churn of customers reached", "Abwanderung der erreichten Kunden"),
    "fig.reaching": ("Interactions reaching the stage", "Interaktionen, die die Stufe erreichen"),
    "fig.ending": ("Candidate rows ending there", "Kandidatenzeilen, die dort enden"),
    "fig.reach_hover": ("interactions reach it", "Interaktionen erreichen sie"),
    "fig.end_hover": ("candidate rows end here", "Kandidatenzeilen enden hier"),
    "fig.interactions": ("interactions", "Interaktionen"),
    "fig.candidate_rows": ("candidate rows", "Kandidatenzeilen"),
    "fig.mean_shap": ("average influence on the model (mean |SHAP|, log-odds)",
                      "durchschnittlicher Einfluss auf das Modell (mittlerer |SHAP|-Wert, Log-Odds)"),
    "fig.log_odds": ("log-odds", "Log-Odds"),
    "fig.shap_value": ("influence on the model (SHAP value, log-odds)", "Einfluss auf das Modell (SHAP-Wert, Log-Odds)"),
    # explanations
    "explanations.none": ("No stored explanations in this log yet. Explain a sample of decisions (they are checked and "
                          "stored in the log) with:\n\n```\nklartext explain --sample 2000 --db PATH\n```",
                          "In diesem Protokoll sind noch keine Erklärungen gespeichert. Erklären Sie eine Stichprobe "
                          "von Entscheidungen (sie werden geprüft und im Protokoll gespeichert) mit:\n\n```\n"
                          "klartext explain --sample 2000 --db PATH\n```"),
    "explanations.action": ("Action model", "Modell der Aktion"),
    "explanations.action_option": ("{name} ({n} explained)", "{name} ({n} erklärt)"),
    "explanations.split": ("Split by", "Aufteilen nach"),
    "explanations.seg_none": ("nothing", "nichts"),
    "explanations.seg_channel": ("channel", "Kanal"),
    "explanations.seg_issue": ("issue", "Thema"),
    "explanations.seg_week": ("week", "Woche"),
    "explanations.seg_day": ("day", "Tag"),
    "explanations.seg_month": ("month", "Monat"),
    "explanations.drives": ("What drives “{name}”", "Was „{name}“ antreibt"),
    "explanations.dependence": ("How one feature's value moves the estimate", "Wie der Wert eines Merkmals die "
                                "Schätzung verschiebt"),
    "explanations.footer": ("{n} actions in the catalog. The influence is measured in log-odds of acceptance "
                            "(attributions are in log-odds), computed with the model that made each decision.",
                            "{n} Aktionen im Katalog. Der Einfluss ist in Log-Odds der Annahme gemessen, berechnet mit "
                            "dem Modell, das die jeweilige Entscheidung getroffen hat."),
    # kpi trade-offs
    "tradeoffs.tab_measured": ("Measured", "Gemessen"),
    "tradeoffs.tab_frontier": ("Frontier", "Grenzkurve"),
    "tradeoffs.tab_whatif": ("What-if", "Was-wäre-wenn"),
    "tradeoffs.tab_ope": ("Off-policy estimate", "Schätzung aus dem Protokoll"),
    "tradeoffs.none_shown": ("No action was shown in this selection. Widen the filters.",
                             "In dieser Auswahl wurde keine Aktion gezeigt. Erweitern Sie die Filter."),
    "tradeoffs.measured_caption": ("Realised figures come from the logged outcomes; expected ones from the logged "
                                   "chances of acceptance and the strategy's margins and retention effects.",
                                   "Realisierte Zahlen stammen aus den protokollierten Ergebnissen, erwartete aus den "
                                   "protokollierten Annahmechancen und den Margen und Bindungseffekten der Strategie."),
    "tradeoffs.selection": ("These figures re-decide the {n} of {total} logged decisions in the sidebar's period and "
                            "channels.",
                            "Diese Zahlen entscheiden die {n} von {total} protokollierten Entscheidungen im Zeitraum "
                            "und in den Kanälen der Seitenleiste neu."),
    "tradeoffs.live_factors": ("A running service writes this log: they re-decide the decisions logged until {time} "
                               "(read again in the background every {minutes} minutes, not on every click).",
                               "Ein laufender Dienst schreibt dieses Protokoll: neu entschieden werden die bis {time} "
                               "protokollierten Entscheidungen (alle {minutes} Minuten im Hintergrund neu gelesen, "
                               "nicht bei jedem Klick)."),
    "tradeoffs.reading_factors": ("Reading the logged factors (a sample of up to 250,000 decisions; begun when the "
                                  "log was first shown) …",
                                  "Die protokollierten Faktoren werden gelesen (eine Stichprobe von bis zu 250.000 "
                                  "Entscheidungen; begonnen, als das Protokoll zuerst gezeigt wurde) …"),
    "tradeoffs.issues_not_applied": ("The Issues filter does not apply here: re-deciding chooses among the actions of "
                                     "every issue, as the engine did.",
                                     "Der Themenfilter gilt hier nicht: eine neue Entscheidung wählt wie die Engine "
                                     "unter den Aktionen aller Themen."),
    "tradeoffs.none_selected": ("No decision of the strategy in this period and these channels. Widen the filters.",
                                "Keine Entscheidung der Strategie in diesem Zeitraum und diesen Kanälen. Erweitern Sie "
                                "die Filter."),
    "tradeoffs.sampled": ("The log is large: they re-decide a uniform random sample of {n} of these {total} decisions "
                          "(the same sample every time) and scale its totals up to all of them; shares and rates are "
                          "the sample's.",
                          "Das Protokoll ist groß: Neu entschieden wird eine gleichmäßige Zufallsstichprobe von {n} "
                          "dieser {total} Entscheidungen (jedes Mal dieselbe), ihre Summen sind auf alle hochgerechnet; "
                          "Anteile und Quoten sind die der Stichprobe."),
    "tradeoffs.frontier_intro": ("What the **{n}** decisions would have earned in margin and retention had margin and "
                                 "retention been weighted differently: each point re-decides all of them with one "
                                 "balance of the two weights. The middle point is the strategy as it decided.",
                                 "Was die **{n}** Entscheidungen an Marge und Kundenbindung erbracht hätten, wären "
                                 "Marge und Bindung anders gewichtet worden: jeder Punkt entscheidet alle mit einer "
                                 "Balance der beiden Gewichte neu. Der mittlere Punkt ist die Strategie, wie sie "
                                 "entschieden hat."),
    "tradeoffs.frontier_detail": ("Strategy `{version}`: margin weight 2(1−λ)·{mw}, retention weight 2λ·{rw}, "
                                  "λ from 0 to 1 (λ = 0.5 as logged). No model is called: every candidate row holds "
                                  "its logged factors.",
                                  "Strategie `{version}`: Margengewicht 2(1−λ)·{mw}, Bindungsgewicht 2λ·{rw}, λ von 0 "
                                  "bis 1 (λ = 0,5 wie protokolliert). Kein Modell wird aufgerufen: jede "
                                  "Kandidatenzeile enthält ihre protokollierten Faktoren."),
    "tradeoffs.col_contacts": ("Contacts", "Kontakte"),
    "tradeoffs.col_margin_per_contact": ("Margin per contact ({currency})", "Marge je Kontakt ({currency})"),
    "tradeoffs.col_expected_margin": ("Expected margin ({currency})", "Erwartete Marge ({currency})"),
    "tradeoffs.col_expected_retention": ("Expected retention effect (customers kept)",
                                         "Erwarteter Bindungseffekt (gehaltene Kunden)"),
    "tradeoffs.steps": ("Weight settings", "Gewichtungen"),
    "tradeoffs.col_strategy": ("strategy", "Strategie"),
    "tradeoffs.col_whatif": ("what-if", "Was-wäre-wenn"),
    "tradeoffs.col_lambda": ("Balance λ (0: margin only … 1: retention only)",
                             "Balance λ (0: nur Marge … 1: nur Bindung)"),
    "tradeoffs.col_current": ("As the strategy decided", "Wie die Strategie entschied"),
    "tradeoffs.col_efficient": ("On the frontier (nothing better in both)",
                                "Auf der Grenzkurve (nichts besser in beidem)"),
    "tradeoffs.col_change": ("Change", "Änderung"),
    "tradeoffs.case_drop": ("without {factor}", "ohne {factor}"),
    "tradeoffs.case_lever": ("lever of {issue} ×{step}", "Hebel von {issue} ×{step}"),
    "factor.propensity": ("the acceptance chance", "die Annahmechance"),
    "factor.value": ("the value", "den Wert"),
    "factor.context_weight": ("the channel weight", "das Kanalgewicht"),
    "factor.lever": ("the business lever", "den Geschäftshebel"),
    "tradeoffs.col_estimator": ("Estimator", "Schätzer"),
    "tradeoffs.col_estimate": ("Estimate per decision", "Schätzung je Entscheidung"),
    "tradeoffs.col_ci_low": ("95% interval from", "95-%-Intervall von"),
    "tradeoffs.col_ci_high": ("95% interval to", "95-%-Intervall bis"),
    "tradeoffs.col_n": ("Decisions", "Entscheidungen"),
    "tradeoffs.col_matched": ("Target chose the logged action", "Ziel wählte die protokollierte Aktion"),
    "tradeoffs.col_ess": ("Effective sample size", "Effektive Stichprobengröße"),
    "tradeoffs.ope_title": ("Estimated {reward} per decision (dashed: the logged policy's observed value)",
                            "Geschätzt: {reward} je Entscheidung (gestrichelt: der beobachtete Wert der "
                            "protokollierten Politik)"),
    "tradeoffs.ope_caption": ("{n} decisions with outcomes, {explored} explored; the target differs on {differs}; "
                              "{supported} of its choices had a positive logging probability.",
                              "{n} Entscheidungen mit Ergebnis, {explored} erkundet; das Ziel weicht bei {differs} "
                              "ab; {supported} seiner Wahlen hatten eine positive Protokollwahrscheinlichkeit."),
    "tradeoffs.ope_only_supported": ("The estimates cover those {n} decisions only.",
                                     "Die Schätzungen gelten nur für diese {n} Entscheidungen."),
    "tradeoffs.ope_positivity": ("Positivity is violated: in {unsupported} of the decisions the logged policy could "
                                 "not have served the target's choice (probability 0), so nothing in the log says "
                                 "what it would have earned there. The estimates cover only the {supported} "
                                 "({n} decisions) where it could; they are not the target's value on the whole "
                                 "population.",
                                 "Positivität verletzt: bei {unsupported} der Entscheidungen hätte die protokollierte "
                                 "Politik die Wahl des Ziels nicht ausspielen können (Wahrscheinlichkeit 0), das "
                                 "Protokoll sagt also nichts darüber, was sie dort erbracht hätte. Die Schätzungen "
                                 "gelten nur für die {supported} ({n} Entscheidungen), bei denen es möglich war; sie "
                                 "sind nicht der Wert des Ziels für alle."),
    "tradeoffs.ope_unsupported": ("The what-if setting cannot be evaluated on this log: in none of its {n} decisions "
                                  "with outcomes did the logged policy give the setting's choice a positive "
                                  "probability.",
                                  "Die Was-wäre-wenn-Einstellung lässt sich auf diesem Protokoll nicht bewerten: in "
                                  "keiner seiner {n} Entscheidungen mit Ergebnis gab die protokollierte Politik der "
                                  "Wahl der Einstellung eine positive Wahrscheinlichkeit."),
    "tradeoffs.ope_no_exploration": ("Every logged action was served with probability 1: there was no exploration and "
                                     "no experiment.",
                                     "Jede protokollierte Aktion wurde mit Wahrscheinlichkeit 1 ausgespielt: es gab "
                                     "weder Erkundung noch Experiment."),
    "tradeoffs.ope_other_actions": ("The log randomised only among actions the setting does not choose.",
                                    "Das Protokoll hat nur unter Aktionen zufällig gewählt, die die Einstellung nicht "
                                    "wählt."),
    "tradeoffs.ope_unsupported_hint": ("Log decisions with exploration (a strategy with exploration.epsilon > 0) or run "
                                       "an experiment whose assignment probabilities are logged, then estimate again.",
                                       "Protokollieren Sie Entscheidungen mit Erkundung (eine Strategie mit "
                                       "exploration.epsilon > 0) oder führen Sie ein Experiment durch, dessen "
                                       "Zuteilungswahrscheinlichkeiten protokolliert werden, und schätzen Sie dann "
                                       "erneut."),
    "tradeoffs.ope_too_little": ("Too little of the log supports the target for a reliable estimate.",
                                 "Zu wenig des Protokolls stützt das Ziel für eine verlässliche Schätzung."),
    "tradeoffs.ope_impossible": ("No estimate: {why} Log decisions with exploration (a strategy with "
                                 "exploration.epsilon > 0), then estimate again.",
                                 "Keine Schätzung: {why} Protokollieren Sie Entscheidungen mit Erkundung (eine "
                                 "Strategie mit exploration.epsilon > 0) und schätzen Sie dann erneut."),
    "tradeoffs.margin_weight": ("Margin weight", "Margengewicht"),
    "tradeoffs.retention_weight": ("Retention weight", "Bindungsgewicht"),
    "tradeoffs.levers": ("**Levers by issue** (replace the strategy's)", "**Hebel je Thema** (ersetzen die der "
                         "Strategie)"),
    "tradeoffs.changed": ("Decisions whose first action changes", "Entscheidungen, deren erste Aktion sich ändert"),
    "tradeoffs.sensitivity": ("**Global sensitivity:** which factor decides most?",
                              "**Globale Sensitivität:** welcher Faktor entscheidet am meisten?"),
    "tradeoffs.sensitivity_on": ("Compute sensitivity (re-decides every decision once per factor and lever)",
                                 "Sensitivität berechnen (entscheidet jede Entscheidung einmal je Faktor und Hebel neu)"),
    "tradeoffs.changed_axis": ("share of decisions whose first action changes",
                               "Anteil der Entscheidungen, deren erste Aktion sich ändert"),
    "tradeoffs.ope_intro": ("What the **what-if setting** (previous tab) would have earned, estimated from the "
                            "decisions that were served at random (exploration or an experiment's arms) with their "
                            "logged probabilities.",
                            "Was die **Was-wäre-wenn-Einstellung** (vorige Registerkarte) erbracht hätte, geschätzt aus "
                            "den zufällig ausgespielten Entscheidungen (Erkundung oder Versuchsarme) mit ihren "
                            "protokollierten Wahrscheinlichkeiten."),
    "tradeoffs.reward": ("Reward per decision", "Ertrag je Entscheidung"),
    "tradeoffs.ope_on": ("Estimate (bootstrap intervals over every decision)",
                         "Schätzen (Bootstrap-Intervalle über alle Entscheidungen)"),
    "reward.conversion": ("conversion (accepted)", "Abschluss (angenommen)"),
    "reward.visit": ("visit (accepted or visited)", "Besuch (angenommen oder besucht)"),
    "reward.revenue": ("revenue", "Umsatz"),
    "reward.margin": ("margin (realised)", "Marge (realisiert)"),
    "reward.retention": ("retention (did not churn)", "Bindung (nicht abgewandert)"),
    # the evidence file of a decision (explain/evidence.py)
    "evidence.title": ("Decision {id}: evidence", "Entscheidung {id}: Nachweis"),
    "evidence.exported": ("Exported by {by} on {at} (UTC) with Klartext {version} from the log {log}.",
                          "Exportiert von {by} am {at} (UTC) mit Klartext {version} aus dem Protokoll {log}."),
    "evidence.intact": ("Unchanged: position {seq} of {n} in the hash chain; its record and its link to the one before "
                        "were checked on {at}.",
                        "Unverändert: Position {seq} von {n} in der Hash-Kette; Datensatz und Verknüpfung zum "
                        "vorigen wurden am {at} geprüft."),
    "evidence.broken": ("CHANGED: position {seq} of {n} — its rows no longer give the record hash in the chain, or the "
                        "link to the one before is broken (checked on {at}). Do not rely on this record.",
                        "VERÄNDERT: Position {seq} von {n} — ihre Zeilen ergeben nicht mehr den Hash in der Kette, "
                        "oder die Verknüpfung zum vorigen ist gebrochen (geprüft am {at}). Verlassen Sie sich nicht "
                        "auf diesen Datensatz."),
    "evidence.record_hash": ("Record hash:", "Datensatz-Hash:"),
    "evidence.chain_hash": ("Chain hash:", "Ketten-Hash:"),
    "evidence.previous_hash": ("Chain hash before it:", "Ketten-Hash davor:"),
    "evidence.facts": ("{ts} · channel {channel} · customer (pseudonym) {customer} · strategy {strategy} · source "
                       "{source}",
                       "{ts} · Kanal {channel} · Kunde (Pseudonym) {customer} · Strategie {strategy} · Quelle "
                       "{source}"),
    "evidence.why": ("Why “{name}”", "Warum „{name}“"),
    "evidence.attr_ok": ("What moved the model's estimate (checked: the pinned model gives the logged score again; "
                         "the contributions add up to it):",
                         "Was die Schätzung des Modells bewegt hat (geprüft: das festgehaltene Modell ergibt wieder den "
                         "protokollierten Wert; die Beiträge ergeben ihn in der Summe):"),
    "evidence.feature": ("Feature", "Merkmal"),
    "evidence.influence": ("Influence", "Einfluss"),
    "evidence.value": ("Value", "Wert"),
    "evidence.fates": ("Every action and its fate", "Jede Aktion und ihr Verbleib"),
    "evidence.why_not": ("Why not the others", "Warum nicht die anderen"),
    "evidence.answer": ("Why not", "Warum nicht"),
    "evidence.outcomes": ("What happened afterwards", "Was danach geschah"),
    "evidence.no_outcome": ("No outcome was reported for this decision.",
                            "Für diese Entscheidung wurde kein Ergebnis gemeldet."),
    "evidence.methods": ("Methods: the record hash is SHA-256 over the decision's row and all its candidate rows; the "
                         "chain hash links it to every decision before it, so a change, deletion or reordering is "
                         "found (`klartext verify` checks the whole log). Influence is each feature's SHAP attribution "
                         "in log-odds of the action's model. Why-not answers re-run the logged ranking.",
                         "Methoden: der Datensatz-Hash ist SHA-256 über die Zeile der Entscheidung und alle ihre "
                         "Kandidatenzeilen; der Ketten-Hash verknüpft ihn mit jeder früheren Entscheidung, sodass "
                         "jede Änderung, Löschung oder Umordnung auffällt (`klartext verify` prüft das ganze "
                         "Protokoll). Der Einfluss ist der SHAP-Beitrag jedes Merkmals in Log-Odds des Modells der "
                         "Aktion. Die Antworten auf „warum nicht“ wiederholen das protokollierte Ranking."),
    # why not
    "whynot.winner": ("{other} is the action compared against.", "{other} ist die Vergleichsaktion."),
    "whynot.filtered": ("{other} was removed at the {stage} stage by the rule “{rule}”: {description} ({reason}).",
                        "{other} wurde in der Stufe {stage} durch die Regel „{rule}“ entfernt: {description} "
                        "({reason})."),
    "whynot.filtered_no_rule": ("{other} stopped at the {stage} stage; the source logged no rule for it.",
                                "{other} endete in der Stufe {stage}; die Quelle hat dafür keine Regel protokolliert."),
    "whynot.also_selected": ("{other} was shown too (rank {rank}); the channel shows up to {top_n} actions.",
                             "{other} wurde ebenfalls gezeigt (Rang {rank}); der Kanal zeigt bis zu {top_n} "
                             "Aktionen."),
    "whynot.ranked_lower": ("{other} passed every policy but ranked {rank}: its priority was {p_other} against "
                            "{p_winner} for {winner}.",
                            "{other} hat alle Regeln passiert, landete aber auf Rang {rank}: Priorität {p_other} "
                            "gegenüber {p_winner} für {winner}."),
    "whynot.lower": ("lower", "weiter hinten"),
    "whynot.not_positive": ("A factor is not positive, so the priority cannot be split into factors; they are shown as "
                            "logged.",
                            "Ein Faktor ist nicht positiv, daher lässt sich die Priorität nicht in Faktoren zerlegen; "
                            "sie werden wie protokolliert gezeigt."),
    "whynot.not_reproduced": ("(Re-running the ranking on the logged factors did not give the logged ranking, so no "
                              "what-would-have-changed-it is shown.)",
                              "(Das erneute Ranking der protokollierten Faktoren ergab nicht das protokollierte "
                              "Ranking; daher wird nicht gezeigt, was es geändert hätte.)"),
    "whynot.explored": ("Note: this decision explored — {winner} was picked at random (probability {p}), not by "
                        "priority.",
                        "Hinweis: diese Entscheidung hat erkundet — {winner} wurde zufällig gewählt "
                        "(Wahrscheinlichkeit {p}), nicht nach Priorität."),
    "whynot.cf_none": ("No {what} within reach gives it first place.",
                       "Kein erreichbarer Wert für {what} bringt sie auf den ersten Platz."),
    "whynot.cf_already": ("It already takes first place.", "Sie steht bereits auf dem ersten Platz."),
    "whynot.cf_needed": ("With a {what} of {needed} instead of {current} it would have taken first place.",
                         "Mit {what} {needed} statt {current} hätte sie den ersten Platz belegt."),
    # the priority's factors and the strategy's weights
    "term.propensity": ("chance of acceptance", "Annahmechance"),
    "term.value": ("value", "Wert"),
    "term.context_weight": ("context weight", "Kontextgewicht"),
    "term.lever": ("lever", "Hebel"),
    "term.priority": ("priority", "Priorität"),
    "term.margin_weight": ("margin weight", "Margengewicht"),
    "term.retention_weight": ("retention weight", "Bindungsgewicht"),
    "predicts_short.acceptance": ("accepting", "Annahme"),
    "predicts_short.conversion": ("buying", "Kauf"),
    "predicts_short.click": ("clicking", "Klick"),
    "predicts_short.response": ("responding", "Reaktion"),
    "predicts_short.churn_risk": ("churning", "Abwanderung"),
    # figures
    "fig.base_value": ("Average customer", "Durchschnittskunde"),
    "fig.other_features": ("{n} other features", "{n} weitere Merkmale"),
    "fig.model_output": ("This customer", "Dieser Kunde"),
    "fig.log_odds_of": ("log-odds of {outcome}", "Log-Odds für {outcome}"),
    "fig.probability": ("chance", "Wahrscheinlichkeit"),
    "fig.contrast_total": ("Priority ratio (all factors)", "Verhältnis der Prioritäten (alle Faktoren)"),
    "fig.contrast_total_p": ("Odds ratio of acceptance", "Verhältnis der Annahme-Odds"),
    "fig.favours": ("← favours {other}   ·   favours {winner} →", "← spricht für {other}   ·   spricht für {winner} →"),
    "fig.passed": ("passed", "bestanden"),
    "fig.not_reached": ("not reached", "nicht erreicht"),
    "fig.selected": ("shown", "gezeigt"),
    "fig.not_shown": ("{stage}, not shown", "{stage}, nicht gezeigt"),
    "fig.result": ("Result", "Ergebnis"),
    "fig.factor_log": ("factor (log scale)", "Faktor (logarithmische Skala)"),
    # table columns
    "col.decision": ("Decision", "Entscheidung"),
    "col.time": ("Time", "Zeit"),
    "col.channel": ("Channel", "Kanal"),
    "col.customer": ("Customer", "Kunde"),
    "col.chosen": ("Chosen", "Gewählt"),
    "col.selection_probability": ("Selection probability", "Auswahlwahrscheinlichkeit"),
    "col.explored": ("Explored", "Erkundet"),
    "col.action": ("Action", "Aktion"),
    "col.action_id": ("Action id", "Aktions-ID"),
    "col.issue": ("Issue", "Thema"),
    "col.group": ("Group", "Gruppe"),
    "col.stage": ("Stage", "Stufe"),
    "col.rule": ("Rule", "Regel"),
    "col.reason": ("Reason", "Grund"),
    "col.propensity": ("Chance of acceptance", "Annahmechance"),
    "col.value": ("Value ({currency})", "Wert ({currency})"),
    "col.context_weight": ("Context weight", "Kontextgewicht"),
    "col.lever": ("Lever", "Hebel"),
    "col.priority": ("Priority", "Priorität"),
    "col.rank": ("Rank", "Rang"),
    "col.selected": ("Shown", "Gezeigt"),
    "col.model_version": ("Model version", "Modellversion"),
    "col.rows": ("Rows", "Zeilen"),
    # the CLI's messages for business users (replay, verify, funnel, compare, decisions)
    "cli.no_decisions": ("The log holds no decisions yet.", "Das Protokoll enthält noch keine Entscheidungen."),
    "cli.no_action": ("no action", "keine Aktion"),
    "cli.replay_ok": ("Reproduced {id}: chosen {chosen}; every candidate's stage, rule, reason and scores match "
                      "exactly.", "{id} reproduziert: gewählt {chosen}; Stufe, Regel, Grund und Werte jeder "
                      "Kandidatin stimmen exakt überein."),
    "cli.replay_cannot": ("Cannot replay {id}: {note}.", "{id} kann nicht erneut ausgeführt werden: {note}."),
    "cli.replay_differs": ("NOT reproduced {id}: logged {logged}, replayed {replayed}",
                           "NICHT reproduziert {id}: protokolliert {logged}, erneut ausgeführt {replayed}"),
    "cli.replay_field": ("  {field}: logged {logged}, replayed {replayed}",
                         "  {field}: protokolliert {logged}, erneut ausgeführt {replayed}"),
    "cli.replay_summary": ("Reproduced {ok} of {n} decisions exactly.",
                           "{ok} von {n} Entscheidungen exakt reproduziert."),
    "cli.verify_replica": ("Checking the live replica of {db} as of {time} UTC ({n} decisions); decisions logged "
                           "since are not covered.", "Geprüft wird die Live-Kopie von {db} mit Stand {time} UTC "
                           "({n} Entscheidungen); seither protokollierte Entscheidungen sind nicht erfasst."),
    "cli.verify_ckpt_failed": ("FAILED against the checkpoint: {problem}.",
                               "FEHLGESCHLAGEN gegen den Prüfpunkt: {problem}."),
    "cli.verify_ckpt_ok": ("OK: the log extends the checkpoint of {created} ({n} decisions, head {head}…), signed "
                           "by key {signer}…", "OK: Das Protokoll setzt den Prüfpunkt vom {created} fort ({n} "
                           "Entscheidungen, Kopf {head}…), signiert mit Schlüssel {signer}…"),
    "cli.verify_ok": ("OK: {n} decisions verified; head hash {head}", "OK: {n} Entscheidungen geprüft; Kopf-Hash {head}"),
    "cli.verify_sealed": ("OK: outcomes, strategies, models, stages, meta and explanations verified; seal head {head} "
                          "(write {write})", "OK: Ergebnisse, Strategien, Modelle, Stufen, Metadaten und Erklärungen "
                          "geprüft; Siegel-Kopf {head} (Schreibvorgang {write})"),
    "cli.note": ("Note: {note}.", "Hinweis: {note}."),
    "cli.archive_nothing": ("Nothing to archive: {db} holds no decision made before {day}.",
                            "Nichts zu archivieren: {db} enthält keine Entscheidung vor dem {day}."),
    "cli.archive_done": ("Archived {n} decisions (positions {lo} to {hi}) into {path} ({mb} MB of Parquet). The log "
                         "file keeps {left} decisions (from {since} on); `klartext verify` checks the file and every "
                         "shard as one log.",
                         "{n} Entscheidungen (Positionen {lo} bis {hi}) nach {path} archiviert ({mb} MB Parquet). Die "
                         "Log-Datei behält {left} Entscheidungen (ab {since}); `klartext verify` prüft Datei und alle "
                         "Shards als ein Log."),
    "cli.purge_nothing": ("Nothing to purge: no shard of {db} holds only decisions made before {day}.",
                          "Nichts zu löschen: kein Shard von {db} enthält nur Entscheidungen vor dem {day}."),
    "cli.purge_done": ("Purged {n} decisions ({k} shard(s), positions {lo} to {hi}). The purge record, signed with key "
                       "{key}…, is sealed in the log: `klartext verify` names it.",
                       "{n} Entscheidungen gelöscht ({k} Shard(s), Positionen {lo} bis {hi}). Das Löschprotokoll, "
                       "signiert mit Schlüssel {key}…, ist im Log versiegelt: `klartext verify` nennt es."),
    "cli.verify_table_failed": ("FAILED in table {table}: {problem}.", "FEHLGESCHLAGEN in Tabelle {table}: {problem}."),
    "cli.verify_failed": ("FAILED at decision {id} (position {seq}): {problem}.",
                          "FEHLGESCHLAGEN bei Entscheidung {id} (Position {seq}): {problem}."),
    "cli.verify_head": ("Head hash recorded in the chain: {head}", "In der Kette festgehaltener Kopf-Hash: {head}"),
    "cli.funnel_head_stage": ("{n} interactions. Rows stopping at each stage, and interactions still reaching it:",
                              "{n} Interaktionen. Zeilen, die an jeder Stufe enden, und Interaktionen, die sie "
                              "noch erreichen:"),
    "cli.funnel_head_group": ("{n} interactions. Rows stopping at each stage group, and interactions still reaching "
                              "it:", "{n} Interaktionen. Zeilen, die an jeder Stufengruppe enden, und Interaktionen, "
                              "die sie noch erreichen:"),
    "cli.funnel_rows": ("rows end here", "Zeilen enden hier"),
    "cli.funnel_reach": ("reach it", "erreichen sie"),
    "cli.compare_head": ("{changed} of {n} decisions ({share}) get another first action under {name} ({version}).",
                         "{changed} von {n} Entscheidungen ({share}) erhalten unter {name} ({version}) eine andere "
                         "erste Aktion."),
    "cli.compare_moves": ("Most frequent changes:", "Häufigste Änderungen:"),
    "cli.compare_segments": ("Expected KPIs by issue and channel:", "Erwartete Kennzahlen nach Thema und Kanal:"),
    "kpi.contacts": ("Contacts", "Kontakte"),
    "kpi.accepts": ("Expected acceptances", "Erwartete Annahmen"),
    "kpi.margin": ("Expected margin", "Erwartete Marge"),
    "kpi.retention": ("Expected retention value", "Erwarteter Bindungswert"),
    "kpi.churn_reduction": ("Expected customers kept", "Erwartet gehaltene Kunden"),
    "kpi.incentive_spend": ("Expected incentive spend", "Erwartete Anreizkosten"),
    "kpi_meaning.contacts": ("Number of actions shown.", "Anzahl der gezeigten Aktionen."),
    "kpi_meaning.accepts": ("Σ p: actions the customers are expected to accept.",
                            "Σ p: Aktionen, die die Kunden voraussichtlich annehmen."),
    "kpi_meaning.margin": ("Σ p × (margin − incentive cost) − Σ cost per contact (paid for every action shown, "
                           "accepted or not).", "Σ p × (Marge − Anreizkosten) − Σ Kosten je Kontakt (für jede "
                           "gezeigte Aktion, ob angenommen oder nicht)."),
    "kpi_meaning.retention": ("Σ p × retention effect × CLV: customer value kept.",
                              "Σ p × Bindungseffekt × Kundenwert: gehaltener Kundenwert."),
    "kpi_meaning.churn_reduction": ("Σ p × retention effect.", "Σ p × Bindungseffekt."),
    "kpi_meaning.incentive_spend": ("Σ p × incentive cost.", "Σ p × Anreizkosten."),
    # names of the dimensions a view is cut by
    "by.issue": ("issue", "Thema"),
    "by.group": ("group", "Gruppe"),
    "by.channel": ("channel", "Kanal"),
    "by.action_id": ("action", "Aktion"),
}

def _merge_report_text() -> None:
    from explain.lifecycle_text import TEXT as lifecycle
    from explain.report_text import TEXT as report

    for key, value in report.items():
        TEXT["report." + key] = value
    for key, value in lifecycle.items():
        TEXT["lifecycle." + key] = value


_merge_report_text()


def stage_label(stage: str, label: str, lang: str, by: str = "stage") -> str:
    """A funnel row's name: Klartext's own stages and stage groups in ``lang``; an imported
    source's (e.g. Pega's) keep their ``label``."""
    key = f"{'stage' if by == 'stage' else 'stage_group'}.{stage}"
    return t(key, lang) if key in TEXT else label


def number(x: float, lang: str, decimals: int = 0) -> str:
    """``x`` with the thousands and decimal separators of ``lang`` (1,234.5 / 1.234,5)."""
    text = f"{x:,.{decimals}f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".") if lang == "de" else text


def compact(x: float, lang: str) -> str:
    """A large figure short enough for a narrow column: 13,44 Mio. / 13.44 M, 1,2 Mrd. / 1.2 bn;
    below a million as :func:`number`."""
    a = abs(x)
    if a < 1e6:
        return number(x, lang)
    value, unit = (x / 1e9, ("Mrd.", "bn")) if a >= 1e9 else (x / 1e6, ("Mio.", "M"))
    return f"{number(value, lang, 2 if abs(value) < 100 else 1)} {unit[0] if lang == 'de' else unit[1]}"


def significant(x: float, lang: str, digits: int = 4) -> str:
    """``x`` to ``digits`` significant digits with the decimal sign of ``lang`` (0.1234 / 0,1234)."""
    text = format(float(x), f".{digits}g")
    return text.replace(".", ",") if lang == "de" else text


def quoted(text: str, lang: str) -> str:
    """``text`` in the quotation marks of ``lang``: “…” / „…“."""
    return f"„{text}“" if lang == "de" else f"“{text}”"


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
