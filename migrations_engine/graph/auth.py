"""App-only tokens from the Microsoft login service through msal, one msal app per tenant authority."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
import msal
import requests
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator

from migrations_engine.graph.config import GRAPH_SCOPE, GraphConfig
from migrations_engine.graph.errors import ConsentMissing, GraphHostNotAllowed, TokenError

# AADSTS codes that mean "this tenant has not (or no longer) consented to the app".
_NO_CONSENT_CODES = {65001, 700016, 7000229, 500011, 7000112}

_apps: dict[tuple[str, ...], msal.ConfidentialClientApplication] = {}
_apps_lock = threading.Lock()


@dataclass(frozen=True)
class AppToken:
    """An access token and the claims the console cares about."""

    access_token: str
    tenant_id: str
    app_id: str
    roles: tuple[str, ...]
    expires_at: float = 0.0  # epoch seconds (the token's `exp`)

    def __repr__(self) -> str:  # never print the token itself
        return f"AppToken(tenant_id={self.tenant_id!r}, roles={len(self.roles)})"

    def wrong_tenant(self, tenant_id: object) -> str | None:
        """None when the token was issued for `tenant_id` (GUIDs compare case-insensitively); otherwise
        the sentence saying whose it is. Every caller that acts on a token asks this first."""
        if self.tenant_id and self.tenant_id.lower() == str(tenant_id).lower():
            return None
        return f"The token is for tenant {self.tenant_id or '(none)'}, not {tenant_id}."


def _http_session(config: GraphConfig) -> requests.Session:
    session = requests.Session()
    # REQUESTS_CA_BUNDLE and friends would silently override `verify`: ignore the environment.
    session.trust_env = False
    session.verify = config.verify
    session.request = functools.partial(  # type: ignore[method-assign]
        session.request, timeout=(config.connect_timeout, config.read_timeout)
    )
    return session


def _msal_app(config: GraphConfig, tenant: str) -> msal.ConfidentialClientApplication:
    """One msal app (and so one token cache) per tenant authority, shared by every loop in the process."""
    # The key holds everything the app was built from: a cached app keeps its credential and its HTTP
    # session (with the CA bundle), so a changed setting, or another login service that took over the
    # same host and port, must get an app of its own. The credential enters only as a digest, in memory.
    credential_digest = hashlib.sha256(
        "\0".join(
            (
                config.private_key_pem,
                config.public_certificate_pem,
                config.certificate_thumbprint,
                config.client_secret or "",
            )
        ).encode()
    ).hexdigest()
    key = (config.authority(tenant), config.client_id, credential_digest, str(config.verify))
    with _apps_lock:
        app = _apps.get(key)
        if app is None:
            if config.private_key_pem and config.public_certificate_pem:
                # msal signs with the certificate's SHA-256 thumbprint and sends the chain (x5c).
                credential: object = {
                    "private_key": config.private_key_pem,
                    "public_certificate": config.public_certificate_pem,
                }
            elif config.private_key_pem:
                credential = {
                    "private_key": config.private_key_pem,
                    "thumbprint": config.certificate_thumbprint,
                }
            else:
                credential = config.client_secret
            app = msal.ConfidentialClientApplication(
                config.client_id,
                authority=config.authority(tenant),
                client_credential=credential,
                # The authority host is a setting (the simulator stands in for Microsoft in demos and
                # tests), so msal must not ask Microsoft's instance-discovery endpoint about it.
                instance_discovery=False,
                http_client=_http_session(config),
            )
            _apps[key] = app
    return app


def forget_tokens(config: GraphConfig, tenant: str) -> None:
    """Drop the cached msal app (and its tokens) of a tenant, so the next token comes from the login
    service: consent may just have changed. (msal refuses `force_refresh` for client credentials.)"""
    authority = config.authority(tenant)
    with _apps_lock:
        for key in [key for key in _apps if key[0] == authority]:
            del _apps[key]


def decode_claims(access_token: str) -> dict:
    """The token's claims. Signature checking is Graph's job; the console only reads `tid` and `roles`."""
    return jwt.decode(access_token, options={"verify_signature": False})


def acquire_app_token(config: GraphConfig, tenant: str) -> AppToken:
    """A client-credentials token for `tenant` (GUID or domain), from msal's cache when still valid."""
    try:
        result = _msal_app(config, tenant).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    except ValueError as exc:
        # msal raises ValueError when the tenant's OpenID configuration cannot be fetched (unknown tenant).
        raise TokenError(tenant, "invalid_tenant", str(exc)) from exc
    except requests.RequestException as exc:
        raise TokenError(tenant, "login_unreachable", f"{type(exc).__name__}: {exc}") from exc
    if "access_token" not in result:
        codes = result.get("error_codes") or []
        aadsts = int(codes[0]) if codes else None
        error_cls = ConsentMissing if aadsts in _NO_CONSENT_CODES else TokenError
        raise error_cls(tenant, result.get("error", "unknown"), result.get("error_description", ""), aadsts)
    claims = decode_claims(result["access_token"])
    return AppToken(
        access_token=result["access_token"],
        tenant_id=str(claims.get("tid", "")),
        app_id=str(claims.get("appid") or claims.get("azp") or ""),
        roles=tuple(claims.get("roles") or ()),
        expires_at=float(claims.get("exp") or 0),
    )


def resolve_tenant_id(config: GraphConfig, tenant: str) -> str:
    """The GUID of `tenant` (a GUID or any verified domain), read from the login service's OIDC metadata.

    Raises TokenError: code "invalid_tenant" (AADSTS90002) when no tenant uses that name,
    "login_unreachable" when the login service does not answer, "invalid_metadata" when it answers nonsense.
    """
    url = f"{config.authority(tenant)}/v2.0/.well-known/openid-configuration"
    try:
        with _http_session(config) as session:
            response = session.get(url)
    except requests.RequestException as exc:
        raise TokenError(tenant, "login_unreachable", f"{type(exc).__name__}: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code != 200:
        codes = body.get("error_codes") or []
        aadsts = int(codes[0]) if codes and str(codes[0]).isdigit() else None
        code = "invalid_tenant" if aadsts == 90002 or response.status_code in (400, 404) else "login_error"
        description = str(body.get("error_description") or f"HTTP {response.status_code}")
        raise TokenError(tenant, code, description, aadsts)
    for key in ("issuer", "token_endpoint"):
        for segment in urlsplit(str(body.get(key, ""))).path.split("/"):
            try:
                return str(uuid.UUID(segment))
            except ValueError:
                continue
    raise TokenError(tenant, "invalid_metadata", "The OpenID configuration names no tenant id.")


TOKEN_REUSE_MARGIN_S = 300  # a token closer than this to its expiry is renewed before use


class TenantTokenProvider(AccessTokenProvider):
    """Kiota's token hook: hands msal's token to the SDK, only for allowed https hosts."""

    def __init__(self, config: GraphConfig, tenant: str) -> None:
        self._config = config
        self._tenant = tenant
        self._validator = AllowedHostsValidator(
            sorted({urlsplit(f"//{h}").hostname for h in config.graph_hosts})
        )
        self.last_token: AppToken | None = None

    async def get_authorization_token(self, uri: str, additional_authentication_context=None) -> str:
        parts = urlsplit(uri)
        if parts.scheme != "https" or parts.netloc.lower() not in self._config.graph_hosts:
            # Refuse loudly rather than send the request without a token (Kiota's default).
            raise GraphHostNotAllowed(f"Refusing to send a Graph token to {parts.scheme}://{parts.netloc}")
        return (await self.current_token()).access_token

    async def current_token(self) -> AppToken:
        """The app token, renewed only near its expiry (msal's cache would hand back the same token, but
        asking it costs a thread hop per request)."""
        token = self.last_token
        if token is None or token.expires_at - time.time() < TOKEN_REUSE_MARGIN_S:
            token = self.last_token = await asyncio.to_thread(acquire_app_token, self._config, self._tenant)
        return token

    def forget(self) -> None:
        """Drop the token (and msal's cached one): the next request asks the login service afresh."""
        self.last_token = None
        forget_tokens(self._config, self._tenant)

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._validator
