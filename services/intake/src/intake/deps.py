"""The dependencies intake's entrypoints hand to its use cases, built once in bootstrap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crm_runtime.app import ServiceContext

from intake.adapters.attachments import AttachmentStore
from intake.adapters.store import MongoContactStore, MongoDirectory
from intake.domain.kind_hint import KindKeywords
from intake.settings import IntakeSettings


@dataclass
class IntakeDeps:
    ctx: ServiceContext
    settings: IntakeSettings
    contacts: MongoContactStore
    directory: MongoDirectory
    attachments: AttachmentStore
    keywords_for: Callable[[str], KindKeywords]
    known_region: Callable[[str], bool]
