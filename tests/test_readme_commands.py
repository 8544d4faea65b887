"""Every command of the README's "What you can do" works as printed, in order, right after the
first README command (issue #17): no placeholder ids, no files that do not exist.

The commands run in a fresh folder that sees the repository's ``examples/`` and ``tests/``
(as a clone's root does) with the installed ``klartext``; the demo decides 3,000 customers
instead of 100,000 and samples are 200 decisions, and the service and the dashboard are
started, asked once, and stopped.  From the demo on, a dashboard on its log stays open in
Chromium (a page has run, so it has read the log) while the other commands run, and shows
the decision `klartext decide` logged at the end: an open dashboard blocks no command.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port, stop

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _commands() -> list[list[str]]:
    block = (ROOT / "README.md").read_text().split("## What you can do", 1)[1].split("```bash\n", 1)[1]
    return [shlex.split(line, comments=True) for line in block.split("```", 1)[0].splitlines() if line.strip()]


def test_the_readme_commands_are_what_this_test_runs():
    cmds = _commands()
    assert cmds[0] == ["source", ".venv/bin/activate"]
    assert all(c[0] in ("klartext", "python", "source") for c in cmds)
    assert not [c for c in cmds if any("..." in a or a.endswith(".yaml") and not (ROOT / a).exists() for a in c)]


def _wait(url: str, proc: subprocess.Popen, seconds: float = 90) -> int:
    end = time.time() + seconds
    while time.time() < end:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer")


def _dashboard_open_in_chromium(work: Path, env: dict, stack: contextlib.ExitStack):
    """`klartext app --db demo.duckdb` with a page open in Chromium that has run (so it read
    the log): the commands after the demo run while a person looks at the dashboard."""
    from playwright.sync_api import sync_playwright

    port = str(free_port())
    proc = subprocess.Popen(["klartext", "app", "--db", "demo.duckdb", "--port", port], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack.callback(stop, proc)
    _wait(f"http://127.0.0.1:{port}/_stcore/health", proc)
    pw = stack.enter_context(sync_playwright())
    browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
    stack.callback(browser.close)
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{port}/")
    page.get_by_text("Action mix").first.wait_for(timeout=120_000)
    return page


def test_every_readme_command_works_as_printed(tmp_path):
    work = tmp_path / "clone"
    work.mkdir()
    for name in ("examples", "tests"):
        (work / name).symlink_to(ROOT / name)
    env = dict(os.environ, HOME=str(tmp_path), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    with contextlib.ExitStack() as stack:
        page = _run_all(work, env, tmp_path, stack)
        page.reload()  # the dashboard, open all along, shows what the commands logged
        page.get_by_text("Action mix").first.wait_for(timeout=120_000)
        assert page.locator("[data-testid='stMetricValue']").first.inner_text() == "3,001"  # the demo's + `decide`
        assert page.locator("[data-testid='stException']").count() == 0


def _run_all(work: Path, env: dict, tmp_path: Path, stack: contextlib.ExitStack):
    page = None
    for cmd in _commands():
        if cmd[0] == "source":
            continue  # what it does (klartext on the PATH) the environment here does
        if cmd[:2] == ["klartext", "demo"]:  # smaller than printed: the test checks that it works, not its size
            if "--customers" in cmd:
                cmd[cmd.index("--customers") + 1] = "3000"
            cmd += ["--explain", "200"]
        if "--sample" in cmd:
            cmd[cmd.index("--sample") + 1] = "200"
        if cmd[0] == "python":
            cmd[0] = sys.executable
        cmd = [str(tmp_path) + a[1:] if a.startswith("~/") else a for a in cmd]  # as the shell expands ~
        if cmd[:2] in (["klartext", "serve"], ["klartext", "app"]):
            port = str(free_port())
            if "--port" in cmd:
                cmd[cmd.index("--port") + 1] = port
            else:
                cmd += ["--port", port]
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                url = f"http://127.0.0.1:{port}/" + ("health" if cmd[1] == "serve" else "")
                assert _wait(url, proc) == 200, cmd
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            continue
        out = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, (shlex.join(cmd), out.stdout[-2000:], out.stderr[-3000:])
        assert "Traceback" not in out.stderr, (shlex.join(cmd), out.stderr[-3000:])
        if page is None and (work / "demo.duckdb").exists():
            page = _dashboard_open_in_chromium(work, env, stack)
    return page
