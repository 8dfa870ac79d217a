"""The console's settings: the shared ones, where the services it calls listen, sign-in."""

from __future__ import annotations

from crm_runtime.settings import ServiceSettings
from pydantic import Field


class ConsoleSettings(ServiceSettings):
    service_name: str = "console"

    intake_url: str = Field("http://127.0.0.1:8001", validation_alias="CRM_CONSOLE_INTAKE_URL")
    cases_url: str = Field("http://127.0.0.1:8002", validation_alias="CRM_CONSOLE_CASES_URL")
    notifications_url: str = Field("http://127.0.0.1:8003", validation_alias="CRM_CONSOLE_NOTIFICATIONS_URL")
    surveys_url: str = Field("http://127.0.0.1:8004", validation_alias="CRM_CONSOLE_SURVEYS_URL")
    reporting_url: str = Field("http://127.0.0.1:8005", validation_alias="CRM_CONSOLE_REPORTING_URL")
    # A page gives up on a service after this long and says which one did not answer.
    service_timeout_s: float = Field(5.0, validation_alias="CRM_CONSOLE_SERVICE_TIMEOUT_S")

    # The dev sign-in's tokens live this long; an OIDC token keeps its own `exp`.
    session_ttl_s: int = Field(8 * 3600, validation_alias="CRM_CONSOLE_SESSION_TTL_S")
    # Behind TLS (every deployment but a laptop) the session cookie is sent over HTTPS only.
    cookie_secure: bool = Field(False, validation_alias="CRM_CONSOLE_COOKIE_SECURE")
    queue_refresh_s: int = Field(15, validation_alias="CRM_CONSOLE_QUEUE_REFRESH_S")

    # Production sign-in: OpenID Connect authorization-code flow with the identity provider.
    oidc_issuer: str | None = Field(None, validation_alias="CRM_CONSOLE_OIDC_ISSUER")
    oidc_client_id: str | None = Field(None, validation_alias="CRM_CONSOLE_OIDC_CLIENT_ID")
    oidc_client_secret: str | None = Field(None, validation_alias="CRM_CONSOLE_OIDC_CLIENT_SECRET")
    oidc_redirect_url: str = Field("http://127.0.0.1:8000/auth/callback",
                                   validation_alias="CRM_CONSOLE_OIDC_REDIRECT_URL")
    oidc_scopes: str = Field("openid profile", validation_alias="CRM_CONSOLE_OIDC_SCOPES")

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)
