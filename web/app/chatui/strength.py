"""A password strength hint (not the policy: see :mod:`.passwords`)."""

import math

LABELS = ("very weak", "weak", "fair", "good", "strong")


def estimate(password, common=False):
    """A score 0..4 and its label, from an entropy estimate."""
    if not password:
        return 0, LABELS[0]
    if common:
        return 0, "very weak (a common password)"
    pool = 0
    pool += 26 if any(c.islower() for c in password) else 0
    pool += 26 if any(c.isupper() for c in password) else 0
    pool += 10 if any(c.isdigit() for c in password) else 0
    pool += 33 if any(not (c.isalpha() or c.isdigit()) for c in password) else 0
    distinct = len(set(password))
    bits = min(len(password), distinct * 2) * math.log(max(pool, 2)) / math.log(2)
    score = 0 if bits < 28 else 1 if bits < 40 else 2 if bits < 60 else 3 if bits < 80 else 4
    return score, LABELS[score]
