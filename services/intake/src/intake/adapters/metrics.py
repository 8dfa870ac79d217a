"""Intake's business metrics on the service's /metrics (Prometheus): what the customer
centre watches, next to the technical series of the shared runtime."""

from __future__ import annotations

from crm_contracts.events.intake import ContactReceived
from prometheus_client import CollectorRegistry, Counter


class PrometheusMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.received = Counter(
            "crm_intake_contacts_received_total", "Contacts recorded, per channel, region and kind hint",
            ["channel", "region", "kind_hint"], registry=registry)
        self.unclassified = Counter(
            "crm_intake_contacts_unclassified_total",
            "Contacts whose kind hint found no keyword (confidence 0): staff classify them", ["channel"],
            registry=registry)
        self.duplicates = Counter(
            "crm_intake_duplicates_folded_total",
            "Contacts marked as a near-identical repeat of the same customer's earlier one", ["channel"],
            registry=registry)
        self.provisional = Counter(
            "crm_intake_provisional_customers_total",
            "Callers the customer directory did not know, given a provisional customer id", ["channel"],
            registry=registry)
        self.letters_refused = Counter(
            "crm_intake_letters_refused_total", "E-mailed letters bounced to the sender, per reason",
            ["reason"], registry=registry)

    def contact_recorded(self, contact: ContactReceived, *, new_provisional_customer: bool) -> None:
        channel = str(contact.channel)
        self.received.labels(channel, contact.region, str(contact.kind_hint)).inc()
        if contact.kind_confidence == 0:
            self.unclassified.labels(channel).inc()
        if contact.duplicate_of:
            self.duplicates.labels(channel).inc()
        if new_provisional_customer:
            self.provisional.labels(channel).inc()

    def letter_refused(self, reason: str) -> None:
        self.letters_refused.labels(reason).inc()
