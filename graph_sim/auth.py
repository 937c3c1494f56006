"""Login side: OIDC metadata, the client-credentials token endpoint, admin consent, token checks.

Error bodies and codes follow what login.microsoftonline.com answers (AADSTS codes in
``error_description``, ``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from graph_sim import clock
from graph_sim.app_key import SIM_KEY

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_SCOPES = (f"{GRAPH_AUDIENCE}/.default", f"{GRAPH_AUDIENCE}//.default", f"{GRAPH_APP_ID}/.default")
TOKEN_LIFETIME_S = 3599
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# The application permissions the MSP app asks for; admin consent grants all of them. Exactly what the
# console needs (migrations_engine/graph/permissions.REQUIRED_ROLES, each explained on the consent page):
# no more, so a customer's admin is never asked for one nobody explains.
FULL_ROLES = [
    "Organization.Read.All",
    "User.Read.All",
    "Policy.Read.All",
    "Policy.ReadWrite.ConditionalAccess",
    "Application.Read.All",
    "Policy.ReadWrite.SecurityDefaults",
    "Policy.ReadWrite.AuthenticationMethod",
    "AuditLog.Read.All",
    "GroupMember.Read.All",
]
ROLE_DESCRIPTIONS = {
    "Organization.Read.All": "Read organization information",
    "User.Read.All": "Read all users' full profiles",
    "Policy.Read.All": "Read your organization's policies",
    "Policy.ReadWrite.ConditionalAccess": "Read and write your organization's conditional access policies",
    "Application.Read.All": "Read all applications",
    "Policy.ReadWrite.SecurityDefaults": "Read and write your organization's security defaults policy",
    "Policy.ReadWrite.AuthenticationMethod": "Read and write all authentication method policies",
    "AuditLog.Read.All": "Read all audit log data",
    "GroupMember.Read.All": "Read all group memberships",
    "MailboxSettings.Read": "Read all user mailbox settings",
}


# -- keys and certificates -------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_cert(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


def make_app_credential(app) -> None:
    """Give the app registration a fresh certificate credential (written to app-cert.pem/app-key.pem)."""
    key = new_rsa_key()
    cert = self_signed_cert(key, "msp-console-sim-app")
    app.key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    app.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    app.thumbprint_sha1 = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - x5t is SHA-1 by spec
    app.thumbprint_sha256 = cert.fingerprint(hashes.SHA256()).hex().upper()
    app.public_key = cert.public_key()


class TokenService:
    """Signs access tokens with the simulator's own key and verifies them on the Graph side."""

    def __init__(self):
        self.key = new_rsa_key()
        cert = self_signed_cert(self.key, "graph-sim-token-signing")
        der = cert.public_bytes(serialization.Encoding.DER)
        self.kid = _b64url(hashlib.sha1(der).digest())  # noqa: S324 - matches AAD's kid/x5t form
        self.public_key = self.key.public_key()
        nums = self.public_key.public_numbers()
        self.jwk = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64url(nums.n.to_bytes(256, "big")),
            "e": _b64url(nums.e.to_bytes(3, "big")),
            "x5c": [base64.b64encode(der).decode()],
        }
        self._verified: dict[str, dict] = {}

    def issue(self, tenant, app, appidacr: str) -> str:
        now = int(clock.epoch())
        sp_oid = str(uuid.uuid5(uuid.UUID(tenant.id), app.client_id))
        claims = {
            "aud": GRAPH_AUDIENCE,
            "iss": f"https://sts.windows.net/{tenant.id}/",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_S,
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "appidacr": appidacr,
            "idp": f"https://sts.windows.net/{tenant.id}/",
            "idtyp": "app",
            "oid": sp_oid,
            "sub": sp_oid,
            "tid": tenant.id,
            "uti": _b64url(uuid.uuid4().bytes)[:22],
            "ver": "1.0",
        }
        if tenant.roles:
            claims["roles"] = list(tenant.roles)
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid, "x5t": self.kid})

    def verify(self, token: str) -> tuple[dict | None, str]:
        """(claims, "") or (None, the message Graph puts in InvalidAuthenticationToken)."""
        claims = self._verified.get(token)
        if claims is not None:
            if claims["exp"] <= clock.epoch():
                return None, "Lifetime validation failed, the token is expired."
            return claims, ""
        if token.count(".") != 2:
            return None, "IDX14100: JWT is not well formed, there are no dots (.)."
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                audience=[GRAPH_AUDIENCE, GRAPH_APP_ID],
                options={"require": ["exp", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            return None, "Lifetime validation failed, the token is expired."
        except jwt.InvalidAudienceError:
            return None, "Access token validation failure. Invalid audience."
        except jwt.PyJWTError:
            return None, "Access token validation failure."
        if len(self._verified) > 50_000:
            self._verified.clear()
        self._verified[token] = claims
        return claims, ""


# -- error shape -----------------------------------------------------------------------------------
def aad_error(request: web.Request, status: int, error: str, code: int, description: str) -> web.Response:
    trace_id = str(uuid.uuid4())
    correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    ts = clock.aad_timestamp()
    body = {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: "
        f"{correlation_id} Timestamp: {ts}",
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{request.app[SIM_KEY].base_url}/error?code={code}",
    }
    return web.json_response(
        body, status=status, headers={"x-ms-request-id": trace_id, "client-request-id": correlation_id}
    )


def _tenant_not_found(request: web.Request, key: str) -> web.Response:
    return aad_error(
        request,
        400,
        "invalid_request",
        90002,
        f"Tenant '{key}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud. Check with your subscription administrator, this may happen if there "
        "are no active subscriptions for the tenant.",
    )


# -- OIDC metadata ---------------------------------------------------------------------------------
def openid_configuration(base: str, tenant_id: str, v2: bool = True) -> dict:
    t = f"{base}/{tenant_id}"
    host = base.split("://", 1)[1]
    return {
        "token_endpoint": f"{t}/oauth2/v2.0/token" if v2 else f"{t}/oauth2/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{t}/discovery/v2.0/keys" if v2 else f"{base}/common/discovery/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{t}/v2.0" if v2 else f"https://sts.windows.net/{tenant_id}/",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{t}/oauth2/v2.0/authorize" if v2 else f"{t}/oauth2/authorize",
        "device_authorization_endpoint": f"{t}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{t}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub",
            "iss",
            "cloud_instance_name",
            "cloud_instance_host_name",
            "cloud_graph_host_name",
            "msgraph_host",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "nonce",
            "preferred_username",
            "name",
            "tid",
            "ver",
            "at_hash",
            "c_hash",
            "email",
        ],
        "kerberos_endpoint": f"{t}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": host,
        "rbac_url": "https://pas.windows.net",
    }


async def handle_openid_configuration(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    key = request.match_info["tenant"]
    v2 = request.path.split("/")[2] == "v2.0"
    if key.lower() in ("common", "organizations"):
        # The multi-tenant document names no tenant: the issuer carries the literal "{tenantid}".
        return web.json_response(
            openid_configuration(sim.base_url, key.lower(), v2)
            | {"issuer": f"{sim.base_url}/{{tenantid}}/v2.0" if v2 else "https://sts.windows.net/{tenantid}/"}
        )
    if sim.sign_in.directory.matches(key):  # the MSP's own tenant, where staff sign in
        return web.json_response(openid_configuration(sim.base_url, sim.sign_in.directory.tenant_id, v2))
    tenant = sim.state.resolve(key)
    if tenant is None:
        return _tenant_not_found(request, key)
    return web.json_response(openid_configuration(sim.base_url, tenant.id, v2))


async def handle_instance_discovery(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    host = sim.base_url.split("://", 1)[1]
    endpoint = request.query.get("authorization_endpoint", "")
    parts = endpoint.split("/")
    tenant = parts[3] if len(parts) > 3 else "common"
    return web.json_response(
        {
            "tenant_discovery_endpoint": f"{sim.base_url}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }
    )


async def handle_jwks(request: web.Request) -> web.Response:
    return web.json_response({"keys": [request.app[SIM_KEY].tokens.jwk]})


# -- token endpoint --------------------------------------------------------------------------------
def _check_assertion(
    request: web.Request, sim, tenant, client_id: str, assertion: str
) -> web.Response | None:
    app = sim.state.app
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        return aad_error(request, 400, "invalid_client", 50027, "JWT token is invalid or malformed.")
    sha1 = _b64url(bytes.fromhex(app.thumbprint_sha1))
    sha256 = _b64url(bytes.fromhex(app.thumbprint_sha256))
    # msal keeps base64 padding on x5t; the JOSE spec drops it. Accept both.
    if (
        str(header.get("x5t", "")).rstrip("=") != sha1
        and str(header.get("x5t#S256", "")).rstrip("=") != sha256
    ):
        return aad_error(
            request,
            401,
            "invalid_client",
            700027,
            f"The certificate with identifier used to sign the client assertion is not registered on "
            f"application. [Reason - The key was not found., Thumbprint of key used by client: "
            f"'{header.get('x5t') or header.get('x5t#S256')}'.]",
        )
    audiences = {f"{sim.base_url}/{k}/oauth2/v2.0/token" for k in (tenant.id, *tenant.domains)}
    audiences.add(f"{sim.base_url}{request.path}")
    try:
        claims = jwt.decode(
            assertion,
            app.public_key,
            algorithms=["RS256", "PS256"],
            audience=list(audiences),
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        return aad_error(
            request, 401, "invalid_client", 700024, "Client assertion is not within its valid time range."
        )
    except jwt.InvalidAudienceError:
        return aad_error(
            request,
            401,
            "invalid_client",
            700023,
            "Client assertion audience claim does not match Realm issuer.",
        )
    except jwt.PyJWTError:
        return aad_error(
            request, 401, "invalid_client", 700027, "Client assertion failed signature validation."
        )
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        return aad_error(
            request,
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )
    return None


async def handle_token(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    key = request.match_info["tenant"]
    if key.lower() in ("common", "organizations", "consumers"):
        # Client credentials need a concrete tenant; the multi-tenant aliases are refused.
        return aad_error(
            request,
            400,
            "invalid_request",
            900023,
            f"Specified tenant identifier '{key}' is neither a valid DNS name, nor a valid external domain.",
        )
    staff_tenant = sim.sign_in.directory.matches(key)
    tenant = None if staff_tenant else sim.state.resolve(key)
    if tenant is None and not staff_tenant:
        return _tenant_not_found(request, key)
    form = await request.post()
    for param in ("grant_type", "client_id"):
        if not form.get(param):
            return aad_error(
                request,
                400,
                "invalid_request",
                900144,
                f"The request body must contain the following parameter: '{param}'.",
            )
    if form["grant_type"] == "authorization_code" and staff_tenant:
        return sim.sign_in.redeem(request, form)
    if staff_tenant:
        # The MSP's tenant holds only the staff sign-in app; the MSP's migration app is not there.
        return aad_error(
            request,
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{form['client_id']}' was not found in the directory "
            f"'{sim.sign_in.directory.display_name}'.",
        )
    if form["grant_type"] != "client_credentials":
        return aad_error(
            request,
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type. This simulator serves client_credentials.",
        )
    client_id = form["client_id"]
    app = sim.state.app
    if client_id.lower() != app.client_id:
        return aad_error(
            request,
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant.display_name}'. This can happen if the application has not been installed by "
            "the administrator of the tenant or consented to by any user in the tenant. You may have "
            "sent your authentication request to the wrong tenant.",
        )
    if form.get("client_assertion"):
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return aad_error(
                request, 400, "invalid_request", 50027, f"client_assertion_type must be '{ASSERTION_TYPE}'."
            )
        failure = _check_assertion(request, sim, tenant, client_id, form["client_assertion"])
        if failure is not None:
            return failure
        appidacr = "2"
    elif form.get("client_secret"):
        if form["client_secret"] != app.client_secret:
            return aad_error(
                request,
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the "
                f"client secret value, not the client secret ID, for a secret added to app "
                f"'{app.client_id}'.",
            )
        appidacr = "1"
    else:
        return aad_error(
            request,
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    scope = form.get("scope", "")
    if not scope:
        return aad_error(
            request,
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        )
    scopes = scope.split()
    if not all(s.endswith("/.default") for s in scopes):
        return aad_error(
            request,
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a "
            "scope value with /.default suffixed to the resource identifier (application ID URI).",
        )
    if any(s not in GRAPH_SCOPES for s in scopes):
        resource = scopes[0].rsplit("/.default", 1)[0]
        return aad_error(
            request,
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{tenant.display_name}. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant.",
        )
    if not tenant.consent_granted:
        # What login.microsoftonline.com answers for client credentials when the multi-tenant app has
        # no service principal in the tenant (admin consent never given, or revoked by deleting it).
        return aad_error(
            request,
            401,
            "invalid_client",
            7000229,
            f"The client application {app.client_id} is missing service principal in the tenant "
            f"{tenant.id}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
        )
    token = sim.tokens.issue(tenant, app, appidacr)
    return web.json_response(
        {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "ext_expires_in": TOKEN_LIFETIME_S,
            "access_token": token,
        },
        headers={
            "x-ms-request-id": str(uuid.uuid4()),
            "Cache-Control": "no-store, no-cache",
            "Pragma": "no-cache",
        },
    )


# -- admin consent ---------------------------------------------------------------------------------
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Permissions requested</title>
<style>body{{font-family:Segoe UI,Arial,sans-serif;max-width:560px;margin:40px auto;color:#1b1b1b}}
li{{margin:4px 0}} button{{padding:8px 24px;margin-right:8px}}
.sim{{color:#888;font-size:12px}}</style></head>
<body><h2>Permissions requested</h2><p><b>{app}</b><br>{client_id}</p>
<p>This app would like to (accept for your organization):</p><ul>{roles}</ul>
<form method="post" action="{action}">{hidden}{tenant_field}
<p>If you accept, this app will get access to the specified resources for all users in your organization.</p>
<button type="submit" name="action" value="accept" id="accept">Accept</button>
<button type="submit" name="action" value="cancel" id="cancel">Cancel</button></form>
<p class="sim">graph_sim admin-consent page</p></body></html>"""


def _error_page(status: int, code: int, message: str) -> web.Response:
    body = (
        f"<!doctype html><html><body><h2>Sign in</h2><p>Sorry, but we're having trouble signing you in.</p>"
        f"<p>AADSTS{code}: {html.escape(message)}</p></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html")


async def handle_adminconsent(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    key = request.match_info["tenant"]
    params = dict(request.query)
    if request.method == "POST":
        params.update(await request.post())
    client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
    if not client_id:
        return _error_page(400, 900144, "The request body must contain the following parameter: 'client_id'.")
    if client_id.lower() != sim.state.app.client_id:
        return _error_page(
            400, 700016, f"Application with identifier '{client_id}' was not found in the directory."
        )
    if not redirect_uri.startswith(("https://", "http://localhost", "http://127.0.0.1")):
        return _error_page(
            400,
            50011,
            "The redirect URI specified in the request does not match the redirect URIs "
            "configured for the application.",
        )
    multi = key.lower() in ("common", "organizations")
    tenant = None if multi else sim.state.resolve(key)
    if not multi and tenant is None:
        return _error_page(400, 90002, f"Tenant '{key}' not found.")
    if request.method == "GET":
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(params[k])}">'
            for k in ("client_id", "redirect_uri", "state")
            if k in params
        )
        if multi:
            options = "".join(
                f'<option value="{t.id}">{html.escape(t.display_name)} ({t.domain})</option>'
                for t in sim.state.tenants.values()
            )
            tenant_field = f'<p>Organization: <select name="tenant" id="tenant">{options}</select></p>'
        else:
            tenant_field = f"<p>Organization: {html.escape(tenant.display_name)} ({tenant.domain})</p>"
        roles = "".join(
            f"<li>{html.escape(ROLE_DESCRIPTIONS[r])} <small>({r})</small></li>" for r in FULL_ROLES
        )
        return web.Response(
            text=_PAGE.format(
                app=html.escape(sim.state.app.display_name),
                client_id=client_id,
                roles=roles,
                action=html.escape(request.path),
                hidden=hidden,
                tenant_field=tenant_field,
            ),
            content_type="text/html",
        )
    if multi:
        tenant = sim.state.resolve(params.get("tenant", ""))
        if tenant is None:
            return _error_page(400, 90002, f"Tenant '{params.get('tenant', '')}' not found.")
    query: dict[str, str]
    if params.get("action") == "accept":
        tenant.set_consent(True, FULL_ROLES, "consent")
        query = {"admin_consent": "True", "tenant": tenant.id}
    else:
        query = {
            "error": "access_denied",
            "error_subcode": "cancel",
            "error_description": "AADSTS65004: User declined to consent to access the app.",
            "admin_consent": "True",
        }
    if "state" in params:
        query["state"] = params["state"]
    sep = "&" if "?" in redirect_uri else "?"
    raise web.HTTPFound(f"{redirect_uri}{sep}{urlencode(query)}")
