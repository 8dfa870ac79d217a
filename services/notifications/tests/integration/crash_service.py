"""The notifications service in a process of its own, for the crash test: its provider
writes each accepted message to a file (the provider's own record, outside the process)
and, with KILL_AFTER_ACCEPT=1, kills the process with SIGKILL right after accepting,
before the ledger can record it.

    python crash_service.py PORT   (settings from the environment)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import uvicorn
from notifications.adapters.gateways import OutboundMessage, SendResult
from notifications.bootstrap import create_app

DAYTIME = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


class FileProvider:
    async def send(self, message: OutboundMessage) -> SendResult:
        with open(os.environ["PROVIDER_LOG"], "a", encoding="utf-8") as log:  # noqa: ASYNC230 (a test provider)
            log.write(json.dumps({"message_id": message.message_id, "to": message.to, "body": message.body},
                                 ensure_ascii=False) + "\n")
            log.flush()
            os.fsync(log.fileno())
        if os.environ.get("KILL_AFTER_ACCEPT") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return SendResult(accepted=True, provider_ref=message.message_id)

    async def close(self) -> None:
        return None


def gateways(settings) -> dict:
    return {"sms": FileProvider(), "email": FileProvider(), "letter": FileProvider()}


def main(port: int) -> None:
    app = create_app()
    began = time.monotonic()

    def clock() -> datetime:  # a weekday morning, inside the send window
        return DAYTIME + timedelta(seconds=time.monotonic() - began)

    app.state.ctx.app_deps.clock = clock
    app.state.ctx.timers.clock = clock
    asyncio.run(uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).serve())


if __name__ == "__main__":
    main(int(sys.argv[1]))
