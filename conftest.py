# The real-server fixtures (`stack`) and the event helpers every test suite may use.
pytest_plugins = ["crm_devstack.pytest_plugin", "crm_runtime.testing"]
