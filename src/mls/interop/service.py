"""The ``MLSClient`` gRPC service (``mls_client.proto``) over :class:`InteropSession`.

Each RPC unpacks its request, calls the session under its lock and packs the
answer. Errors become gRPC statuses: an unknown id is ``NOT_FOUND``, anything
the library rejects is ``INVALID_ARGUMENT`` with the library's message (which
names the RFC rule), an unsupported request ``UNIMPLEMENTED``.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

from ..errors import MLSError, UnsupportedError
from ..extensions import Extension
from . import proto
from .session import NAME, InteropSession, ProposalSpec, UnknownHandle

log = logging.getLogger("mls.interop")

Handler = Callable[[Any, Any, Any], Any]


def _rpc(fn: Handler) -> Callable[[Any, Any, Any], Any]:
    """Run an RPC under the session lock and map errors to gRPC statuses."""

    @functools.wraps(fn)
    def wrapper(self: Any, request: Any, context: Any) -> Any:
        import grpc

        try:
            return self.session.locked(lambda: fn(self, request, context))
        except UnknownHandle as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except UnsupportedError as e:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, str(e))
        except (MLSError, ValueError) as e:
            log.info("%s rejected: %s: %s", fn.__name__, type(e).__name__, e)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{type(e).__name__}: {e}")
        raise AssertionError("unreachable: context.abort raises")

    return wrapper


def _extensions(items: Sequence[Any]) -> tuple[Extension, ...]:
    return tuple(Extension(e.extension_type, bytes(e.extension_data)) for e in items)


def _spec(d: Any) -> ProposalSpec:
    return ProposalSpec(
        kind=bytes(d.proposal_type).decode(), key_package=d.key_package,
        removed_id=d.removed_id, psk_id=d.psk_id, epoch_id=d.epoch_id,
        extensions=_extensions(d.extensions), group_id=d.group_id,
        cipher_suite=d.cipher_suite)


class MLSClientService:
    """The servicer: one method per RPC of ``service MLSClient``."""

    def __init__(self, session: InteropSession) -> None:
        self.session = session
        self.pb, _ = proto.load()

    # -- about the client --------------------------------------------------------------
    @_rpc
    def Name(self, request: Any, context: Any) -> Any:
        return self.pb.NameResponse(name=NAME)

    @_rpc
    def SupportedCiphersuites(self, request: Any, context: Any) -> Any:
        return self.pb.SupportedCiphersuitesResponse(ciphersuites=list(self.session.suites))

    # -- becoming a member -----------------------------------------------------------------
    @_rpc
    def CreateGroup(self, r: Any, context: Any) -> Any:
        sid = self.session.create_group(r.group_id, r.cipher_suite, r.encrypt_handshake,
                                        r.identity)
        return self.pb.CreateGroupResponse(state_id=sid)

    @_rpc
    def CreateKeyPackage(self, r: Any, context: Any) -> Any:
        kp = self.session.create_key_package(r.cipher_suite, r.identity)
        return self.pb.CreateKeyPackageResponse(
            transaction_id=kp.transaction_id, key_package=kp.message, init_priv=kp.init_priv,
            encryption_priv=kp.encryption_priv, signature_priv=kp.signature_priv)

    @_rpc
    def JoinGroup(self, r: Any, context: Any) -> Any:
        j = self.session.join_group(r.transaction_id, r.welcome, r.encrypt_handshake,
                                    r.ratchet_tree)
        return self.pb.JoinGroupResponse(state_id=j.state_id,
                                          epoch_authenticator=j.epoch_authenticator)

    @_rpc
    def ExternalJoin(self, r: Any, context: Any) -> Any:
        j, commit = self.session.external_join(
            r.group_info, r.ratchet_tree, r.encrypt_handshake, r.identity, r.remove_prior,
            [(p.psk_id, p.psk_secret) for p in r.psks])
        return self.pb.ExternalJoinResponse(state_id=j.state_id, commit=commit,
                                            epoch_authenticator=j.epoch_authenticator)

    # -- a group's state ---------------------------------------------------------------------
    @_rpc
    def GroupInfo(self, r: Any, context: Any) -> Any:
        gi, tree = self.session.group_info(r.state_id, r.external_tree)
        return self.pb.GroupInfoResponse(group_info=gi, ratchet_tree=tree)

    @_rpc
    def StateAuth(self, r: Any, context: Any) -> Any:
        return self.pb.StateAuthResponse(state_auth_secret=self.session.state_auth(r.state_id))

    @_rpc
    def Export(self, r: Any, context: Any) -> Any:
        return self.pb.ExportResponse(exported_secret=self.session.export(
            r.state_id, r.label, r.context, r.key_length))

    @_rpc
    def Protect(self, r: Any, context: Any) -> Any:
        return self.pb.ProtectResponse(ciphertext=self.session.protect(
            r.state_id, r.authenticated_data, r.plaintext))

    @_rpc
    def Unprotect(self, r: Any, context: Any) -> Any:
        ad, pt = self.session.unprotect(r.state_id, r.ciphertext)
        return self.pb.UnprotectResponse(authenticated_data=ad, plaintext=pt)

    @_rpc
    def StorePSK(self, r: Any, context: Any) -> Any:
        self.session.store_psk(r.state_or_transaction_id, r.psk_id, r.psk_secret)
        return self.pb.StorePSKResponse()

    # -- proposals -----------------------------------------------------------------------------
    def _proposal(self, state_id: int, spec: ProposalSpec) -> Any:
        return self.pb.ProposalResponse(proposal=self.session.propose(state_id, spec))

    @_rpc
    def AddProposal(self, r: Any, context: Any) -> Any:
        return self._proposal(r.state_id, ProposalSpec("add", key_package=r.key_package))

    @_rpc
    def UpdateProposal(self, r: Any, context: Any) -> Any:
        return self._proposal(r.state_id, ProposalSpec("update"))

    @_rpc
    def RemoveProposal(self, r: Any, context: Any) -> Any:
        return self._proposal(r.state_id, ProposalSpec("remove", removed_id=r.removed_id))

    @_rpc
    def ExternalPSKProposal(self, r: Any, context: Any) -> Any:
        return self._proposal(r.state_id, ProposalSpec("externalPSK", psk_id=r.psk_id))

    @_rpc
    def ResumptionPSKProposal(self, r: Any, context: Any) -> Any:
        return self._proposal(r.state_id, ProposalSpec("resumptionPSK", epoch_id=r.epoch_id))

    @_rpc
    def GroupContextExtensionsProposal(self, r: Any, context: Any) -> Any:
        return self._proposal(r.state_id, ProposalSpec(
            "groupContextExtensions", extensions=_extensions(r.extensions)))

    @_rpc
    def ReInitProposal(self, r: Any, context: Any) -> Any:
        return self._proposal(r.state_id, ProposalSpec(
            "reinit", group_id=r.group_id, cipher_suite=r.cipher_suite,
            extensions=_extensions(r.extensions)))

    # -- commits ---------------------------------------------------------------------------------
    def _commit(self, r: Any) -> Any:
        c = self.session.commit(r.state_id, list(r.by_reference), [_spec(d) for d in r.by_value],
                                r.force_path, r.external_tree)
        return self.pb.CommitResponse(commit=c.commit, welcome=c.welcome,
                                      ratchet_tree=c.ratchet_tree)

    @_rpc
    def Commit(self, r: Any, context: Any) -> Any:
        return self._commit(r)

    @_rpc
    def HandleCommit(self, r: Any, context: Any) -> Any:
        ea = self.session.handle_commit(r.state_id, list(r.proposal), r.commit)
        return self.pb.HandleCommitResponse(state_id=r.state_id, epoch_authenticator=ea)

    @_rpc
    def HandlePendingCommit(self, r: Any, context: Any) -> Any:
        ea = self.session.handle_pending_commit(r.state_id)
        return self.pb.HandleCommitResponse(state_id=r.state_id, epoch_authenticator=ea)

    # -- reinit ------------------------------------------------------------------------------------
    @_rpc
    def ReInitCommit(self, r: Any, context: Any) -> Any:
        return self._commit(r)

    def _reinit_response(self, s: Any) -> Any:
        return self.pb.HandleReInitCommitResponse(
            reinit_id=s.reinit_id, key_package=s.key_package,
            epoch_authenticator=s.epoch_authenticator)

    @_rpc
    def HandlePendingReInitCommit(self, r: Any, context: Any) -> Any:
        return self._reinit_response(self.session.handle_pending_reinit_commit(r.state_id))

    @_rpc
    def HandleReInitCommit(self, r: Any, context: Any) -> Any:
        return self._reinit_response(
            self.session.handle_reinit_commit(r.state_id, list(r.proposal), r.commit))

    def _subgroup_response(self, s: Any) -> Any:
        return self.pb.CreateSubgroupResponse(
            state_id=s.state_id, welcome=s.welcome, ratchet_tree=s.ratchet_tree,
            epoch_authenticator=s.epoch_authenticator)

    @_rpc
    def ReInitWelcome(self, r: Any, context: Any) -> Any:
        return self._subgroup_response(self.session.reinit_welcome(
            r.reinit_id, list(r.key_package), r.force_path, r.external_tree))

    @_rpc
    def HandleReInitWelcome(self, r: Any, context: Any) -> Any:
        j = self.session.handle_reinit_welcome(r.reinit_id, r.welcome, r.ratchet_tree)
        return self.pb.JoinGroupResponse(state_id=j.state_id,
                                          epoch_authenticator=j.epoch_authenticator)

    # -- branch ---------------------------------------------------------------------------------
    @_rpc
    def CreateBranch(self, r: Any, context: Any) -> Any:
        return self._subgroup_response(self.session.create_branch(
            r.state_id, r.group_id, _extensions(r.extensions), list(r.key_packages),
            r.force_path, r.external_tree))

    @_rpc
    def HandleBranch(self, r: Any, context: Any) -> Any:
        j = self.session.handle_branch(r.state_id, r.transaction_id, r.welcome, r.ratchet_tree)
        return self.pb.HandleBranchResponse(state_id=j.state_id,
                                             epoch_authenticator=j.epoch_authenticator)

    # -- external proposals ------------------------------------------------------------------
    @_rpc
    def NewMemberAddProposal(self, r: Any, context: Any) -> Any:
        kp = self.session.new_member_add_proposal(r.group_info, r.identity)
        return self.pb.NewMemberAddProposalResponse(
            transaction_id=kp.transaction_id, proposal=kp.message, init_priv=kp.init_priv,
            encryption_priv=kp.encryption_priv, signature_priv=kp.signature_priv)

    @_rpc
    def CreateExternalSigner(self, r: Any, context: Any) -> Any:
        sid, sender = self.session.create_external_signer(r.cipher_suite, r.identity)
        return self.pb.CreateExternalSignerResponse(signer_id=sid, external_sender=sender)

    @_rpc
    def AddExternalSigner(self, r: Any, context: Any) -> Any:
        return self.pb.ProposalResponse(
            proposal=self.session.add_external_signer(r.state_id, r.external_sender))

    @_rpc
    def ExternalSignerProposal(self, r: Any, context: Any) -> Any:
        return self.pb.ProposalResponse(proposal=self.session.external_signer_proposal(
            r.signer_id, r.group_info, r.ratchet_tree, _spec(r.description)))

    @_rpc
    def Free(self, r: Any, context: Any) -> Any:
        self.session.free(r.state_id)
        return self.pb.FreeResponse()


def serve(host: str, port: int, suites: Sequence[int] | None = None, workers: int = 4) -> None:
    """Serve until interrupted; prints ``listening on HOST:PORT`` once bound
    (``port`` 0 picks a free port, which the line then tells)."""
    import grpc

    _, services = proto.load()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    services.add_MLSClientServicer_to_server(MLSClientService(InteropSession(suites=suites)),
                                             server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    server.start()
    sys.stdout.write(f"listening on {host}:{bound}\n")
    sys.stdout.flush()
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=None)
