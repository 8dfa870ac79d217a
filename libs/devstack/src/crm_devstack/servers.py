"""Provision, start and await the embedded servers: Apache Kafka (KRaft) and FerretDB.

Nothing here is a mock: Kafka runs on the JVM from the official `kafka_2.13`
artifacts fetched from Maven Central, FerretDB is built with `go build` from the
small wrapper module in `deploy/local/ferretdb`. Downloads and builds are cached
under `~/.cache/crm-platform`, data lives wherever the caller says (`.data/` for
`make run`, a temporary folder for tests).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.1.1"
JAVA_HEAP = os.environ.get("CRM_KAFKA_HEAP", "-Xms256m -Xmx768m")


class MissingPrerequisite(SystemExit):
    """A tool the embedded stack needs is not installed; the message says how to get it."""


INSTALL_HINTS = {
    "java": "install a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)",
    "mvn": "install Maven (Debian: apt-get install maven)",
    "go": "install Go 1.22+ (https://go.dev/doc/install, or Debian: apt-get install golang)",
}


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise MissingPrerequisite(
            f"crm-stack: '{tool}' is missing: {INSTALL_HINTS[tool]}; "
            "or set KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL to use existing servers"
        )
    return path


def project_root() -> Path:
    env = os.environ.get("CRM_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "deploy" / "local" / "kafka" / "pom.xml").exists():
            return candidate
    # Installed in the workspace venv: fall back to the source checkout this file lives in.
    return Path(__file__).resolve().parents[4]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "crm-platform"
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------- provisioning


def kafka_libs() -> Path:
    """The Kafka broker's jars, fetched once with Maven and cached."""
    libs = cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return libs
    require("java")
    mvn = require("mvn")
    pom = project_root() / "deploy" / "local" / "kafka" / "pom.xml"
    staging = libs.with_name(f"libs.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    print(f"crm-stack: fetching Apache Kafka {KAFKA_VERSION} from Maven Central ...", flush=True)
    subprocess.run(
        [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-Dkafka.version={KAFKA_VERSION}",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ],
        check=True,
    )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)  # atomic: a half-finished download is never mistaken for a cache hit
    return libs


def ferretdb_binary() -> Path:
    """FerretDB built from deploy/local/ferretdb, cached per source digest so any change rebuilds."""
    module = project_root() / "deploy" / "local" / "ferretdb"
    sources = [module / "go.mod", module / "go.sum", *sorted(module.glob("*.go"))]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    binary = cache_dir() / f"ferretdb-{digest}" / "ferretdb"
    if binary.exists():
        return binary
    go = require("go")
    binary.parent.mkdir(parents=True, exist_ok=True)
    staging = binary.with_name(f"ferretdb.partial-{os.getpid()}")
    print("crm-stack: building FerretDB 1.24 with go build (first time only) ...", flush=True)
    env = {**os.environ, "CGO_ENABLED": "0"}
    subprocess.run([go, "build", "-o", str(staging), "."], cwd=module, check=True, env=env)
    staging.rename(binary)
    return binary


# ---------------------------------------------------------------------------- servers


@dataclass
class KafkaServer:
    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    partitions: int = int(os.environ.get("CRM_TOPIC_PARTITIONS", "6"))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.data_dir / 'logs'}",
                    f"num.partitions={self.partitions}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    # Big enough for a 2 MB poison message to arrive and be dead-lettered.
                    "message.max.bytes=4194304",
                    "",
                ]
            )
        )
        return props

    def command(self) -> list[str]:
        """Format the storage on first start, then return the broker's command line."""
        java = require("java")
        libs = kafka_libs()
        props = self._properties()
        classpath = f"{libs}/*"
        log4j = Path(__file__).with_name("log4j2.xml")
        jvm = [
            java, *JAVA_HEAP.split(), "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={self.data_dir}",
            "-cp", classpath,
        ]
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            subprocess.run(
                # "--cluster-id=": a random id may begin with "-", which must not read as a flag.
                [*jvm, "kafka.tools.StorageTool", "format", "--ignore-formatted",
                 f"--cluster-id={cluster_id}", "-c", str(props)],
                check=True, stdout=subprocess.DEVNULL,
            )
        return [*jvm, "kafka.Kafka", str(props)]


@dataclass
class FerretDBServer:
    data_dir: Path
    port: int = 27017

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        binary = ferretdb_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            str(binary), f"--listen-addr=127.0.0.1:{self.port}",
            # A commit survives the server being killed, not the machine losing power (docs/reliability.md).
            f"--sqlite-url=file:{self.data_dir}/?_pragma=synchronous(normal)", "--log-level=error",
        ]


def start(command: list[str], log_path: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    # A new session so a test can kill the server and everything it spawned.
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with code {proc.returncode}")
        if port_open(host, port):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def wait_kafka(bootstrap: str, timeout: float = 90.0) -> None:
    """Wait until the broker answers metadata requests (a listening port is not enough)."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    wait_for_port(host, int(port), timeout)  # quietly, before the client starts logging

    async def probe() -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            try:
                await admin.start()
                await admin.list_topics()
                return
            except Exception as exc:
                last = exc
                await asyncio.sleep(0.5)
            finally:
                await admin.close()
        raise TimeoutError(f"Kafka at {bootstrap} not ready after {timeout:.0f}s: {last!r}")

    asyncio.run(probe())


def wait_mongo(url: str, timeout: float = 60.0) -> None:
    from pymongo import MongoClient
    from pymongo.uri_parser import parse_uri

    for host, port in parse_uri(url)["nodelist"]:
        wait_for_port(host, port, timeout)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        client: MongoClient = MongoClient(url, serverSelectionTimeoutMS=1000)
        try:
            client.admin.command("ping")
            return
        except Exception as exc:
            last = exc
            time.sleep(0.3)
        finally:
            client.close()
    raise TimeoutError(f"MongoDB protocol server at {url} not ready after {timeout:.0f}s: {last!r}")


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def eprint(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)
