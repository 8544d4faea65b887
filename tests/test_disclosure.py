"""Disclosure settings: the customer's own explanation names only the reasons the strategy
lets a customer be told and folds the rest into "other factors" with their share; internal
views show every reason and mark what a customer would see."""

from __future__ import annotations

import re

import pytest

from analysis.governance import _diff
from decision_log.store import DecisionLog
from decisioning.errors import StrategyError
from decisioning.scenarios import retail
from decisioning.strategy import parse_strategy
from explain.api import Explainer
from explain.reasons import discloses
from explain.subject import subject_report
from tests.conftest import returning_customer

TEXT = retail.strategy_path().read_text()


def _with(disclosure: str) -> str:
    start = TEXT.index("\ndisclosure:")
    end = TEXT.index("\n# the governance report")
    return TEXT[:start] + "\n" + disclosure + "\n" + TEXT[end:]


def test_the_demo_discloses_recency_but_not_the_value_estimate():
    s = retail.load_demo_strategy()
    assert s.disclosure.declared and s.disclosure.default == "internal"
    assert s.disclosure.allows("recency_days") and s.disclosure.allows("viewing_matching_category")
    assert not s.disclosure.allows("clv") and not s.disclosure.allows("levers")
    assert not s.disclosure.allows("gender")  # not listed: the default


@pytest.mark.parametrize("section, message", [
    ("disclosure:\n  customer: [clv_estimate]", "'clv_estimate' is not a feature, a context weight or 'levers'"),
    ("disclosure:\n  customer: [clv]\n  internal: [clv]", "'clv' is listed as both customer and internal"),
    ("disclosure:\n  default: secret", "'secret' is not allowed"),
    ("disclosure:\n  public: [clv]", "unknown field 'public'"),
])
def test_wrong_disclosure_settings_are_refused_with_the_line(section, message):
    with pytest.raises(StrategyError) as exc:
        parse_strategy(_with(section), source="s.yaml")
    assert message in str(exc.value) and "s.yaml, line" in str(exc.value)


def test_disclosure_is_part_of_the_version_and_of_the_diff():
    a = retail.load_demo_strategy()
    b = parse_strategy(_with("disclosure:\n  default: internal\n  customer: [recency_days, clv]"))
    assert a.version != b.version
    changes = {c["field"]: (c["before"], c["after"]) for c in _diff(a, b) if c["kind"] == "disclosure"}
    assert changes["disclosure.clv"] == ("internal", "customer")
    assert changes["disclosure.open_order"] == ("customer", "internal")
    assert "disclosure.recency_days" not in changes


def test_the_customer_is_told_only_disclosable_reasons_and_the_share_of_the_rest(demo_log):
    raw, _n = returning_customer(demo_log)
    with DecisionLog.open(demo_log, read_only=True) as log:
        ex = Explainer(log)
        rep = subject_report(log, ex, raw, "en", "test", with_access=False)
        hidden_seen = 0
        for d in rep["decisions"]:
            e = ex.explain(d["decision_id"])
            names = e.action_names()
            for aid in e.chosen:
                every = e.all_reasons[aid]
                positive = [r for r in every if r.effect > 0]
                told = sorted((r for r in positive if discloses(e.strategy, r)), key=lambda r: -r.effect)[:4]
                # what the customer reads is exactly the disclosable reasons, largest first
                assert d["reasons"][names[aid]] == [r.text for r in told]
                hidden = [r for r in positive if not discloses(e.strategy, r)]
                share = sum(r.effect for r in hidden) / sum(r.effect for r in positive) if positive else 0
                assert d.get("other_factors", {}).get(names[aid], 0) == pytest.approx(share, abs=1e-4)
                hidden_seen += bool(hidden)
                for r in hidden:  # an internal factor is never named in a reason
                    assert all(r.text != t for t in d["reasons"][names[aid]])
                # internal views keep every principal reason and mark which a customer is told
                assert e.disclosed(aid) == [discloses(e.strategy, r) for r in e.reasons[aid]]
    assert hidden_seen, "the demo's value estimate should weigh in somewhere"
    flat = " ".join(" ".join(rs) for d in rep["decisions"] for rs in d["reasons"].values())
    assert "Customer lifetime value" not in flat and "lever" not in flat.lower()


def test_without_a_disclosure_section_every_reason_is_named():
    s = parse_strategy(TEXT[:TEXT.index("\ndisclosure:")] + TEXT[TEXT.index("\n# the governance report"):])
    assert not s.disclosure.declared and s.disclosure.allows("clv") and s.disclosure.allows("levers")


def test_the_html_page_says_other_factors_and_the_replay_page_marks_what_a_customer_sees(demo_log, monkeypatch):
    from test_app import page

    from explain.subject import to_html

    raw, _n = returning_customer(demo_log)
    with DecisionLog.open(demo_log, read_only=True) as log:
        rep = subject_report(log, Explainer(log), raw, "de", "test", with_access=False)
    if any(d.get("other_factors") for d in rep["decisions"]):
        assert "Weitere Faktoren, die das Unternehmen nicht im Einzelnen offenlegt" in to_html(rep)
    at = page("pages/replay.py", demo_log, monkeypatch)
    marks = [re.sub(r"\\(.)", r"\1", m.value) for m in at.markdown if m.value.startswith("- ")]
    assert marks and all(m.endswith(("*a customer is told this*", "*internal only*")) for m in marks), marks
