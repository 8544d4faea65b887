"""Every word the governance report and its pages look up exists in both languages (a missing
key is an exception on a page, not a blank)."""

import re
from pathlib import Path

from explain import i18n

ROOT = Path(__file__).resolve().parent.parent


def test_every_report_key_used_is_in_the_catalogue():
    used = set()
    for path in ["explain/report.py", "pages/report.py", "pages/fairness.py", "pages/model_health.py",
                 "pages/common.py"]:
        text = (ROOT / path).read_text()
        used |= {"report." + k for k in re.findall(r"""(?:report\.|[^.\w])t\(\s*f?["']([a-z_]+\.[a-z_.]+)["']""", text)}
        used |= set(re.findall(r"""tr\(\s*["'](report\.[a-z_.]+)["']""", text))
    used = {k for k in used if not k.endswith(("_", "."))}  # a prefix completed at run time
    missing = sorted(k for k in used if k not in i18n.TEXT)
    assert len(used) > 60 and missing == []
