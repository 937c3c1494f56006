"""Staff sign-in at the MSP's own tenant: the OpenID Connect authorization-code flow with PKCE.

``GET /{tenant}/oauth2/v2.0/authorize`` shows a sign-in page (username and password), then an MFA step
when a Conditional Access policy asks for one, and redirects to the app's reply URL with ``code`` and
``state``; the token endpoint's ``authorization_code`` grant (``redeem``) answers with a v2.0 ID token.
It follows https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow and the ID token
claims reference: v2.0 ID tokens carry no ``amr``; a requested authentication context the sign-in
satisfied comes back in ``acrs`` (claims request ``{"id_token": {"acrs": {"essential": true, "value":
"c1"}}}``); ``groups`` (with an overage claim past 200) and ``roles`` as the app registration says;
``auth_time`` only as an optional claim. Codes are single use and live 10 minutes.

The simulator keeps a sign-in session cookie like Entra ID's: a second authorize request signs in
without the password unless it says ``prompt=login``.
"""

from __future__ import annotations

import hashlib
import html
import json
import secrets
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import jwt
from aiohttp import web

from graph_sim import clock
from graph_sim.app_key import SIM_KEY
from graph_sim.auth import GRAPH_AUDIENCE, _b64url, _error_page, aad_error
from graph_sim.staff_directory import GROUPS_OVERAGE_LIMIT, StaffDirectory, StaffMember

CODE_LIFETIME_S = 600
ID_TOKEN_LIFETIME_S = 3600
SSO_COOKIE = "sim-estsauth"
_OIDC_SCOPES = {"openid", "profile", "email", "offline_access"}


@dataclass
class _Transaction:
    """One authorize request, from the sign-in page until its code is issued."""

    params: dict[str, str]
    member_id: str = ""
    password_at: float = 0.0  # when the password was entered in this transaction
    mfa_done: bool = False


@dataclass
class _Code:
    code: str
    client_id: str
    redirect_uri: str
    scopes: list[str]
    nonce: str
    code_challenge: str
    challenge_method: str
    member_id: str
    auth_time: int
    acrs: list[str]
    issued_at: float
    client_info: bool
    redeemed: bool = False


@dataclass
class _SsoSession:
    member_id: str
    auth_time: int
    mfa: bool


@dataclass
class SignInService:
    """The login side's memory of staff sign-ins: transactions, codes and sign-in sessions."""

    directory: StaffDirectory
    transactions: dict[str, _Transaction] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    sessions: dict[str, _SsoSession] = field(default_factory=dict)
    # Every redemption's outcome, for tests: (code prefix, "ok" | AADSTS number).
    redemptions: list[tuple[str, str]] = field(default_factory=list)

    def redeem(self, request: web.Request, form) -> web.Response:
        """The token endpoint's authorization_code grant (auth.handle_token hands it over)."""
        return _redeem(request, form)


# -- pages -----------------------------------------------------------------------------------------
_STYLE = (
    "body{font-family:Segoe UI,Arial,sans-serif;background:#f2f2f2;color:#1b1b1b}"
    ".box{background:#fff;max-width:400px;margin:60px auto;padding:36px 44px;box-shadow:0 2px 6px #0003}"
    "input[type=text],input[type=email],input[type=password]{width:100%;padding:6px 0;border:0;"
    "border-bottom:1px solid #666;font-size:15px;margin:8px 0 16px}"
    "button{background:#0067b8;color:#fff;border:0;padding:8px 28px;font-size:15px;margin-right:8px}"
    "button.secondary{background:#ccc;color:#000}.err{color:#e81123}.sim{color:#888;font-size:12px}"
)


def _page(title: str, body: str) -> web.Response:
    text = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<style>{_STYLE}</style></head><body><div class="box"><div><b>Microsoft</b></div>{body}'
        '<p class="sim">graph_sim sign-in page</p></div></body></html>'
    )
    return web.Response(text=text, content_type="text/html", headers={"Cache-Control": "no-store"})


def _form(action: str, txn_id: str, step: str, inner: str) -> str:
    return (
        f'<form method="post" action="{html.escape(action)}">'
        f'<input type="hidden" name="txn" value="{txn_id}"><input type="hidden" name="step" value="{step}">'
        f"{inner}</form>"
    )


def _password_page(sim_dir: StaffDirectory, action: str, txn_id: str, hint: str, error: str = ""):
    err = f'<p class="err" id="passwordError">{html.escape(error)}</p>' if error else ""
    inner = (
        f"<h2>Sign in</h2><p>{html.escape(sim_dir.display_name)}</p>{err}"
        f'<input type="email" name="username" id="i0116" placeholder="Email, phone, or Skype" '
        f'value="{html.escape(hint)}" autocomplete="username">'
        '<input type="password" name="password" id="i0118" placeholder="Password" '
        'autocomplete="current-password">'
        '<button type="submit" id="idSIButton9">Sign in</button>'
    )
    return _page("Sign in to your account", _form(action, txn_id, "password", inner))


def _mfa_page(member: StaffMember, action: str, txn_id: str) -> web.Response:
    passkey = any(m.startswith(("passKey", "fido2", "windowsHello")) for m in member.methods)
    prompt = (
        "Sign in with your passkey: use your security key or device when your browser asks."
        if passkey
        else "Approve the sign-in request in your Microsoft Authenticator app."
    )
    inner = (
        f"<h2>{'Use your passkey' if passkey else 'Approve sign in request'}</h2>"
        f"<p>{html.escape(member.upn)}</p><p>{prompt}</p>"
        '<button type="submit" name="action" value="approve" id="approve">'
        f"{'Use passkey' if passkey else 'I approved it'}</button>"
        '<button type="submit" name="action" value="deny" id="deny" class="secondary">Deny</button>'
    )
    return _page("Verify your identity", _form(action, txn_id, "mfa", inner))


def _registration_page(member: StaffMember, action: str, txn_id: str) -> web.Response:
    inner = (
        f"<h2>More information required</h2><p>{html.escape(member.upn)}</p>"
        "<p>Your organization needs more information to keep your account secure: set up multi-factor "
        "authentication first (registration is not simulated).</p>"
        '<button type="submit" name="action" value="cancel" id="cancel" class="secondary">Cancel</button>'
    )
    return _page("More information required", _form(action, txn_id, "register", inner))


# -- helpers ---------------------------------------------------------------------------------------
def _service(request: web.Request) -> SignInService:
    return request.app[SIM_KEY].sign_in


def _redirect_ok(registered: list[str], uri: str) -> bool:
    """Registered reply URL match; for http(s)://localhost the port is ignored (loopback redirects)."""
    if uri in registered:
        return True
    parts = urlsplit(uri)
    if parts.hostname not in ("localhost", "127.0.0.1"):
        return False
    portless = parts._replace(netloc=parts.hostname).geturl()
    return portless in registered


def _requested_contexts(claims_param: str) -> list[str] | None:
    """The authentication context ids the claims request asks for in the ID token; None if malformed."""
    if not claims_param:
        return []
    try:
        claims = json.loads(claims_param)
        acrs = (claims.get("id_token") or {}).get("acrs") or {}
        values = acrs.get("values") or ([acrs["value"]] if acrs.get("value") else [])
    except (ValueError, AttributeError, TypeError):
        return None
    return [str(v).lower() for v in values]


def _back(params: dict[str, str], query: dict[str, str]) -> web.HTTPFound:
    if params.get("state"):
        query["state"] = params["state"]
    uri = params["redirect_uri"]
    return web.HTTPFound(f"{uri}{'&' if '?' in uri else '?'}{urlencode(query)}")


def _error_back(params: dict[str, str], error: str, code: int, description: str) -> web.HTTPFound:
    stamp = clock.aad_timestamp()
    trace = uuid.uuid4()
    return _back(
        params,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Timestamp: {stamp}",
            "error_codes": f"[{code}]",
        },
    )


def _needs_mfa(directory: StaffDirectory, contexts: list[str]) -> bool:
    return directory.app.requires_mfa or any(directory.auth_contexts.get(c) == "mfa" for c in contexts)


# -- authorize -------------------------------------------------------------------------------------
async def handle_authorize(request: web.Request) -> web.Response:
    """GET /{tenant}/oauth2/v2.0/authorize: validate, then the sign-in page (or straight back with a code
    when the browser's sign-in session serves)."""
    service = _service(request)
    directory = service.directory
    key = request.match_info["tenant"]
    params = dict(request.query)
    if not directory.matches(key):
        if request.app[SIM_KEY].state.resolve(key) is None and key.lower() not in ("common", "organizations"):
            return _error_page(400, 90002, f"Tenant '{key}' not found.")
        return _error_page(
            400,
            700016,
            f"Application with identifier '{params.get('client_id', '')}' was not found in the directory "
            f"'{key}'. You may have sent your authentication request to the wrong tenant.",
        )
    if params.get("client_id", "").lower() != directory.app.client_id:
        return _error_page(
            400,
            700016,
            f"Application with identifier '{params.get('client_id', '')}' was not found in the directory "
            f"'{directory.display_name}'.",
        )
    redirect_uri = params.get("redirect_uri", "")
    if not _redirect_ok(directory.app.redirect_uris, redirect_uri):
        return _error_page(
            400,
            50011,
            f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs "
            f"configured for the application '{directory.app.client_id}'. Make sure the redirect URI sent "
            "in the request matches one added to your application in the Azure portal.",
        )
    if params.get("response_type") != "code":
        raise _error_back(
            params,
            "unsupported_response_type",
            70005,
            f"response_type '{params.get('response_type', '')}' is not enabled for the application.",
        )
    if params.get("code_challenge") and params.get("code_challenge_method", "plain") not in ("S256", "plain"):
        raise _error_back(params, "invalid_request", 9002313, "Invalid request. code_challenge_method.")
    if _requested_contexts(params.get("claims", "")) is None:
        raise _error_back(params, "invalid_request", 9002313, "Invalid request. The claims are malformed.")
    txn_id = secrets.token_urlsafe(16)
    txn = _Transaction(params=params)
    service.transactions[txn_id] = txn
    session = service.sessions.get(request.cookies.get(SSO_COOKIE, ""))
    member = directory.members.get(session.member_id) if session else None
    prompt = params.get("prompt", "")
    if member is not None and member.account_enabled and prompt != "login":
        txn.member_id, txn.mfa_done = member.id, session.mfa
        return _continue(request, txn_id, txn)
    if prompt == "none":
        raise _error_back(
            params, "login_required", 50058, "A silent sign-in request was sent but no user is signed in."
        )
    return _password_page(directory, _login_path(key), txn_id, params.get("login_hint", ""))


def _login_path(key: str) -> str:
    return f"/{key}/login"


def _continue(request: web.Request, txn_id: str, txn: _Transaction) -> web.Response:
    """After the password (or the sign-in session): the MFA step when one is owed, else the code."""
    service = _service(request)
    directory = service.directory
    member = directory.members[txn.member_id]
    contexts = _requested_contexts(txn.params.get("claims", "")) or []
    action = _login_path(request.match_info["tenant"])
    if _needs_mfa(directory, contexts) and not txn.mfa_done:
        if txn.params.get("prompt") == "none":
            raise _error_back(
                txn.params,
                "interaction_required",
                50076,
                "Due to a configuration change made by your administrator, or because you moved to a new "
                "location, you must use multi-factor authentication to access the application.",
            )
        if not member.methods:
            return _registration_page(member, action, txn_id)
        return _mfa_page(member, action, txn_id)
    return _issue_code(request, txn_id, txn, contexts)


def _issue_code(request: web.Request, txn_id: str, txn: _Transaction, contexts: list[str]) -> web.Response:
    service = _service(request)
    directory = service.directory
    service.transactions.pop(txn_id, None)
    old = service.sessions.get(request.cookies.get(SSO_COOKIE, ""))
    now = clock.epoch()
    auth_time = int(txn.password_at) if txn.password_at else (old.auth_time if old else int(now))
    # A requested context comes back when the sign-in met its policy (a context with no policy always
    # does); an undeclared one never comes back.
    acrs = [
        c
        for c in contexts
        if c in directory.auth_contexts and (directory.auth_contexts[c] != "mfa" or txn.mfa_done)
    ]
    params = txn.params
    code = _b64url(secrets.token_bytes(48))
    service.codes[code] = _Code(
        code=code,
        client_id=params["client_id"].lower(),
        redirect_uri=params["redirect_uri"],
        scopes=params.get("scope", "").split(),
        nonce=params.get("nonce", ""),
        code_challenge=params.get("code_challenge", ""),
        challenge_method=params.get("code_challenge_method", "plain"),
        member_id=txn.member_id,
        auth_time=auth_time,
        acrs=acrs,
        issued_at=now,
        client_info=params.get("client_info") == "1",
    )
    sso_id = secrets.token_urlsafe(24)
    service.sessions[sso_id] = _SsoSession(txn.member_id, auth_time, txn.mfa_done)
    query = {"code": code, "session_state": str(uuid.uuid4())}
    if params.get("client_info") == "1":
        query["client_info"] = _client_info(txn.member_id, directory.tenant_id)
    response = _back(params, query)
    response.set_cookie(SSO_COOKIE, sso_id, path="/", secure=True, httponly=True, samesite="None")
    raise response


def _client_info(member_id: str, tenant_id: str) -> str:
    return _b64url(json.dumps({"uid": member_id, "utid": tenant_id}).encode())


async def handle_login_post(request: web.Request) -> web.Response:
    """POST /{tenant}/login: the sign-in page's steps (password, MFA, the registration interrupt)."""
    service = _service(request)
    directory = service.directory
    form = await request.post()
    txn_id = str(form.get("txn", ""))
    txn = service.transactions.get(txn_id)
    if txn is None:
        return _error_page(400, 90100, "The sign-in request is invalid or has expired. Start again.")
    step = form.get("step")
    action = _login_path(request.match_info["tenant"])
    if step == "password":
        username = str(form.get("username", ""))
        member = directory.find(username)
        if member is None:
            return _password_page(
                directory,
                action,
                txn_id,
                username,
                "This username may be incorrect. Make sure you typed it correctly.",
            )
        if member.password != form.get("password"):
            wrong = "Your account or password is incorrect."
            return _password_page(directory, action, txn_id, username, wrong)
        if not member.account_enabled:
            raise _error_back(txn.params, "access_denied", 50057, "The user account is disabled.")
        txn.member_id, txn.password_at = member.id, clock.epoch()
        return _continue(request, txn_id, txn)
    member = directory.members.get(txn.member_id)
    if member is None:
        return _error_page(400, 90100, "The sign-in request is invalid or has expired. Start again.")
    if step == "mfa":
        if form.get("action") != "approve":
            denied = "Authentication failed during strong authentication request."
            raise _error_back(txn.params, "access_denied", 500121, denied)
        txn.mfa_done = True
        return _continue(request, txn_id, txn)
    raise _error_back(
        txn.params,
        "access_denied",
        50079,
        "Due to a configuration change made by your administrator, or because you moved to a new location, "
        "you must enroll in multi-factor authentication to access the application.",
    )


# -- sign-out -----------------------------------------------------------------------------------------
async def handle_logout(request: web.Request) -> web.Response:
    """GET /{tenant}/oauth2/v2.0/logout: ends the browser's sign-in session, then back to
    post_logout_redirect_uri when it is a registered redirect URI, else a page saying so."""
    service = _service(request)
    service.sessions.pop(request.cookies.get(SSO_COOKIE, ""), None)
    back = request.query.get("post_logout_redirect_uri", "")
    if back and _redirect_ok(service.directory.app.redirect_uris, back):
        found = web.HTTPFound(back)
        found.del_cookie(SSO_COOKIE, path="/")
        raise found
    response = _page("Signed out", "<h2>You signed out of your account</h2><p>Close your browser.</p>")
    response.del_cookie(SSO_COOKIE, path="/")
    return response


# -- the token endpoint's authorization_code grant ------------------------------------------------------
def _pkce_ok(pending: _Code, verifier: str) -> bool:
    if not pending.code_challenge:
        return True
    if pending.challenge_method == "S256":
        return _b64url(hashlib.sha256(verifier.encode()).digest()) == pending.code_challenge
    return verifier == pending.code_challenge


def _redeem(request: web.Request, form) -> web.Response:
    """The authorization_code grant at the MSP's tenant: check the app, the code and PKCE, then tokens."""
    sim = request.app[SIM_KEY]
    service: SignInService = sim.sign_in
    directory = service.directory
    app = directory.app
    client_id = str(form.get("client_id", "")).lower()
    if client_id != app.client_id:
        return aad_error(
            request,
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{directory.display_name}'.",
        )
    if not form.get("client_secret"):
        return aad_error(
            request,
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    if form["client_secret"] != app.client_secret:
        return aad_error(
            request,
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client "
            f"secret value, not the client secret ID, for a secret added to app '{app.client_id}'.",
        )
    code = str(form.get("code", ""))
    pending = service.codes.get(code)

    def refuse(number: int, description: str) -> web.Response:
        service.redemptions.append((code[:8], str(number)))
        return aad_error(request, 400, "invalid_grant", number, description)

    if pending is None or pending.client_id != client_id:
        return refuse(70000, "The provided value for the 'code' parameter is not valid.")
    if pending.redeemed:
        return refuse(
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an "
            "existing refresh token.",
        )
    pending.redeemed = True
    if clock.epoch() - pending.issued_at > CODE_LIFETIME_S:
        return refuse(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new "
            "interactive authorization request for this user and resource.",
        )
    if form.get("redirect_uri") != pending.redirect_uri:
        return refuse(
            500112,
            "The reply address does not match the reply address provided when requesting the "
            "authorization code.",
        )
    if not _pkce_ok(pending, str(form.get("code_verifier", ""))):
        return refuse(
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        )
    member = directory.members[pending.member_id]
    service.redemptions.append((code[:8], "ok"))
    body = {
        "token_type": "Bearer",
        "scope": " ".join(["openid", "profile", "email", "User.Read"]),
        "expires_in": ID_TOKEN_LIFETIME_S,
        "ext_expires_in": ID_TOKEN_LIFETIME_S,
        "access_token": _access_token(sim, directory, member),
        "id_token": _id_token(sim, directory, member, pending),
    }
    if "offline_access" in pending.scopes:
        body["refresh_token"] = _b64url(secrets.token_bytes(64))
    if form.get("client_info") == "1":
        body["client_info"] = _client_info(member.id, directory.tenant_id)
    return web.json_response(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})


def _id_token(sim, directory: StaffDirectory, member: StaffMember, pending: _Code) -> str:
    now = int(clock.epoch())
    app = directory.app
    claims: dict = {
        "aud": app.client_id,
        "iss": f"{sim.base_url}/{directory.tenant_id}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + ID_TOKEN_LIFETIME_S,
        "aio": _b64url(secrets.token_bytes(24)),
        "name": member.display_name,
        "oid": member.id,
        "preferred_username": member.upn,
        "rh": "0.sim",
        "sid": str(uuid.uuid5(uuid.UUID(member.id), str(pending.auth_time))),
        "sub": _b64url(hashlib.sha256(f"{app.client_id}/{member.id}".encode()).digest())[:43],
        "tid": directory.tenant_id,
        "uti": _b64url(secrets.token_bytes(16))[:22],
        "ver": "2.0",
    }
    if pending.nonce:
        claims["nonce"] = pending.nonce
    if pending.acrs:
        claims["acrs"] = list(pending.acrs)
    if "auth_time" in app.optional_claims:
        claims["auth_time"] = pending.auth_time
    if "acct" in app.optional_claims:
        claims["acct"] = 1 if member.home_tenant else 0
    if member.home_tenant:
        claims["idp"] = f"https://sts.windows.net/{member.home_tenant}/"
    if member.app_roles:
        claims["roles"] = list(member.app_roles)
    if app.group_claims and member.group_ids:
        if len(member.group_ids) > GROUPS_OVERAGE_LIMIT:
            claims["_claim_names"] = {"groups": "src1"}
            claims["_claim_sources"] = {
                "src1": {"endpoint": f"{sim.base_url}/v1.0/users/{member.id}/getMemberObjects"}
            }
        else:
            claims["groups"] = list(member.group_ids)
    tokens = sim.tokens
    return jwt.encode(claims, tokens.key, algorithm="RS256", headers={"kid": tokens.kid})


def _access_token(sim, directory: StaffDirectory, member: StaffMember) -> str:
    """A delegated Graph token (User.Read); the console does not use it."""
    now = int(clock.epoch())
    claims = {
        "aud": GRAPH_AUDIENCE,
        "iss": f"https://sts.windows.net/{directory.tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + ID_TOKEN_LIFETIME_S,
        "appid": directory.app.client_id,
        "idtyp": "user",
        "oid": member.id,
        "scp": "openid profile email User.Read",
        "tid": directory.tenant_id,
        "upn": member.upn,
        "ver": "1.0",
    }
    tokens = sim.tokens
    return jwt.encode(claims, tokens.key, algorithm="RS256", headers={"kid": tokens.kid, "x5t": tokens.kid})
