"""Where the delivery tests get real MLS messages: the client's ``CoreCrypto`` facade.

Every MLS byte string the tests post comes from :class:`corecrypto.CoreCrypto`
over the real :mod:`mls` library, never from hand-made bytes. This module is the
one place the tests depend on that API.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from corecrypto import ApplicationReceived, CommitReceived, CoreCrypto
from delivery.mlsparse import peek_group_id
from mls.errors import MLSError
from mls.group import join_external
from mls.inspect import summarize_message


def new_client(user_id: str, device_id: str, ciphersuite: int = 1) -> CoreCrypto:
    """A new device identity (credential ``<user_id>/<device_id>``)."""
    return CoreCrypto.create(user_id, device_id, ciphersuite)


def is_commit(result: Any) -> bool:
    """Whether ``process_message`` reported a commit."""
    return isinstance(result, CommitReceived)


def plaintext_of(result: Any) -> bytes | None:
    """The application data ``process_message`` reported, if any."""
    return result.plaintext if isinstance(result, ApplicationReceived) else None


def pending_group_info(client: CoreCrypto, message: bytes) -> bytes | None:
    """The GroupInfo of the epoch ``message`` creates, if it is the client's pending
    commit (what a commit is posted with), else None."""
    gid = peek_group_id(message)
    if gid is None or not client.has_group(gid):
        return None
    try:
        summary = summarize_message(message, client.group_suite(gid))
    except (MLSError, ValueError):
        return None
    if summary.content_type != "commit" or not client.has_pending_commit(gid):
        return None
    return client.group(gid).pending_group_info()


def external_join(
    client: CoreCrypto, group_info: bytes, remove_prior: int | None = None, *,
    forge: bool = False,
) -> tuple[bytes, bytes, bytes]:
    """An external commit joining the group of ``group_info`` (removing leaf
    ``remove_prior``, for a resync); returns the commit, the GroupInfo of the epoch it
    creates (to post with it) and the group state to import (with
    ``client.import_group_state``) once it is accepted. ``forge`` lifts the client's own
    resync rule (to build what an attacker would post)."""
    config = client._config()
    if forge:
        config = replace(config, same_client=lambda _old, _new: True)
    joining = join_external(client.provider, group_info, client.signer,
                            remove_prior=remove_prior, config=config)
    return joining.commit, joining.group.group_info(), joining.group.export_state()
