"""The dependencies reporting's entrypoints hand to its use cases, built once in bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from crm_runtime.app import ServiceContext

from reporting.adapters.store import ReadModels
from reporting.settings import ReportingSettings


@dataclass
class ReportingDeps:
    ctx: ServiceContext
    settings: ReportingSettings
    models: ReadModels
