"""Reporting: the KPI read models of the customer centres, rebuilt from the event topics."""
