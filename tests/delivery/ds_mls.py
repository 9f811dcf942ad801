"""Where the delivery tests get real MLS messages: the client's ``CoreCrypto`` facade.

Every MLS byte string the tests post comes from :class:`corecrypto.CoreCrypto`
over the real :mod:`mls` library, never from hand-made bytes. This module is the
one place the tests depend on that API.
"""

from __future__ import annotations

from typing import Any

from corecrypto import ApplicationReceived, CommitReceived, CoreCrypto
from mls.group import join_external


def new_client(user_id: str, device_id: str, ciphersuite: int = 1) -> CoreCrypto:
    """A new device identity (credential ``<user_id>/<device_id>``)."""
    return CoreCrypto.create(user_id, device_id, ciphersuite)


def is_commit(result: Any) -> bool:
    """Whether ``process_message`` reported a commit."""
    return isinstance(result, CommitReceived)


def plaintext_of(result: Any) -> bytes | None:
    """The application data ``process_message`` reported, if any."""
    return result.plaintext if isinstance(result, ApplicationReceived) else None


def external_join(client: CoreCrypto, group_info: bytes) -> tuple[bytes, bytes]:
    """An external commit joining the group of ``group_info``; returns the commit and
    the group state to import (with ``client.import_group_state``) once it is accepted."""
    joining = join_external(client.provider, group_info, client.signer)
    return joining.commit, joining.group.export_state()
