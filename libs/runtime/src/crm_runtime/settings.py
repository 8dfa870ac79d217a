"""Service settings, read from the environment (and `.env`), the same names in every service."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The development secret, and the example values shipped in deploy/: anyone who reads this
# repository can sign a token with them, so only development mode accepts them.
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-in-production"
PUBLIC_JWT_SECRETS = frozenset({DEV_JWT_SECRET, "change-me-to-a-long-random-value"})
MIN_JWT_SECRET_BYTES = 32  # HS256's key should be at least as long as its 256-bit hash


class UnsafeSettings(RuntimeError):
    """The service must not start with these settings; the message says what to set."""


class ServiceSettings(BaseSettings):
    """What every service needs to run; a service subclasses it for its own knobs."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    service_name: str = Field("crm", validation_alias="CRM_SERVICE_NAME")
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    mongodb_url: str = Field("mongodb://127.0.0.1:27017/", validation_alias="MONGODB_URL")
    # Each service has its own database: crm_<service>; tests may add a suffix.
    database_suffix: str = Field("", validation_alias="CRM_DATABASE_SUFFIX")

    # `make run`, `make test` and `make token` set CRM_DEV_MODE=1; nothing else should.
    dev_mode: bool = Field(False, validation_alias="CRM_DEV_MODE")
    jwt_secret: str | None = Field(None, validation_alias="CRM_JWT_SECRET")
    jwks_url: str | None = Field(None, validation_alias="CRM_JWKS_URL")
    jwt_audience: str | None = Field(None, validation_alias="CRM_JWT_AUDIENCE")

    # Delivery: attempts in-process before a message is dead-lettered.
    handler_max_attempts: int = Field(3, validation_alias="CRM_HANDLER_MAX_ATTEMPTS")
    handler_retry_backoff_s: float = Field(0.2, validation_alias="CRM_HANDLER_RETRY_BACKOFF_S")
    outbox_poll_interval_s: float = Field(0.25, validation_alias="CRM_OUTBOX_POLL_INTERVAL_S")
    lease_ttl_s: float = Field(10.0, validation_alias="CRM_LEASE_TTL_S")
    timer_poll_interval_s: float = Field(1.0, validation_alias="CRM_TIMER_POLL_INTERVAL_S")

    max_request_bytes: int = Field(1_000_000, validation_alias="CRM_MAX_REQUEST_BYTES")
    log_level: str = Field("INFO", validation_alias="CRM_LOG_LEVEL")

    @property
    def signing_secret(self) -> str:
        """The HS256 secret tokens are verified with (the public default in development only)."""
        return self.jwt_secret or DEV_JWT_SECRET

    def refuse_unsafe(self) -> None:
        """Outside development mode, refuse a JWT secret that is missing, public or short:
        with it anyone could sign a `region_admin` token for every region."""
        if self.dev_mode or self.jwks_url:  # with a JWKS URL only RS256 tokens are accepted
            return
        secret = self.jwt_secret or ""
        if not secret:
            problem = "is not set"
        elif secret in PUBLIC_JWT_SECRETS:
            problem = "is a value published in this repository"
        elif len(secret.encode()) < MIN_JWT_SECRET_BYTES:
            problem = f"is shorter than {MIN_JWT_SECRET_BYTES} bytes"
        else:
            return
        raise UnsafeSettings(
            f"{self.service_name}: CRM_JWT_SECRET {problem}. Set CRM_JWT_SECRET to a random value of at "
            f"least {MIN_JWT_SECRET_BYTES} bytes (e.g. `openssl rand -base64 48`), or CRM_JWKS_URL to verify "
            "the identity provider's RS256 tokens; CRM_DEV_MODE=1 accepts the development default, "
            "for a development machine only.")

    @property
    def database_name(self) -> str:
        return f"crm_{self.service_name}{self.database_suffix}"

    # One consumer group per service; another group is for a side-by-side copy (tests, replays).
    consumer_group_override: str | None = Field(None, validation_alias="CRM_CONSUMER_GROUP")

    @property
    def consumer_group(self) -> str:
        return self.consumer_group_override or f"crm-{self.service_name}"
