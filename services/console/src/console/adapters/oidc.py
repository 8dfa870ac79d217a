"""Production sign-in: OpenID Connect's authorization-code flow with the identity provider.

The provider's access token is what the services verify (RS256 via their CRM_JWKS_URL), so
the console keeps that token in its session cookie exactly as it keeps a development one.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

import httpx


class OidcError(Exception):
    pass


class OidcClient:
    def __init__(self, issuer: str, client_id: str, client_secret: str | None, redirect_url: str, scopes: str,
                 timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None):
        self.issuer = issuer.rstrip("/")
        self.client_id, self.client_secret = client_id, client_secret
        self.redirect_url, self.scopes = redirect_url, scopes
        self.http = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self._config: dict[str, Any] | None = None

    async def config(self) -> dict[str, Any]:
        if self._config is None:
            response = await self.http.get(f"{self.issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            self._config = response.json()
        return self._config

    @staticmethod
    def new_state() -> str:
        return secrets.token_urlsafe(24)

    async def authorization_url(self, state: str) -> str:
        endpoint = (await self.config())["authorization_endpoint"]
        query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_url,
                           "scope": self.scopes, "state": state})
        return f"{endpoint}?{query}"

    async def exchange(self, code: str) -> str:
        """The access token for an authorization code."""
        endpoint = (await self.config())["token_endpoint"]
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_url,
                "client_id": self.client_id}
        try:
            if self.client_secret:
                response = await self.http.post(endpoint, data=data, auth=(self.client_id, self.client_secret))
            else:  # a public client
                response = await self.http.post(endpoint, data=data)
            response.raise_for_status()
            token = response.json().get("access_token")
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError("the identity provider refused the code") from exc
        if not isinstance(token, str) or not token:
            raise OidcError("the identity provider sent no access token")
        return token

    async def aclose(self) -> None:
        await self.http.aclose()
