"""What the console's pages receive: settings, the services' HTTP clients, the token verifier."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from crm_runtime.auth import TokenVerifier

from console.adapters.oidc import OidcClient
from console.adapters.services import Services
from console.settings import ConsoleSettings


@dataclass
class ConsoleDeps:
    settings: ConsoleSettings
    services: Services
    verifier: TokenVerifier
    oidc: OidcClient | None
    now: Callable[[], datetime]
