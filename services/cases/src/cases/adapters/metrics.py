"""Cases' business metrics on `/metrics` (Prometheus counters on the service's registry):
what a centre's manager watches besides the HTTP and Kafka metrics every service has."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class CasesMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.registry = registry
        self.opened = Counter("crm_cases_opened", "Cases opened, by severity proposed at opening.",
                              ["severity"], registry=registry)
        self.breaches = Counter("crm_cases_sla_breaches", "SLA breaches recorded, by clock.",
                                ["clock"], registry=registry)
        self.answered = Counter("crm_cases_contacts_answered",
                                "Consultations, suggestions and praise answered by staff, by kind.",
                                ["kind"], registry=registry)

    def case_opened(self, severity: str) -> None:
        self.opened.labels(severity=severity).inc()

    def sla_breached(self, clock: str) -> None:
        self.breaches.labels(clock=clock).inc()

    def contact_answered(self, kind: str) -> None:
        self.answered.labels(kind=kind).inc()
