"""Docs are tested: every CLI command and every strategy field in use is documented."""

from pathlib import Path

import yaml

from conftest import TINY_YAML
from decisioning.scenarios.retail import strategy_path
from klartext.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
STRATEGY_DOC = (ROOT / "docs" / "strategy.md").read_text()


def test_readme_starts_with_the_two_commands():
    blocks = README.split("```bash\n")
    assert blocks[1].startswith("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/klartext demo")
    assert blocks[2].startswith("./scripts/test\n")
    assert ".ci/run" not in blocks[2] and "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_every_cli_command_is_in_the_readme():
    for name in main.commands:
        assert f"klartext {name}" in README, name


NAMED = ("features", "channels", "levers", "max_contacts", "per_channel", "params", "issues", "groups", "actions",
         "attributes")


def _keys(node):
    """Field names used in a strategy document (not the user's own names of features, channels, ...)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            if k in ("levers", "per_channel", "params") and isinstance(v, dict):
                yield from (x for x in v if k == "levers")  # below are user names and numbers only
            elif k in NAMED and isinstance(v, dict):
                for spec in v.values():  # keys here are user-chosen names: skip them, read their specs
                    yield from _keys(spec)
            else:
                yield from _keys(v)
    elif isinstance(node, list):
        for v in node:
            yield from _keys(v)


def test_every_strategy_field_in_use_is_documented():
    used = set(_keys(yaml.safe_load(strategy_path().read_text()))) | set(_keys(yaml.safe_load(TINY_YAML)))
    missing = sorted(k for k in used if f"`{k}`" not in STRATEGY_DOC)
    assert missing == []


def test_dashboard_pages_are_routed():
    app = (ROOT / "app.py").read_text()
    for page in sorted((ROOT / "pages").glob("*.py")):
        if page.name not in ("common.py", "__init__.py"):
            assert f'"pages/{page.name}"' in app, page.name
