"""A second factor before any console page: an authenticator app's code for local accounts (django-otp),
or MFA proven at Entra ID for staff who sign in there."""

from __future__ import annotations

ENTRA_MFA = "staff.entra_mfa"  # session key: the Entra ID sign-in proved MFA (its claims, as a list)


def mark_verified_by_entra(request, methods: list[str]) -> None:
    """The Entra ID sign-in of this session proved MFA (`methods`: the token's amr/acrs values)."""
    request.session[ENTRA_MFA] = list(methods)


class SecondFactorMiddleware:
    """Placeholder until the second factor lands: lets every request through."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
