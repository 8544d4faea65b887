"""Dashboard: each page runs and shows its heading, interactions work, figures are tested on their data."""

import re
import threading
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from decision_log.store import DecisionLog
from decisioning.scenarios.retail import load_demo_strategy
from explain import figures

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clear_caches():
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()


def page(path, db, monkeypatch):
    monkeypatch.setenv("KLARTEXT_DB", str(db))
    at = AppTest.from_file(str(ROOT / path), default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


# -- every page runs ------------------------------------------------------------------------------


def test_overview_page_and_channel_filter(demo_log, monkeypatch):
    at = page("pages/overview.py", demo_log, monkeypatch)
    assert at.title[0].value == "Overview"
    assert at.metric[0].value == "2,000"
    # lower churn among the reached is good news: the delta starts with "-", so the browser
    # draws a green arrow down (a "−" sign read as a rise in red)
    from decision_log import queries

    churn = next(m for m in at.metric if m.label == "Churn, reached")
    with DecisionLog.open(demo_log, read_only=True) as log:
        k = queries.kpis(log.con.cursor(), queries.Filters())
    assert churn.proto.delta.startswith("-" if k["churn_reached"] < k["churn_not_reached"] else "+")
    with DecisionLog.open(demo_log, read_only=True) as log:
        n_email = log.con.execute("SELECT count(*) FROM decisions WHERE channel = 'email'").fetchall()[0][0]
    ok(at.multiselect(key="f_channels").set_value(["email"]).run())
    assert at.metric[0].value == f"{n_email:,}"
    ok(at.radio(key="mix_by").set_value("channel").run())
    assert list(at.dataframe[0].value["key"]) == ["email"]


def test_replay_page_verifies_and_explains_the_newest_decision(demo_log, monkeypatch):
    at = page("pages/replay.py", demo_log, monkeypatch)
    assert at.title[0].value == "Decision replay"
    with DecisionLog.open(demo_log, read_only=True) as log:
        newest = log.con.execute("SELECT decision_id FROM decisions ORDER BY seq DESC LIMIT 1").fetchall()[0][0]
    assert at.header[0].value == f"Decision {newest}"
    assert at.success[0].value.startswith("Replay verified")


def test_replay_page_why_not_switches_and_finds_by_id(demo_log, monkeypatch):
    with DecisionLog.open(demo_log, read_only=True) as log:
        did, other = log.con.execute(
            "SELECT decision_id, action_id FROM candidates WHERE stage = 'suitability' "
            "AND decision_id IN (SELECT decision_id FROM decisions WHERE chosen_action IS NOT NULL) LIMIT 1"
        ).fetchall()[0]
        rule, stored = log.con.execute("SELECT rule, reason FROM candidates WHERE decision_id = ? AND action_id = ?",
                                       [did, other]).fetchall()[0]
        dec = log.con.execute("SELECT decision_id, customer, inputs FROM decisions WHERE decision_id = ?", [did]).df()
        cand = pd.DataFrame({"decision_id": [did], "action_id": [other], "rule": [rule], "reason": [stored]})
        log.reveal(dec, cand)  # the stored reason holds the rule's text; the values come from the sealed inputs
        reason = cand["reason"].iloc[0]
    assert "=" not in stored.split(": ", 1)[1] and "=" in reason
    at = page("pages/replay.py", demo_log, monkeypatch)
    ok(at.text_input(key="q_id").set_value(did[:20]).run())
    assert at.header[0].value == f"Decision {did}"
    assert not [b for b in at.selectbox if b.key == "whynot"]  # the why-not tab has not run
    at.session_state["rp_tab"] = "Why not …?"  # only the chosen tab runs
    ok(at.run())
    ok(at.selectbox(key="whynot").set_value(other).run())
    # data is escaped for Markdown (shown as text): read it back without the escapes
    summary = re.sub(r"\\(.)", r"\1", [m.value for m in at.markdown if m.value.startswith("**")
                                         and not m.value.startswith("**Chosen:**")][0])
    name = next(a.name for a in load_demo_strategy().actions if a.id == other)  # the name people know it by
    assert f"“{name}” was removed at the suitability stage by the rule “{rule}”" in summary and reason in summary


def test_replay_page_unknown_id_gives_a_clear_message(demo_log, monkeypatch):
    at = page("pages/replay.py", demo_log, monkeypatch)
    ok(at.text_input(key="q_id").set_value("ZZZNOPE").run())
    assert at.warning[0].value.startswith("No decision matches ZZZNOPE in this period")


def test_customer_history_hashes_a_raw_id(demo_log, monkeypatch):
    at = page("pages/customer.py", demo_log, monkeypatch)
    assert at.title[0].value == "Customer history"
    from tests.conftest import returning_customer

    cust, n = returning_customer(demo_log)
    assert n >= 3  # demo customers come back: a history of several decisions
    ok(at.text_input(key="cust").set_value(cust).run())
    assert at.metric[0].value == str(n)
    ok(at.text_input(key="cust").set_value("nobody").run())
    assert at.warning[0].value.startswith("No decision about 'nobody' in this log")


def test_customer_page_records_the_view_and_makes_the_customers_explanation(demo_copy, monkeypatch):
    from decision_log.store import DecisionLog
    from tests.conftest import returning_customer

    cust, n = returning_customer(demo_copy)
    with DecisionLog.open(demo_copy, read_only=True) as log, log.register(read_only=True) as reg:
        before = 0 if reg is None else len(reg.access_log())  # other tests' views of the shared demo log
    at = page("pages/customer.py", demo_copy, monkeypatch)
    ok(at.text_input(key="cust").set_value(cust).run())
    ok(at.text_input(key="cust").set_value(cust).run())  # a rerun of the same view is one view
    ok(at.button(key="subject_make").click().run())
    assert any(b.label == "Download the explanation" for b in at.get("download_button"))
    with DecisionLog.open(demo_copy, read_only=True) as log, log.register(read_only=True) as reg:
        pseudo = str(log.pseudonymise([cust])[0])
        rows = reg.access_log()
    rows = rows.iloc[:len(rows) - before]  # newest first: the rows this test added
    assert list(rows["what"]) == ["subject_export", "customer"]
    assert set(rows["via"]) == {"dashboard"} and set(rows["customer"]) == {pseudo} and cust not in rows.to_string()


def test_customer_history_shows_one_row_per_decision_with_a_link_to_its_replay(demo_copy, monkeypatch):
    # a decision with two reported outcomes (two actions) was shown as two rows
    import pandas as pd

    with DecisionLog.open(demo_copy) as log:
        did, customer, ts = log.con.execute(
            "SELECT decision_id, customer, epoch_us(ts) FROM decisions WHERE len(chosen_actions) >= 1 "
            "ORDER BY seq LIMIT 1").fetchall()[0]
        before = log.con.execute("SELECT count(*) FILTER (WHERE outcome = 'accepted'), coalesce(sum(revenue), 0) "
                                 "FROM outcomes WHERE decision_id = ?", [did]).fetchall()[0]
        actions = [r[0] for r in log.con.execute(
            "SELECT action_id FROM candidates c WHERE decision_id = ? AND NOT EXISTS (SELECT 1 FROM outcomes o "
            "WHERE o.decision_id = c.decision_id AND o.action_id = c.action_id) ORDER BY action_id LIMIT 2",
            [did]).fetchall()]
        log.append_outcomes(pd.DataFrame({"decision_id": [did, did], "action_id": actions,
                                          "outcome": ["accepted", "rejected"], "revenue": [30.0, 0.0],
                                          "margin": [12.0, 0.0], "churned": [False, False],
                                          "ts_us": [ts + 1_000_000, ts + 2_000_000]}))
    at = page("pages/customer.py", demo_copy, monkeypatch)
    ok(at.text_input(key="cust").set_value(customer).run())
    hist = at.dataframe[0].value
    assert list(hist["decision_id"]).count(did) == 1
    row = hist[hist["decision_id"] == did].iloc[0]
    assert f"accepted ({actions[0]}), rejected ({actions[1]})" in row["outcome"]  # in time order
    assert row["accepted"] == before[0] + 1 and row["revenue"] == pytest.approx(before[1] + 30.0)
    assert row["replay"] == f"replay?decision={did}"
    rp = AppTest.from_file(str(ROOT / "pages/replay.py"), default_timeout=90)
    rp.query_params["decision"] = did  # the link opens the decision in Decision replay
    ok(rp.run())
    assert rp.header[0].value == f"Decision {did}"


def test_funnel_page_drills_down_from_a_rule(demo_log, monkeypatch):
    at = page("pages/funnel.py", demo_log, monkeypatch)
    assert at.title[0].value == "Funnel & policies"
    ok(at.selectbox(key="rule_pick").set_value("no_credit_in_arrears").run())
    examples = at.dataframe[2].value
    assert len(examples) >= 1
    # examples of a rule show the rule's own text: the customers' values stay sealed on this aggregate page
    assert all(r == "suitability/no_credit_in_arrears: arrears_days > 0" for r in examples["reason"])


def test_explanations_page_shows_stored_importance(demo_log, monkeypatch):
    at = page("pages/explanations.py", demo_log, monkeypatch)
    assert at.title[0].value == "Explanations"
    ok(at.selectbox(key="ex_seg").set_value("channel").run())
    imp = at.dataframe[0].value
    assert set(imp.columns) >= {"action_id", "segment", "feature", "mean_abs"}
    assert (imp["mean_abs"] >= 0).all() and imp["segment"].nunique() >= 1


def test_tradeoffs_models_and_integrity_pages(demo_log, monkeypatch):
    at = page("pages/tradeoffs.py", demo_log, monkeypatch)
    assert at.title[0].value == "KPI trade-offs"
    assert set(at.dataframe[0].value["key"]) <= {"growth", "retention", "loyalty", "service", "payment"}
    at = page("pages/models.py", demo_log, monkeypatch)
    assert at.title[0].value == "Models" and at.metric[0].value == "29"
    at = page("pages/integrity.py", demo_log, monkeypatch)
    ok(at.button(key="verify").click().run())
    assert at.success[0].value == "Verified: all 2,000 decisions and their candidates are unchanged."


def test_the_logged_factors_are_read_in_the_background_once_a_page_has_shown_the_log(demo_copy, monkeypatch):
    """On 10M decisions the factors take seconds to read: the dashboard starts reading them as
    soon as a page has shown the log, on a thread of its own, and the What-if finds them read;
    the file is let go once the read is done (a writer gets in)."""
    from analysis import tradeoff as T
    from pages import common

    threads = []
    real = T.load_factors
    monkeypatch.setattr(T, "load_factors", lambda *a, **k: threads.append(threading.current_thread().name)
                        or real(*a, **k))
    at = page("app.py", demo_copy, monkeypatch)  # the Overview
    reads = common._factor_reads()
    assert len(reads) == 1, reads
    [fut] = reads.values()
    fut.result(timeout=60)
    assert threads == ["klartext-factors_0"], threads
    common._FACTOR_POOL.submit(lambda: None).result(timeout=60)  # the models are loaded behind the read
    with DecisionLog.open(demo_copy):  # neither the page runs nor the read hold the file now
        pass
    at.switch_page("pages/tradeoffs.py")
    ok(at.run())
    tab(at, "What-if")
    assert [m for m in at.metric if m.label == "Decisions whose first action changes"]
    assert threads == ["klartext-factors_0"], threads  # read once, before anyone asked


def test_the_models_are_loaded_in_the_background_once_a_page_has_shown_the_log(demo_copy, monkeypatch):
    """The first view of a decision loaded each of its actions' models while its user waited
    (on 10M decisions 1.2 s for nine models): the dashboard loads the newest ones behind the
    factor read, on the same thread, and the Decision replay loads none of them again."""
    from decision_log import store
    from decisioning import models
    from decisioning.cache import BoundedCache
    from pages import common

    monkeypatch.setattr(store, "_BUILT", BoundedCache(64))  # none built by an earlier test
    loads = []
    real = models.load_artifact
    monkeypatch.setattr(models, "load_artifact", lambda blob, aid: loads.append((threading.current_thread().name, aid))
                        or real(blob, aid))
    at = page("app.py", demo_copy, monkeypatch)  # the Overview
    common._FACTOR_POOL.submit(lambda: None).result(timeout=120)  # queued behind the factor read and the models
    with DecisionLog.open(demo_copy, read_only=True) as lg:
        actions = lg.load_strategy(lg.latest_strategy_version()).action_ids
    assert sorted(a for _, a in loads) == sorted(actions) and {t for t, _ in loads} == {"klartext-factors_0"}, loads
    at.switch_page("pages/replay.py")
    ok(at.run())
    did = at.dataframe[0].value["decision_id"].iloc[5]
    ok(at.text_input(key="q_id").set_value(did).run())
    assert at.header[0].value == f"Decision {did}" and at.success[0].value.startswith("Replay verified")
    assert len(loads) == len(actions), loads  # re-scored and explained with the models loaded ahead


def test_integrity_page_names_a_changed_decision(demo_copy, monkeypatch):
    con = duckdb.connect(str(demo_copy))
    did = con.execute("SELECT decision_id FROM decisions WHERE seq = 77").fetchall()[0][0]
    con.execute("UPDATE candidates SET reason = 'edited' WHERE decision_id = ? AND rule IS NOT NULL "
                "AND action_id = (SELECT min(action_id) FROM candidates WHERE decision_id = ? AND rule IS NOT NULL)",
                [did, did])
    con.close()
    at = page("pages/integrity.py", demo_copy, monkeypatch)
    ok(at.button(key="verify").click().run())
    assert at.error[0].value.startswith(f"Verification FAILED at decision `{did}` (position 77)")


def test_missing_log_shows_the_command_that_creates_one(tmp_path, monkeypatch):
    for p in ("pages/overview.py", "pages/replay.py", "pages/explanations.py"):
        at = page(p, tmp_path / "none.duckdb", monkeypatch)
        assert f"klartext demo --db {tmp_path / 'none.duckdb'}" in at.info[0].value


def test_empty_log_says_how_to_fill_it(tmp_path, monkeypatch):
    DecisionLog.open(tmp_path / "empty.duckdb").close()
    at = page("pages/funnel.py", tmp_path / "empty.duckdb", monkeypatch)
    assert "holds no decisions yet" in at.info[0].value


def test_app_routes_to_the_overview(demo_log, monkeypatch):
    at = page("app.py", demo_log, monkeypatch)
    assert at.title[0].value == "Overview"


# -- figure builders ------------------------------------------------------------------------------


def test_stage_funnel_draws_reach_and_rows_in_the_flows_order():
    fun = pd.DataFrame({"stage": ["eligibility", "ranked", "selected"],
                        "label": ["Eligibility", "Ranked, not shown", "Selected"],
                        "stage_group": ["Policies", "Arbitration", "Output"], "stage_order": [100, 700, 800],
                        "rows": [50, 7, 5], "interactions_stopping": [9, 5, 5],
                        "interactions_reaching": [10, 6, 5], "reaching_share": [1.0, 0.6, 0.5]})
    fig = figures.stage_funnel(fun)
    reach, rows = fig.data
    assert list(reach.y) == ["Eligibility", "Ranked, not shown", "Selected"]
    assert list(reach.x) == [10, 6, 5] and list(reach.text) == ["100.0%", "60.0%", "50.0%"]
    assert list(rows.x) == [50, 7, 5] and rows.marker.color[-1] == "#2e7d32"


def test_decision_grid_marks_where_each_action_stopped():
    cands = pd.DataFrame({"action_id": ["a", "b", "c"], "stage": ["selected", "suitability", "ranked"],
                          "reason": [None, "suitability/x: y=1 > 0", None]})
    hm = figures.decision_grid(cands).data[0]
    assert list(hm.z[0]) == [1.0] * 6 + [2.0]
    assert list(hm.z[1])[:4] == [1.0, 1.0, 0.0, None] and hm.text[1][2] == "suitability/x: y=1 > 0"
    assert hm.z[2][-1] == 1.0 and hm.text[2][-1] == "ranked, not shown"


def test_timeline_stacks_issues_and_marks_strategy_changes():
    daily = pd.DataFrame({"day": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-01-02"]),
                          "issue": ["growth", "service", "growth"], "contacts": [3, 4, 5]})
    changes = pd.DataFrame({"version": ["abcdef1234567890"], "first_used": pd.to_datetime(["2026-01-02"], utc=True)})
    fig = figures.timeline(daily, changes)
    assert [t.name for t in fig.data] == ["growth", "service"] and list(fig.data[0].y) == [3, 5]
    assert fig.layout.annotations[0].text == "strategy abcdef12"


def test_tradeoff_scatter_and_calibration():
    df = pd.DataFrame({"key": ["growth", "retention"], "contacts": [100, 25], "margin": [500.0, 50.0],
                       "margin_per_contact": [5.0, 2.0], "churn_reached": [0.15, 0.08]})
    fig = figures.tradeoff_scatter(df, 0.18)
    assert list(fig.data[0].text) == ["growth", "retention"]
    assert fig.layout.shapes[0].y0 == 0.18
    cal = figures.calibration([{"bin": 0, "n": 10, "mean_predicted": 0.05, "observed_rate": 0.04}])
    assert list(cal.data[1].x) == [0.05] and list(cal.data[1].y) == [0.04]


def tab(at, label):
    """Open a tab of the trade-offs page (its tabs run only when chosen)."""
    at.session_state["to_tab"] = label
    return ok(at.run())


def test_tradeoffs_what_if_changes_the_winners(demo_log, monkeypatch):
    at = tab(page("pages/tradeoffs.py", demo_log, monkeypatch), "What-if")
    changed = [m for m in at.metric if m.label == "Decisions whose first action changes"][0]
    assert changed.value == "0.00%"
    ok(at.number_input(key="wi_rw").set_value(3.0).run())
    changed = [m for m in at.metric if m.label == "Decisions whose first action changes"][0]
    assert float(changed.value.rstrip("%")) > 0
    ok(at.toggle(key="sens_on").set_value(True).run())
    tab(at, "Off-policy estimate")
    ok(at.toggle(key="ope_on").set_value(True).run())
    est = at.dataframe[-1].value
    assert list(est["estimator"]) == ["IPS", "SNIPS", "DR"]
    assert (est["ci_low"] <= est["value"]).all() and (est["value"] <= est["ci_high"]).all()


def test_the_measured_tab_shows_without_reading_the_logged_factors(demo_log, monkeypatch):
    """The re-deciding tabs read every selected decision's factors (seconds on a 10M log): the
    page opens on the measured figures without them, and reads them once such a tab is chosen."""
    import streamlit as st

    from analysis import tradeoff as T

    st.cache_resource.clear()  # another test may have read them already
    calls = []
    real = T.load_factors
    monkeypatch.setattr(T, "load_factors", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = page("pages/tradeoffs.py", demo_log, monkeypatch)
    assert at.dataframe and not calls and not [m for m in at.metric if m.label.startswith("Decisions whose")]
    tab(at, "Frontier")
    assert calls and at.get("plotly_chart")


def test_frontier_and_interval_figures():
    sw = pd.DataFrame({"lambda": [0.0, 0.5, 1.0], "margin_weight": [2.0, 1.0, 0.0], "retention_weight": [0.0, 0.5, 1.0],
                       "margin": [10.0, 8.0, 3.0], "retention": [1.0, 5.0, 6.0], "incentive_spend": [1.0, 2.0, 3.0],
                       "changed": [0.2, 0.0, 0.4], "current": [False, True, False], "efficient": [True, True, True]})
    fig = figures.frontier(sw)
    assert list(fig.data[0].x) == [1.0, 5.0, 6.0] and list(fig.data[1].y) == [8.0]
    est = pd.DataFrame({"estimator": ["ips", "snips"], "value": [0.2, 0.21], "ci_low": [0.15, 0.18],
                        "ci_high": [0.26, 0.25]})
    fig = figures.intervals(est, "value", "ci_low", "ci_high", "estimator", reference=0.19)
    assert list(fig.data[0].error_x.array) == pytest.approx([0.06, 0.04])
    assert list(fig.data[0].error_x.arrayminus) == pytest.approx([0.05, 0.03])


def test_the_re_deciding_tabs_honour_the_channel_filter(demo_log, monkeypatch):
    # with Channels = email, Frontier, What-if and Off-policy once re-decided every decision
    from analysis import tradeoff as T

    at = tab(page("pages/tradeoffs.py", demo_log, monkeypatch), "What-if")
    ok(at.multiselect(key="f_channels").set_value(["email"]).run())
    ok(at.number_input(key="wi_rw").set_value(3.0).run())
    with DecisionLog.open(demo_log, read_only=True) as log:
        fx = T.load_factors(log)
        email = fx.subset(np.flatnonzero(fx.channel == fx.strategy.channel_ids.index("email")))
        s = fx.strategy
        expected = T.what_if(email, T.Setting(s.margin_weight, 3.0, {}))["changed"]
    assert 0 < len(email) < len(fx)
    notes = [c.value for c in at.caption if c.value.startswith("These figures re-decide")]
    assert notes and all(f"the {len(email):,} of {len(fx):,} logged decisions" in n for n in notes), notes
    changed = [m for m in at.metric if m.label == "Decisions whose first action changes"][0]
    assert changed.value == f"{expected:.2%}"
    tab(at, "Off-policy estimate")
    assert at.number_input(key="wi_rw").value == 3.0  # the what-if's setting is the target still
    ok(at.toggle(key="ope_on").set_value(True).run())
    assert list(at.dataframe[-1].value["estimator"]) == ["IPS", "SNIPS", "DR"]


def test_the_board_sees_trends_with_strategy_changes_at_their_first_decision(demo_log, monkeypatch):
    from decision_log import queries

    with duckdb.connect(str(demo_log), read_only=True) as con:
        changes = queries.strategy_changes(con)
        first, registered = con.execute("SELECT min(d.ts), any_value(s.first_used) FROM decisions d JOIN strategies s "
                                        "ON s.version = d.strategy_version").fetchall()[0]
        weekly = queries.trends(con, queries.Filters(), "week")
        accepted, with_outcome = con.execute(
            "SELECT count(*) FILTER (WHERE o.outcome = 'accepted'), count(o.outcome) FROM candidates c JOIN outcomes o "
            "ON o.decision_id = c.decision_id AND o.action_id = c.action_id WHERE c.selected").fetchall()[0]
    # the demo registers its strategy after deciding a month of history: the marker sits at the first decision
    assert registered > first and pd.Timestamp(changes["first_used"].iloc[0]) == pd.Timestamp(first)
    assert weekly["decisions"].sum() == 2000 and len(weekly) >= 4
    assert weekly["with_outcome"].sum() == with_outcome
    assert abs((weekly["acceptance_rate"] * weekly["with_outcome"]).sum() - accepted) < 1e-6
    assert weekly["churn_reached"].between(0, 1).all() and weekly["churn_not_reached"].between(0, 1).all()
    at = page("pages/overview.py", demo_log, monkeypatch)
    fig = [c for c in at.get("plotly_chart") if '"Acceptance rate"' in c.proto.spec][0]
    import json

    spec = json.loads(fig.proto.spec)
    assert [t["name"] for t in spec["data"]] == ["Acceptance rate", "Margin", "churn, reached", "churn, not reached"]
    assert pd.Timestamp(spec["layout"]["shapes"][0]["x0"]) == pd.Timestamp(first).tz_localize(None) or \
        pd.Timestamp(spec["layout"]["shapes"][0]["x0"]) == pd.Timestamp(first)
    assert spec["data"][0]["mode"] == "lines+markers"  # a few weeks: each point marked
    from explain import figures

    three_years = pd.DataFrame({"period": pd.date_range("2024-01-01", periods=1100, freq="D")}).assign(
        **{c: 0.1 for c in ("acceptance_rate", "margin", "churn_reached", "churn_not_reached")},
        **{c: 100 for c in ("with_outcome", "n_reached", "n_not_reached")})
    modes = [t.mode for t in figures.trends(three_years).data if t.type == "scatter"]
    assert modes == ["lines"] * 3  # per day over three years: no 3,300 markers for the browser to draw


def test_a_long_period_is_shown_per_week_or_month_with_the_same_totals():
    """Three years of days are a thousand bars per issue: the Overview shows a period of more
    than three months per week and one of more than two years per month, summing exactly."""
    from decision_log import queries

    def days(n):
        d = pd.date_range("2024-01-01", periods=n, freq="D").date
        return pd.DataFrame({"day": np.repeat(d, 2), "issue": ["growth", "retention"] * n,
                             "contacts": np.arange(2 * n), "accepted": np.arange(2 * n) % 3,
                             "margin": np.arange(2 * n) * 0.5})

    assert [queries.bar_grain(days(n)) for n in (28, 92, 93, 731, 732, 1120)] == \
        ["day", "day", "week", "week", "month", "month"]
    long = days(1120)
    for grain in ("week", "month"):
        out = queries.per_period(long, grain)
        for c in ("contacts", "accepted", "margin"):
            assert out[c].sum() == pytest.approx(long[c].sum())
        starts = pd.to_datetime(out["day"])
        assert (starts.dt.weekday == 0).all() if grain == "week" else (starts.dt.day == 1).all()
        assert len(out) == 2 * (160 if grain == "week" else 37) and not out.duplicated(["day", "issue"]).any()
    assert queries.per_period(days(28), "day") is not None and len(queries.per_period(days(28), "day")) == 56


def test_the_dashboard_and_the_log_start_without_the_model_libraries():
    """scikit-learn, skops and SHAP take 1.5 s to import: a fresh dashboard's first page (and
    any command) that loads no model does without them; they are imported where a model is
    first loaded or explained."""
    import subprocess
    import sys

    code = ("import sys; import pages.common, decision_log.store, explain.api, klartext.cli; "
            "print(sorted(m for m in ('sklearn', 'skops', 'shap', 'scipy.special') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
