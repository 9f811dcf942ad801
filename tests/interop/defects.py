"""Known defects and missing features of the interop peers, and the check that
every scenario run either passes or fails exactly as one of them predicts.

A known defect is neither a pass nor a skip: each entry names the scripts it
breaks, where the failure surfaces (endpoint, RPC, error pattern) and the RFC
9420 section. :func:`check` fails the test when a run fails any other way, and
also when an entry no longer shows up in one of its scripts, so fixing the
peer (or changing how it fails) turns the test red until this table is updated.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mls.interop.runner import Result


@dataclass(frozen=True)
class Known:
    id: str
    peer: str
    rfc: str
    what: str
    scripts: frozenset[str]
    endpoint: str  # whose RPC fails: the peer itself, or python rejecting the peer's bytes
    rpcs: frozenset[str]
    error: str  # regular expression on the error
    missing_feature: bool = False  # the peer lacks an API, as opposed to getting the protocol wrong

    def matches(self, r: Result) -> bool:
        return (r.endpoint == self.endpoint and r.rpc in self.rpcs
                and re.search(self.error, r.error or "") is not None)


def _s(*names: str) -> frozenset[str]:
    return frozenset(names)


OPENMLS: tuple[Known, ...] = (
    Known("openmls-no-reinit", "openmls 0.9.2", "RFC 9420 §11.2",
          "no API to propose, commit or follow a ReInit (its proposal queue drops ReInit)",
          _s("reinit/all_same_actor", "reinit/change_ciphersuite", "reinit/change_extensions",
             "reinit/change_group_id", "reinit/external_tree", "reinit/force_path",
             "external_proposals/external_reinit"),
          "openmls", _s("ReInitProposal", "ReInitCommit", "HandleReInitCommit",
                        "HandlePendingReInitCommit", "ExternalSignerProposal"),
          r"UNIMPLEMENTED: .*(ReInit|reinit)", missing_feature=True),
    Known("openmls-no-branch", "openmls 0.9.2", "RFC 9420 §11.3",
          "no API to branch a group",
          _s("branch/base", "branch/external_tree", "branch/force_path", "branch/with_extensions"),
          "openmls", _s("CreateBranch", "HandleBranch"), r"UNIMPLEMENTED: .*branch",
          missing_feature=True),
    Known("openmls-psk-order", "openmls 0.9.2", "RFC 9420 §8.4, §12.4.2",
          "a commit with PreSharedKey proposals both by reference and by value derives "
          "psk_secret with the by-value ones first, but lists the by-reference ones first: "
          "every receiver (OpenMLS too) rejects its confirmation_tag",
          _s("commit/external_psk", "commit/resumption_psk", "commit/all_together_alice_proposes",
             "commit/all_together_bob_proposes"),
          "python", _s("HandleCommit"), r"ConfirmationTagError"),
    Known("openmls-external-psk-proposal", "openmls 0.9.2", "RFC 9420 §12.1.8.1, §17.4",
          "rejects PreSharedKey proposals from external senders (UnsupportedProposalType) "
          "and has no API to send them",
          _s("external_proposals/external_psk", "external_proposals/resumption_psk",
             "external_proposals/multiple_external"),
          "openmls", _s("Commit", "ExternalSignerProposal"),
          r"UnsupportedProposalType|UNIMPLEMENTED: .*external (externalPSK|resumptionPSK)"),
)

_EXTERNAL_SENDERS_SCRIPTS = _s(
    "commit/group_context_extensions", "commit/all_together_alice_proposes",
    "commit/all_together_bob_proposes", "external_proposals/external_add",
    "external_proposals/external_remove", "external_proposals/external_psk",
    "external_proposals/resumption_psk", "external_proposals/group_context_extensions",
    "external_proposals/multiple_external", "external_proposals/external_reinit",
    "branch/with_extensions", "reinit/change_extensions")

TSMLS: tuple[Known, ...] = (
    Known("ts-mls-external-pub", "ts-mls 1.6.4", "RFC 9420 §12.4.3.2",
          "puts the bare HPKE key in the external_pub extension of the GroupInfos it signs, "
          "not the ExternalPub struct; Python rejects them (the peer unwraps other "
          "implementations' struct for ts-mls, outside the signed bytes)",
          _s("external_join/normal", "external_join/removing_prior",
             "external_join/with_external_tree", "external_join/with_more_members",
             "external_join/with_psk"),
          "python", _s("ExternalJoin"), r"external_pub .*§12\.4\.3\.2"),
    Known("ts-mls-external-senders", "ts-mls 1.6.4", "RFC 9420 §12.1.8.1",
          "reads an external_senders extension as one ExternalSender instead of a vector "
          "(and indexes senders by extension), so it cannot decode a correct one, even empty",
          _EXTERNAL_SENDERS_SCRIPTS,
          "ts-mls", _s("Commit", "HandleCommit", "CreateBranch", "ReInitWelcome"),
          r"Could not decode external_sender"),
    Known("ts-mls-no-update", "ts-mls 1.6.4", "RFC 9420 §12.1.2",
          "no API to create an Update proposal",
          _s("commit/update", "commit/all_together_bob_proposes", "deep_random/random"),
          "ts-mls", _s("UpdateProposal"), r"UNIMPLEMENTED: .*Update proposals",
          missing_feature=True),
    Known("ts-mls-no-psk-in-external-commit", "ts-mls 1.6.4", "RFC 9420 §12.4.3.2",
          "joinGroupExternal takes no PreSharedKey proposals",
          _s("external_join/with_psk"),
          "ts-mls", _s("ExternalJoin"), r"UNIMPLEMENTED: .*PSKs in external commits",
          missing_feature=True),
)


def check(results: Sequence[Result], known: Iterable[Known]) -> Counter[str]:
    """Every run passes or fails as a known entry of its script predicts; every
    (entry, script) pair shows up at least once. Returns how often each did."""
    entries = list(known)
    seen: Counter[str] = Counter()
    unexpected = []
    for r in results:
        if r.ok:
            continue
        hit = next((k for k in entries if r.script in k.scripts and k.matches(r)), None)
        if hit is None:
            unexpected.append(r)
        else:
            seen[f"{hit.id} {r.script}"] += 1
    assert not unexpected, "unexpected interop failures:\n" + "\n".join(
        f"  {r.script} suite {r.suite} {'private' if r.encrypt else 'public'} {r.pairing} "
        f"step {r.failed_step} ({r.failed_action}): {r.error}" for r in unexpected)
    ran = {r.script for r in results}
    gone = [f"{k.id} ({k.rfc}) in {s}" for k in entries for s in sorted(k.scripts & ran)
            if seen[f"{k.id} {s}"] == 0]
    assert not gone, ("known peer defects no longer show up (fixed upstream? update "
                      "tests/interop/defects.py):\n  " + "\n  ".join(gone))
    return seen
