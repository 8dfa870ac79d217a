from __future__ import annotations

import pytest
from crm_runtime.auth import issue_token
from crm_runtime.testing import running_app, unique_suffix
from intake.bootstrap import create_app
from intake.settings import IntakeSettings

JWT_SECRET = "intake-tests-secret-of-at-least-32-bytes"
FORUM_SECRET = "forum-shared-secret"


def token(roles=("agent",), regions=("shenzhen",)) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(JWT_SECRET, sub="tester", roles=list(roles),
                                                      regions=list(regions))}


@pytest.fixture(scope="module")
def intake_settings(stack, unused_tcp_port_factory=None):
    from crm_devstack.servers import free_port

    return IntakeSettings(
        KAFKA_BOOTSTRAP_SERVERS=stack.bootstrap, MONGODB_URL=stack.mongodb_url,
        CRM_DATABASE_SUFFIX=unique_suffix(), CRM_JWT_SECRET=JWT_SECRET,
        CRM_FORUM_WEBHOOK_SECRET=FORUM_SECRET, CRM_INTAKE_SMTP_PORT=free_port(),
        CRM_ATTACHMENT_MAX_BYTES=200_000, CRM_OUTBOX_POLL_INTERVAL_S=0.1,
    )


@pytest.fixture(scope="module")
async def intake(intake_settings):
    app = create_app(intake_settings)
    async with running_app(app) as client:
        client.app = app
        yield client
