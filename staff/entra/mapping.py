"""The staff user an Entra ID account signs in as, and its console groups: at every sign-in the groups
that some mapping gives are set to exactly those the account's Entra groups and app roles map to (other
groups, given by hand, stay). A first sign-in makes the staff user; an account that maps to nothing is
refused, after losing what it no longer maps to."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from staff.entra.flow import Proof, SignInRefused
from staff.models import EntraIdentity, EntraRoleMapping


@dataclass(frozen=True)
class Outcome:
    user: object
    created: bool
    added: tuple[str, ...]
    removed: tuple[str, ...]
    groups: tuple[str, ...]


def _mapped_groups(proof: Proof) -> tuple[set, set]:
    """(groups this account maps to, every group some mapping gives)."""
    wanted, managed = set(), set()
    groups, roles = set(g.lower() for g in proof.groups), set(proof.roles)
    for mapping in EntraRoleMapping.objects.select_related("group"):
        managed.add(mapping.group)
        if (mapping.kind == EntraRoleMapping.GROUP and mapping.value.lower() in groups) or (
            mapping.kind == EntraRoleMapping.APP_ROLE and mapping.value in roles
        ):
            wanted.add(mapping.group)
    return wanted, managed


def sign_in_user(proof: Proof) -> Outcome:
    """The staff user of this Entra account, its mapped groups brought up to date; or SignInRefused."""
    if proof.groups_overage and EntraRoleMapping.objects.filter(kind=EntraRoleMapping.GROUP).exists():
        raise SignInRefused(
            "groups_overage",
            "Your account is in more groups than an ID token can list (over 200), so Entra ID did not "
            "say which. Map app roles instead (Console.Viewer … Console.Administrator), or have the app "
            "registration emit only groups assigned to the application.",
            proof.upn,
        )
    wanted, managed = _mapped_groups(proof)
    User = get_user_model()
    with transaction.atomic():
        identity = (
            EntraIdentity.objects.select_for_update()
            .select_related("user")
            .filter(tenant_id=proof.tenant_id, object_id=proof.object_id)
            .first()
        )
        created = False
        if identity is None:
            if not wanted:
                raise SignInRefused("unmapped", _UNMAPPED, proof.upn)
            username = (proof.upn or proof.object_id).lower()[:150]
            if User.objects.filter(username__iexact=username).exists():
                raise SignInRefused(
                    "username_taken",
                    f"A console account named {username} already exists and is not linked to this Entra ID "
                    "account. A console administrator must rename that account (or remove it) first: the "
                    "console never takes over an existing account by its name.",
                    proof.upn,
                )
            user = User(username=username, first_name=proof.name[:150], is_staff=True)
            user.set_unusable_password()
            try:
                with transaction.atomic():
                    user.save()
                    identity = EntraIdentity.objects.create(
                        user=user, tenant_id=proof.tenant_id, object_id=proof.object_id
                    )
            except IntegrityError:
                # The same account's first sign-in finishing in another tab at this moment.
                raise SignInRefused(
                    "busy",
                    "Your first sign-in was just finishing in another window: sign in again.",
                    proof.upn,
                ) from None
            created = True
        user = identity.user
        if not (user.is_active and user.is_staff):
            raise SignInRefused(
                "inactive", "Your console account is deactivated. Ask a console administrator.", proof.upn
            )
        current = set(user.groups.all())
        removed = (current & managed) - wanted
        added = wanted - current
        user.groups.remove(*removed)
        user.groups.add(*added)
        identity.upn = proof.upn
        identity.last_sign_in = timezone.now()
        identity.save()
    if not wanted:
        raise SignInRefused("unmapped", _UNMAPPED, proof.upn)
    return Outcome(
        user=user,
        created=created,
        added=tuple(sorted(g.name for g in added)),
        removed=tuple(sorted(g.name for g in removed)),
        groups=tuple(sorted(g.name for g in (current - removed) | added)),
    )


_UNMAPPED = (
    "Your Entra ID account is in no group and holds no app role that the console maps to a role. Ask a "
    "console administrator to map your Entra group (Staff › Entra ID role mappings)."
)
