"""Loaded by a service process a benchmark starts with this folder on PYTHONPATH
(bench.profile.hook_env): counts the process's MongoDB commands by collection and dumps
them every second to $CRM_BENCH_COMMANDS_DUMP. Benchmarks only; never in a deployment."""

from __future__ import annotations

import json
import os
import threading
import time

_path = os.environ.get("CRM_BENCH_COMMANDS_DUMP")
if _path:
    from pymongo import monitoring

    _commands: dict[str, int] = {}
    _statements: dict[str, int] = {}
    _lock = threading.Lock()

    class _Counter(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            name = event.command_name
            target = event.command.get(name)
            key = f"{name} {target if isinstance(target, str) else '-'}"
            field = {"insert": "documents", "update": "updates", "delete": "deletes"}.get(name)
            with _lock:
                _commands[key] = _commands.get(key, 0) + 1
                if field:
                    _statements[key] = _statements.get(key, 0) + (len(event.command.get(field) or ()) or 1)

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    monitoring.register(_Counter())

    def _dump() -> None:
        while True:
            time.sleep(1.0)
            with _lock:
                data = json.dumps({"commands": _commands, "statements": _statements})
            tmp = f"{_path}.tmp"
            with open(tmp, "w") as f:
                f.write(data)
            os.replace(tmp, _path)

    threading.Thread(target=_dump, name="bench-command-dump", daemon=True).start()
