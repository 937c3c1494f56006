"""A password validator for the patterns a guesser tries first, beyond Django's common-password list."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

# Words people build passwords from when forced to: seasons, months, "password", "welcome", the
# product's and Microsoft's names. A password that is one of these with digits or symbols is refused.
GUESSABLE_WORDS = (
    "spring summer autumn fall winter "
    "january february march april may june july august september october november december "
    "password passw0rd passwort welcome letmein admin administrator qwerty azerty changeme secret "
    "monkey dragon football iloveyou microsoft office365 office azure entra msp console mfa"
).split()
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_KEYBOARD_RUNS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890", "0987654321")


class GuessablePatternValidator:
    """Refuses a word from `GUESSABLE_WORDS` padded with digits or symbols (`Summer2024`, `P@ssw0rd!`),
    the username (or its part before @) inside the password, and keyboard runs of six or more."""

    def validate(self, password: str, user=None) -> None:
        lowered = password.lower()
        # Padding off both ends first (Summer2024 -> summer), then look-alike characters inside (P@ssw0rd).
        core = re.sub(r"[^a-z]", "", re.sub(r"^[\W\d_]+|[\W\d_]+$", "", lowered).translate(_LEET))
        if core in GUESSABLE_WORDS or (len(core) <= 12 and any(core == w * 2 for w in GUESSABLE_WORDS)):
            raise ValidationError(
                "This password is a common word with numbers or symbols added (like Summer2024): "
                "choose a passphrase of several unrelated words.",
                code="password_guessable",
            )
        username = (getattr(user, "username", "") or "").lower().split("@")[0]
        if len(username) >= 3 and username in lowered:
            raise ValidationError(
                "The password must not contain your username.", code="password_has_username"
            )
        for run in _KEYBOARD_RUNS:
            if any(run[i : i + 6] in lowered for i in range(len(run) - 5)):
                raise ValidationError(
                    "The password contains a keyboard run (like qwerty or 123456).", code="password_keyboard"
                )

    def get_help_text(self) -> str:
        return (
            "Your password can't be a common word with numbers added (Summer2024), contain your username, "
            "or contain a keyboard run."
        )
