"""How bytes travel in the API.

* MLS objects (messages, KeyPackages, Welcomes) and signature keys are standard
  base64 with padding (RFC 4648 §4) inside JSON, as ``btoa`` produces.
* Group ids are base64url without padding (RFC 4648 §5) everywhere — in paths,
  query strings and JSON — because they appear in URLs.
"""

from __future__ import annotations

import base64
import binascii
import re

from delivery.errors import BadRequest

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def b64encode(data: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def b64decode(value: str, field: str) -> bytes:
    """Decode standard base64 strictly, naming ``field`` if it is not valid."""
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise BadRequest(
            f"{field} is not valid standard base64 (RFC 4648 §4, with padding)",
            code="invalid_base64",
        ) from None


def encode_group_id(group_id: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(group_id).decode("ascii").rstrip("=")


def decode_group_id(value: str, max_bytes: int) -> bytes:
    """Decode a base64url group id (padding optional) of 1..``max_bytes`` bytes."""
    if not _B64URL_RE.fullmatch(value):
        raise BadRequest("group_id is not base64url (RFC 4648 §5)", code="invalid_group_id")
    stripped = value.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except binascii.Error:
        raise BadRequest(
            "group_id is not base64url (RFC 4648 §5)", code="invalid_group_id"
        ) from None
    if not 1 <= len(raw) <= max_bytes:
        raise BadRequest(
            f"group_id must be 1 to {max_bytes} bytes, got {len(raw)}", code="invalid_group_id"
        )
    return raw
