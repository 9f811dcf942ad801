"""The password rules, the server's own (``delivery.security``): at least 8 and at
most 128 characters, not one of the ~11,600 most common passwords (the list the server
uses, shipped by build.py), not containing the username. The account password is
checked against them before anything is sent; the vault password must pass them too,
and must differ from the account password (which the server sees)."""

import json

import passwords_js

USERNAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.-"

_limits = None


async def load():
    """The rules and list (fetched once, while the user types)."""
    global _limits  # noqa: PLW0603 - one copy per page
    if _limits is None:
        _limits = json.loads(await passwords_js.load())
    return _limits


def is_common(password):
    return bool(passwords_js.is_common(password.lower()))


def username_problem(name):
    """Why the server would refuse this username, or "" (its rule: 3-32 of a-z, 0-9,
    '_', '.', '-', starting with a letter or digit)."""
    name = name.strip().lower()
    if not 3 <= len(name) <= 32:
        return "A username has 3 to 32 characters."
    if any(c not in USERNAME_CHARS for c in name):
        return "A username has only letters a-z, digits and '_', '.', '-'."
    if not (name[0].isalpha() or name[0].isdigit()):
        return "A username starts with a letter or a digit."
    return ""


async def problem(password, username, what="password"):
    """Why ``password`` breaks the rules, or "" (the server's wording, said plainly)."""
    limits = await load()
    if len(password) < limits["min"]:
        return "The " + what + " needs at least " + str(limits["min"]) + " characters."
    if len(password) > limits["max"]:
        return "The " + what + " can have at most " + str(limits["max"]) + " characters."
    if is_common(password):
        return ("This " + what + " is one of the most commonly used passwords; "
                "choose another.")
    if username and username.strip().lower() in password.lower():
        return "The " + what + " must not contain the username."
    return ""
