"""pytest fixtures for tests that need the real servers.

`CRM_TEST_BACKEND` picks where they come from:
  local     (default without Docker) the embedded Kafka and FerretDB, on free ports,
            with fresh data in a temporary folder;
  docker    testcontainers: `confluentinc/cp-kafka` and `mongo` images;
  external  `KAFKA_BOOTSTRAP_SERVERS` and `MONGODB_URL` name running servers.
  auto      docker when a Docker engine answers, else local.
The stack is started once per test session, the first time a test asks for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from crm_devstack import servers


@dataclass
class Stack:
    backend: str
    bootstrap: str
    mongodb_url: str
    _kafka: servers.KafkaServer | None = None
    _kafka_proc: subprocess.Popen | None = None
    _cleanup: list = field(default_factory=list)

    @property
    def can_restart_kafka(self) -> bool:
        return self._kafka is not None

    def stop_kafka(self) -> None:
        """Stop the broker (local backend): for tests of what happens while it is away."""
        assert self._kafka_proc is not None, "only the local backend can stop Kafka"
        servers.stop(self._kafka_proc)

    def start_kafka(self) -> None:
        assert self._kafka is not None
        self._kafka_proc = servers.start(self._kafka.command(), self._kafka.data_dir / "server.log")
        # Only the port: callers in an event loop await the broker's answers themselves.
        servers.wait_for_port("127.0.0.1", self._kafka.port, timeout=120, proc=self._kafka_proc)


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _local_stack() -> Stack:
    root = Path(tempfile.mkdtemp(prefix="crm-test-stack-"))
    kafka = servers.KafkaServer(root / "kafka", port=servers.free_port(),
                                controller_port=servers.free_port())
    ferret = servers.FerretDBServer(root / "ferretdb", port=servers.free_port())
    kafka_proc = servers.start(kafka.command(), root / "kafka.log")
    ferret_proc = servers.start(ferret.command(), root / "ferretdb.log")
    stack = Stack("local", kafka.bootstrap, ferret.url, kafka, kafka_proc)

    def cleanup() -> None:
        if stack._kafka_proc is not None:
            servers.stop(stack._kafka_proc)
        servers.stop(ferret_proc)
        shutil.rmtree(root, ignore_errors=True)

    stack._cleanup.append(cleanup)
    try:
        servers.wait_kafka(kafka.bootstrap, timeout=120)
        servers.wait_mongo(ferret.url, timeout=60)
    except Exception:
        for name in ("kafka.log", "ferretdb.log"):
            log = root / name
            if log.exists():
                print(f"--- {name}\n{log.read_text()[-4000:]}")
        cleanup()
        raise
    return stack


def _docker_stack() -> Stack:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.mongodb import MongoDbContainer

    kafka = KafkaContainer("confluentinc/cp-kafka:7.7.1").with_kraft()
    mongo = MongoDbContainer("mongo:7")
    kafka.start()
    mongo.start()
    stack = Stack("docker", kafka.get_bootstrap_server(), mongo.get_connection_url())
    stack._cleanup.extend([kafka.stop, mongo.stop])
    return stack


def start_stack() -> Stack:
    backend = os.environ.get("CRM_TEST_BACKEND", "auto")
    if backend == "auto":
        backend = "docker" if docker_engine_answers() else "local"
    if backend == "external":
        return Stack("external", os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["MONGODB_URL"])
    if backend == "docker":
        return _docker_stack()
    if backend == "local":
        return _local_stack()
    raise pytest.UsageError(f"CRM_TEST_BACKEND must be local, docker, external or auto, not {backend!r}")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The real Kafka and MongoDB-protocol servers for this test session."""
    started = start_stack()
    from crm_contracts.topics import ALL_TOPICS
    from crm_devstack.topics import ensure_topics_sync

    ensure_topics_sync(started.bootstrap, ALL_TOPICS)
    try:
        yield started
    finally:
        for cleanup in reversed(started._cleanup):
            cleanup()
