from __future__ import annotations

import uuid

import pytest
from crm_runtime.mongo import create_client


@pytest.fixture
async def db(stack, request):
    """A fresh database on the real MongoDB-protocol server, dropped afterwards."""
    client = create_client(stack.mongodb_url, app_name="test")
    name = f"{request.module.__name__.rsplit('.', 1)[-1]}_{uuid.uuid4().hex[:8]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()
