"""Bearer-token auth for staff and partner APIs.

Tokens are JWTs with `sub`, `roles` (agent, supervisor, region_admin, auditor, partner)
and `regions` (a list, or ["*"]). HS256 with `CRM_JWT_SECRET` by default; RS256 keys from
`CRM_JWKS_URL` in production. Outside development mode (`CRM_DEV_MODE=1`) a service refuses
to start with a missing, published or short secret (`ServiceSettings.refuse_unsafe`).
`alg: none` and any algorithm outside the configured one are refused. A request for a region
outside the token's list is refused (403) and audited.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crm_runtime.problems import Problem
from crm_runtime.settings import DEV_JWT_SECRET

audit = logging.getLogger("crm.audit")

ROLES = ("agent", "supervisor", "region_admin", "auditor", "partner")


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[str]
    regions: frozenset[str]

    @property
    def all_regions(self) -> bool:
        return "*" in self.regions

    def may_see(self, region: str) -> bool:
        return self.all_regions or region in self.regions

    def has_any_role(self, roles: Iterable[str]) -> bool:
        return bool(self.roles & set(roles))

    def region_filter(self) -> list[str] | None:
        """Regions to restrict a query to; None means every region."""
        return None if self.all_regions else sorted(self.regions)


class TokenVerifier:
    def __init__(self, secret: str, jwks_url: str | None = None, audience: str | None = None):
        self.secret = secret
        self.audience = audience
        self.jwks = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None

    def verify(self, token: str) -> Principal:
        try:
            if self.jwks is not None:
                key: Any = self.jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256"]
            else:
                key, algorithms = self.secret, ["HS256"]
            claims = jwt.decode(
                token, key, algorithms=algorithms, audience=self.audience,
                options={"require": ["sub", "exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Problem(401, "Token expired", "The bearer token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise Problem(401, "Invalid token", f"The bearer token was refused: {exc}.") from exc
        roles = claims.get("roles") or []
        regions = claims.get("regions") or []
        if not isinstance(roles, list) or not isinstance(regions, list):
            raise Problem(401, "Invalid token", "Claims 'roles' and 'regions' must be lists.")
        return Principal(str(claims["sub"]), frozenset(map(str, roles)), frozenset(map(str, regions)))


_bearer = HTTPBearer(auto_error=False)


def _verifier(request: Request) -> TokenVerifier:
    return request.app.state.token_verifier  # type: ignore[no-any-return]


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(401, "Authentication required", "Send 'Authorization: Bearer <token>'.",
                      headers={"WWW-Authenticate": "Bearer"})
    principal = _verifier(request).verify(credentials.credentials)
    request.state.principal = principal
    return principal


def require_roles(*roles: str) -> Callable[..., Any]:
    """A dependency that lets through only tokens carrying one of `roles`."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.has_any_role(roles):
            audit.warning("forbidden role", extra={"sub": principal.subject, "needs": list(roles),
                                                   "has": sorted(principal.roles)})
            raise Problem(403, "Forbidden", f"This action needs one of the roles: {', '.join(roles)}.")
        return principal

    return dependency


def ensure_region(principal: Principal, region: str, *, action: str = "access") -> None:
    """Refuse (403) and audit a request for a region outside the token's list."""
    if not principal.may_see(region):
        audit.warning("region refused", extra={"sub": principal.subject, "region": region,
                                               "action": action, "allowed": sorted(principal.regions)})
        raise Problem(403, "Region not allowed",
                      f"Your token does not cover region '{region}'.", field="region")


def issue_token(secret: str, *, sub: str, roles: list[str], regions: list[str],
                ttl_s: int = 8 * 3600) -> str:
    """A development token (HS256). Production tokens come from the identity provider."""
    now = int(time.time())
    return jwt.encode({"sub": sub, "roles": roles, "regions": regions, "iat": now, "exp": now + ttl_s},
                      secret, algorithm="HS256")


def token_cli(argv: list[str] | None = None) -> None:
    """`make token ROLE=agent REGIONS=shenzhen`: print a development bearer token."""
    import os

    parser = argparse.ArgumentParser(prog="crm-token")
    parser.add_argument("--role", default="agent", help="comma-separated roles")
    parser.add_argument("--regions", default="shenzhen", help="comma-separated regions, or *")
    parser.add_argument("--sub", default="dev-user")
    parser.add_argument("--ttl", type=int, default=8 * 3600)
    args = parser.parse_args(argv)
    secret = os.environ.get("CRM_JWT_SECRET") or DEV_JWT_SECRET
    print(issue_token(secret, sub=args.sub, roles=args.role.split(","),
                      regions=args.regions.split(","), ttl_s=args.ttl))
