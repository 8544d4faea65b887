"""German and English: every text of the catalogue in both, with the same placeholders, and the
dashboard's pages in the language the person chose."""

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explain import i18n

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["overview", "tradeoffs", "replay", "customer", "funnel", "explanations", "models", "integrity", "compliance"]


def test_every_text_is_in_both_languages_with_the_same_placeholders():
    for key, texts in i18n.TEXT.items():
        assert len(texts) == len(i18n.LANGUAGES), key
        en, de = texts
        assert en.strip() and de.strip(), key
        assert en != de, f"{key} is not translated"
        assert set(re.findall(r"{(\w+)", en)) == set(re.findall(r"{(\w+)", de)), key
    assert i18n.t("overview.title", "de") == "Überblick"
    with pytest.raises(KeyError):
        i18n.t("no.such.text", "en")


def test_the_language_comes_from_the_choice_then_the_environment(monkeypatch):
    monkeypatch.delenv(i18n.LANG_ENV, raising=False)
    assert i18n.language(None) == "en" and i18n.language("de") == "de" and i18n.language("DE-at") == "de"
    assert i18n.language("fr") == "en"
    monkeypatch.setenv(i18n.LANG_ENV, "de")
    assert i18n.language(None) == "de" and i18n.language("en") == "en"


@pytest.mark.parametrize("name", PAGES)
def test_every_page_speaks_german(name, demo_log, monkeypatch):
    monkeypatch.setenv("KLARTEXT_DB", str(demo_log))
    monkeypatch.setenv(i18n.LANG_ENV, "de")
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=90).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == i18n.t(f"{name}.title", "de")
    assert at.caption[0].value == i18n.t(f"{name}.caption", "de")


def test_the_sidebar_switches_the_dashboard_to_german(demo_log, monkeypatch):
    monkeypatch.setenv("KLARTEXT_DB", str(demo_log))
    monkeypatch.delenv(i18n.LANG_ENV, raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Overview"
    at.selectbox(key="lang").set_value("de").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Überblick"
    linked = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    linked.query_params["lang"] = "de"  # the choice is kept in the address: a shared link opens in German
    linked.run()
    assert not linked.exception and linked.title[0].value == "Überblick"


def test_numbers_and_percentages_follow_the_language():
    assert i18n.number(1234567.891, "en", 2) == "1,234,567.89"
    assert i18n.number(1234567.891, "de", 2) == "1.234.567,89"
    assert i18n.percent(0.1234, "en") == "12.3%" and i18n.percent(0.1234, "de") == "12,3 %"


def test_the_overview_reads_in_german(demo_log, monkeypatch):
    monkeypatch.setenv("KLARTEXT_DB", str(demo_log))
    monkeypatch.setenv(i18n.LANG_ENV, "de")
    at = AppTest.from_file(str(ROOT / "pages" / "overview.py"), default_timeout=90).run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [m.label for m in at.metric]
    assert labels[:4] == ["Entscheidungen", "Mit Aktion", "Annahmequote", "Marge angenommener Aktionen"], labels
    import duckdb

    with duckdb.connect(str(demo_log), read_only=True) as con:
        n = con.execute("SELECT count(*) FROM decisions").fetchall()[0][0]
    assert at.metric[0].value == f"{n:,}".replace(",", ".")  # 2.000, not 2,000
    assert at.metric[1].value.endswith(" %")
    assert [h.value for h in at.subheader][:4] == ["Annahme, Marge und Abwanderung im Zeitverlauf",
                                                   "Gezeigte Aktionen pro Tag", "Marge angenommener Aktionen pro Tag",
                                                   "Aktionsmix"]
    assert at.metric[3].value.endswith(" EUR")  # the strategy's currency
    assert at.radio(key="mix_by").options == ["Thema", "Gruppe", "Kanal", "Aktion"]


def test_the_integrity_check_reads_in_german(demo_log, monkeypatch):
    monkeypatch.setenv("KLARTEXT_DB", str(demo_log))
    monkeypatch.setenv(i18n.LANG_ENV, "de")
    at = AppTest.from_file(str(ROOT / "pages" / "integrity.py"), default_timeout=90).run()
    assert at.markdown[0].value.startswith("Das Protokoll enthält **2.000** Entscheidungen")
    at.button(key="verify").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success[0].value == "Geprüft: alle 2.000 Entscheidungen und ihre Kandidaten sind unverändert."
    assert at.markdown[-1].value.startswith("Kopf-Hash der Kette: `")


def test_the_model_registry_reads_in_german(demo_log, monkeypatch):
    monkeypatch.setenv("KLARTEXT_DB", str(demo_log))
    monkeypatch.setenv(i18n.LANG_ENV, "de")
    at = AppTest.from_file(str(ROOT / "pages" / "models.py"), default_timeout=90).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.label for m in at.metric] == ["Modellversionen", "Median der AUC", "Größter Kalibrierungsfehler (ECE)"]
    assert at.metric[1].value.startswith("0,")  # a decimal comma
    assert "**Trainiert auf**" in at.markdown[0].value and "**Merkmale:**" in at.markdown[1].value
    from decisioning.scenarios.retail import load_demo_strategy

    names = {a.name for a in load_demo_strategy().actions}  # models by the actions' names, not their ids
    assert {o.split(" · ")[0] for o in at.selectbox(key="model_pick").options} == names


def _german(page: str, demo_log, monkeypatch) -> AppTest:
    monkeypatch.setenv("KLARTEXT_DB", str(demo_log))
    monkeypatch.setenv(i18n.LANG_ENV, "de")
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=90).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_decision_replay_reads_in_german_with_the_actions_names(demo_log, monkeypatch):
    from decisioning.scenarios.retail import load_demo_strategy

    names = {a.id: a.name for a in load_demo_strategy().actions}
    at = _german("replay", demo_log, monkeypatch)
    assert at.header[0].value.startswith("Entscheidung ")
    assert [m.label for m in at.metric] == ["Kanal", "Auswahlwahrscheinlichkeit", "Rechenzeit der Engine"]
    texts = [m.value for m in at.markdown]
    line = [t for t in texts if t.startswith("**Gewählt:** ")][0][len("**Gewählt:** "):]
    chosen = ["keine Aktion"] if line == "keine Aktion" else re.findall(r"(.+?) \([^()]+\)(?:, |$)", line)
    chosen = [re.sub(r"\\(.)", r"\1", c) for c in chosen]
    assert chosen and set(chosen) <= set(names.values()) | {"keine Aktion"}, line  # names, with the id beside
    if chosen != ["keine Aktion"]:
        assert any(t.startswith("Priorität **") and "Annahmechance" in t for t in texts), texts[:3]
        reasons = [t for t in texts if t.startswith("- ")]
        assert reasons and all(" erhöhte " in t or " senkte " in t or "gewichtet" in t or "Geschäftshebel" in t
                               for t in reasons), reasons
        assert not any("log-odds" in t or "raised" in t for t in reasons)
        at.session_state["rp_tab"] = "Warum nicht …?"
        at = at.run()
        why_not = at.selectbox(key="whynot")
        assert set(why_not.options) <= set(names.values())
        at = why_not.select_index(len(why_not.options) - 1).run()
        answer = [m.value for m in at.markdown if m.value.startswith("**") and not m.value.startswith("**Gewählt")][0]
        assert re.search(r"wurde|hat alle Regeln passiert|ebenfalls gezeigt", answer), answer
    assert [t.label for t in at.tabs] == ["Warum diese Aktion", "Alle Aktionen", "Eingaben", "Warum nicht …?"]
    downloads = [b.proto.label for b in at.get("download_button")]
    assert downloads[-3:] == ["Nachweis (PDF)", "Nachweis (HTML)", "Nachweis (JSON)"], downloads


def test_customer_history_reads_in_german(demo_log, monkeypatch):
    at = _german("customer", demo_log, monkeypatch)
    assert at.info[0].value.startswith("Geben Sie einen Kunden ein.")
    from tests.conftest import returning_customer

    at = at.text_input(key="cust").set_value(returning_customer(demo_log)[0]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.label for m in at.metric] == ["Entscheidungen", "Angenommene Aktionen", "Umsatz", "Marge"]
    assert at.metric[2].value.endswith(" EUR") and "," in at.metric[2].value  # 12,50 EUR


def test_funnel_and_explanations_read_in_german(demo_log, monkeypatch):
    from decisioning.scenarios.retail import load_demo_strategy

    names = {a.id: a.name for a in load_demo_strategy().actions}
    at = _german("funnel", demo_log, monkeypatch)
    assert [h.value for h in at.subheader] == ["Wie weit Interaktionen kommen, und wo Kandidaten-Aktionen enden",
                                               "Regeln, die die meisten Aktionen entfernen",
                                               "Kunden ohne Aktion oder nur mit schwachen"]
    assert at.radio(key="funnel_by").options == ["Stufe", "Stufengruppe"]
    at = _german("explanations", demo_log, monkeypatch)
    option = at.selectbox(key="ex_action").options[0]
    assert option.endswith(" erklärt)") and option.rsplit(" (", 1)[0] in names.values(), option
    assert at.selectbox(key="ex_seg").options == ["nichts", "Kanal", "Thema", "Woche", "Tag", "Monat"]


def test_the_trade_off_chart_speaks_german_with_the_currency():
    import pandas as pd

    from explain import figures

    df = pd.DataFrame({"key": ["growth"], "contacts": [10], "margin": [50.0], "margin_per_contact": [5.0],
                       "churn_reached": [0.15]})
    fig = figures.tradeoff_scatter(df, 0.18, lang="de", currency="CHF")
    assert fig.layout.xaxis.title.text == "realisierte Marge je Kontakt (CHF)"
    assert fig.layout.yaxis.title.text == "Abwanderung der erreichten Kunden"
    assert fig.layout.annotations[0].text == "Abwanderung ohne Aktion 18,0 %"


def test_every_stage_of_the_flow_has_its_name_in_both_languages(demo_log, monkeypatch):
    from decisioning import stages

    for s in stages.FLOW:  # the English text is the registry's label: one definition, translated here
        assert i18n.t(f"stage.{s.name}", "en") == s.label and f"stage_group.{s.group}" in i18n.TEXT, s.name
    at = _german("funnel", demo_log, monkeypatch)
    labels = list(at.dataframe[0].value["label"])
    assert labels[:3] == ["Berechtigung", "Anwendbarkeit", "Eignung"], labels


def test_charts_write_numbers_the_german_way():
    """German axes and labels: 0,5 and 1.000 (a decimal comma, a thousands point)."""
    import numpy as np
    import pandas as pd

    from explain import figures

    built = [
        figures.global_importance(pd.DataFrame({"feature": ["a", "b"], "mean_abs": [0.1, 0.2]}), lang="de"),
        figures.dependence(pd.DataFrame({"x": [0.5, 1.5], "phi": [0.1, -0.2]}), "X", lang="de"),
        figures.contrast_bars([("Annahmechance", 0.7)], "A", "B", lang="de"),
        figures.attribution_waterfall(["a", "b"], np.array([0.2, -0.1]), -1.0, -0.9, lang="de"),
        figures.tradeoff_scatter(pd.DataFrame({"key": ["x"], "contacts": [10], "margin": [5.0],
                                               "margin_per_contact": [0.5], "churn_reached": [0.1]}), 0.2, lang="de"),
    ]
    assert [f.layout.separators for f in built] == [",."] * len(built)
    assert figures.global_importance(pd.DataFrame({"feature": ["a"], "mean_abs": [0.1]})).layout.separators in (None, ".,")


def test_every_kpi_has_its_names_in_both_languages():
    """The catalogue's KPI names repeat analysis.kpis in English: they must not drift apart,
    and a new KPI needs its German name before a page can show it."""
    from analysis.kpis import KPI_TABLE
    from explain.i18n import TEXT

    assert [TEXT[f"kpi.{k.name}"][0] for k in KPI_TABLE] == [k.label for k in KPI_TABLE]
    assert [TEXT[f"kpi_meaning.{k.name}"][0] for k in KPI_TABLE] == [k.meaning for k in KPI_TABLE]


def test_german_date_axes_name_no_english_month():
    """Plotly names months in English ("Nov 8"); a German page's date ticks and hover labels are
    numbers (08.11. / 11.2026), an English page keeps plotly's own."""
    import pandas as pd

    from explain import figures

    daily = pd.DataFrame({"day": pd.date_range("2026-11-01", periods=20, freq="D").repeat(2),
                          "issue": ["retention", "growth"] * 20, "contacts": range(40)})
    trend = pd.DataFrame({"period": pd.date_range("2026-11-01", periods=5, freq="W"), "acceptance_rate": 0.1,
                          "with_outcome": 10, "margin": 5.0, "churn_reached": 0.1, "churn_not_reached": 0.2,
                          "n_reached": 3, "n_not_reached": 4})
    for fig in (figures.timeline(daily, lang="de"), figures.trends(trend, lang="de")):
        stops = [s.value for ax in fig.select_xaxes() for s in ax.tickformatstops]
        assert stops and "%d.%m." in stops and not any("%b" in v or "%B" in v for v in stops)
        assert all("%{x|%d.%m.%Y}" in tr.hovertemplate for tr in fig.data)
    for fig in (figures.timeline(daily, lang="en"), figures.trends(trend, lang="en")):
        assert not any(ax.tickformatstops for ax in fig.select_xaxes())
        assert all("%{x|%Y-%m-%d}" in tr.hovertemplate for tr in fig.data)


def test_large_figures_fit_a_narrow_metric_and_dates_read_in_german(demo_log, monkeypatch):
    """A 10M log's what-if totals ran past their columns (13.436.…); they are shown short in
    each language, the exact figure in the help; the sidebar's dates read 05.12.2026 in German."""
    from streamlit.testing.v1 import AppTest

    from explain.i18n import compact

    assert [compact(x, "de") for x in (13_436_123, 109_640_000, 2.5e9, 219_942, -2.5e6)] == \
        ["13,44 Mio.", "109,6 Mio.", "2,50 Mrd.", "219.942", "-2,50 Mio."]
    assert [compact(x, "en") for x in (13_436_123, 2.5e9, 219_942)] == ["13.44 M", "2.50 bn", "219,942"]
    monkeypatch.setenv("KLARTEXT_DB", str(demo_log))
    for lang, fmt in (("de", "DD.MM.YYYY"), ("en", "YYYY-MM-DD")):
        monkeypatch.setenv("KLARTEXT_LANG", lang)
        at = AppTest.from_file(str(ROOT / "pages" / "overview.py"), default_timeout=90)
        at.run()
        assert not at.exception and at.date_input(key="f_period").proto.format == fmt


def test_the_re_deciding_tabs_read_in_german_down_to_their_tables(demo_log, monkeypatch):
    """The frontier, what-if, sensitivity and off-policy tables showed the code's column names
    (contacts_base, margin_what_if, ci_low …), the sensitivity's cases and the off-policy
    chart, caption and warnings were English on the German page."""
    import json

    at = _german("tradeoffs", demo_log, monkeypatch)

    def labels(frame) -> list[str]:
        return [c["label"] for k, c in json.loads(frame.proto.columns).items() if "label" in c]

    at.session_state["to_tab"] = "Grenzkurve"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    frontier = labels(at.dataframe[-1])
    assert "Erwartete Marge (EUR)" in frontier and "Auf der Grenzkurve (nichts besser in beidem)" in frontier, frontier
    at.session_state["to_tab"] = "Was-wäre-wenn"
    at.run()
    at.toggle(key="sens_on").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    by_issue, by_channel, sens = (labels(d) for d in at.dataframe[-3:])
    assert by_issue[0] == "Thema" and by_channel[0] == "Kanal"
    assert "Erwartete Marge, Strategie (EUR)" in by_issue and "Δ Erwartete Marge (EUR)" in by_issue, by_issue
    assert "Kontakte, Was-wäre-wenn" in by_channel
    assert "Änderung" in sens
    cases = list(at.dataframe[-1].value["change"])
    assert "ohne die Annahmechance" in cases and any(c.startswith("Hebel von ") for c in cases), cases
    assert not any(c.startswith(("drop ", "lever ")) for c in cases), cases
    for names in (frontier, by_issue, by_channel, sens):  # no code names left
        assert not any("_" in n for n in names), names
    at.session_state["to_tab"] = "Schätzung aus dem Protokoll"
    at.run()
    at.toggle(key="ope_on").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert labels(at.dataframe[-1])[:4] == ["Schätzer", "Schätzung je Entscheidung", "95-%-Intervall von",
                                             "95-%-Intervall bis"]
    assert any(" Entscheidungen mit Ergebnis, " in c.value and " erkundet" in c.value for c in at.caption)
    chart = [c for c in at.get("plotly_chart") if "je Entscheidung" in c.proto.spec]
    assert chart and "per decision" not in chart[0].proto.spec
