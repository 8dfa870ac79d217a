"""Benchmarks of the platform against the embedded stack (Kafka 4.1 + FerretDB), each next
to raw aiokafka measured in the same run: `make bench` = `python -m bench`.

    python -m bench [runtime] [intake-burst] [intake-onboarding] [--quick]

Every run starts its own throw-away stack (`crm_devstack.pytest_plugin.start_stack`), so it
never touches the data of `make run`. See `bench/__main__.py` and `docs/benchmarks.md`.
"""
