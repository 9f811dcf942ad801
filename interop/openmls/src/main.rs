//! The MLS working group's `MLSClient` gRPC service over the `openmls` crate,
//! so Intellacc's interop runner (and any other) can drive OpenMLS.
//!
//! Usage: `intellacc-openmls-peer --port P` (0 picks a free port); prints
//! `listening on 127.0.0.1:PORT` once bound.
//!
//! Every state (group member or pending KeyPackage) owns its own provider,
//! because OpenMLS keys its storage by group id and one endpoint often plays
//! several members of the same group. Operations OpenMLS 0.9.2 has no API for
//! (ReInit, branching, external PSK/ReInit proposals) answer UNIMPLEMENTED.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::*;
use openmls::schedule::psk::{ResumptionPsk, ResumptionPskUsage};
use openmls::schedule::{ExternalPsk, PreSharedKeyId, Psk};
use openmls_basic_credential::SignatureKeyPair;
use tls_codec::{Deserialize as TlsDeserializeTrait, Serialize as TlsSerializeTrait, Size};
use tonic::{Request, Response, Status};

#[allow(clippy::all, dead_code)]
mod pb {
    tonic::include_proto!("mls_client");
}
use pb::mls_client_server::{MlsClient, MlsClientServer};

/// The crypto provider is a build-time choice (cargo feature), so another
/// provider (e.g. libcrux for hybrid suites) only adds a feature and a line here.
#[cfg(feature = "rust-crypto")]
type Provider = openmls_rust_crypto::OpenMlsRustCrypto;
#[cfg(feature = "rust-crypto")]
const PROVIDER_NAME: &str = "rust-crypto";
#[cfg(feature = "rust-crypto")]
const EXTRA_SUITES: [u16; 0] = [];
#[cfg(feature = "libcrux")]
type Provider = openmls_libcrux_crypto::Provider;
#[cfg(feature = "libcrux")]
const PROVIDER_NAME: &str = "libcrux";
/// The hybrid post-quantum suites (X-Wing) of draft-ietf-mls-pq-ciphersuites,
/// at the code points OpenMLS uses.
#[cfg(feature = "libcrux")]
const EXTRA_SUITES: [u16; 3] = [0x004D, 0x004E, 0x004F];

fn new_provider() -> Provider {
    Provider::default()
}

type Rpc<T> = Result<Response<T>, Status>;

fn bad<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> Status + '_ {
    move |e| Status::invalid_argument(format!("{what}: {e:?}"))
}

fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!("openmls 0.9.2 has no API for {what}"))
}

struct Member {
    provider: Provider,
    group: MlsGroup,
    signer: SignatureKeyPair,
    /// Proposals this member sent, so they are recognised when handed back.
    own: HashSet<Vec<u8>>,
}

struct Pending {
    provider: Provider,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
}

#[derive(Default)]
struct Store {
    next: u32,
    members: HashMap<u32, Member>,
    pending: HashMap<u32, Pending>,
    signers: HashMap<u32, (SignatureKeyPair, Credential)>,
    /// The signer last used for each identity, so an external join with
    /// `remove_prior` can reuse it (OpenMLS removes the leaf with our key).
    by_identity: HashMap<Vec<u8>, (SignatureKeyPair, CredentialWithKey)>,
}

impl Store {
    fn id(&mut self) -> u32 {
        self.next += 1;
        self.next
    }
    fn member(&mut self, id: u32) -> Result<&mut Member, Status> {
        self.members
            .get_mut(&id)
            .ok_or_else(|| Status::not_found(format!("unknown state id {id}")))
    }
}

struct Service {
    store: Mutex<Store>,
}

fn suite(id: u32) -> Result<Ciphersuite, Status> {
    let s = Ciphersuite::try_from(id as u16).map_err(bad("cipher suite"))?;
    if new_provider().crypto().supports(s).is_err() {
        return Err(Status::invalid_argument(format!("suite {id} not supported")));
    }
    Ok(s)
}

fn wire_policy(encrypt: bool) -> WireFormatPolicy {
    if encrypt {
        PURE_CIPHERTEXT_WIRE_FORMAT_POLICY
    } else {
        PURE_PLAINTEXT_WIRE_FORMAT_POLICY
    }
}

fn join_config(encrypt: bool) -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(wire_policy(encrypt))
        .use_ratchet_tree_extension(true)
        .max_past_epochs(8)
        .number_of_resumption_psks(16)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(16, 1000))
        .build()
}

fn new_signer(
    provider: &Provider,
    cs: Ciphersuite,
    identity: &[u8],
) -> Result<(SignatureKeyPair, CredentialWithKey), Status> {
    let signer = SignatureKeyPair::new(cs.signature_algorithm()).map_err(bad("signature key"))?;
    signer.store(provider.storage()).map_err(bad("storage"))?;
    let credential = CredentialWithKey {
        credential: BasicCredential::new(identity.to_vec()).into(),
        signature_key: signer.public().into(),
    };
    Ok((signer, credential))
}

fn ser(m: &impl TlsSerializeTrait) -> Result<Vec<u8>, Status> {
    m.tls_serialize_detached().map_err(bad("serialize"))
}

fn message(bytes: &[u8]) -> Result<MlsMessageBodyIn, Status> {
    Ok(MlsMessageIn::tls_deserialize_exact(bytes).map_err(bad("MLSMessage"))?.extract())
}

fn key_package(provider: &Provider, bytes: &[u8]) -> Result<KeyPackage, Status> {
    let kp = match message(bytes) {
        Ok(MlsMessageBodyIn::KeyPackage(kp)) => kp,
        _ => KeyPackageIn::tls_deserialize_exact(bytes).map_err(bad("KeyPackage"))?,
    };
    kp.validate(provider.crypto(), ProtocolVersion::Mls10).map_err(bad("KeyPackage"))
}

fn group_info(bytes: &[u8]) -> Result<VerifiableGroupInfo, Status> {
    match message(bytes)? {
        MlsMessageBodyIn::GroupInfo(gi) => Ok(gi),
        _ => Err(Status::invalid_argument("expected a GroupInfo")),
    }
}

fn ratchet_tree(bytes: &[u8]) -> Result<Option<RatchetTreeIn>, Status> {
    if bytes.is_empty() {
        return Ok(None);
    }
    Ok(Some(RatchetTreeIn::tls_deserialize_exact(bytes).map_err(bad("ratchet tree"))?))
}

fn extensions(items: &[pb::Extension]) -> Result<Extensions<GroupContext>, Status> {
    let mut out = Vec::new();
    for e in items {
        // Extension's wire form: u16 type, then opaque<V> data.
        let mut raw = (e.extension_type as u16).to_be_bytes().to_vec();
        raw.extend(
            tls_codec::VLBytes::new(e.extension_data.clone())
                .tls_serialize_detached()
                .map_err(bad("extension"))?,
        );
        out.push(Extension::tls_deserialize_exact(&raw).map_err(bad("extension"))?);
    }
    Extensions::from_vec(out).map_err(bad("extensions"))
}

/// The leaf index of the member with this identity, from tree leaves in order.
fn leaf_of<'a>(
    leaves: impl Iterator<Item = (u32, &'a Credential)>,
    identity: &[u8],
) -> Result<LeafNodeIndex, Status> {
    for (i, c) in leaves {
        if let Ok(b) = BasicCredential::try_from(c.clone()) {
            if b.identity() == identity {
                return Ok(LeafNodeIndex::new(i));
            }
        }
    }
    Err(Status::invalid_argument("no member with that identity"))
}

fn member_leaf(group: &MlsGroup, identity: &[u8]) -> Result<LeafNodeIndex, Status> {
    let members: Vec<(u32, Credential)> =
        group.members().map(|m| (m.index.u32(), m.credential)).collect();
    leaf_of(members.iter().map(|(i, c)| (*i, c)), identity)
}

fn tree_leaf(tree: &[u8], identity: &[u8]) -> Result<LeafNodeIndex, Status> {
    // RatchetTreeIn only iterates its non-blank nodes, so walk the encoding's
    // presence bytes alongside to know each node's index.
    let rt = RatchetTreeIn::tls_deserialize_exact(tree).map_err(bad("ratchet tree"))?;
    let mut nodes = rt.nodes();
    let mut leaves = rt.leaves();
    let mut pos = match tree.first().map(|b| b >> 6) {
        Some(0) => 1,
        Some(1) => 2,
        Some(2) => 4,
        _ => return Err(Status::invalid_argument("ratchet tree length prefix")),
    };
    let mut index = 0u32;
    while pos < tree.len() {
        let present = tree[pos];
        pos += 1;
        if present == 1 {
            let node = nodes.next().ok_or_else(|| Status::invalid_argument("ratchet tree"))?;
            pos += node.tls_serialized_len();
            if index % 2 == 0 {
                let leaf = leaves.next().ok_or_else(|| Status::invalid_argument("ratchet tree"))?;
                if let Ok(b) = BasicCredential::try_from(leaf.credential().clone()) {
                    if b.identity() == identity {
                        return Ok(LeafNodeIndex::new(index / 2));
                    }
                }
            }
        }
        index += 1;
    }
    Err(Status::invalid_argument("no member with that identity"))
}

impl Member {
    /// Process proposals handed to us before a commit; ours are skipped.
    fn take_proposals(&mut self, proposals: &[Vec<u8>]) -> Result<(), Status> {
        for raw in proposals {
            if self.own.contains(raw) {
                continue;
            }
            let content = self.process(raw)?;
            match content {
                ProcessedMessageContent::ProposalMessage(p)
                | ProcessedMessageContent::ExternalJoinProposalMessage(p) => {
                    self.group
                        .store_pending_proposal(self.provider.storage(), *p)
                        .map_err(bad("store proposal"))?;
                }
                _ => return Err(Status::invalid_argument("expected a proposal")),
            }
        }
        Ok(())
    }

    fn process(&mut self, raw: &[u8]) -> Result<ProcessedMessageContent, Status> {
        let msg = MlsMessageIn::tls_deserialize_exact(raw).map_err(bad("MLSMessage"))?;
        let pm = msg.try_into_protocol_message().map_err(bad("protocol message"))?;
        let processed =
            self.group.process_message(&self.provider, pm).map_err(bad("process_message"))?;
        Ok(processed.into_content())
    }

    fn proposal<R>(
        &mut self,
        out: Result<(MlsMessageOut, R), impl std::fmt::Debug>,
    ) -> Rpc<pb::ProposalResponse> {
        let (msg, _) = out.map_err(bad("propose"))?;
        let proposal = ser(&msg)?;
        self.own.insert(proposal.clone());
        Ok(Response::new(pb::ProposalResponse { proposal }))
    }

    fn psk_id(&self, kind: &str, id: &[u8], epoch: u64) -> Result<PreSharedKeyId, Status> {
        let cs = self.group.ciphersuite();
        let psk = match kind {
            "externalPSK" => Psk::External(ExternalPsk::new(id.to_vec())),
            _ => Psk::Resumption(ResumptionPsk::new(
                ResumptionPskUsage::Application,
                self.group.group_id().clone(),
                GroupEpoch::from(epoch),
            )),
        };
        PreSharedKeyId::new(cs, self.provider.rand(), psk).map_err(bad("PSK id"))
    }
}

#[tonic::async_trait]
impl MlsClient for Service {
    async fn name(&self, _: Request<pb::NameRequest>) -> Rpc<pb::NameResponse> {
        Ok(Response::new(pb::NameResponse { name: format!("openmls 0.9.2 ({PROVIDER_NAME})") }))
    }

    async fn supported_ciphersuites(
        &self,
        _: Request<pb::SupportedCiphersuitesRequest>,
    ) -> Rpc<pb::SupportedCiphersuitesResponse> {
        let p = new_provider();
        let ciphersuites = (1u16..=7)
            .chain(EXTRA_SUITES)
            .filter(|i| Ciphersuite::try_from(*i).map(|s| p.crypto().supports(s).is_ok()).unwrap_or(false))
            .map(u32::from)
            .collect();
        Ok(Response::new(pb::SupportedCiphersuitesResponse { ciphersuites }))
    }

    async fn create_group(&self, r: Request<pb::CreateGroupRequest>) -> Rpc<pb::CreateGroupResponse> {
        let r = r.into_inner();
        let cs = suite(r.cipher_suite)?;
        let provider = new_provider();
        let (signer, credential) = new_signer(&provider, cs, &r.identity)?;
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(cs)
            .wire_format_policy(wire_policy(r.encrypt_handshake))
            .use_ratchet_tree_extension(true)
            .max_past_epochs(8)
            .number_of_resumption_psks(16)
            .sender_ratchet_configuration(SenderRatchetConfiguration::new(16, 1000))
            .build();
        let group = MlsGroup::new_with_group_id(
            &provider,
            &signer,
            &config,
            GroupId::from_slice(&r.group_id),
            credential.clone(),
        )
        .map_err(bad("create group"))?;
        let mut s = self.store.lock().unwrap();
        s.by_identity.insert(r.identity.clone(), (signer.clone(), credential));
        let id = s.id();
        s.members.insert(id, Member { provider, group, signer, own: HashSet::new() });
        Ok(Response::new(pb::CreateGroupResponse { state_id: id }))
    }

    async fn create_key_package(
        &self,
        r: Request<pb::CreateKeyPackageRequest>,
    ) -> Rpc<pb::CreateKeyPackageResponse> {
        let r = r.into_inner();
        let cs = suite(r.cipher_suite)?;
        let provider = new_provider();
        let (signer, credential) = new_signer(&provider, cs, &r.identity)?;
        let bundle = KeyPackage::builder()
            .build(cs, &provider, &signer, credential.clone())
            .map_err(bad("key package"))?;
        let key_package = ser(&MlsMessageOut::from(bundle.key_package().clone()))?;
        let resp = pb::CreateKeyPackageResponse {
            transaction_id: 0,
            key_package,
            init_priv: bundle.init_private_key().to_vec(),
            // Not exposed by openmls; only needed for passive-client vectors.
            encryption_priv: vec![],
            signature_priv: vec![],
        };
        let mut s = self.store.lock().unwrap();
        let id = s.id();
        s.pending.insert(id, Pending { provider, signer, credential });
        Ok(Response::new(pb::CreateKeyPackageResponse { transaction_id: id, ..resp }))
    }

    async fn join_group(&self, r: Request<pb::JoinGroupRequest>) -> Rpc<pb::JoinGroupResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let p = s
            .pending
            .remove(&r.transaction_id)
            .ok_or_else(|| Status::not_found("unknown transaction id"))?;
        let welcome = match message(&r.welcome)? {
            MlsMessageBodyIn::Welcome(w) => w,
            _ => return Err(Status::invalid_argument("expected a Welcome")),
        };
        let staged = StagedWelcome::new_from_welcome(
            &p.provider,
            &join_config(r.encrypt_handshake),
            welcome,
            ratchet_tree(&r.ratchet_tree)?,
        );
        let group = match staged.and_then(|w| w.into_group(&p.provider)) {
            Ok(g) => g,
            Err(e) => {
                let err = bad("join from Welcome")(e);
                s.pending.insert(r.transaction_id, p);
                return Err(err);
            }
        };
        let ea = group.epoch_authenticator().as_slice().to_vec();
        s.by_identity.insert(r.identity.clone(), (p.signer.clone(), p.credential.clone()));
        let id = s.id();
        s.members.insert(id, Member { provider: p.provider, group, signer: p.signer, own: HashSet::new() });
        Ok(Response::new(pb::JoinGroupResponse { state_id: id, epoch_authenticator: ea }))
    }

    async fn external_join(&self, r: Request<pb::ExternalJoinRequest>) -> Rpc<pb::ExternalJoinResponse> {
        let r = r.into_inner();
        let gi = group_info(&r.group_info)?;
        let cs = gi.ciphersuite();
        suite(u16::from(cs) as u32)?;
        let provider = new_provider();
        let mut s = self.store.lock().unwrap();
        let (signer, credential) = match (r.remove_prior, s.by_identity.get(&r.identity)) {
            (true, Some((sig, cred))) => {
                sig.store(provider.storage()).map_err(bad("storage"))?;
                (sig.clone(), cred.clone())
            }
            (true, None) => return Err(Status::invalid_argument("no prior state to remove")),
            _ => new_signer(&provider, cs, &r.identity)?,
        };
        let mut psks = Vec::new();
        for p in &r.psks {
            let id = PreSharedKeyId::new(cs, provider.rand(), Psk::External(ExternalPsk::new(p.psk_id.clone())))
                .map_err(bad("PSK id"))?;
            id.store(&provider, &p.psk_secret).map_err(bad("store PSK"))?;
            psks.push(PreSharedKeyProposal::new(id));
        }
        let mut builder = MlsGroup::external_commit_builder().with_config(join_config(r.encrypt_handshake));
        if let Some(tree) = ratchet_tree(&r.ratchet_tree)? {
            builder = builder.with_ratchet_tree(tree);
        }
        let (group, bundle) = builder
            .build_group(&provider, gi, credential.clone())
            .map_err(bad("external commit"))?
            .add_psk_proposals(psks)
            .load_psks(provider.storage())
            .map_err(bad("load PSKs"))?
            .build(provider.rand(), provider.crypto(), &signer, |_| true)
            .map_err(bad("external commit"))?
            .finalize(&provider)
            .map_err(bad("external commit"))?;
        let commit = ser(bundle.commit())?;
        let ea = group.epoch_authenticator().as_slice().to_vec();
        s.by_identity.insert(r.identity.clone(), (signer.clone(), credential));
        let id = s.id();
        s.members.insert(id, Member { provider, group, signer, own: HashSet::new() });
        Ok(Response::new(pb::ExternalJoinResponse { state_id: id, commit, epoch_authenticator: ea }))
    }

    async fn group_info(&self, r: Request<pb::GroupInfoRequest>) -> Rpc<pb::GroupInfoResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        let gi = m
            .group
            .export_group_info(m.provider.crypto(), &m.signer, !r.external_tree)
            .map_err(bad("group info"))?;
        let ratchet_tree = if r.external_tree { ser(&m.group.export_ratchet_tree())? } else { vec![] };
        Ok(Response::new(pb::GroupInfoResponse { group_info: ser(&gi)?, ratchet_tree }))
    }

    async fn state_auth(&self, r: Request<pb::StateAuthRequest>) -> Rpc<pb::StateAuthResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        Ok(Response::new(pb::StateAuthResponse {
            state_auth_secret: m.group.epoch_authenticator().as_slice().to_vec(),
        }))
    }

    async fn export(&self, r: Request<pb::ExportRequest>) -> Rpc<pb::ExportResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        let exported_secret = m
            .group
            .export_secret(m.provider.crypto(), &r.label, &r.context, r.key_length as usize)
            .map_err(bad("export"))?;
        Ok(Response::new(pb::ExportResponse { exported_secret }))
    }

    async fn protect(&self, r: Request<pb::ProtectRequest>) -> Rpc<pb::ProtectResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        m.group.set_aad(r.authenticated_data.clone());
        let msg = m.group.create_message(&m.provider, &m.signer, &r.plaintext).map_err(bad("protect"))?;
        Ok(Response::new(pb::ProtectResponse { ciphertext: ser(&msg)? }))
    }

    async fn unprotect(&self, r: Request<pb::UnprotectRequest>) -> Rpc<pb::UnprotectResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        let msg = MlsMessageIn::tls_deserialize_exact(&r.ciphertext).map_err(bad("MLSMessage"))?;
        let pm = msg.try_into_protocol_message().map_err(bad("protocol message"))?;
        let processed = m.group.process_message(&m.provider, pm).map_err(bad("process_message"))?;
        let authenticated_data = processed.aad().to_vec();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(a) => Ok(Response::new(pb::UnprotectResponse {
                authenticated_data,
                plaintext: a.into_bytes(),
            })),
            _ => Err(Status::invalid_argument("not an application message")),
        }
    }

    async fn store_psk(&self, r: Request<pb::StorePskRequest>) -> Rpc<pb::StorePskResponse> {
        let r = r.into_inner();
        let s = self.store.lock().unwrap();
        let provider = match (s.members.get(&r.state_or_transaction_id), s.pending.get(&r.state_or_transaction_id)) {
            (Some(m), _) => &m.provider,
            (None, Some(p)) => &p.provider,
            _ => return Err(Status::not_found("unknown state or transaction id")),
        };
        // The PSK store is keyed by the PSK, not the nonce; any suite's nonce does.
        let id = PreSharedKeyId::external(r.psk_id.clone(), vec![0; 32]);
        id.store(provider, &r.psk_secret).map_err(bad("store PSK"))?;
        Ok(Response::new(pb::StorePskResponse {}))
    }

    async fn add_proposal(&self, r: Request<pb::AddProposalRequest>) -> Rpc<pb::ProposalResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        let kp = key_package(&m.provider, &r.key_package)?;
        let out = m.group.propose_add_member(&m.provider, &m.signer, &kp);
        m.proposal(out)
    }

    async fn update_proposal(&self, r: Request<pb::UpdateProposalRequest>) -> Rpc<pb::ProposalResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        let out = m.group.propose_self_update(&m.provider, &m.signer, LeafNodeParameters::default());
        m.proposal(out)
    }

    async fn remove_proposal(&self, r: Request<pb::RemoveProposalRequest>) -> Rpc<pb::ProposalResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        let leaf = member_leaf(&m.group, &r.removed_id)?;
        let out = m.group.propose_remove_member(&m.provider, &m.signer, leaf);
        m.proposal(out)
    }

    async fn external_psk_proposal(
        &self,
        r: Request<pb::ExternalPskProposalRequest>,
    ) -> Rpc<pb::ProposalResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        let id = m.psk_id("externalPSK", &r.psk_id, 0)?;
        let out = m.group.propose_pre_shared_key(&m.provider, &m.signer, id);
        m.proposal(out)
    }

    async fn resumption_psk_proposal(
        &self,
        r: Request<pb::ResumptionPskProposalRequest>,
    ) -> Rpc<pb::ProposalResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        let id = m.psk_id("resumptionPSK", &[], r.epoch_id)?;
        let out = m.group.propose_pre_shared_key(&m.provider, &m.signer, id);
        m.proposal(out)
    }

    async fn group_context_extensions_proposal(
        &self,
        r: Request<pb::GroupContextExtensionsProposalRequest>,
    ) -> Rpc<pb::ProposalResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        let exts = extensions(&r.extensions)?;
        let out = m.group.propose_group_context_extensions(&m.provider, exts, &m.signer);
        m.proposal(out)
    }

    async fn commit(&self, r: Request<pb::CommitRequest>) -> Rpc<pb::CommitResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        m.take_proposals(&r.by_reference)?;
        let mut adds = Vec::new();
        let mut removes = Vec::new();
        let mut others = Vec::new();
        let mut gce = None;
        for d in &r.by_value {
            match String::from_utf8_lossy(&d.proposal_type).as_ref() {
                "add" => adds.push(key_package(&m.provider, &d.key_package)?),
                "remove" => removes.push(member_leaf(&m.group, &d.removed_id)?),
                kind @ ("externalPSK" | "resumptionPSK") => {
                    let id = m.psk_id(kind, &d.psk_id, d.epoch_id)?;
                    others.push(Proposal::PreSharedKey(Box::new(PreSharedKeyProposal::new(id))));
                }
                "groupContextExtensions" => gce = Some(extensions(&d.extensions)?),
                other => return Err(Status::invalid_argument(format!("proposal type {other}"))),
            }
        }
        let mut builder = m
            .group
            .commit_builder()
            .consume_proposal_store(true)
            .force_self_update(r.force_path)
            .propose_adds(adds)
            .propose_removals(removes)
            .add_proposals(others);
        if let Some(exts) = gce {
            builder = builder.propose_group_context_extensions(exts).map_err(bad("commit"))?;
        }
        let bundle = builder
            .load_psks(m.provider.storage())
            .map_err(bad("load PSKs"))?
            .use_ratchet_tree_extension(!r.external_tree)
            .build(m.provider.rand(), m.provider.crypto(), &m.signer, |_| true)
            .map_err(bad("commit"))?
            .stage_commit(&m.provider)
            .map_err(bad("commit"))?;
        let commit = ser(bundle.commit())?;
        let welcome = match bundle.to_welcome_msg() {
            Some(w) => ser(&w)?,
            None => vec![],
        };
        let ratchet_tree = if r.external_tree {
            let staged = m.group.pending_commit().ok_or_else(|| Status::internal("no pending commit"))?;
            let tree = staged
                .export_ratchet_tree(m.provider.crypto(), m.group.export_ratchet_tree())
                .map_err(bad("ratchet tree"))?
                .ok_or_else(|| Status::internal("no tree for the pending commit"))?;
            ser(&tree)?
        } else {
            vec![]
        };
        Ok(Response::new(pb::CommitResponse { commit, welcome, ratchet_tree }))
    }

    async fn handle_commit(&self, r: Request<pb::HandleCommitRequest>) -> Rpc<pb::HandleCommitResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        m.take_proposals(&r.proposal)?;
        match m.process(&r.commit)? {
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                m.group.merge_staged_commit(&m.provider, *staged).map_err(bad("merge commit"))?;
            }
            _ => return Err(Status::invalid_argument("expected a commit")),
        }
        m.own.clear();
        Ok(Response::new(pb::HandleCommitResponse {
            state_id: r.state_id,
            epoch_authenticator: m.group.epoch_authenticator().as_slice().to_vec(),
        }))
    }

    async fn handle_pending_commit(
        &self,
        r: Request<pb::HandlePendingCommitRequest>,
    ) -> Rpc<pb::HandleCommitResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        m.group.merge_pending_commit(&m.provider).map_err(bad("merge pending commit"))?;
        m.own.clear();
        Ok(Response::new(pb::HandleCommitResponse {
            state_id: r.state_id,
            epoch_authenticator: m.group.epoch_authenticator().as_slice().to_vec(),
        }))
    }

    async fn re_init_proposal(&self, _: Request<pb::ReInitProposalRequest>) -> Rpc<pb::ProposalResponse> {
        Err(unimplemented("ReInit proposals"))
    }
    async fn re_init_commit(&self, _: Request<pb::CommitRequest>) -> Rpc<pb::CommitResponse> {
        Err(unimplemented("committing ReInit"))
    }
    async fn handle_pending_re_init_commit(
        &self,
        _: Request<pb::HandlePendingCommitRequest>,
    ) -> Rpc<pb::HandleReInitCommitResponse> {
        Err(unimplemented("ReInit"))
    }
    async fn handle_re_init_commit(
        &self,
        _: Request<pb::HandleCommitRequest>,
    ) -> Rpc<pb::HandleReInitCommitResponse> {
        Err(unimplemented("processing ReInit commits"))
    }
    async fn re_init_welcome(&self, _: Request<pb::ReInitWelcomeRequest>) -> Rpc<pb::CreateSubgroupResponse> {
        Err(unimplemented("ReInit"))
    }
    async fn handle_re_init_welcome(
        &self,
        _: Request<pb::HandleReInitWelcomeRequest>,
    ) -> Rpc<pb::JoinGroupResponse> {
        Err(unimplemented("ReInit"))
    }
    async fn create_branch(&self, _: Request<pb::CreateBranchRequest>) -> Rpc<pb::CreateSubgroupResponse> {
        Err(unimplemented("branching (§11.3)"))
    }
    async fn handle_branch(&self, _: Request<pb::HandleBranchRequest>) -> Rpc<pb::HandleBranchResponse> {
        Err(unimplemented("branching (§11.3)"))
    }

    async fn new_member_add_proposal(
        &self,
        r: Request<pb::NewMemberAddProposalRequest>,
    ) -> Rpc<pb::NewMemberAddProposalResponse> {
        let r = r.into_inner();
        let gi = group_info(&r.group_info)?;
        let cs = gi.ciphersuite();
        suite(u16::from(cs) as u32)?;
        let provider = new_provider();
        let (signer, credential) = new_signer(&provider, cs, &r.identity)?;
        let bundle = KeyPackage::builder()
            .build(cs, &provider, &signer, credential.clone())
            .map_err(bad("key package"))?;
        let msg = JoinProposal::new::<<Provider as OpenMlsProvider>::StorageProvider>(
            bundle.key_package().clone(),
            gi.group_id().clone(),
            gi.epoch(),
            &signer,
        )
        .map_err(bad("join proposal"))?;
        let resp = pb::NewMemberAddProposalResponse {
            transaction_id: 0,
            proposal: ser(&msg)?,
            init_priv: bundle.init_private_key().to_vec(),
            // Not exposed by openmls; only needed for passive-client vectors.
            encryption_priv: vec![],
            signature_priv: vec![],
        };
        let mut s = self.store.lock().unwrap();
        let id = s.id();
        s.pending.insert(id, Pending { provider, signer, credential });
        Ok(Response::new(pb::NewMemberAddProposalResponse { transaction_id: id, ..resp }))
    }

    async fn create_external_signer(
        &self,
        r: Request<pb::CreateExternalSignerRequest>,
    ) -> Rpc<pb::CreateExternalSignerResponse> {
        let r = r.into_inner();
        let cs = suite(r.cipher_suite)?;
        let signer = SignatureKeyPair::new(cs.signature_algorithm()).map_err(bad("signature key"))?;
        let credential: Credential = BasicCredential::new(r.identity.clone()).into();
        let sender = ExternalSender::new(signer.public().into(), credential.clone());
        let external_sender = ser(&sender)?;
        let mut s = self.store.lock().unwrap();
        let id = s.id();
        s.signers.insert(id, (signer, credential));
        Ok(Response::new(pb::CreateExternalSignerResponse { signer_id: id, external_sender }))
    }

    async fn add_external_signer(&self, r: Request<pb::AddExternalSignerRequest>) -> Rpc<pb::ProposalResponse> {
        let r = r.into_inner();
        let mut s = self.store.lock().unwrap();
        let m = s.member(r.state_id)?;
        let sender = ExternalSender::tls_deserialize_exact(&r.external_sender).map_err(bad("external sender"))?;
        let mut senders: Vec<ExternalSender> =
            m.group.extensions().external_senders().map(|e| e.to_vec()).unwrap_or_default();
        senders.push(sender);
        let mut exts = m.group.extensions().clone();
        exts.add_or_replace(Extension::ExternalSenders(senders)).map_err(bad("extensions"))?;
        let out = m.group.propose_group_context_extensions(&m.provider, exts, &m.signer);
        m.proposal(out)
    }

    async fn external_signer_proposal(
        &self,
        r: Request<pb::ExternalSignerProposalRequest>,
    ) -> Rpc<pb::ProposalResponse> {
        let r = r.into_inner();
        let s = self.store.lock().unwrap();
        let (signer, credential) =
            s.signers.get(&r.signer_id).ok_or_else(|| Status::not_found("unknown signer id"))?;
        let me = ser(&ExternalSender::new(signer.public().into(), credential.clone()))?;
        let gi = group_info(&r.group_info)?;
        let index = gi
            .group_context()
            .extensions()
            .external_senders()
            .and_then(|senders| senders.iter().position(|e| ser(e).ok().as_ref() == Some(&me)))
            .ok_or_else(|| Status::invalid_argument("signer is not an external sender of the group"))?;
        let sender_index = SenderExtensionIndex::new(index as u32);
        let d = r.description.unwrap_or_default();
        let (gid, epoch) = (gi.group_id().clone(), gi.epoch());
        type S = <Provider as OpenMlsProvider>::StorageProvider;
        let provider = new_provider();
        let msg = match String::from_utf8_lossy(&d.proposal_type).as_ref() {
            "add" => ExternalProposal::new_add::<Provider>(
                key_package(&provider, &d.key_package)?,
                gid,
                epoch,
                signer,
                sender_index,
            )
            .map_err(bad("external add"))?,
            "remove" => ExternalProposal::new_remove::<Provider>(
                tree_leaf(&r.ratchet_tree, &d.removed_id)?,
                gid,
                epoch,
                signer,
                sender_index,
            )
            .map_err(bad("external remove"))?,
            "groupContextExtensions" => ExternalProposal::new_group_context_extensions::<Provider>(
                extensions(&d.extensions)?,
                gid,
                epoch,
                signer,
                sender_index,
            )
            .map_err(bad("external GCE"))?,
            other => return Err(unimplemented(&format!("external {other} proposals"))),
        };
        let _: Option<S> = None;
        Ok(Response::new(pb::ProposalResponse { proposal: ser(&msg)? }))
    }

    async fn free(&self, r: Request<pb::FreeRequest>) -> Rpc<pb::FreeResponse> {
        let r = r.into_inner();
        self.store.lock().unwrap().members.remove(&r.state_id);
        Ok(Response::new(pb::FreeResponse {}))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut host = "127.0.0.1".to_string();
    let mut port = "50052".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().ok_or("--port needs a value")?,
            "--host" => host = args.next().ok_or("--host needs a value")?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let listener = tokio::net::TcpListener::bind(format!("{host}:{port}")).await?;
    println!("listening on {}", listener.local_addr()?);
    use std::io::Write;
    std::io::stdout().flush()?;
    let service = Service { store: Mutex::new(Store::default()) };
    tonic::transport::Server::builder()
        .add_service(MlsClientServer::new(service))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await?;
    Ok(())
}
