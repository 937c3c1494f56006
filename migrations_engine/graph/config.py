"""Graph settings, read once from Django settings and validated before any token is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from migrations_engine.graph.errors import GraphConfigError
from migrations_engine.graph.pacing import PacingRates

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class GraphConfig:
    """Everything the client needs to reach Graph for any customer tenant."""

    authority_host: str
    base_url: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    private_key_pem: str = field(default="", repr=False)
    certificate_thumbprint: str = ""
    # The certificate (and its chain) from GRAPH_CLIENT_CERTIFICATE_FILE: msal then signs with its SHA-256
    # thumbprint (PS256) and sends the chain (x5c, for subject name and issuer authentication). Without it,
    # the SHA-1 thumbprint alone (RS256), which msal keeps for older setups.
    public_certificate_pem: str = ""
    ca_bundle: str = ""
    allowed_hosts: tuple[str, ...] = ()
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 6
    writes_per_second: float = 19.0
    ca_requests_per_second: float = 0.9
    app_writes_per_second: float = 225.0
    report_requests_per_second: float = 0.4
    pacing_time_scale: float = 1.0
    # Where the pacing buckets shared by every worker live; empty = pace within this process only.
    pacing_redis_url: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        for name in ("authority_host", "base_url"):
            parts = urlsplit(getattr(self, name))
            if parts.scheme != "https" or not parts.hostname:
                raise GraphConfigError(f"{name} must be an https URL, got {getattr(self, name)!r}")
        if not self.client_id:
            raise GraphConfigError("GRAPH_CLIENT_ID is not set")
        if not self.client_secret and not self.private_key_pem:
            raise GraphConfigError(
                "No app credential: set GRAPH_CLIENT_PRIVATE_KEY_FILE (+ certificate) or GRAPH_CLIENT_SECRET"
            )
        if self.private_key_pem and not (self.certificate_thumbprint or self.public_certificate_pem):
            raise GraphConfigError("A private key needs GRAPH_CLIENT_CERTIFICATE_FILE or its thumbprint")
        try:
            self.pacing_rates  # noqa: B018 - validates every rate
        except ValueError as exc:
            raise GraphConfigError(f"GRAPH_* pacing settings: {exc}") from exc
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise GraphConfigError(f"GRAPH_CA_BUNDLE={self.ca_bundle} is not a file")

    @classmethod
    def from_settings(cls) -> GraphConfig:
        """Build from Django settings (which read the environment)."""
        from django.conf import settings

        private_key = chain = ""
        thumbprint = settings.GRAPH_CLIENT_CERTIFICATE_THUMBPRINT.replace(":", "").upper()
        if settings.GRAPH_CLIENT_PRIVATE_KEY_FILE:
            private_key = _read(settings.GRAPH_CLIENT_PRIVATE_KEY_FILE, "GRAPH_CLIENT_PRIVATE_KEY_FILE")
            if settings.GRAPH_CLIENT_CERTIFICATE_FILE:
                chain = _read(settings.GRAPH_CLIENT_CERTIFICATE_FILE, "GRAPH_CLIENT_CERTIFICATE_FILE")
                thumbprint = check_certificate(private_key, chain, thumbprint)
        return cls(
            authority_host=settings.GRAPH_AUTHORITY_HOST,
            base_url=settings.GRAPH_BASE_URL,
            client_id=settings.GRAPH_CLIENT_ID,
            # A certificate is preferred: when both are configured the secret is not used.
            client_secret="" if private_key else settings.GRAPH_CLIENT_SECRET,
            private_key_pem=private_key,
            certificate_thumbprint=thumbprint,
            public_certificate_pem=chain,
            ca_bundle=settings.GRAPH_CA_BUNDLE,
            allowed_hosts=tuple(settings.GRAPH_ALLOWED_HOSTS),
            connect_timeout=settings.GRAPH_CONNECT_TIMEOUT,
            read_timeout=settings.GRAPH_READ_TIMEOUT,
            max_attempts=settings.GRAPH_MAX_ATTEMPTS,
            writes_per_second=settings.GRAPH_WRITES_PER_SECOND,
            ca_requests_per_second=settings.GRAPH_CA_REQUESTS_PER_SECOND,
            app_writes_per_second=settings.GRAPH_APP_WRITES_PER_SECOND,
            report_requests_per_second=settings.GRAPH_REPORT_REQUESTS_PER_SECOND,
            pacing_time_scale=settings.GRAPH_PACING_TIME_SCALE,
            pacing_redis_url=settings.REDIS_URL if settings.GRAPH_PACING == "redis" else "",
        )

    @property
    def pacing_rates(self) -> PacingRates:
        return PacingRates(
            tenant_writes=self.writes_per_second,
            app_writes=self.app_writes_per_second,
            ca_requests=self.ca_requests_per_second,
            report_requests=self.report_requests_per_second,
            time_scale=self.pacing_time_scale,
        )

    @property
    def verify(self) -> str | bool:
        """What httpx and requests should verify the server certificate against."""
        return self.ca_bundle or True

    @property
    def graph_hosts(self) -> set[str]:
        """Hosts the bearer token may be sent to (lowercase host[:port])."""
        hosts = {h.lower() for h in self.allowed_hosts}
        hosts.add(urlsplit(self.base_url).netloc.lower())
        return hosts

    def authority(self, tenant: str) -> str:
        return f"{self.authority_host}/{tenant}"

    @property
    def uses_loopback(self) -> bool:
        """True when Graph is the local simulator (the demo and the tests)."""
        return urlsplit(self.base_url).hostname in _LOOPBACK


def unusable(exc: GraphConfigError) -> str:
    """What staff read when the console's own Graph settings stop a job or a page (not the tenant's fault)."""
    return f"The console's Graph settings are unusable: {exc}"


def certificate_thumbprint(certificate_pem: str) -> str:
    """SHA-1 thumbprint (upper-case hex) of a PEM certificate (the first of a chain), as Entra shows it."""
    from cryptography.hazmat.primitives import hashes

    return _certificates(certificate_pem)[0].fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra's


def check_certificate(private_key_pem: str, chain_pem: str, thumbprint: str = "") -> str:
    """The certificate file's first certificate must belong to the private key, be in date, and match a
    thumbprint that is also set (SHA-1 or SHA-256). Returns its SHA-1 thumbprint."""
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives import hashes, serialization

    leaf = _certificates(chain_pem)[0]
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except TypeError as exc:
        raise GraphConfigError(
            "GRAPH_CLIENT_PRIVATE_KEY_FILE is encrypted: store it unencrypted in a file only the console "
            "can read (a mounted secret)"
        ) from exc
    except ValueError as exc:
        raise GraphConfigError("GRAPH_CLIENT_PRIVATE_KEY_FILE is not a PEM private key") from exc
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise GraphConfigError(
            "GRAPH_CLIENT_PRIVATE_KEY_FILE does not belong to the first certificate in "
            "GRAPH_CLIENT_CERTIFICATE_FILE"
        )
    expires = leaf.not_valid_after_utc
    if expires <= datetime.now(UTC):
        raise GraphConfigError(
            f"The certificate in GRAPH_CLIENT_CERTIFICATE_FILE expired on {expires:%Y-%m-%d}: "
            "upload a new one to the app registration and replace the files"
        )
    sha1 = leaf.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - Entra's format
    if thumbprint and thumbprint not in (sha1, leaf.fingerprint(hashes.SHA256()).hex().upper()):
        raise GraphConfigError(
            f"GRAPH_CLIENT_CERTIFICATE_THUMBPRINT {thumbprint} is not the thumbprint of the certificate in "
            f"GRAPH_CLIENT_CERTIFICATE_FILE ({sha1}); leave it empty when the file is set"
        )
    return sha1


def certificate_expiry(chain_pem: str):
    """When the file's first certificate stops being valid (UTC)."""
    return _certificates(chain_pem)[0].not_valid_after_utc


def _certificates(chain_pem: str) -> list:
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError as exc:
        raise GraphConfigError("GRAPH_CLIENT_CERTIFICATE_FILE is not a PEM certificate") from exc
    return certificates


def _read(path: str, setting: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise GraphConfigError(f"{setting}={path} cannot be read: {exc.strerror}") from exc
