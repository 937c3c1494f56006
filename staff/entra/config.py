"""The Entra ID sign-in's settings, read once per use (tests change them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.conf import settings


@dataclass(frozen=True)
class EntraSignIn:
    """The MSP's tenant and the console's sign-in app registration there."""

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    authority_host: str
    ca_bundle: str
    redirect_uri: str
    require_mfa: bool
    auth_context: str

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant_id}"

    def end_session_url(self, post_logout_redirect_uri: str) -> str:
        """Entra ID's sign-out, then back to the console (a registered redirect URI)."""
        query = urlencode({"post_logout_redirect_uri": post_logout_redirect_uri})
        return f"{self.authority}/oauth2/v2.0/logout?{query}"

    @property
    def issuer(self) -> str:
        """The v2.0 ID token's `iss`: the login host, the tenant id, /v2.0."""
        return f"{self.authority_host}/{self.tenant_id}/v2.0"


def entra_sign_in() -> EntraSignIn | None:
    """The settings, or None when the Entra ID sign-in is not set up (no tenant id or client id)."""
    if not (settings.STAFF_ENTRA_TENANT_ID and settings.STAFF_ENTRA_CLIENT_ID):
        return None
    return EntraSignIn(
        tenant_id=settings.STAFF_ENTRA_TENANT_ID,
        client_id=settings.STAFF_ENTRA_CLIENT_ID,
        client_secret=settings.STAFF_ENTRA_CLIENT_SECRET,
        authority_host=settings.STAFF_ENTRA_AUTHORITY_HOST,
        ca_bundle=settings.STAFF_ENTRA_CA_BUNDLE,
        redirect_uri=settings.STAFF_ENTRA_REDIRECT_URI,
        require_mfa=settings.STAFF_ENTRA_REQUIRE_MFA,
        auth_context=settings.STAFF_ENTRA_AUTH_CONTEXT,
    )
