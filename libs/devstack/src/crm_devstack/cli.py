"""`crm-stack`: the embedded Kafka and FerretDB that `make run` and `make test` use.

    crm-stack provision     fetch Kafka from Maven Central, build FerretDB (cached)
    crm-stack kafka         run the Kafka broker in the foreground (for the Procfile)
    crm-stack ferretdb      run FerretDB in the foreground (for the Procfile)
    crm-stack wait          wait until Kafka and the MongoDB-protocol server answer
    crm-stack topics        create the platform's topics (idempotent)
    crm-stack sms-sink      run the local SMS provider (dysmsapi shape) on :8013
    crm-stack smtp-sink     run the local mail server on :8025 (mail in .data/sinks/mail/)
    crm-stack processes     the Procfile entries `make run` should start

KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL name existing servers: then nothing is
provisioned or started for them.

What `make run` uses to say which process died and why (crm_devstack.supervise):
    crm-stack supervise NAME -- COMMAND...   run one Procfile process
    crm-stack stopped                        print (and forget) why the last run stopped
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from crm_contracts.topics import ALL_TOPICS
from crm_devstack import servers
from crm_devstack.supervise import print_why_stopped, supervise
from crm_devstack.topics import ensure_topics_sync

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_MONGODB_URL = "mongodb://127.0.0.1:27017/"
SERVICES = ("intake", "cases", "notifications", "surveys", "reporting", "console")
SINKS = ("sms-sink", "smtp-sink")  # the outside parties notifications talks to, local stand-ins


def data_dir() -> Path:
    return Path(os.environ.get("CRM_DATA_DIR", servers.project_root() / ".data"))


def external_kafka() -> str | None:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None


def external_mongo() -> str | None:
    return os.environ.get("MONGODB_URL") or None


def _exec(command: list[str]) -> None:
    # Replace this process so the process manager's signals reach the server itself.
    os.execvp(command[0], command)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["supervise"]:
        if len(argv) < 4 or argv[2] != "--":
            sys.exit("usage: crm-stack supervise NAME -- COMMAND...")
        sys.exit(supervise(argv[1], argv[3:], data_dir() / "logs"))
    if argv[:1] == ["stopped"]:
        print_why_stopped(data_dir() / "logs")
        return
    parser = argparse.ArgumentParser(prog="crm-stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["provision", "kafka", "ferretdb", "wait", "topics",
                                            "sms-sink", "smtp-sink", "processes"])
    args = parser.parse_args(argv)

    if args.command == "provision":
        if not external_kafka():
            servers.kafka_libs()
        if not external_mongo():
            servers.ferretdb_binary()
    elif args.command == "kafka":
        _exec(servers.KafkaServer(data_dir() / "kafka").command())
    elif args.command == "ferretdb":
        _exec(servers.FerretDBServer(data_dir() / "ferretdb").command())
    elif args.command == "wait":
        servers.wait_kafka(external_kafka() or DEFAULT_BOOTSTRAP, timeout=180)
        servers.wait_mongo(external_mongo() or DEFAULT_MONGODB_URL, timeout=120)
    elif args.command == "topics":
        created = ensure_topics_sync(external_kafka() or DEFAULT_BOOTSTRAP, ALL_TOPICS)
        print(f"crm-stack: topics ready ({len(created)} created, {len(ALL_TOPICS)} in all)")
    elif args.command == "sms-sink":
        import uvicorn

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        uvicorn.run("crm_devstack.sinks.sms:create_app", factory=True,
                    host=os.environ.get("CRM_SMS_SINK_HOST", "127.0.0.1"),
                    port=int(os.environ.get("CRM_SMS_SINK_PORT", "8013")), access_log=False)
    elif args.command == "smtp-sink":
        from crm_devstack.sinks import smtp

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        smtp.main()
    elif args.command == "processes":
        names = [n for n, external in (("kafka", external_kafka()), ("ferretdb", external_mongo()))
                 if not external]
        print(" ".join([*names, *SINKS, *SERVICES]))


if __name__ == "__main__":
    main()
