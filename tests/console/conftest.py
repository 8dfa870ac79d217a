"""The console against the real platform: intake and cases on the embedded Kafka and
FerretDB, each served by uvicorn on a free port in this process (the console calls them over
HTTP, as in production), the console too, and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cases.bootstrap import create_app as cases_app
from cases.settings import CasesSettings
from console.bootstrap import create_app as console_app
from console.settings import ConsoleSettings
from crm_contracts import topics
from crm_devstack.servers import free_port
from crm_runtime.testing import serving, start_group_at_end, unique_suffix
from intake.bootstrap import create_app as intake_app
from intake.settings import IntakeSettings

JWT_SECRET = "console-tests-secret-of-at-least-32-bytes"
ROOT = Path(__file__).resolve().parents[2]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Platform:
    console: str
    intake: str
    cases: str


@pytest.fixture(scope="module")
async def platform(stack) -> AsyncIterator[Platform]:
    suffix = unique_suffix()
    common = {"KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "MONGODB_URL": stack.mongodb_url,
              "CRM_DATABASE_SUFFIX": suffix, "CRM_JWT_SECRET": JWT_SECRET,
              "CRM_OUTBOX_POLL_INTERVAL_S": 0.1, "CRM_TIMER_POLL_INTERVAL_S": 0.5}
    # Groups of their own, starting at the end of the topics: late in a full run the shared
    # topics hold thousands of other tests' events, which would otherwise be worked first.
    for service in ("intake", "cases"):
        await start_group_at_end(stack.bootstrap, f"crm-{service}{suffix}", topics.ALL_TOPICS)
    intake = intake_app(IntakeSettings(**common, CRM_CONSUMER_GROUP=f"crm-intake{suffix}", CRM_INTAKE_SMTP_PORT=0))
    cases = cases_app(CasesSettings(**common, CRM_CONSUMER_GROUP=f"crm-cases{suffix}"))
    async with serving(intake) as intake_url, serving(cases) as cases_url:
        console = console_app(ConsoleSettings(
            CRM_JWT_SECRET=JWT_SECRET, CRM_DEV_MODE=True, CRM_CONSOLE_INTAKE_URL=intake_url,
            CRM_CONSOLE_CASES_URL=cases_url, CRM_CONSOLE_QUEUE_REFRESH_S=1,
            # Nothing listens there: the panels of services not started here show as not there yet.
            CRM_CONSOLE_NOTIFICATIONS_URL=f"http://127.0.0.1:{free_port()}",
            CRM_CONSOLE_SURVEYS_URL=f"http://127.0.0.1:{free_port()}",
            CRM_CONSOLE_REPORTING_URL=f"http://127.0.0.1:{free_port()}"))
        async with serving(console) as console_url:
            yield Platform(console_url, intake_url, cases_url)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on this machine (`make browser` installs Debian's package)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=path, headless=True,
                                           args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        await launched.close()


@pytest.fixture
def screenshots() -> Path | None:
    """Where screenshots go: docs/console/ when CRM_CONSOLE_SCREENSHOTS=1 (to refresh the
    committed ones), else nowhere."""
    if os.environ.get("CRM_CONSOLE_SCREENSHOTS") != "1":
        return None
    target = ROOT / "docs" / "console"
    target.mkdir(parents=True, exist_ok=True)
    return target
