"""Strategy files: the demo file is valid; every mistake is reported with file, line, field and fix."""

import numpy as np
import pytest

from conftest import TINY_YAML
from decisioning.errors import StrategyError
from decisioning.scenarios import retail
from decisioning.scenarios.retail import load_demo_strategy, strategy_path
from decisioning.strategy import load_strategy, parse_strategy


def test_demo_strategy_meets_the_scenario_brief():
    s = load_demo_strategy()
    assert len(s.actions) >= 25
    assert len({a.issue for a in s.actions}) >= 5
    assert len(s.channels) >= 5
    voucher_levels = {a.incentive.amount for a in s.actions if a.incentive and a.incentive.kind == "voucher"}
    assert {5, 10, 20} <= voucher_levels
    assert any(a.incentive is None and a.offer == "winback" for a in s.actions)  # the no-voucher level
    assert {a.incentive.kind for a in s.actions if a.incentive} == {"voucher", "bonus_points", "payment_terms"}


def test_version_is_the_content_hash():
    a = parse_strategy(TINY_YAML)
    b = parse_strategy(TINY_YAML + "\n# a comment changes the file, so the version\n")
    assert a.version != b.version and len(a.version) == 16
    assert parse_strategy(TINY_YAML).version == a.version


def error_of(text: str) -> StrategyError:
    with pytest.raises(StrategyError) as info:
        parse_strategy(text, source="tiny.yaml")
    return info.value


@pytest.mark.parametrize("old,new,message,hint", [
    ("channels: [web, email], margin: 20", "channels: [web, fax], margin: 20",
     "tiny.yaml, line 15, actions[0].channels[1]: 'fax' is not a declared channel.",
     "Declared channels: email, web."),
    ("exclude_if: arrears_days > 0", "exclude_if: arrears > 0",
     "tiny.yaml, line 38, policies.suitability[0].exclude_if: expression 'arrears > 0' reads unknown field 'arrears'.",
     "Declare it under 'features' or use one of: age, arrears_days, channel, clv, email_consent, holds_card, "
     "recency_days, segment."),
    ("applies_to: {actions: [pay_later]}", "applies_to: {actions: [pay_soon]}",
     "tiny.yaml, line 39, policies.suitability[0].applies_to.actions[0]: 'pay_soon' is not a known action.",
     "Known actions: newsletter, pay_later, reactivate_0, reactivate_20, store_card."),
    ("margin: 15,", "margin: lots,",
     "tiny.yaml, line 17, actions[1].margin: expected a finite number, got 'lots'.", "Write a number such as 12.5."),
    ("email: {direction: outbound, top_n: 1}", "email: {direction: sideways, top_n: 1}",
     "tiny.yaml, line 5, channels.email.direction: 'sideways' is not allowed.", "Allowed values: inbound, outbound."),
    ("kpi: {margin_weight: 1.0, retention_weight: 0.5, clv_feature: clv}\n", "",
     "tiny.yaml, kpi: this field is required but missing.", "Add 'kpi:' at the top level of the file."),
    ("retention_effect: 0.02,\n     holds", "retention: 0.02,\n     holds",
     "tiny.yaml, line 15, actions[0].retention: unknown field 'retention'.",
     "Allowed fields here: id, name, issue, group, offer, channels, margin, order_value, cost, retention_effect, "
     "incentive, holds_feature, description, predicts, marketing."),
    ("  web:   {direction: inbound, top_n: 2}", "  web:   {direction: inbound, top_n: 2",
     "tiny.yaml, line 5: not valid YAML: expected ',' or '}', but got ':'.",
     "Check the indentation and quoting around that line."),
])
def test_errors_name_file_line_field_value_and_fix(old, new, message, hint):
    assert old in TINY_YAML
    err = error_of(TINY_YAML.replace(old, new))
    assert err.message == message
    assert err.hint == hint


@pytest.mark.parametrize("expr,message", [
    ("__import__('os').system('ls')",
     "tiny.yaml, line 38, policies.suitability[0].exclude_if: function \"__import__('os').system\" is not allowed "
     "in expression \"__import__('os').system('ls')\"."),
    ("arrears_days.real > 0",
     "tiny.yaml, line 38, policies.suitability[0].exclude_if: Attribute is not allowed in expression "
     "'arrears_days.real > 0'."),
    ("arrears_days >",
     "tiny.yaml, line 38, policies.suitability[0].exclude_if: cannot parse expression 'arrears_days >': invalid syntax."),
])
def test_unsafe_or_broken_rules_are_refused(expr, message):
    err = error_of(TINY_YAML.replace("exclude_if: arrears_days > 0", f'exclude_if: "{expr}"'))
    assert err.message == message


def test_missing_file():
    with pytest.raises(StrategyError) as info:
        load_strategy("no/such/strategy.yaml")
    assert info.value.message == "Strategy file 'no/such/strategy.yaml' does not exist."


def test_shipped_strategy_file_is_readable_yaml():
    assert strategy_path().read_text().startswith("# Modehaus Lindner")


def test_a_strategy_says_what_its_models_predict_and_reasons_follow():
    from explain.reasons import candidate_reasons

    base = retail.load_demo_strategy()
    text = base.text.replace("models:\n", "models:\n  predicts: churn_risk\n", 1)
    s = parse_strategy(text)
    assert {a.predicts for a in s.actions} == {"churn_risk"} and {a.predicts for a in base.actions} == {"acceptance"}
    a = s.actions[0]
    feats = {f.name: (f.values[0] if f.type == "category" else False if f.type == "boolean" else 1)
             for f in s.features}
    names = list(s.model_features)
    phi = np.linspace(0.5, -0.5, len(names))
    churn = candidate_reasons(s, a.id, feats, s.channel_ids[0], tuple(names), phi, 1.0)
    accept = candidate_reasons(base, a.id, feats, s.channel_ids[0], tuple(names), phi, 1.0)
    assert any("raised the predicted risk of churning" in r.text for r in churn)
    assert not any("chance of accepting" in r.text for r in churn)
    assert any("raised the chance of accepting" in r.text for r in accept)
    with pytest.raises(StrategyError) as err:
        parse_strategy(base.text.replace("models:\n", "models:\n  predicts: happiness\n", 1))
    assert "'happiness' is not allowed" in str(err.value) and "churn_risk" in str(err.value)
