"""A plain (non-editable) install works without the repository: the wheel holds the engine, the
log, the CLI and the dashboard, so `klartext demo` then `klartext app` run from anywhere."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import alive, children_of, free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this tree, installed (without its dependencies, which this
    environment has) into a folder of its own; commands run with only that folder on the path."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a copy: setuptools builds in the source tree, whose build/ may hold stale files
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests",
                                                             "artifacts", "benchmarks", "*.duckdb*"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                          "-w", str(tmp / "wheel"), str(src)], capture_output=True, text=True, cwd=tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    wheel = next((tmp / "wheel").glob("klartext-*.whl"))
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp / "site"),
                          str(wheel)], capture_output=True, text=True, cwd=tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    work = tmp / "work"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(tmp / "site"), PYTHONSAFEPATH="1")
    return tmp / "site", work, env


def _klartext(env: dict, cwd: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from klartext.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, env=env, **kw)


def test_the_installed_package_holds_the_dashboard_and_runs_from_anywhere(installed):
    site, work, env = installed
    for module in ("klartext", "decision_log", "klartext.dashboard.pages.common"):
        where = subprocess.run([sys.executable, "-c", f"import {module} as m; print(m.__file__)"],
                               capture_output=True, text=True, cwd=work, env=env)
        assert where.stdout.strip().startswith(str(site)), where.stderr[-2000:]  # not the repository's
    assert (site / "klartext" / "dashboard" / "app.py").exists()
    out = _klartext(env, work, "demo", "--customers", "300", "--no-app", "--db", "d.duckdb")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert (work / "d.duckdb").exists()


@pytest.mark.browser
def test_klartext_app_from_a_plain_install_shows_the_dashboard(installed):
    site, work, env = installed
    if not (work / "d.duckdb").exists():
        pytest.skip("needs the demo log of the test before")
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: install it with `apt-get install -y chromium` (the CI script does).")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from klartext.cli import main; main()", "app", "--db", "d.duckdb",
                             "--port", str(port)], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):  # the first start compiles the trade-off kernels for this installation
            if proc.poll() is not None:
                break
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            proc.kill()
            proc.wait()
        if proc.poll() is not None:
            pytest.fail("the dashboard did not start: " + proc.stdout.read().decode(errors="replace")[-3000:])
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = b.new_page()
            page.goto(url)
            page.get_by_role("heading", name="Overview").first.wait_for(timeout=90_000)
            page.get_by_text("Action mix").first.wait_for(timeout=90_000)
            assert page.locator("[data-testid='stException']").count() == 0
            b.close()
    finally:
        kids = children_of(proc.pid)
        proc.terminate()
        proc.wait(timeout=20)
        deadline = time.monotonic() + 20  # the Streamlit server ends with the command that started it
        while time.monotonic() < deadline and any(alive(k) for k in kids):
            time.sleep(0.2)
        left = [k for k in kids if alive(k)]
        for k in left:
            os.kill(k, 9)
        assert not left, "the dashboard outlived `klartext app`"
