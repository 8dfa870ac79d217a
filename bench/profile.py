"""Where the time goes: store commands by collection (a PyMongo command listener, in this
process or, through `bench/hook/sitecustomize.py`, in a service process the benchmark
starts), and the CPU of each process over a phase."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from pymongo import monitoring

from bench.common import Stopwatch, table

HOOK_DIR = Path(__file__).parent / "hook"
WRITES = ("insert", "update", "delete")


class CommandCounter(monitoring.CommandListener):
    """Counts the commands a client sends, by (command, collection), and for bulk writes
    the statements they carry."""

    def __init__(self) -> None:
        self.commands: Counter[tuple[str, str]] = Counter()
        self.statements: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        target = event.command.get(name)
        collection = target if isinstance(target, str) else "-"
        field = {"insert": "documents", "update": "updates", "delete": "deletes"}.get(name)
        with self._lock:
            self.commands[(name, collection)] += 1
            if field:
                self.statements[(name, collection)] += len(event.command.get(field) or ()) or 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def snapshot(self) -> dict[str, Counter[tuple[str, str]]]:
        with self._lock:
            return {"commands": Counter(self.commands), "statements": Counter(self.statements)}


def read_dump(path: Path) -> dict[str, Counter[tuple[str, str]]]:
    """The counts a service process dumped (see hook/sitecustomize.py)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"commands": Counter(), "statements": Counter()}
    return {kind: Counter({tuple(k.split(" ", 1)): v for k, v in raw.get(kind, {}).items()})  # type: ignore[misc]
            for kind in ("commands", "statements")}


def command_table(before: dict[str, Counter[Any]], after: dict[str, Counter[Any]], per: float,
                  what: str, *, skip: tuple[str, ...] = ("hello", "isMaster", "ismaster", "ping", "endSessions")
                  ) -> list[str]:
    """Commands by collection between two snapshots, most first, with their statements."""
    commands = after["commands"] - before["commands"]
    statements = after["statements"] - before["statements"]
    rows = []
    for (name, coll), count in commands.most_common():
        if name in skip:
            continue
        st = statements.get((name, coll))
        rows.append((f"{name} `{coll}`", f"{count:,}", f"{count / per:.2f}", f"{st:,}" if st else ""))
    total = sum(c for (n, _), c in commands.items() if n not in skip)
    rows.append(("all commands", f"{total:,}", f"{total / per:.2f}", ""))
    return table(["store command, collection", "commands", f"per {what}", "statements (bulk writes)"], rows)


def total_commands(before: dict[str, Counter[Any]], after: dict[str, Counter[Any]]) -> int:
    diff = after["commands"] - before["commands"]
    return sum(c for (n, _), c in diff.items() if n not in ("hello", "isMaster", "ismaster", "ping", "endSessions"))


def hook_env(dump_path: Path) -> dict[str, str]:
    """Environment for a service process: count its store commands into `dump_path`."""
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": f"{HOOK_DIR}{os.pathsep}{path}" if path else str(HOOK_DIR),
            "CRM_BENCH_COMMANDS_DUMP": str(dump_path)}


# ------------------------------------------------------------------------- CPU per process

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def find_pid(match: Any) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read()
            except OSError:
                continue
            if match(cmdline, environ):
                return int(entry)
    return None


def machine_busy_s() -> float:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICK


def ferretdb_pid(stack: Any) -> int | None:
    port = stack.mongodb_url.rsplit(":", 1)[1].strip("/")
    return find_pid(lambda c, e: f"--listen-addr=127.0.0.1:{port}\0".encode() in c)


class CpuMeter:
    """CPU seconds used by FerretDB, Kafka, this process and an optional service process
    over a phase, next to the whole machine's (the rest is other work sharing it)."""

    def __init__(self, stack: Any, *, this_process: str = "load generator (this process)",
                 service: tuple[str, Any] | None = None):
        kafka = getattr(stack, "_kafka_proc", None)
        self.service = service  # (label, match(cmdline, environ)): found when it runs
        self.pids: dict[str, int | None] = {}
        if service:
            self.pids[service[0]] = None
        self.pids.update({"FerretDB": ferretdb_pid(stack), "Kafka": kafka.pid if kafka is not None else None})
        self.this_process = this_process
        self.cores: dict[str, float] = {}
        self.start = self._sample()  # a process not running yet starts from 0
        self.clock = Stopwatch()

    def _sample(self) -> dict[str, float]:
        if self.service and self.pids[self.service[0]] is None:
            self.pids[self.service[0]] = find_pid(self.service[1])
        out = {name: proc_cpu_s(pid) or 0.0 for name, pid in self.pids.items() if pid}
        times = os.times()
        out[self.this_process] = times.user + times.system
        out["whole machine"] = machine_busy_s()
        return out

    def rows(self) -> list[str]:
        end, wall = self._sample(), self.clock.s
        used = {name: end[name] - self.start.get(name, 0.0) for name in end}
        self.cores = {name: v / wall for name, v in used.items()}
        ours = sum(v for name, v in used.items() if name != "whole machine")
        used["other work on the machine"] = max(0.0, used["whole machine"] - ours)
        order = [*[n for n in used if n not in ("whole machine", "other work on the machine")],
                 "other work on the machine", "whole machine"]
        return table(["process", "CPU seconds", "cores busy (CPU s ÷ wall s)"],
                     [(name, f"{used[name]:,.1f}", f"{used[name] / wall:.2f}") for name in order]) + [
            "", f"Over {wall:,.1f} s of wall time on {os.cpu_count()} CPUs."]
