"""Onboarding a customer through admin consent: the consent link, its callback, and re-checking consent.

A callback's query string proves nothing by itself. Its `state` must be one this console handed out
(single-use, unexpired, made by the same staff user in the same session); an `error` wins over
`admin_consent=True`; and consent counts only once a fresh app-only token for the tenant carries the
tenant's id in `tid`, with `roles` saying what was actually granted.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Mapping
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from migrations_engine.audit.writer import record_staff_action
from migrations_engine.graph import auth as graph_auth
from migrations_engine.graph.auth import AppToken, acquire_app_token, resolve_tenant_id
from migrations_engine.graph.config import GraphConfig, unusable
from migrations_engine.graph.errors import ConsentMissing, GraphConfigError, TokenError
from migrations_engine.graph.permissions import missing_roles
from staff.actors import Actor, actor_label
from tenants.access import NOT_YOURS, can_access
from tenants.choices import ConsentStatus
from tenants.lookup import find_tenant
from tenants.models import ConsentRequest, CustomerTenant, TenantConsent, TenantGrant
from tenants.services import add_tenant
from tenants.validators import validate_domain

logger = logging.getLogger(__name__)


class ConsentRefused(Exception):
    """A consent callback that proves nothing; `message` tells staff why, in words they can act on."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _graph_config() -> GraphConfig:
    try:
        return GraphConfig.from_settings()
    except GraphConfigError as exc:
        raise ValidationError(unusable(exc)) from exc


def _login_text(exc: TokenError) -> str:
    """The AADSTS sentence of a login error, without the trace and correlation ids that follow it."""
    text = (exc.description or exc.code).splitlines()[0]
    return text.split(" Trace ID:")[0].strip()


# --- onboarding ------------------------------------------------------------------------------------


def resolve_tenant(text: str) -> tuple[str, str | None]:
    """(tenant id, domain) for what staff typed: a GUID as is (no domain), a domain via the login service."""
    text = (text or "").strip()
    if not text:
        raise ValidationError("Enter the customer's tenant id or domain.")
    try:
        return str(uuid.UUID(text)), None
    except ValueError:
        pass
    domain = text.lower()
    validate_domain(domain)
    try:
        tenant_id = resolve_tenant_id(_graph_config(), domain)
    except TokenError as exc:
        if exc.code == "invalid_tenant":
            raise ValidationError(f"No Microsoft Entra tenant uses {domain}.") from exc
        raise ValidationError(f"The Microsoft login service could not look up {domain}: {exc}") from exc
    return tenant_id, domain


def _session_key_hash(request) -> str:
    if not request.session.session_key:
        request.session.save()  # a new session gets its key when first saved
    return _sha256(request.session.session_key)


def _redirect_uri(request) -> str:
    return settings.CONSENT_REDIRECT_URI or request.build_absolute_uri(
        reverse("admin:tenants_consent_callback")
    )


def _consent_url(config: GraphConfig, tenant: CustomerTenant, state: str, request) -> str:
    query = urlencode({"client_id": config.client_id, "redirect_uri": _redirect_uri(request), "state": state})
    return f"{config.authority(str(tenant.tenant_id))}/adminconsent?{query}"


def new_consent_link(tenant: CustomerTenant, *, actor: Actor, request) -> str:
    """A fresh admin-consent URL for `tenant`, its state bound to `actor` and to the current session."""
    if not can_access(actor, tenant):
        raise PermissionDenied("You cannot act on this customer tenant.")
    config = _graph_config()
    state = secrets.token_urlsafe(32)
    ConsentRequest.objects.create(
        tenant=tenant, staff=actor, state_hash=_sha256(state), session_key_hash=_session_key_hash(request)
    )
    logger.info("consent link made for %s by %s", tenant, actor_label(actor))
    return _consent_url(config, tenant, state, request)


def _already_a_customer(existing: CustomerTenant | None, actor: Actor) -> ValidationError:
    """The refusal to add a tenant the console already manages: named only when `actor` may see it."""
    if existing is None or not can_access(actor, existing):
        return ValidationError(NOT_YOURS)
    return ValidationError(
        f"{existing.display_name} ({existing.primary_domain}, {existing.tenant_id}) is already a "
        "customer. Send its consent link again from its consent page instead."
    )


def onboard_customer(
    *, text: str, display_name: str, actor: Actor, request, domain: str = ""
) -> tuple[CustomerTenant, str]:
    """Add a customer by tenant id or domain and return it with its first admin-consent URL.

    A tenant id alone names no domain, so `domain` is then required (and must belong to that tenant).
    The new tenant is granted to `actor` unless they are a superuser (who sees every tenant anyway).
    """
    tenant_id, resolved_domain = resolve_tenant(text)
    if resolved_domain is None:
        domain = (domain or "").strip().lower()
        if not domain:
            raise ValidationError(
                "A tenant id does not say the tenant's domain: enter its primary domain too."
            )
        owner_id, _ = resolve_tenant(domain)
        if owner_id != tenant_id:
            raise ValidationError(f"{domain} belongs to tenant {owner_id}, not to {tenant_id}.")
    else:
        domain = resolved_domain
    existing = find_tenant(tenant_id) or find_tenant(domain)
    if existing is not None:
        raise _already_a_customer(existing, actor)
    config = _graph_config()
    try:
        with transaction.atomic():
            tenant = add_tenant(tenant_id=tenant_id, domain=domain, display_name=display_name, actor=actor)
            if not actor.is_superuser:
                TenantGrant.objects.create(tenant=tenant, user=actor)
            state = secrets.token_urlsafe(32)
            ConsentRequest.objects.create(
                tenant=tenant,
                staff=actor,
                state_hash=_sha256(state),
                session_key_hash=_session_key_hash(request),
            )
    except (IntegrityError, ValidationError) as exc:
        # Another staff user added the same tenant a moment ago: the same answer as the check above.
        existing = find_tenant(tenant_id) or find_tenant(domain)
        if existing is None and isinstance(exc, ValidationError):
            raise
        raise _already_a_customer(existing, actor) from exc
    # The audit row has its own durable transaction: written once the tenant is committed.
    record_staff_action(
        actor=actor, action="tenant.onboarded", tenant_id=tenant.pk, detail={"domain": domain}
    )
    return tenant, _consent_url(config, tenant, state, request)


# --- tokens ----------------------------------------------------------------------------------------


def _fresh_token(config: GraphConfig, tenant_id: str) -> AppToken:
    """A token straight from the login service, never msal's cache (consent may have just changed)."""
    graph_auth.forget_tokens(config, tenant_id)
    return acquire_app_token(config, tenant_id)


def _apply_token(consent: TenantConsent, token: AppToken, now) -> None:
    consent.roles = sorted(token.roles)
    consent.missing_roles = missing_roles(token.roles)
    consent.status = ConsentStatus.PARTIAL if consent.missing_roles else ConsentStatus.GRANTED
    consent.last_verified_at = now
    consent.last_error = ""
    if consent.granted_at is None:
        consent.granted_at = now


# --- the callback ----------------------------------------------------------------------------------


def _check_callback(request, consent_request: ConsentRequest, params: Mapping[str, str]) -> AppToken:
    """Every check a callback must pass before its tenant counts as consented; raises ConsentRefused."""
    tenant = consent_request.tenant
    if consent_request.expires_at <= timezone.now():
        raise ConsentRefused("This consent link has expired. Make a new link from the customer's page.")
    if consent_request.staff_id != request.user.pk:
        raise ConsentRefused("This consent link was made by another staff user. Make a link of your own.")
    if consent_request.session_key_hash != _session_key_hash(request):
        raise ConsentRefused(
            "This consent link was made in another session. Open it in the browser where you made it, "
            "or make a new link."
        )
    if not can_access(request.user, tenant):
        raise ConsentRefused("You can no longer act on this customer tenant.")
    if params.get("error"):
        # Microsoft may send admin_consent=True alongside an error: the error wins.
        description = params.get("error_description", "")
        raise ConsentRefused(f"Consent was not granted: {params['error']}: {description}".rstrip(": "))
    if str(params.get("admin_consent", "")).lower() != "true":
        raise ConsentRefused("The answer from Microsoft does not say that admin consent was granted.")
    named = str(params.get("tenant", "")).strip().lower()
    if named != str(tenant.tenant_id):
        raise ConsentRefused(
            f"The answer names tenant {named or '(none)'}, but this link was made for {tenant.tenant_id}."
        )
    try:
        token = _fresh_token(_graph_config(), str(tenant.tenant_id))
    except ValidationError as exc:
        raise ConsentRefused(exc.messages[0]) from exc
    except TokenError as exc:
        raise ConsentRefused(
            f"The Microsoft login service gave no token for {tenant}: {_login_text(exc)}"
        ) from exc
    if wrong := token.wrong_tenant(tenant.tenant_id):
        raise ConsentRefused(f"{wrong} Consent is not recorded.")
    return token


def complete_consent(*, request, params: Mapping[str, str]) -> CustomerTenant:
    """Record the consent a callback reports, once proven; raises ConsentRefused otherwise.

    The state is claimed (marked used) first, by compare-and-set, so it works once even when two
    callbacks race; a refusal changes nothing else.
    """
    state = str(params.get("state") or "")
    consent_request = (
        ConsentRequest.objects.select_related("tenant").filter(state_hash=_sha256(state)).first()
        if state
        else None
    )
    if consent_request is None:
        raise ConsentRefused("This consent answer carries no state this console handed out; it is ignored.")
    claimed = ConsentRequest.objects.filter(pk=consent_request.pk, used_at__isnull=True).update(
        used_at=timezone.now()
    )
    if not claimed:
        raise ConsentRefused("This consent link has already been used. Make a new link to try again.")
    try:
        token = _check_callback(request, consent_request, params)
    except ConsentRefused as exc:
        ConsentRequest.objects.filter(pk=consent_request.pk).update(result=f"refused: {exc.message}"[:1000])
        logger.warning("consent callback refused for %s: %s", consent_request.tenant, exc.message)
        raise

    tenant = consent_request.tenant
    now = timezone.now()
    with transaction.atomic():
        consent, _ = TenantConsent.objects.select_for_update().get_or_create(tenant=tenant)
        _apply_token(consent, token, now)
        consent.granted_at = now
        consent.granted_by = request.user
        consent.save()
        result = (
            f"partial: missing {', '.join(consent.missing_roles)}" if consent.missing_roles else "granted"
        )
        ConsentRequest.objects.filter(pk=consent_request.pk).update(result=result[:1000])
    record_staff_action(
        actor=request.user,
        action="consent.recorded",
        tenant_id=tenant.pk,
        detail={"status": consent.status, "roles": consent.roles, "missing_roles": consent.missing_roles},
    )
    logger.info("consent recorded for %s by %s: %s", tenant, actor_label(request.user), result)
    return CustomerTenant.objects.select_related("consent").get(pk=tenant.pk)


# --- re-checking -----------------------------------------------------------------------------------


def recheck_consent(tenant: CustomerTenant, *, actor: Actor) -> TenantConsent:
    """Ask the login service for a fresh token and store what it shows about the tenant's consent."""
    config = _graph_config()
    token, error, status = None, "", ConsentStatus.ERROR
    try:
        token = _fresh_token(config, str(tenant.tenant_id))
    except ConsentMissing as exc:
        error, status = _login_text(exc), ConsentStatus.PENDING
    except TokenError as exc:
        error = _login_text(exc)
    if token is not None and (wrong := token.wrong_tenant(tenant.tenant_id)):
        token, error = None, wrong

    now = timezone.now()
    with transaction.atomic():
        consent, _ = TenantConsent.objects.select_for_update().get_or_create(tenant=tenant)
        if token is not None:
            _apply_token(consent, token, now)
        else:
            consent.status = status
            consent.last_error = error
            if status == ConsentStatus.PENDING:
                consent.roles, consent.missing_roles, consent.last_verified_at = [], [], now
        consent.save()
    record_staff_action(
        actor=actor,
        action="consent.rechecked",
        tenant_id=tenant.pk,
        detail={"status": consent.status, "missing_roles": consent.missing_roles, "error": error},
    )
    logger.info("consent re-checked for %s by %s: %s", tenant, actor_label(actor), consent.status)
    return consent
