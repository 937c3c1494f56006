"""Errors raised by the Graph client. Callers branch on type and `code`, never on message text."""

from __future__ import annotations

from typing import Any


class GraphConfigError(Exception):
    """The console's own Graph settings are unusable (no client id, unreadable key, bad URL)."""


class GraphAuditMissing(Exception):
    """A write was attempted outside the audited path (a programming error, never a tenant problem)."""


class GraphHostNotAllowed(GraphConfigError):
    """A request would have carried the bearer token to a host outside GRAPH_ALLOWED_HOSTS."""


class TokenError(Exception):
    """The login service refused a token. `code` is the OAuth error, `aadsts` the first AADSTS number."""

    def __init__(self, tenant_id: str, code: str, description: str, aadsts: int | None = None) -> None:
        self.tenant_id = tenant_id
        self.code = code
        self.description = description
        self.aadsts = aadsts
        first_line = description.splitlines()[0] if description else code
        super().__init__(f"Token refused for tenant {tenant_id}: {code}: {first_line}")


class ConsentMissing(TokenError):
    """The customer's admin has not consented (or consent was revoked): no token for this tenant."""

    @property
    def in_words(self) -> str:
        """What the console says about it, the same in a run, a census and the drift watch."""
        return (
            f"Admin consent is not granted, or was withdrawn (AADSTS{self.aadsts or '?'}): "
            "the customer's admin must consent again from the tenant's consent page."
        )


class GraphError(Exception):
    """Graph answered with an error status. `code` is the Graph error code from the envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        method: str = "",
        url: str = "",
        request_id: str = "",
        client_request_id: str = "",
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.url = url
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.retry_after = retry_after
        self.body = body
        super().__init__(f"{method} {url} -> {status} {code}: {message} (request-id {request_id or '?'})")

    @property
    def throttled(self) -> bool:
        return self.status == 429


class GraphUnavailable(Exception):
    """No answer from Graph after every attempt (timeouts, connection errors). Retryable later.

    For a write this means the outcome is unknown: the change may or may not have been applied.
    """

    def __init__(self, method: str, url: str, reason: str) -> None:
        self.method = method
        self.url = url
        self.reason = reason
        super().__init__(f"{method} {url}: no answer from Graph ({reason})")
