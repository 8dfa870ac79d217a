"""schemathesis against every service's OpenAPI, on the running service: requests that
fit the schema and requests that do not, with a token holding every role and region,
with none and with a forged one. No answer may be a 5xx, and every 4xx is RFC 9457 problem+json
(or, for a page made for people, an HTML page saying why)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import schemathesis
from crm_contracts.regions import KNOWN_REGIONS
from crm_runtime.auth import ROLES, issue_token
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from .conftest import JWT_SECRET, RunningService, report

SESSION_COOKIE = "crm_console_session"  # console.entrypoints.web (not imported: no service's code here)

pytestmark = [pytest.mark.fuzz, pytest.mark.stack]

# Generated requests per operation and generation mode, each sent three times (with a
# token, without, with a forged one); 10,000+ in all.
EXAMPLES = int(os.environ.get("CRM_FUZZ_HTTP_EXAMPLES", "60"))
PROBLEM_JSON = "application/problem+json"
LOCK = threading.Lock()


def auth_variants() -> dict[str, dict[str, str]]:
    token = issue_token(JWT_SECRET, sub="fuzz", roles=list(ROLES), regions=list(KNOWN_REGIONS))
    forged = issue_token("another-secret-of-at-least-thirty-two-bytes", sub="fuzz", roles=list(ROLES),
                         regions=list(KNOWN_REGIONS))
    # The bearer token for the services, the same token as the console's session cookie.
    return {"token": {"Authorization": f"Bearer {token}", "Cookie": f"{SESSION_COOKIE}={token}"}, "no-token": {},
            "forged-token": {"Authorization": f"Bearer {forged}", "Cookie": f"{SESSION_COOKIE}={forged}"}}


def is_page(operation: Any) -> bool:
    """A page for people (the survey's self-service page): it answers an error with an HTML
    page that says why, in the customer's language, rather than with problem+json."""
    responses = operation.definition.raw.get("responses", {})
    return any("text/html" in (answer.get("content") or {}) for answer in responses.values()
               if isinstance(answer, dict))


def problems_in(response: Any, *, page: bool = False) -> str | None:
    """What is wrong with an answer, or None."""
    status = response.status_code
    if status >= 500:
        return f"{status}: {response.text[:300]}"
    if 400 <= status < 500:
        values = {k.lower(): v for k, v in response.headers.items()}.get("content-type") or [""]
        content_type = values[0] if isinstance(values, list) else values
        if page and content_type.startswith("text/html"):
            return None
        if not content_type.startswith(PROBLEM_JSON):
            return f"{status} is {content_type!r}, not problem+json: {response.text[:200]}"
        try:
            body = response.json()
        except ValueError:
            return f"{status}: the problem body is not JSON"
        if body.get("status") != status or not body.get("title"):
            return f"{status}: problem body lacks a matching status or a title: {body}"
    return None


def run_operation(operation: Any, mode: GenerationMode, pool: ThreadPoolExecutor, sessions: list[requests.Session],
                  failures: list[str], counter: dict[str, int]) -> None:
    variants = list(auth_variants().items())
    page = is_page(operation)

    def send(case: Any, variant: str, headers: dict[str, str], session: requests.Session) -> None:
        sent = time.monotonic()
        try:
            response = case.call(session=session, headers=headers, timeout=30)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError, ValueError):
            with LOCK:
                counter["unsendable"] = counter.get("unsendable", 0) + 1  # the client refused to send it
            return
        except requests.RequestException as exc:  # no answer at all is worse than a 500
            failures.append(f"{case.method} {case.formatted_path} [{mode.value}, {variant}]: no answer: {exc}")
            return
        problem = problems_in(response, page=page)
        with LOCK:  # three senders count at once
            counter["requests"] = counter.get("requests", 0) + 1
            counter["call_ms"] = counter.get("call_ms", 0) + int((time.monotonic() - sent) * 1000)
            status_class = f"{response.status_code // 100}xx"
            counter[status_class] = counter.get(status_class, 0) + 1
        if problem and len(failures) < 200:
            failures.append(f"{case.method} {case.formatted_path} [{mode.value}, {variant}]: {problem}\n"
                            f"    {case.as_curl_command(headers=headers)[:600]}")

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        # Each generated request goes out with a token holding every role and region,
        # without one and with a forged one, side by side: generating is the slow part.
        for future in [pool.submit(send, case, variant, headers, session)
                       for (variant, headers), session in zip(variants, sessions, strict=True)]:
            future.result()

    try:
        fuzz()
    except Unsatisfiable:  # nothing to break, e.g. negative requests for GET /health/live
        counter["operations_without_negative_cases"] = counter.get("operations_without_negative_cases", 0) + 1
    except Exception as exc:
        # `fuzz` itself only records answers, so what escapes is schemathesis failing to
        # generate (seen: its negative mutations tripping hypothesis' flakiness check).
        counter["generator_errors"] = counter.get("generator_errors", 0) + 1
        report(f"  schemathesis could not generate {mode.value} cases for {operation.label}: {type(exc).__name__}")


@pytest.mark.timeout(1500)  # cases, the largest API, takes about 7 minutes on 2 shared cores
def test_no_5xx_and_problem_json_on_every_4xx(service: RunningService, fuzz_counts: dict[str, int]):
    schema = schemathesis.openapi.from_dict(service.openapi())
    schema.config.base_url = service.base_url
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"{service.name} publishes no operations"
    failures: list[str] = []
    counter: dict[str, int] = {}
    started = time.monotonic()
    sessions = [requests.Session() for _ in auth_variants()]
    with ThreadPoolExecutor(len(sessions)) as pool:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run_operation(operation, mode, pool, sessions, failures, counter)
    for session in sessions:
        session.close()
    elapsed = time.monotonic() - started
    report(f"{service.name}: {len(operations)} operations, {counter} in {elapsed:.0f}s")
    for key, value in counter.items():
        fuzz_counts[f"http_{key}"] = fuzz_counts.get(f"http_{key}", 0) + value
    fuzz_counts[f"http_{service.name}_requests"] = counter.get("requests", 0)
    assert counter.get("requests", 0) > 0
    assert not failures, f"{len(failures)} bad answers from {service.name}:\n" + "\n".join(failures[:40])
