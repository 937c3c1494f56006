"""The authorization-code flow with Entra ID through msal: start it (the flow, with its state, nonce and
PKCE verifier, waits in the session), then check what comes back and say in words why a sign-in is
refused.

msal checks the state and the nonce and redeems the code; since msal 1.38 it no longer validates the ID
token, so this module checks issuer, audience, tenant and lifetime itself. The token comes straight from
the token endpoint over TLS, which OpenID Connect Core 3.1.3.7 (6) accepts in place of its signature.
"""

from __future__ import annotations

import functools
import json
import time
import warnings
from dataclasses import dataclass

import msal
import requests

from staff.entra.config import EntraSignIn

FLOW_KEY = "staff.entra_flow"  # session key: the flow started in this browser, until its answer comes
CLOCK_SKEW_S = 300
# A re-authentication must be this fresh: Entra ID asked for the password (prompt=login) just now.
REAUTH_MAX_AGE_S = 300
# The amr value that proves more than one factor (RFC 8176; "sms", "otp", "fido" alone may be a single
# factor). v1.0 tokens and access tokens carry amr; v2.0 ID tokens do not.
MFA_AMR = {"mfa"}


class SignInRefused(Exception):
    """An Entra ID sign-in the console does not accept. `reason` is a short code for the audit log,
    the message says it in words to the person signing in."""

    def __init__(self, reason: str, message: str, upn: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.upn = upn


@dataclass(frozen=True)
class Proof:
    """Who Entra ID says signed in, and how."""

    tenant_id: str
    object_id: str
    upn: str
    name: str
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    groups_overage: bool
    mfa: tuple[str, ...]  # what proved MFA: "acrs:c1", "amr:mfa"; empty when nothing did
    auth_time: float | None  # when the person last entered their credentials at Entra ID (optional claim)
    reauth: bool
    next_url: str


def _http(config: EntraSignIn) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would silently replace `verify`
    session.verify = config.ca_bundle or True
    session.request = functools.partial(session.request, timeout=(10, 30))  # type: ignore[method-assign]
    return session


def _app(config: EntraSignIn) -> msal.ConfidentialClientApplication:
    try:
        return msal.ConfidentialClientApplication(
            config.client_id,
            authority=config.authority,
            client_credential=config.client_secret,
            # The login host is a setting (the simulator stands in for Microsoft): no instance discovery.
            instance_discovery=False,
            http_client=_http(config),
        )
    except (ValueError, requests.RequestException) as exc:
        raise SignInRefused(
            "unreachable",
            "The console could not read the Entra ID sign-in's configuration from "
            f"{config.authority_host} ({type(exc).__name__}). Check STAFF_ENTRA_TENANT_ID and the network; "
            "local accounts still sign in.",
        ) from exc


def _claims_request(config: EntraSignIn) -> str | None:
    if not config.auth_context:
        return None
    return json.dumps({"id_token": {"acrs": {"essential": True, "value": config.auth_context}}})


def start(session, config: EntraSignIn, *, redirect_uri: str, next_url: str, reauth: bool, hint: str) -> str:
    """Keep a new flow in the session and return the URL to send the browser to."""
    with warnings.catch_warnings():
        # msal recommends response_mode=form_post; the console uses the query: its session cookie is
        # SameSite=Lax, which a browser does not send on another site's POST, and the code it carries
        # is single-use, bound to this session's state and to the PKCE verifier kept here.
        warnings.filterwarnings("ignore", message="response_mode='form_post'", category=UserWarning)
        flow = _app(config).initiate_auth_code_flow(
            [],
            redirect_uri=redirect_uri,
            prompt="login" if reauth else None,
            login_hint=hint or None,
            claims_challenge=_claims_request(config),
        )
    session[FLOW_KEY] = {"flow": flow, "next": next_url, "reauth": reauth}
    return flow["auth_uri"]


def _said(description: str) -> str:
    """Entra ID's error text without its trace and correlation ids."""
    return description.split(" Trace ID:")[0].strip() or "no reason given"


def finish(session, config: EntraSignIn, answer: dict[str, str]) -> Proof:
    """Check Entra ID's answer (the callback's query) against the flow started in this session."""
    saved = session.get(FLOW_KEY)
    if not saved:
        raise SignInRefused(
            "no_flow",
            "This answer from Microsoft does not belong to a sign-in started in this browser, or it was "
            "already used. Start the sign-in again.",
        )
    if answer.get("state") != saved["flow"].get("state"):
        # Checked before anything else, and the flow kept: a stray or forged answer (an error text of
        # someone else's choosing, too) neither shows nor ends the sign-in this browser has under way.
        raise SignInRefused(
            "state",
            "This answer from Microsoft does not match the sign-in started in this browser. Start again.",
        )
    session.pop(FLOW_KEY, None)
    if answer.get("error"):
        said = _said(answer.get("error_description", answer["error"]))
        raise SignInRefused("entra_error", f"Microsoft Entra ID did not sign you in: {said}")
    try:
        result = _app(config).acquire_token_by_auth_code_flow(saved["flow"], answer)
    except ValueError as exc:  # the state matched (above): an answer msal could not read
        raise SignInRefused(
            "unreadable", f"Entra ID's answer could not be read ({exc.__class__.__name__}). Start again."
        ) from exc
    except RuntimeError as exc:  # msal: the ID token's nonce is not this flow's
        raise SignInRefused(
            "nonce", "The ID token was not issued for this sign-in (nonce). Start again."
        ) from exc
    except requests.RequestException as exc:
        raise SignInRefused(
            "unreachable", f"The console could not reach Entra ID's token endpoint ({type(exc).__name__})."
        ) from exc
    if "error" in result:
        said = _said(result.get("error_description", result["error"]))
        raise SignInRefused("token", f"Entra ID refused to complete the sign-in: {said}")
    claims = result.get("id_token_claims") or {}
    return _proof(config, claims, reauth=bool(saved.get("reauth")), next_url=saved.get("next") or "/")


def _v1_issuer(config: EntraSignIn) -> str:
    return f"https://sts.windows.net/{config.tenant_id}/"


def _proof(config: EntraSignIn, claims: dict, *, reauth: bool, next_url: str) -> Proof:
    upn = str(claims.get("preferred_username") or "")
    now = time.time()
    if claims.get("tid") != config.tenant_id or claims.get("iss") != config.issuer:
        raise SignInRefused(
            "wrong_tenant",
            f"This account belongs to another organisation's Entra ID (tenant {claims.get('tid', '?')}); "
            "only the MSP's own staff sign in here.",
            upn,
        )
    home = claims.get("idp")
    if str(claims.get("acct", "0")) == "1" or (home and home not in (config.issuer, _v1_issuer(config))):
        raise SignInRefused(
            "guest",
            "Guest accounts (invited from another organisation) do not sign in to the console: sign in "
            "with your account of the MSP's own tenant.",
            upn,
        )
    audience = claims.get("aud")
    if audience != config.client_id and not (isinstance(audience, list) and config.client_id in audience):
        raise SignInRefused("wrong_audience", "The ID token was issued to another application.", upn)
    if not (
        float(claims.get("exp", 0)) > now - CLOCK_SKEW_S and float(claims.get("iat", 0)) < now + CLOCK_SKEW_S
    ):
        raise SignInRefused(
            "lifetime", "The ID token is expired or not yet valid: check this server's clock.", upn
        )
    if not claims.get("oid"):
        raise SignInRefused("no_oid", "The ID token names no account (oid): add the profile scope.", upn)
    mfa = []
    if config.auth_context and config.auth_context in [str(a).lower() for a in claims.get("acrs") or []]:
        mfa.append(f"acrs:{config.auth_context}")
    mfa += [f"amr:{m}" for m in claims.get("amr") or [] if m in MFA_AMR]
    if config.require_mfa and not mfa:
        context = config.auth_context or "(none set)"
        raise SignInRefused(
            "no_mfa",
            "Your sign-in did not prove multi-factor authentication: the ID token names neither the "
            f"authentication context {context} nor an MFA method. Sign in again and complete MFA; if Entra "
            f"ID did not ask for it, an Entra administrator must protect authentication context {context} "
            "with a Conditional Access policy that requires MFA.",
            upn,
        )
    if reauth:
        auth_time = claims.get("auth_time")
        if auth_time is None:
            raise SignInRefused(
                "no_auth_time",
                "Entra ID did not say when you signed in (auth_time): add the optional ID token claim "
                "auth_time to the app registration (Token configuration).",
                upn,
            )
        if now - float(auth_time) > REAUTH_MAX_AGE_S:
            raise SignInRefused(
                "stale",
                f"Entra ID did not ask for your password again (you last signed in "
                f"{int((now - float(auth_time)) // 60)} minutes ago). Sign in again.",
                upn,
            )
    return Proof(
        tenant_id=str(claims["tid"]),
        object_id=str(claims["oid"]),
        upn=upn,
        name=str(claims.get("name") or ""),
        groups=tuple(str(g) for g in claims.get("groups") or ()),
        roles=tuple(str(r) for r in claims.get("roles") or ()),
        groups_overage="groups" in (claims.get("_claim_names") or {}) or bool(claims.get("hasgroups")),
        mfa=tuple(mfa),
        auth_time=float(claims["auth_time"]) if claims.get("auth_time") is not None else None,
        reauth=reauth,
        next_url=next_url,
    )
