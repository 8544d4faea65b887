"""The strategy lifecycle's words (key → (English, German)), merged into :data:`explain.i18n.TEXT`
under ``lifecycle.`` (the ``klartext strategy`` commands and the Strategy versions page)."""

TEXT: dict[str, tuple[str, str]] = {
    # steps and states
    "step.proposed": ("proposed", "vorgeschlagen"),
    "step.simulated": ("simulated", "simuliert"),
    "step.approved": ("approved", "freigegeben"),
    "step.activated": ("activated", "aktiviert"),
    "step.rolled_back": ("rolled back", "zurückgenommen"),
    "status.active": ("deciding for everyone", "entscheidet für alle"),
    "status.canary": ("canary", "Kanarienvogel (Teil-Rollout)"),
    "status.proposed": ("proposed, not simulated", "vorgeschlagen, nicht simuliert"),
    "status.simulated": ("simulated, awaiting approval", "simuliert, wartet auf Freigabe"),
    "status.approved": ("approved, not active", "freigegeben, nicht aktiv"),
    "status.retired": ("replaced", "abgelöst"),
    "status.rolled_back": ("rolled back", "zurückgenommen"),
    "status.unknown": ("deciding before the lifecycle", "entschied vor dem Lebenszyklus"),
    # CLI
    "cli.unmanaged": ("No strategy step is recorded for {db}: the newest strategy in the log decides ({version}). "
                      "Propose a change with `klartext strategy propose FILE --db {db}`.",
                      "Für {db} ist kein Strategieschritt erfasst: die neueste Strategie im Protokoll entscheidet "
                      "({version}). Eine Änderung schlagen Sie mit `klartext strategy propose DATEI --db {db}` vor."),
    "cli.champion": ("Deciding for every customer: {name} ({version}), since {since}.",
                     "Entscheidet für alle Kundinnen und Kunden: {name} ({version}), seit {since}."),
    "cli.champion_rest": ("Deciding for the other customers: {name} ({version}).",
                          "Entscheidet für die übrigen Kundinnen und Kunden: {name} ({version})."),
    "cli.canary": ("Canary: {name} ({version}) for {share} of customers (chosen by keyed hash), since {since}.",
                   "Teil-Rollout: {name} ({version}) für {share} der Kundinnen und Kunden (per Schlüssel-Hash "
                   "gewählt), seit {since}."),
    "cli.trail": ("Record ({n} sealed steps):", "Verlauf ({n} versiegelte Schritte):"),
    "cli.proposed": ("Proposed {name} as version {version} (against {base}). Next: `klartext strategy simulate {short} "
                     "--db {db}`.", "{name} als Version {version} vorgeschlagen (gegenüber {base}). Weiter: "
                     "`klartext strategy simulate {short} --db {db}`."),
    "cli.simulated": ("Simulated {version} against {base} on the {n} newest decisions: {changed} get another first "
                      "action.", "{version} gegen {base} an den {n} neuesten Entscheidungen simuliert: {changed} "
                      "erhalten eine andere erste Aktion."),
    "cli.ope": ("  {reward}: now {now}, proposal {value} (95% {low} to {high}; {support} of decisions supported)",
                "  {reward}: jetzt {now}, Vorschlag {value} (95 % {low} bis {high}; {support} der Entscheidungen "
                "gestützt)"),
    "cli.ope_unreliable": ("  {reward}: no reliable estimate — {why}", "  {reward}: keine verlässliche Schätzung — {why}"),
    "cli.approved": ("Approved {version} by {by}. Next: `klartext strategy activate {short} --share 0.1 --db {db}` "
                     "(a canary for one customer in ten).",
                     "{version} freigegeben von {by}. Weiter: `klartext strategy activate {short} --share 0.1 --db "
                     "{db}` (ein Teil-Rollout für jede zehnte Person)."),
    "cli.activated_canary": ("Activated {version} for {share} of customers; the others keep {base}. A running "
                             "service follows within seconds.",
                             "{version} für {share} der Kundinnen und Kunden aktiviert; die übrigen behalten {base}. "
                             "Ein laufender Dienst folgt binnen Sekunden."),
    "cli.activated_full": ("Activated {version} for every customer (replacing {base}). A running service follows "
                           "within seconds.", "{version} für alle Kundinnen und Kunden aktiviert (statt {base}). "
                           "Ein laufender Dienst folgt binnen Sekunden."),
    "cli.rolled_back": ("Rolled back {version}: {base} decides for every customer again. A running service follows "
                        "within seconds.", "{version} zurückgenommen: {base} entscheidet wieder für alle. Ein "
                        "laufender Dienst folgt binnen Sekunden."),
    "cli.no_changes": ("No field differs.", "Kein Feld unterscheidet sich."),
    # page
    "page.title": ("Strategy versions", "Strategieversionen"),
    "page.caption": ("Every strategy change on the record: proposed, simulated, approved, rolled out, rolled back — "
                     "who, when and why, sealed in the compliance register.",
                     "Jede Strategieänderung im Verlauf: vorgeschlagen, simuliert, freigegeben, ausgerollt, "
                     "zurückgenommen — wer, wann und warum, versiegelt im Compliance-Register."),
    "page.unmanaged": ("No strategy step is recorded yet: the log's newest strategy decides. A change starts with "
                       "`klartext strategy propose FILE`.",
                       "Noch kein Strategieschritt erfasst: die neueste Strategie im Protokoll entscheidet. Eine "
                       "Änderung beginnt mit `klartext strategy propose DATEI`."),
    "page.now": ("Deciding now", "Entscheidet jetzt"),
    "page.canary": ("Canary", "Teil-Rollout"),
    "page.canary_none": ("none", "keiner"),
    "page.steps": ("Sealed steps", "Versiegelte Schritte"),
    "page.sealed_ok": ("The record is intact (its seal chain verified when this page was drawn).",
                       "Der Verlauf ist unverändert (seine Siegelkette wurde beim Aufbau dieser Seite geprüft)."),
    "page.sealed_bad": ("The compliance register's seal does not verify: {problem}",
                        "Das Siegel des Compliance-Registers hält nicht: {problem}"),
    "page.invalid": ("A recorded step breaks the lifecycle's rules and is not followed: {step} of {version} by {who} "
                     "on {when} ({why}). Run `klartext verify` and restore the compliance register from a trusted copy.",
                     "Ein erfasster Schritt verletzt die Regeln des Lebenszyklus und wird nicht befolgt: {step} von "
                     "{version} durch {who} am {when} ({why}). Führen Sie `klartext verify` aus und stellen Sie das "
                     "Compliance-Register aus einer vertrauenswürdigen Kopie wieder her."),
    "page.timeline": ("Timeline", "Zeitachse"),
    "page.timeline_y": ("decisions per {width}", "Entscheidungen je {width}"),
    "page.since": ("this arrangement since {since}", "so seit {since}"),
    "bucket.minute": ("minute", "Minute"),
    "bucket.5 minutes": ("5 minutes", "5 Minuten"),
    "bucket.15 minutes": ("15 minutes", "15 Minuten"),
    "bucket.hour": ("hour", "Stunde"),
    "bucket.6 hours": ("6 hours", "6 Stunden"),
    "bucket.day": ("day", "Tag"),
    "bucket.week": ("week", "Woche"),
    "page.trail": ("Approval trail", "Freigabeverlauf"),
    "col.when": ("When (UTC)", "Wann (UTC)"),
    "col.step": ("Step", "Schritt"),
    "col.version": ("Version", "Strategieversion"),
    "col.name": ("Strategy", "Strategie"),
    "col.who": ("Who", "Wer"),
    "col.share": ("Share", "Anteil"),
    "col.against": ("Against", "Gegenüber"),
    "col.note": ("Why", "Warum"),
    "col.status": ("Status", "Stand"),
    "page.versions": ("Versions", "Versionen"),
    "page.diff": ("What changed between two versions", "Was sich zwischen zwei Versionen ändert"),
    "page.diff_from": ("From", "Von"),
    "page.diff_to": ("To", "Nach"),
    "col.kind": ("Kind", "Art"),
    "col.field": ("Field", "Feld"),
    "col.before": ("Before", "Vorher"),
    "col.after": ("After", "Nachher"),
    "page.simulation": ("Simulation stored with the proposal", "Mit dem Vorschlag gespeicherte Simulation"),
    "page.no_simulation": ("Not simulated yet: `klartext strategy simulate {short}`.",
                           "Noch nicht simuliert: `klartext strategy simulate {short}`."),
    "page.sim_head": ("On the {n} newest decisions of {base} ({first} to {last}), {changed} would get another first "
                      "action.", "Bei den {n} neuesten Entscheidungen von {base} ({first} bis {last}) bekämen "
                      "{changed} eine andere erste Aktion."),
    "col.kpi": ("Figure", "Kennzahl"),
    "col.now": ("Deciding now", "Jetzt"),
    "col.proposal": ("Proposal", "Vorschlag"),
    "col.estimate": ("Estimate (95%)", "Schätzung (95 %)"),
    "col.support": ("Supported", "Gestützt"),
    "col.reward": ("Per decision", "Je Entscheidung"),
    "reward.conversion": ("acceptance", "Annahme"),
    "reward.margin": ("margin", "Marge"),
    "page.unreliable": ("not reliable", "nicht verlässlich"),
    "page.effects": ("Measured effect", "Gemessene Wirkung"),
    "page.effects_none": ("Nothing activated yet, so there is no effect to measure.",
                          "Noch nichts aktiviert, also keine Wirkung zu messen."),
    "page.canary_effect": ("Canary against the rest, {from_} to {to}: {canary} decisions by {version}, {rest} by the "
                           "rest (observed share {share}). Customers were assigned by keyed hash, so the difference "
                           "is the version's effect.",
                           "Teil-Rollout gegen den Rest, {from_} bis {to}: {canary} Entscheidungen von {version}, "
                           "{rest} vom Rest (beobachteter Anteil {share}). Die Zuteilung per Schlüssel-Hash ist "
                           "zufällig, der Unterschied ist also die Wirkung der Version."),
    "page.before_after": ("Before against after the {step} of {version} on {when}: {before} decisions in the span "
                          "before, {after} after. Other changes at the same time would show here too.",
                          "Vorher gegen nachher bei {step} von {version} am {when}: {before} Entscheidungen davor, "
                          "{after} danach. Andere gleichzeitige Änderungen zeigen sich hier mit."),
    "noun.activated": ("activation", "der Aktivierung"),
    "noun.rolled_back": ("rollback", "der Rücknahme"),
    "page.no_outcomes": ("no outcomes reported yet", "noch keine Ergebnisse gemeldet"),
    "pp": ("pp", "Pp."),
    "col.rest": ("Rest", "Übrige"),
    "col.canary": ("Canary", "Teil-Rollout"),
    "col.before_span": ("Before", "Davor"),
    "col.after_span": ("After", "Danach"),
    "col.metric": ("Per decision", "Je Entscheidung"),
    "col.difference": ("Difference (95%)", "Unterschied (95 %)"),
    "metric.offered": ("share with an action", "Anteil mit Aktion"),
    "metric.incentive_offered": ("incentive value shown", "gezeigter Anreizwert"),
    "metric.accepted": ("share accepted", "Anteil angenommen"),
    "metric.margin": ("margin (realised)", "Marge (realisiert)"),
    "metric.incentive": ("incentive cost (accepted)", "Anreizkosten (angenommen)"),
    "page.disclosure": ("What a customer is told", "Was Kundinnen und Kunden erfahren"),
    "page.disclosure_caption": ("From the version's disclosure settings: reasons from these features and factors are "
                                "named to customers; the others are folded into “other factors”.",
                                "Aus den Offenlegungs-Einstellungen der Version: Gründe aus diesen Merkmalen und "
                                "Faktoren werden Kundinnen und Kunden genannt; die übrigen als „weitere Faktoren“ "
                                "zusammengefasst."),
    "col.disclosed": ("Named to customers", "Kundschaft erfährt es"),
    "col.item": ("Feature or factor", "Merkmal oder Faktor"),
    "yes": ("yes", "ja"),
    "no": ("internal only", "nur intern"),
}
