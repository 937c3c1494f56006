"""The three built-in authentication strength policies, exactly as Microsoft Graph lists them.

Source: "List authenticationStrengthPolicies" (v1.0, example 1). Built-in strengths are read-only and the
same in every tenant; the simulator does not implement custom strengths (POST/PATCH/DELETE).
"""

from __future__ import annotations

import copy

MFA_STRENGTH_ID = "00000000-0000-0000-0000-000000000002"
PASSWORDLESS_STRENGTH_ID = "00000000-0000-0000-0000-000000000003"
PHISHING_RESISTANT_STRENGTH_ID = "00000000-0000-0000-0000-000000000004"
_CREATED = "2021-12-01T00:00:00Z"

BUILT_IN_STRENGTHS: dict[str, dict] = {
    MFA_STRENGTH_ID: {
        "id": MFA_STRENGTH_ID,
        "createdDateTime": _CREATED,
        "modifiedDateTime": _CREATED,
        "displayName": "Multifactor authentication",
        "description": "Combinations of methods that satisfy strong authentication, such as a password + SMS",
        "policyType": "builtIn",
        "requirementsSatisfied": "mfa",
        "allowedCombinations": [
            "windowsHelloForBusiness",
            "fido2",
            "x509CertificateMultiFactor",
            "deviceBasedPush",
            "temporaryAccessPassOneTime",
            "temporaryAccessPassMultiUse",
            "password,microsoftAuthenticatorPush",
            "password,softwareOath",
            "password,hardwareOath",
            "password,x509CertificateSingleFactor",
            "password,x509CertificateMultiFactor",
            "password,sms",
            "password,voice",
            "federatedMultiFactor",
            "microsoftAuthenticatorPush,federatedSingleFactor",
            "softwareOath,federatedSingleFactor",
            "hardwareOath,federatedSingleFactor",
            "sms,federatedSingleFactor",
            "voice,federatedSingleFactor",
        ],
    },
    PASSWORDLESS_STRENGTH_ID: {
        "id": PASSWORDLESS_STRENGTH_ID,
        "createdDateTime": _CREATED,
        "modifiedDateTime": _CREATED,
        "displayName": "Passwordless MFA",
        "description": "Passwordless methods that satisfy strong authentication, such as Passwordless "
        "sign-in with the Microsoft Authenticator",
        "policyType": "builtIn",
        "requirementsSatisfied": "mfa",
        "allowedCombinations": [
            "windowsHelloForBusiness",
            "fido2",
            "x509CertificateMultiFactor",
            "deviceBasedPush",
        ],
    },
    PHISHING_RESISTANT_STRENGTH_ID: {
        "id": PHISHING_RESISTANT_STRENGTH_ID,
        "createdDateTime": _CREATED,
        "modifiedDateTime": _CREATED,
        "displayName": "Phishing resistant MFA",
        "description": "Phishing resistant, Passwordless methods for the strongest authentication, such as "
        "a FIDO2 security key",
        "policyType": "builtIn",
        "requirementsSatisfied": "mfa",
        "allowedCombinations": ["windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor"],
    },
}


def strength(strength_id: str) -> dict | None:
    """A copy of the built-in strength with this id, or None."""
    found = BUILT_IN_STRENGTHS.get(str(strength_id))
    return copy.deepcopy(found) if found is not None else None


def satisfies_mfa(auth_strength: object) -> bool:
    """Whether a policy's ``grantControls.authenticationStrength`` grants the MFA claim: read from the
    expanded object, or looked up by id when only ``{"id": ...}`` is known."""
    if not isinstance(auth_strength, dict):
        return False
    requirements = auth_strength.get("requirementsSatisfied")
    if requirements is None:
        known = BUILT_IN_STRENGTHS.get(str(auth_strength.get("id")))
        requirements = known["requirementsSatisfied"] if known else None
    return requirements == "mfa"
