"""The governance report's words (key → (English, German)), merged into :data:`explain.i18n.TEXT`
under ``report.``."""

TEXT: dict[str, tuple[str, str]] = {
    "title": ("Governance report", "Steuerungsbericht"),
    "meta": ("{name} · period {start} to {end} ({days} days) · log {log} · made {at} UTC",
             "{name} · Zeitraum {start} bis {end} ({days} Tage) · Protokoll {log} · erstellt {at} UTC"),
    "meta_compare": ("Compared with {start} to {end}.", "Verglichen mit {start} bis {end}."),
    "h.summary": ("Summary", "Zusammenfassung"),
    "h.attention": ("{n} finding(s) need attention", "{n} Befund(e) brauchen Aufmerksamkeit"),
    "calm": ("Nothing needs attention: no policy was broken, no model or input left its band, and no group is "
             "clearly treated worse than the four-fifths rule allows.",
             "Nichts braucht Aufmerksamkeit: keine Richtlinie wurde verletzt, kein Modell und keine Eingabe hat "
             "ihr Band verlassen, und keine Gruppe wird deutlich schlechter behandelt, als die Vier-Fünftel-Regel "
             "erlaubt."),
    "h.figures": ("Decisions, reach, acceptance, margin", "Entscheidungen, Reichweite, Annahme, Marge"),
    "kpi.decisions": ("Decisions", "Entscheidungen"),
    "kpi.customers": ("Customers", "Kundinnen und Kunden"),
    "kpi.with_action": ("Decisions with an action", "Entscheidungen mit Aktion"),
    "kpi.offer_rate": ("Share with an action", "Anteil mit Aktion"),
    "kpi.reached": ("Customers reached", "Erreichte Personen"),
    "kpi.contacts": ("Actions shown", "Gezeigte Aktionen"),
    "kpi.accepted": ("Accepted", "Angenommen"),
    "kpi.acceptance_rate": ("Acceptance (of reported outcomes)", "Annahmequote (der gemeldeten Ergebnisse)"),
    "kpi.revenue": ("Revenue (realised)", "Umsatz (realisiert)"),
    "kpi.margin": ("Margin (realised)", "Marge (realisiert)"),
    "kpi.margin_per_decision": ("Margin per decision", "Marge je Entscheidung"),
    "kpi.incentive_spend": ("Incentive spend (accepted)", "Anreizkosten (angenommen)"),
    "kpi.churn_reached": ("Churn of those reached", "Abwanderung der Erreichten"),
    "kpi.churn_not_reached": ("Churn of those not reached", "Abwanderung der nicht Erreichten"),
    "col.figure": ("Figure", "Kennzahl"), "col.period": ("Period", "Zeitraum"),
    "col.previous": ("Before", "Vorher"), "col.change": ("Change", "Änderung"),
    "col.issue": ("Issue", "Geschäftsziel"), "col.channel": ("Channel", "Kanal"),
    "col.contacts": ("Shown", "Gezeigt"), "col.prev_short": ("before", "vorher"),
    "col.acceptance": ("Acceptance", "Annahme"), "col.margin": ("Margin", "Marge"),
    "col.incentives": ("Incentives", "Anreize"), "col.kind": ("Kind", "Art"), "col.field": ("Field", "Feld"),
    "col.before": ("Before", "Vorher"), "col.after": ("After", "Nachher"),
    "col.difference": ("Difference", "Unterschied"), "col.ci": ("95% interval", "95-%-Intervall"),
    "col.ci_low": ("95% from", "95 % von"), "col.ci_high": ("95% to", "95 % bis"),
    "col.model": ("Model (action)", "Modell (Aktion)"), "col.auc_train": ("AUC at training", "AUC beim Training"),
    "col.auc_period": ("AUC in the period (95%)", "AUC im Zeitraum (95 %)"),
    "col.predicted": ("Predicted", "Vorhergesagt"),
    "col.pred_obs": ("Predicted / observed", "Vorhergesagt / beobachtet"),
    "col.ece": ("Calibration error (training → period)", "Kalibrierungsfehler (Training → Zeitraum)"), "col.observed": ("Observed", "Beobachtet"),
    "col.positives_day": ("Accepted per day", "Annahmen je Tag"),
    "col.psi_prev": ("Score PSI vs before", "Score-PSI ggü. vorher"),
    "col.psi_train": ("Score PSI vs training", "Score-PSI ggü. Training"),
    "col.status": ("Status", "Zustand"), "col.input": ("Input", "Eingabe"), "col.band": ("Band", "Bereich"),
    "col.mean_prev": ("Mean before", "Mittel vorher"), "col.mean": ("Mean", "Mittel"),
    "col.limit": ("Limit", "Grenze"), "col.breaches": ("Over the limit", "Über der Grenze"),
    "col.rule": ("Rule", "Regel"), "col.stage": ("Stage", "Stufe"), "col.checked": ("Actions checked", "Geprüfte Aktionen"),
    "col.violations": ("Violations", "Verstöße"), "col.removed": ("Actions removed", "Entfernte Aktionen"),
    "col.decisions": ("Decisions", "Entscheidungen"), "col.group": ("Group", "Gruppe"),
    "col.metric": ("Rate", "Quote"), "col.low_high": ("Lowest / highest group", "Niedrigste / höchste Gruppe"),
    "col.ratio": ("Ratio (95%)", "Verhältnis (95 %)"), "col.diff": ("Difference (95%)", "Unterschied (95 %)"),
    "col.finding": ("Finding", "Befund"),
    "h.by_issue": ("By issue", "Nach Geschäftsziel"), "h.by_channel": ("By channel", "Nach Kanal"),
    "h.frontier": ("Margin against retention", "Marge gegen Kundenbindung"),
    "frontier.text": ("Strategy {version} decided {n} sampled decisions with an expected {margin} margin and {retention} "
                      "retention value per decision (margin weight {mw}, retention weight {rw}).",
                      "Strategie {version} entschied {n} Stichproben-Entscheidungen mit erwartet {margin} Marge und "
                      "{retention} Bindungswert je Entscheidung (Margengewicht {mw}, Bindungsgewicht {rw})."),
    "frontier.on": ("It sits on the frontier: no other balance gains margin without losing retention.",
                    "Sie liegt auf der Grenze: keine andere Gewichtung gewinnt Marge, ohne Bindung zu verlieren."),
    "frontier.inside": ("It sits inside the frontier: another balance would gain on both.",
                        "Sie liegt innerhalb der Grenze: eine andere Gewichtung gewänne bei beidem."),
    "frontier.earlier": ("The earlier version {version} sat at {margin} margin and {retention} retention value per "
                         "decision.", "Die frühere Version {version} lag bei {margin} Marge und {retention} "
                         "Bindungswert je Entscheidung."),
    "frontier.caption": ("Each point re-decides the same decisions with another balance λ of margin (0) against "
                         "retention (1).", "Jeder Punkt entscheidet dieselben Entscheidungen mit einer anderen "
                         "Gewichtung λ von Marge (0) gegen Bindung (1) neu."),
    "frontier.none": ("No decision of the period can be re-decided (none readable).",
                      "Keine Entscheidung des Zeitraums lässt sich neu entscheiden (keine lesbar)."),
    "h.changes": ("Strategy changes", "Strategieänderungen"),
    "changes.none": ("No new strategy version started deciding in the period.",
                     "Im Zeitraum hat keine neue Strategieversion zu entscheiden begonnen."),
    "changes.version": ("Version {version} (after {previous}) from {date} UTC",
                        "Version {version} (nach {previous}) ab {date} UTC"),
    "changes.canary": ("A canary: the new version decided for {share} of customers, assigned by keyed hash, beside the "
                       "rest over the same days ({canary} decisions against {rest}); the difference is the version's "
                       "own effect.",
                       "Ein Teil-Rollout: die neue Version entschied für {share} der Kundschaft, per Schlüssel-Hash "
                       "zugeteilt, neben dem Rest an denselben Tagen ({canary} Entscheidungen gegen {rest}); der "
                       "Unterschied ist die Wirkung der Version selbst."),
    "col.rest": ("Rest", "Übrige"),
    "col.canary": ("Canary", "Teil-Rollout"),
    "changes.effect": ("Measured effect: {before} decisions of the old version before the change against {after} of "
                       "the new one after it, over equally long spans.",
                       "Gemessene Wirkung: {before} Entscheidungen der alten Version vor der Änderung gegen {after} "
                       "der neuen danach, über gleich lange Spannen."),
    "effect.offered": ("Share with an action", "Anteil mit Aktion"),
    "effect.incentive_offered": ("Incentive value shown per decision", "Gezeigter Anreizwert je Entscheidung"),
    "effect.accepted": ("Share accepted", "Anteil angenommen"),
    "effect.margin": ("Margin per decision", "Marge je Entscheidung"),
    "effect.incentive": ("Incentive cost per decision", "Anreizkosten je Entscheidung"),
    "h.models": ("Model monitoring", "Modellüberwachung"),
    "models.text": ("Per action model: discrimination (AUC) on the period's outcomes beside its value at training "
                    "(band {lo}–{hi}), predicted against observed acceptance, accepted offers per day, and the "
                    "stability of its score (PSI bands {warn} / {alert}). Models that need attention come first.",
                    "Je Aktionsmodell: Trennschärfe (AUC) auf den Ergebnissen des Zeitraums neben dem Wert beim "
                    "Training (Band {lo}–{hi}), vorhergesagte gegen beobachtete Annahme, Annahmen je Tag und die "
                    "Stabilität des Scores (PSI-Bänder {warn} / {alert}). Modelle, die Aufmerksamkeit brauchen, "
                    "stehen oben."),
    "status.attention": ("needs attention", "braucht Aufmerksamkeit"),
    "status.too_few": ("too few outcomes to judge", "zu wenige Ergebnisse zum Urteilen"),
    "status.ok": ("in band", "im Band"),
    "h.inputs": ("Inputs: population stability against the period before",
                 "Eingaben: Stabilität gegenüber dem Zeitraum davor"),
    "inputs.text": ("Computed on a random sample of {n} of the period's {of} decisions (the same sample every time).",
                    "Berechnet auf einer Zufallsstichprobe von {n} der {of} Entscheidungen des Zeitraums (jedes Mal "
                    "dieselbe)."),
    "inputs.none": ("No comparison period, or none of its decisions readable.",
                    "Kein Vergleichszeitraum, oder keine seiner Entscheidungen lesbar."),
    "band.alert": ("shifted", "verschoben"), "band.watch": ("moderate", "mäßig"), "band.stable": ("stable", "stabil"),
    "h.compliance": ("Policy compliance, counted from the log", "Einhaltung der Richtlinien, aus dem Protokoll gezählt"),
    "limit": ("{n} in {days} days", "{n} in {days} Tagen"),
    "objections.text": ("Objections to direct marketing (GDPR Art. 21): {periods} objection period(s) on record; "
                        "decisions that still showed marketing: <b>{n}</b>.",
                        "Widersprüche gegen Direktwerbung (DSGVO Art. 21): {periods} Widerspruchszeitraum/-räume "
                        "erfasst; Entscheidungen, die trotzdem Werbung zeigten: <b>{n}</b>."),
    "recheck.text": ("Every eligibility and suitability rule (consent among them) evaluated again on the logged inputs "
                     "of {decisions} sampled decisions, for the {contacts} actions they showed: <b>{n}</b> shown "
                     "against a rule.",
                     "Jede Zulässigkeits- und Eignungsregel (darunter die Einwilligungen) erneut auf den protokollierten "
                     "Eingaben von {decisions} Stichproben-Entscheidungen ausgewertet, für die {contacts} gezeigten "
                     "Aktionen: <b>{n}</b> entgegen einer Regel gezeigt."),
    "recheck.bound": ("None in the sample: with 95% confidence fewer than {per} in 100,000 contacts break a rule "
                      "(rule of three); `--sample {of}` checks every decision.",
                      "Keiner in der Stichprobe: mit 95 % Sicherheit verstoßen weniger als {per} von 100.000 Kontakten "
                      "gegen eine Regel (Dreierregel); `--sample {of}` prüft jede Entscheidung."),
    "h.suitability": ("Suitability rules that fired", "Ausgelöste Eignungsregeln"),
    "suitability.none": ("No suitability rule removed an action.", "Keine Eignungsregel hat eine Aktion entfernt."),
    "h.fairness": ("Fairness of offers and incentives", "Fairness von Angeboten und Anreizen"),
    "fairness.text": ("Per group of each attribute the strategy names: rates of offers, incentives (and their value), "
                      "premium and payment-term offers, and acceptance, on {n} sampled decisions. A rate is flagged "
                      "when the lowest group gets less than {ratio} × the highest group's with the whole 95% "
                      "bootstrap interval below it (four-fifths rule); groups under {min_group} decisions are shown, "
                      "not judged.",
                      "Je Gruppe jedes Merkmals, das die Strategie nennt: Quoten von Angeboten, Anreizen (und deren "
                      "Wert), Premium- und Zahlungszielangeboten sowie Annahme, auf {n} Stichproben-Entscheidungen. "
                      "Eine Quote wird markiert, wenn die niedrigste Gruppe weniger als {ratio} × die der höchsten "
                      "erhält und das ganze 95-%-Bootstrap-Intervall darunter liegt (Vier-Fünftel-Regel); Gruppen "
                      "unter {min_group} Entscheidungen werden gezeigt, nicht beurteilt."),
    "fairness.none": ("The strategy names no attribute to compare groups by (governance.fairness.attributes).",
                      "Die Strategie nennt kein Merkmal für den Gruppenvergleich (governance.fairness.attributes)."),
    "fairness.not_flagged": ("Shown, not flagged: {note}", "Gezeigt, nicht markiert: {note}"),
    "fairness.small": ("too few decisions to judge (under {n})", "zu wenige Entscheidungen zum Urteilen (unter {n})"),
    "fairness.flag": ("below four-fifths", "unter vier Fünfteln"),
    "fairness.below": ("below four-fifths, not clearly (interval reaches it)",
                       "unter vier Fünfteln, nicht eindeutig (Intervall reicht heran)"),
    "fairness.fine": ("within four-fifths", "innerhalb vier Fünfteln"),
    "metric.offer_rate": ("Offer rate", "Angebotsquote"), "metric.incentive_rate": ("Incentive rate", "Anreizquote"),
    "metric.incentive_value": ("Incentive value per decision", "Anreizwert je Entscheidung"),
    "metric.premium_rate": ("Premium / payment-term offers", "Premium-/Zahlungszielangebote"),
    "metric.acceptance_rate": ("Acceptance", "Annahme"),
    "h.integrity": ("Integrity of the log", "Unversehrtheit des Protokolls"),
    "integrity.ok": ("Verified at report time: all {n} decisions and every sealed table match their hash chains "
                     "({at} UTC).", "Beim Erstellen geprüft: alle {n} Entscheidungen und jede versiegelte Tabelle "
                     "stimmen mit ihren Hash-Ketten überein ({at} UTC)."),
    "integrity.since": ("Verified in full on {at0} UTC by {by} ({n0} decisions). Checked now ({at} UTC): the decision "
                        "and seal chains still pass through the heads verified then, and the {k} decisions and every "
                        "sealed write added since were re-read — all match. An edit of an older row's values with the "
                        "chain left as it was is found by a full `klartext verify` (or `klartext report --verify full`).",
                        "Vollständig geprüft am {at0} UTC von {by} ({n0} Entscheidungen). Jetzt geprüft ({at} UTC): "
                        "Entscheidungs- und Siegelkette laufen noch durch die damals geprüften Köpfe, und die {k} "
                        "seither hinzugekommenen Entscheidungen und jeder seither versiegelte Schreibvorgang wurden neu "
                        "gelesen — alles stimmt. Eine Änderung an Werten älterer Zeilen bei unveränderter Kette findet "
                        "ein vollständiges `klartext verify` (oder `klartext report --verify full`)."),
    "integrity.bad": ("Verification FAILED: {problem} (first changed decision: {decision}). The figures above rest on "
                      "a log that was changed.", "Prüfung FEHLGESCHLAGEN: {problem} (erste veränderte Entscheidung: "
                      "{decision}). Die Zahlen oben beruhen auf einem veränderten Protokoll."),
    "integrity.head": ("Head of the hash chain:", "Kopf der Hash-Kette:"),
    "h.methods": ("Appendix: methods and definitions", "Anhang: Methoden und Definitionen"),
    "m.period.term": ("Period", "Zeitraum"),
    "m.period": ("Decisions by their time (UTC), the end day included; the comparison period is the same number of "
                 "days just before, unless another was chosen.",
                 "Entscheidungen nach ihrem Zeitpunkt (UTC), einschließlich des letzten Tages; der Vergleichszeitraum "
                 "ist die gleiche Zahl Tage direkt davor, wenn kein anderer gewählt wurde."),
    "m.acceptance.term": ("Acceptance", "Annahmequote"),
    "m.acceptance": ("Accepted shown actions ÷ shown actions with a reported outcome.",
                     "Angenommene gezeigte Aktionen ÷ gezeigte Aktionen mit gemeldetem Ergebnis."),
    "m.margin.term": ("Margin, revenue", "Marge, Umsatz"),
    "m.margin": ("Sums of the outcomes reported for the shown actions (net of incentives and contact costs).",
                 "Summen der für die gezeigten Aktionen gemeldeten Ergebnisse (abzüglich Anreize und Kontaktkosten)."),
    "m.incentive.term": ("Incentive spend", "Anreizkosten"),
    "m.incentive": ("The strategy's incentive cost of each accepted action (voucher share of the order value, points × "
                    "point value, financing cost of payment terms).",
                    "Die Anreizkosten der Strategie je angenommener Aktion (Gutscheinanteil am Bestellwert, Punkte × "
                    "Punktwert, Finanzierungskosten des Zahlungsziels)."),
    "m.churn.term": ("Churn of reached / not reached", "Abwanderung erreicht / nicht erreicht"),
    "m.churn": ("Decisions with an outcome whose customer churned ÷ decisions with an outcome, with and without an "
                "action shown; a comparison, not a causal effect.",
                "Entscheidungen mit Ergebnis, deren Kunde abwanderte ÷ Entscheidungen mit Ergebnis, mit und ohne "
                "gezeigte Aktion; ein Vergleich, keine kausale Wirkung."),
    "m.frontier.term": ("Frontier", "Grenze"),
    "m.frontier": ("The sampled decisions of the newest version re-decided exactly with 11 balances of the margin and "
                   "retention weights (λ = 0 … 1, λ = 0.5 the strategy's own); expected margin = Σ p × (margin − "
                   "incentive) − cost, expected retention = Σ p × retention effect × CLV, per decision.",
                   "Die Stichproben-Entscheidungen der neuesten Version exakt mit 11 Gewichtungen von Marge und "
                   "Bindung neu entschieden (λ = 0 … 1, λ = 0,5 die eigene); erwartete Marge = Σ p × (Marge − "
                   "Anreiz) − Kosten, erwartete Bindung = Σ p × Bindungseffekt × CLV, je Entscheidung."),
    "m.changes.term": ("Strategy changes", "Strategieänderungen"),
    "m.changes": ("The fields that differ between the two versions' files; the effect compares the old version's "
                  "decisions before the change with the new one's after it over equally long spans (means with "
                  "normal 95% intervals); other changes in that time are not separated out.",
                  "Die Felder, in denen sich die Dateien der beiden Versionen unterscheiden; die Wirkung vergleicht "
                  "die Entscheidungen der alten Version vor der Änderung mit denen der neuen danach über gleich "
                  "lange Spannen (Mittelwerte mit normalen 95-%-Intervallen); andere Änderungen in dieser Zeit "
                  "werden nicht getrennt."),
    "m.auc.term": ("AUC (area under the ROC curve)", "AUC (Fläche unter der ROC-Kurve)"),
    "m.auc": ("Area under the ROC curve of the logged score against acceptance, over the shown actions with an "
              "outcome; interval by Hanley & McNeil, held jointly at 95% over all models of the report (Bonferroni: each at 1 − 5%/K for K models, so a dozen models do not raise an alarm by chance); judged only with 30 accepted and 30 other outcomes. "
              "Flagged when the whole interval lies outside the strategy's band (Pega's 0.52–0.90 by default: "
              "below, the model ranks no better than chance; above, it is suspiciously good).",
              "Fläche unter der ROC-Kurve des protokollierten Scores gegen die Annahme, über die gezeigten Aktionen "
              "mit Ergebnis; Intervall nach Hanley & McNeil, gemeinsam zu 95 % über alle Modelle des Berichts (Bonferroni: jedes zu 1 − 5 %/K bei K Modellen, damit ein Dutzend Modelle nicht zufällig Alarm auslöst); beurteilt erst ab 30 angenommenen und 30 anderen "
              "Ergebnissen. Markiert, wenn das ganze Intervall außerhalb des Bands der Strategie liegt (Pegas "
              "0,52–0,90 als Vorgabe: darunter ordnet das Modell nicht besser als Zufall, darüber verdächtig gut)."),
    "m.calibration.term": ("Predicted / observed", "Vorhergesagt / beobachtet"),
    "m.calibration": ("Mean logged propensity of the shown actions with an outcome against their acceptance rate; "
                      "shown actions are those ranked highest, so the prediction tends to run above the observation.",
                      "Mittlere protokollierte Neigung der gezeigten Aktionen mit Ergebnis gegen ihre Annahmequote; "
                      "gezeigt werden die am höchsten gereihten, daher liegt die Vorhersage tendenziell darüber."),
    "m.ece.term": ("Calibration error (ECE)", "Kalibrierungsfehler (ECE)"),
    "m.ece": ("Σ over ten equal-width bins of the predicted propensity of (offers in the bin ÷ all) × |mean predicted "
              "− observed rate|; at training on the held-out share, in the period on the shown offers with an "
              "outcome.", "Σ über zehn gleich breite Klassen der vorhergesagten Neigung von (Angebote in der Klasse ÷ "
              "alle) × |mittlere Vorhersage − beobachtete Quote|; beim Training auf dem zurückgehaltenen Anteil, im "
              "Zeitraum auf den gezeigten Angeboten mit Ergebnis."),
    "m.positives.term": ("Accepted per day", "Annahmen je Tag"),
    "m.positives": ("Accepted shown actions of the model ÷ days of the period (Pega's positives: what a model can learn "
                    "from).", "Angenommene gezeigte Aktionen des Modells ÷ Tage des Zeitraums (Pegas Positives: woraus "
                    "ein Modell lernen kann)."),
    "m.psi.term": ("Population stability index (PSI)", "Populationsstabilitätsindex (PSI)"),
    "m.psi": ("Σ (a − e) · ln(a / e) over ten bins cut at the comparison population's deciles (each value its own bin "
              "for categories and yes/no; missing values one bin; empty bins 0.0001). Below 0.10 stable, 0.10–0.25 "
              "moderate, from 0.25 shifted: a shifted input or score needs attention. Small samples give large indices by "
              "chance, so a band counts only where PSI × n₁n₂ / (n₁ + n₂) exceeds the 99.9% point of χ² with bins − 1 "
              "degrees of freedom, where n counts customers (a score between periods: each period's scores divided by "
              "its decisions per customer, since a returning customer's scores are alike).",
              "Σ (a − e) · ln(a / e) über zehn Klassen an den Dezilen der Vergleichspopulation (bei Kategorien und "
              "Ja/Nein jeder Wert eine Klasse; fehlende Werte eine Klasse; leere Klassen 0,0001). Unter 0,10 stabil, "
              "0,10–0,25 mäßig, ab 0,25 verschoben: eine verschobene Eingabe oder ein verschobener Score braucht "
              "Aufmerksamkeit. Kleine Stichproben ergeben zufällig große Indizes, daher zählt ein Band nur, wo "
              "PSI × n₁n₂ / (n₁ + n₂) den 99,9-%-Punkt von χ² mit Klassen − 1 Freiheitsgraden übersteigt; n zählt dabei Kundinnen und Kunden (ein Score zwischen Zeiträumen: die Scores jedes Zeitraums "
              "geteilt durch seine Entscheidungen je Kunde, da sich die Scores wiederkehrender Kunden gleichen)."),
    "m.psi_train.term": ("Score PSI against training", "Score-PSI gegenüber Training"),
    "m.psi_train": ("The same index against the distribution recorded when the model was trained. It is large where "
                    "rules narrow whom a model scores (e.g. only customers with an open order) and is shown for "
                    "context; drift is judged against the period before.",
                    "Derselbe Index gegenüber der beim Training aufgezeichneten Verteilung. Er ist groß, wo Regeln "
                    "einschränken, wen ein Modell bewertet (z. B. nur Personen mit offener Bestellung), und wird zur "
                    "Einordnung gezeigt; Drift wird gegenüber dem Zeitraum davor beurteilt."),
    "m.contact.term": ("Contact limits", "Kontaktgrenzen"),
    "m.contact": ("For each contact (a decision with an action on a limited channel), the customer's logged contacts "
                  "on that channel within the limit's days up to it; over the limit is a breach. Contacts made "
                  "outside Klartext are not in the log.",
                  "Für jeden Kontakt (eine Entscheidung mit Aktion auf einem begrenzten Kanal) die protokollierten "
                  "Kontakte der Person auf diesem Kanal in den Tagen der Grenze bis dahin; darüber ist ein Verstoß. "
                  "Kontakte außerhalb von Klartext stehen nicht im Protokoll."),
    "m.objection.term": ("Objections", "Widersprüche"),
    "m.objection": ("Every decision of the period taken while the customer's objection stood on its channel, checked "
                    "for a marketing action (the compliance register's objection periods).",
                    "Jede Entscheidung des Zeitraums, die fiel, während der Widerspruch der Person auf ihrem Kanal "
                    "galt, auf eine Werbeaktion geprüft (die Widerspruchszeiträume des Compliance-Registers)."),
    "m.recheck.term": ("Rule re-check", "Regelprüfung"),
    "m.recheck": ("Each sampled decision's inputs opened and every eligibility and suitability rule of its own "
                  "strategy version evaluated again; a shown action that a rule excludes is a violation.",
                  "Die Eingaben jeder Stichproben-Entscheidung geöffnet und jede Zulässigkeits- und Eignungsregel "
                  "ihrer eigenen Strategieversion erneut ausgewertet; eine gezeigte Aktion, die eine Regel "
                  "ausschließt, ist ein Verstoß."),
    "m.suitability.term": ("Suitability rules fired", "Ausgelöste Eignungsregeln"),
    "m.suitability": ("Candidate rows of the period removed by a suitability rule, and their decisions.",
                      "Kandidatenzeilen des Zeitraums, die eine Eignungsregel entfernt hat, und deren Entscheidungen."),
    "m.fairness.term": ("Fairness rates", "Fairness-Quoten"),
    "m.fairness": ("Per group (fairlearn's MetricFrame): offer rate = decisions with an action; incentive rate = "
                   "decisions showing an action with an incentive; incentive value = its incentive cost per decision; "
                   "premium rate = decisions showing a premium or payment-term offer (governance.premium_offers); "
                   "acceptance = decisions with an accepted action among those with an outcome. Ratio = lowest ÷ "
                   "highest group, difference = highest − lowest (fairlearn's between-groups ratio and difference).",
                   "Je Gruppe (fairlearns MetricFrame): Angebotsquote = Entscheidungen mit Aktion; Anreizquote = "
                   "Entscheidungen mit einer Aktion mit Anreiz; Anreizwert = deren Anreizkosten je Entscheidung; "
                   "Premiumquote = Entscheidungen mit einem Premium- oder Zahlungszielangebot "
                   "(governance.premium_offers); Annahme = Entscheidungen mit angenommener Aktion unter denen mit "
                   "Ergebnis. Verhältnis = niedrigste ÷ höchste Gruppe, Unterschied = höchste − niedrigste (fairlearns "
                   "Verhältnis und Unterschied zwischen Gruppen)."),
    "m.bootstrap.term": ("Bootstrap intervals", "Bootstrap-Intervalle"),
    "m.bootstrap": ("400 resamples within each group (its decisions drawn with replacement, as multinomial counts over "
                    "its distinct values), the 2.5% and 97.5% quantiles of the ratio and difference.",
                    "400 Ziehungen innerhalb jeder Gruppe (ihre Entscheidungen mit Zurücklegen, als multinomiale "
                    "Anzahlen über ihre verschiedenen Werte), die 2,5-%- und 97,5-%-Quantile von Verhältnis und "
                    "Unterschied."),
    "m.sample.term": ("Sample", "Stichprobe"),
    "m.sample": ("Figures that need the inputs (sealed under each customer's key) use a random sample of at most "
                 "50,000 decisions per period, ordered by the MD5 of the decision id, so every run reads the same "
                 "one; erased customers' decisions cannot be read and are left out.",
                 "Kennzahlen, die die Eingaben brauchen (unter dem Schlüssel der Person versiegelt), nutzen eine "
                 "Zufallsstichprobe von höchstens 50.000 Entscheidungen je Zeitraum, geordnet nach dem MD5 der "
                 "Entscheidungs-ID, sodass jeder Lauf dieselbe liest; Entscheidungen gelöschter Personen sind nicht "
                 "lesbar und fehlen."),
    "m.integrity.term": ("Integrity", "Unversehrtheit"),
    "m.integrity": ("At report time, from the newest full `klartext verify` recorded in the compliance register: the "
                    "decision chain and the seal chain must still pass through the heads it verified, the positions "
                    "of all decisions and every seal entry are checked, and every decision and sealed write since is "
                    "re-read; without such a record (or with --verify full) every record and sealed row is recomputed "
                    "now, and that is recorded.",
                    "Beim Erstellen, ausgehend vom neuesten vollständigen `klartext verify` im Compliance-Register: "
                    "Entscheidungs- und Siegelkette müssen noch durch die damals geprüften Köpfe laufen, die "
                    "Positionen aller Entscheidungen und jeder Siegeleintrag werden geprüft, und jede seither "
                    "hinzugekommene Entscheidung und jeder versiegelte Schreibvorgang wird neu gelesen; ohne einen "
                    "solchen Eintrag (oder mit --verify full) wird jeder Datensatz und jede versiegelte Zeile jetzt "
                    "neu berechnet, und das wird festgehalten."),
    "fig.decisions": ("Decisions", "Entscheidungen"), "fig.acceptance": ("Acceptance", "Annahme"),
    "fig.daily": ("Decisions and acceptance per day", "Entscheidungen und Annahme je Tag"),
    "fig.frontier": ("Re-decided with another balance", "Mit anderer Gewichtung neu entschieden"),
    "fig.current": ("The strategy", "Die Strategie"), "fig.earlier": ("Earlier version", "Frühere Version"),
    "fig.margin_axis": ("Expected margin per decision ({currency})", "Erw. Marge je Entscheidung ({currency})"),
    "fig.retention_axis": ("Retention value per decision ({currency})", "Bindungswert je Entsch. ({currency})"),
    "fig.frontier_title": ("Margin against retention", "Marge gegen Kundenbindung"),
    "fig.auc_train": ("AUC at training", "AUC beim Training"),
    "fig.auc_period": ("AUC in the period (95%)", "AUC im Zeitraum (95 %)"),
    "fig.models": ("Model discrimination (band {lo}–{hi} shaded)", "Trennschärfe der Modelle (Band {lo}–{hi} schattiert)"),
    "fig.inputs": ("Input stability against the period before (PSI)", "Stabilität der Eingaben ggü. vorher (PSI)"),
    "fig.fairness": ("Rates by {attribute}", "Quoten nach {attribute}"),
    "att.integrity": ("The log failed verification: {problem}.", "Das Protokoll hat die Prüfung nicht bestanden: {problem}."),
    "att.contact_limit": ("{n} contact(s) on {channel} went over the limit of {limit} in {days} days.",
                          "{n} Kontakt(e) über {channel} überschritten die Grenze von {limit} in {days} Tagen."),
    "att.objection": ("{n} decision(s) showed marketing to a customer who had objected.",
                      "{n} Entscheidung(en) zeigten Werbung trotz Widerspruchs."),
    "att.rule": ("{n} shown action(s) broke the rule {rule} on their logged inputs.",
                 "{n} gezeigte Aktion(en) verstießen auf ihren protokollierten Eingaben gegen die Regel {rule}."),
    "att.fairness": ("{metric} by {attribute}: group {lowest} gets {ratio} × the rate of group {highest} (95% up to "
                     "{high}), below four-fifths.",
                     "{metric} nach {attribute}: Gruppe {lowest} erhält {ratio} × die Quote der Gruppe {highest} (95 % "
                     "bis {high}), unter vier Fünfteln."),
    "att.input_drift": ("The input {label} shifted (PSI {psi}; mean {before} before, {after} now).",
                        "Die Eingabe {label} hat sich verschoben (PSI {psi}; Mittel vorher {before}, jetzt {after})."),
    "att.score_drift": ("The score of the model for {name} shifted (PSI {psi} against the period before).",
                        "Der Score des Modells für {name} hat sich verschoben (PSI {psi} gegenüber vorher)."),
    "att.score_cause": ("It reads the shifted input(s): {inputs}.", "Es liest die verschobene(n) Eingabe(n): {inputs}."),
    "att.auc_low": ("The model for {name} ranks no better than chance: AUC {auc} ({low}–{high}), band {band}.",
                    "Das Modell für {name} ordnet nicht besser als Zufall: AUC {auc} ({low}–{high}), Band {band}."),
    "att.auc_high": ("The model for {name} is suspiciously good: AUC {auc} ({low}–{high}), band {band} — check for a "
                     "leaked outcome.", "Das Modell für {name} ist verdächtig gut: AUC {auc} ({low}–{high}), Band "
                     "{band} — auf ein durchgesickertes Ergebnis prüfen."),
    "sum.decisions_vs": ("{n} decisions ({change} against the period before) for {customers} customers.",
                         "{n} Entscheidungen ({change} gegenüber dem Zeitraum davor) für {customers} Personen."),
    "sum.acceptance_vs": ("Acceptance {rate}, before {before} ({change}).", "Annahmequote {rate}, vorher {before} ({change})."),
    "sum.margin_vs": ("Realised margin {margin} ({change}); incentive spend {spend} ({spend_change}).",
                      "Realisierte Marge {margin} ({change}); Anreizkosten {spend} ({spend_change})."),
    "sum.decisions": ("{n} decisions for {customers} customers.", "{n} Entscheidungen für {customers} Personen."),
    "sum.acceptance": ("Acceptance {rate}.", "Annahmequote {rate}."),
    "sum.margin": ("Realised margin {margin}; incentive spend {spend}.", "Realisierte Marge {margin}; Anreizkosten {spend}."),
    "sum.churn": ("Churn of customers reached {reached}, of those not reached {not_reached}.",
                  "Abwanderung der Erreichten {reached}, der nicht Erreichten {not_reached}."),
    "sum.change": ("Strategy version {version} decides from {date}; it changed {fields}.",
                   "Strategieversion {version} entscheidet ab {date}; geändert: {fields}."),
    "sum.no_fields": ("no field", "kein Feld"),
    "sum.attention": ("{n} finding(s) need attention (listed below).",
                      "{n} Befund(e) brauchen Aufmerksamkeit (unten aufgeführt)."),
    "sum.calm": ("Nothing needs attention.", "Nichts braucht Aufmerksamkeit."),
    "sum.integrity_bad": ("The log failed verification: the figures rest on changed records.",
                          "Das Protokoll hat die Prüfung nicht bestanden: die Zahlen beruhen auf veränderten Daten."),
    "fig.observed": ("Observed acceptance", "Beobachtete Annahme"),
    "fig.predicted": ("Predicted (logged propensity)", "Vorhergesagt (protokollierte Neigung)"),
    "fig.calibration": ("Calibration in the period (by predicted decile; size: offers)",
                        "Kalibrierung im Zeitraum (nach vorhergesagtem Dezil; Größe: Angebote)"),
    "fig.accepted": ("Accepted", "Angenommen"), "fig.per_day": ("Accepted offers per day", "Angenommene Angebote je Tag"),
    "fig.all": ("all", "alle"),
    "fig.scores": ("The score's distribution (training deciles)", "Verteilung des Scores (Trainingsdezile)"),
    "fig.scores_training": ("At training", "Beim Training"), "fig.scores_previous": ("Period before", "Zeitraum davor"),
    "fig.scores_period": ("This period", "Dieser Zeitraum"),
    # the dashboard's pages
    "page.title": ("Governance report", "Steuerungsbericht"),
    "page.caption": ("The report for the board: what changed, what needs attention, and the figures behind it — "
                     "the same content as `klartext report`, to download as PDF or HTML.",
                     "Der Bericht für das Gremium: was sich geändert hat, was Aufmerksamkeit braucht, und die Zahlen "
                     "dahinter — derselbe Inhalt wie `klartext report`, als PDF oder HTML zum Herunterladen."),
    "page.no_klartext": ("The log holds no decision of a Klartext strategy; the governance pages read those.",
                         "Das Protokoll enthält keine Entscheidung einer Klartext-Strategie; die Steuerungsseiten "
                         "lesen diese."),
    "page.period": ("Report period", "Berichtszeitraum"),
    "page.compare": ("Compare with", "Vergleichen mit"),
    "page.compare_previous": ("the period before", "dem Zeitraum davor"),
    "page.compare_none": ("nothing", "nichts"),
    "page.computing": ("Computing the report's figures …", "Berechne die Zahlen des Berichts …"),
    "page.download": ("Download", "Herunterladen"),
    "page.prepare": ("Prepare {kind}", "{kind} erstellen"),
    "page.drawing": ("Drawing the figures and printing …", "Zeichne die Abbildungen und drucke …"),
    "page.download_file": ("Download the report ({kind}, {kb} KB)", "Bericht herunterladen ({kind}, {kb} KB)"),
    "page.see_fairness": ("Details and the decisions behind a finding: Fairness page",
                          "Details und die Entscheidungen hinter einem Befund: Seite Fairness"),
    "page.see_models": ("Details per model: Model health page", "Details je Modell: Seite Modellgesundheit"),
    "page.fairness_title": ("Fairness", "Gleichbehandlung"),
    "page.fairness_caption": ("Who gets which offers, incentives and payment terms — per group of the attributes the "
                              "strategy names, with four-fifths flags and bootstrap intervals.",
                              "Wer welche Angebote, Anreize und Zahlungsziele bekommt — je Gruppe der Merkmale, die "
                              "die Strategie nennt, mit Vier-Fünftel-Markierung und Bootstrap-Intervallen."),
    "page.attribute": ("Attribute", "Merkmal"),
    "page.drill": ("The decisions behind a rate", "Die Entscheidungen hinter einer Quote"),
    "page.drill_group": ("Group", "Gruppe"), "page.drill_metric": ("Counting towards", "Zählt zu"),
    "page.drill_count": ("{n} sampled decision(s) of group {group} count towards {metric} (newest first, up to 200).",
                         "{n} Stichproben-Entscheidung(en) der Gruppe {group} zählen zu {metric} (neueste zuerst, "
                         "bis 200)."),
    "page.drill_viewer": ("Single decisions are for reviewers; your role sees the rates.",
                          "Einzelne Entscheidungen sind für Prüfende; Ihre Rolle sieht die Quoten."),
    "page.models_title": ("Model health", "Modellgesundheit"),
    "page.models_caption": ("Do the models still work? Discrimination and calibration on the period's outcomes, "
                            "accepted offers per day, and the stability of scores and inputs.",
                            "Funktionieren die Modelle noch? Trennschärfe und Kalibrierung auf den Ergebnissen des "
                            "Zeitraums, Annahmen je Tag und die Stabilität von Scores und Eingaben."),
    "page.model": ("Model", "Modell"),
    "page.model_numbers": ("AUC {auc} at training, {period} in the period; {n} shown offers with an outcome, {pos} "
                           "accepted.", "AUC {auc} beim Training, {period} im Zeitraum; {n} gezeigte Angebote mit "
                           "Ergebnis, {pos} angenommen."),
    "page.behind": ("The newest shown offers of this model with their outcome",
                    "Die neuesten gezeigten Angebote dieses Modells mit ihrem Ergebnis"),
    "page.inputs_vs_training": ("Inputs furthest from the training population (context, not flagged)",
                                "Eingaben am weitesten von der Trainingspopulation (Einordnung, nicht markiert)"),
}
