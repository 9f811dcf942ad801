"""A password strength hint (not a policy): length, variety, common choices."""

from __future__ import annotations

import math

COMMON = frozenset((
    "password", "123456", "123456789", "12345678", "qwerty", "abc123", "password1",
    "111111", "123123", "iloveyou", "admin", "welcome", "monkey", "dragon", "letmein",
    "football", "baseball", "sunshine", "princess", "qwertyuiop", "passw0rd", "trustno1",
    "starwars", "whatever", "secret", "shadow", "master", "1q2w3e4r", "zaq12wsx",
))

LABELS = ("very weak", "weak", "fair", "good", "strong")


def estimate(password: str) -> tuple[int, str]:
    """A score 0..4 and its label, from an entropy estimate."""
    if not password:
        return 0, LABELS[0]
    if password.lower() in COMMON:
        return 0, "very weak (a common password)"
    pool = 0
    pool += 26 if any(c.islower() for c in password) else 0
    pool += 26 if any(c.isupper() for c in password) else 0
    pool += 10 if any(c.isdigit() for c in password) else 0
    pool += 33 if any(not c.isalnum() for c in password) else 0
    distinct = len(set(password))
    bits = min(len(password), distinct * 2) * math.log2(max(pool, 2))
    score = 0 if bits < 28 else 1 if bits < 40 else 2 if bits < 60 else 3 if bits < 80 else 4
    return score, LABELS[score]
