"""`crm-stack supervise NAME -- COMMAND...`: run one process of `make run` so that its death
is explained.

honcho stops every process when one exits, and says little about which one and why among
the interleaved logs. This wrapper runs COMMAND, passes its output through (honcho prefixes
it with NAME) and keeps a copy in `.data/logs/NAME.log`. If COMMAND exits without having
been asked to stop, the wrapper prints a banner naming it, its exit code or signal and the
last lines of its output, and leaves the same text in `.data/logs/stopped.txt`, which
`make run` prints again once everything has stopped.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

TAIL_LINES = 15


def _why(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def banner(name: str, returncode: int, tail: list[str], log_path: Path) -> str:
    with contextlib.suppress(ValueError):
        log_path = log_path.resolve().relative_to(Path.cwd())
    lines = [
        "",
        f"crm: *** {name} {_why(returncode)} without being asked to stop. ***",
        "crm: *** The platform is stopping: `make run` stops every process when one exits. ***",
        f"crm: last lines of {name}'s output (all of it: {log_path}):",
        *(f"crm:   {line}" for line in tail),
        "crm: fix the cause above, then `make run` again (the data in .data/ is kept).",
        "",
    ]
    return "\n".join(lines)


def supervise(name: str, command: list[str], logs_dir: Path) -> int:
    logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = logs_dir / f"{name}.log"
    stopped_path = logs_dir / "stopped.txt"
    asked_to_stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        # honcho signals the whole process group, the command included: only remember it.
        asked_to_stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines as they happen, not at exit
    try:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    except OSError as exc:
        text = banner(name, 127, [f"cannot start {command[0]}: {exc}"], log_path)
        print(text, file=sys.stderr, flush=True)
        stopped_path.write_text(text + "\n")
        return 127
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    assert child.stdout is not None
    with open(log_path, "wb") as log:
        for raw in child.stdout:
            sys.stdout.buffer.write(raw)
            sys.stdout.buffer.flush()
            log.write(raw)
            log.flush()
            tail.append(raw.decode(errors="replace").rstrip())
    returncode = child.wait()
    if not asked_to_stop.is_set():
        text = banner(name, returncode, list(tail), log_path)
        print(text, file=sys.stderr, flush=True)
        with open(stopped_path, "a") as stopped:  # the first to die is the cause; others follow
            stopped.write(text + "\n")
    return returncode if returncode >= 0 else 128 - returncode


def print_why_stopped(logs_dir: Path) -> None:
    """Repeat the banners of the last run, once: `make run` calls it after honcho returns."""
    stopped = logs_dir / "stopped.txt"
    if stopped.exists():
        print(stopped.read_text(), end="", file=sys.stderr)
        stopped.unlink()
