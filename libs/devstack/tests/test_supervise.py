"""`make run` names a service that dies: honcho still stops the platform, but the one that
died, how, and its last words are said, and said again once everything has stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PY = sys.executable


def procfile(tmp_path: Path, dying_code: str) -> Path:
    def supervised(name: str, code: str) -> str:
        return f'{name}: exec {PY} -m crm_devstack.cli supervise {name} -- {PY} -c "{code}"'

    path = tmp_path / "Procfile"
    path.write_text("\n".join([
        supervised("steady", "import time; print('steady is up'); time.sleep(120)"),
        supervised("dying", dying_code),
    ]) + "\n")
    return path


def run_honcho(tmp_path: Path, dying_code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRM_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([PY, "-m", "honcho", "-f", str(procfile(tmp_path, dying_code)), "start"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90)


@pytest.mark.parametrize(("code", "why"), [
    ("import sys, time; time.sleep(2); print('UnsafeSettings: CRM_JWT_SECRET is not set'); sys.exit(3)",
     "dying exited with code 3"),
    ("import os, signal, time; time.sleep(2); print('about to be killed'); os.kill(os.getpid(), signal.SIGKILL)",
     "dying was killed by SIGKILL"),
])
def test_the_process_that_died_is_named_with_why_and_its_last_lines(tmp_path, code, why):
    done = run_honcho(tmp_path, code)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"{why} without being asked to stop" in output
    assert "The platform is stopping" in output
    last_words = code.split("print('")[1].split("')")[0]
    assert f"crm:   {last_words}" in output
    # The others were stopped by honcho: no banner for them, their output is kept.
    assert "steady exited" not in output and "steady was killed" not in output
    logs = tmp_path / "data" / "logs"
    assert "steady is up" in (logs / "steady.log").read_text()
    assert last_words in (logs / "dying.log").read_text()

    # What `make run` prints last, once honcho has stopped everything; said once.
    env = {**os.environ, "CRM_DATA_DIR": str(tmp_path / "data")}
    summary = subprocess.run([PY, "-m", "crm_devstack.cli", "stopped"], env=env, capture_output=True, text=True)
    assert why in summary.stderr and "steady" not in summary.stderr
    again = subprocess.run([PY, "-m", "crm_devstack.cli", "stopped"], env=env, capture_output=True, text=True)
    assert again.stderr == ""
