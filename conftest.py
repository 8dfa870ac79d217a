# The real-server fixtures (`stack`) and the event helpers every test suite may use.
import os

# Tests run in development mode (the development JWT secret is accepted), as under
# `make test`, so that `.venv/bin/pytest` alone works too; a test of production start-up
# passes CRM_DEV_MODE explicitly.
os.environ.setdefault("CRM_DEV_MODE", "1")

pytest_plugins = ["crm_devstack.pytest_plugin", "crm_runtime.testing"]
