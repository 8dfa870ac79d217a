"""Signed links to the self-service page: `/s/<token>`.

A token names the survey, a nonce and an expiry, signed with HMAC-SHA256. The nonce is
stored on the survey: issuing a new link replaces it (the old link stops working), and a
completed survey refuses its link, so each link answers at most once. Nothing personal is
in a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime


class TokenRefused(ValueError):
    def __init__(self, reason: str):  # forged | expired | used
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenClaims:
    survey_id: str
    nonce: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_nonce() -> str:
    return secrets.token_urlsafe(12)


def derived_nonce(secret: str, survey_id: str) -> str:
    """A first nonce that a rerun computes again (a campaign writes its surveys in batches
    and a rerun must write the same links); as unguessable as a random one without the secret."""
    return _b64(hmac.new(secret.encode(), f"nonce:{survey_id}".encode(), hashlib.sha256).digest()[:12])


def _signature(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()[:18])


def sign(secret: str, survey_id: str, nonce: str, expires_at: datetime) -> str:
    payload = f"{_b64(survey_id.encode())}.{nonce}.{int(expires_at.timestamp())}"
    return f"{payload}.{_signature(secret, payload)}"


def verify(secret: str, token: str, now: datetime) -> TokenClaims:
    """The token's claims, or `TokenRefused` (forged or expired). Whether it was used is
    the survey's to say."""
    parts = token.split(".")
    if len(parts) != 4:
        raise TokenRefused("forged")
    payload, signature = ".".join(parts[:3]), parts[3]
    if not hmac.compare_digest(_signature(secret, payload), signature):
        raise TokenRefused("forged")
    try:
        survey_id = _unb64(parts[0]).decode()
        expires_at = datetime.fromtimestamp(int(parts[2]), UTC)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenRefused("forged") from exc
    if now >= expires_at:
        raise TokenRefused("expired")
    return TokenClaims(survey_id, parts[1], expires_at)
