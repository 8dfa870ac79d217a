"""The standing fuzz harness (`make fuzz`): every service, running against the real Kafka
and FerretDB, is sent generated HTTP requests (schemathesis) and hostile CloudEvents
(hypothesis). Not part of `make test`: it is collected only when CRM_FUZZ=1.

A new service joins by adding its name to SERVICES: `uvicorn --factory
<name>.bootstrap:create_app` and the settings class that function takes are all the
harness needs. CRM_FUZZ_SERVICES=console,cases fuzzes only those.

The console calls the services over HTTP, so it is fuzzed in front of all five of them
(BACKENDS), signed in by its session cookie; it publishes no OpenAPI document (pages for
people), so the harness takes its app's own.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import typing
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from crm_devstack.servers import free_port
from crm_runtime.settings import ServiceSettings
from crm_runtime.testing import unique_suffix

SERVICES = ["intake", "cases", "notifications", "surveys", "reporting", "console"]
SELECTED = [s for s in os.environ.get("CRM_FUZZ_SERVICES", "").split(",") if s in SERVICES] or SERVICES
# Services a service calls over HTTP, started before it, and the setting naming each one's URL.
BACKENDS = {"console": {name: f"CRM_CONSOLE_{name.upper()}_URL"
                        for name in ["intake", "cases", "notifications", "surveys", "reporting"]}}

JWT_SECRET = "fuzz-secret-of-at-least-thirty-two-bytes"

# Hidden unless asked for, so `make test` (which collects tests/) never runs it.
collect_ignore_glob = [] if os.environ.get("CRM_FUZZ") == "1" else ["test_*.py"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: the fuzz harness (make fuzz), outside make test")


@dataclass
class RunningService:
    name: str
    base_url: str
    settings: ServiceSettings

    def openapi(self) -> dict[str, Any]:
        """The service's OpenAPI document; for one that publishes none (the console), its app's."""
        answer = requests.get(f"{self.base_url}/openapi.json", timeout=30)
        if answer.status_code == 200:
            return answer.json()  # type: ignore[no-any-return]
        app = importlib.import_module(f"{self.name}.bootstrap").create_app(self.settings)
        return app.openapi()  # type: ignore[no-any-return]

    def subscribed_topics(self) -> set[str]:
        """The topics the service really consumes, from its AsyncAPI document (a service
        being built may not yet consume everything the registry says it will; the console
        consumes none)."""
        answer = requests.get(f"{self.base_url}/asyncapi.json", timeout=30)
        if answer.status_code == 404:
            return set()
        document = answer.json()
        return {channel["address"] for channel in document.get("channels", {}).values()
                if any(name.startswith("Subscribe") for name in channel.get("messages", {}))}


def settings_class(name: str) -> type[ServiceSettings]:
    """The settings class `<name>.bootstrap.create_app` takes (from its type hints)."""
    bootstrap = importlib.import_module(f"{name}.bootstrap")
    hint = typing.get_type_hints(bootstrap.create_app, vars(bootstrap)).get("settings")
    found = next((a for a in typing.get_args(hint) if isinstance(a, type) and issubclass(a, ServiceSettings)), hint)
    assert isinstance(found, type) and issubclass(found, ServiceSettings), name
    return found


def fuzz_environment(settings_cls: type[ServiceSettings], stack: Any) -> dict[str, str]:
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "MONGODB_URL": stack.mongodb_url,
        "CRM_DATABASE_SUFFIX": unique_suffix(), "CRM_JWT_SECRET": JWT_SECRET,
        "CRM_HANDLER_RETRY_BACKOFF_S": "0.01", "CRM_OUTBOX_POLL_INTERVAL_S": "0.2", "CRM_LOG_LEVEL": "ERROR",
    }
    # Every port a service listens on besides HTTP (intake's SMTP) gets a free one: several
    # worktrees fuzz on one machine.
    for name, field in settings_cls.model_fields.items():
        if name.endswith("_port") and field.annotation is int:
            values[str(field.validation_alias or name).upper()] = str(free_port())
    return values


@contextmanager
def started(name: str, stack: Any, tmp_path_factory: pytest.TempPathFactory,
            extra_env: dict[str, str] | None = None) -> Iterator[RunningService]:
    """The service as `make run` starts it (uvicorn, its own process, so generating requests
    and answering them use both cores), on the real Kafka and FerretDB."""
    settings_cls = settings_class(name)
    env = {**fuzz_environment(settings_cls, stack), **(extra_env or {})}
    port = free_port()
    log_path = tmp_path_factory.mktemp(name) / "service.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", f"{name}.bootstrap:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning", "--no-access-log"],
            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"{name} exited: {log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{name} did not start: {log_path.read_text()[-3000:]}"
            try:
                if requests.get(f"{base_url}/health/live", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        yield RunningService(name, base_url, settings_cls(**env))  # type: ignore[arg-type]
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session", params=SELECTED)
def service(request: pytest.FixtureRequest, stack: Any, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[RunningService]:
    name = request.param
    with ExitStack() as backends:
        urls = {variable: backends.enter_context(started(backend, stack, tmp_path_factory)).base_url
                for backend, variable in BACKENDS.get(name, {}).items()}
        with started(name, stack, tmp_path_factory, urls) as running:
            yield running


REPORT: list[str] = []
TOTALS: dict[str, int] = {}
STARTED = time.monotonic()


@pytest.fixture(scope="session")
def fuzz_counts() -> dict[str, int]:
    """What the run did, summed over services; printed at the end for docs/reliability.md."""
    return TOTALS


def report(line: str) -> None:
    REPORT.append(line)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT and not TOTALS:
        return
    terminalreporter.section("fuzz")
    for line in REPORT:
        terminalreporter.write_line(line)
    terminalreporter.write_line("totals: " + ", ".join(f"{k}={v}" for k, v in sorted(TOTALS.items())))
    terminalreporter.write_line(f"wall time: {time.monotonic() - STARTED:.0f}s")
