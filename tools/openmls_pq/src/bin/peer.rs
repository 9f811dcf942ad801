//! One OpenMLS member (openmls 0.9.2 with the libcrux provider, so the hybrid
//! suites 0x004D-0x004F are available), driven over stdin/stdout for
//! tests/interop/test_openmls_pq.py: one command per line, one answer per line,
//! `ok [hex ...]` or `err <reason>`. Byte strings are hex; MLS messages are MLSMessage.
//!
//!   keypackage SUITE         -> ok KEYPACKAGE        (kept for `join`)
//!   create SUITE             -> ok                   (a new group with this member)
//!   join WELCOME             -> ok
//!   external_join GROUPINFO  -> ok COMMIT
//!   add KEYPACKAGE           -> ok COMMIT WELCOME    (merged)
//!   update                   -> ok COMMIT            (full UpdatePath, merged)
//!   remove LEAF              -> ok COMMIT            (merged)
//!   send PLAINTEXT           -> ok MESSAGE
//!   process MESSAGE          -> ok app PLAINTEXT | ok commit | ok proposal
//!   groupinfo                -> ok GROUPINFO         (with the ratchet tree)
//!   auth                     -> ok EPOCH_AUTHENTICATOR
//!   export LABEL CONTEXT     -> ok SECRET            (32 bytes)
//!   leaf                     -> ok LEAF_INDEX

use std::io::{BufRead, Write};

use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_libcrux_crypto::Provider;
use tls_codec::Deserialize as _;

struct Peer {
    provider: Provider,
    signer: Option<SignatureKeyPair>,
    credential: Option<CredentialWithKey>,
    group: Option<MlsGroup>,
}

type R = Result<Vec<String>, String>;

fn err<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e:?}")
}

fn hex_arg(args: &[&str], i: usize) -> Result<Vec<u8>, String> {
    hex::decode(args.get(i).ok_or("missing argument")?).map_err(err("hex"))
}

fn ser(m: &impl tls_codec::Serialize) -> Result<String, String> {
    Ok(hex::encode(m.tls_serialize_detached().map_err(err("serialize"))?))
}

fn suite(args: &[&str]) -> Result<Ciphersuite, String> {
    let v: u16 = args.first().ok_or("missing suite")?.parse().map_err(err("suite"))?;
    Ciphersuite::try_from(v).map_err(err("suite"))
}

fn body(bytes: &[u8]) -> Result<MlsMessageBodyIn, String> {
    Ok(MlsMessageIn::tls_deserialize_exact(bytes).map_err(err("MLSMessage"))?.extract())
}

fn config(cs: Ciphersuite) -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(cs)
        .wire_format_policy(MIXED_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(MIXED_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build()
}

impl Peer {
    fn identity(&mut self, cs: Ciphersuite) -> Result<(), String> {
        let signer = SignatureKeyPair::new(cs.signature_algorithm()).map_err(err("signer"))?;
        signer.store(self.provider.storage()).map_err(err("storage"))?;
        self.credential = Some(CredentialWithKey {
            credential: BasicCredential::new(b"openmls".to_vec()).into(),
            signature_key: signer.public().into(),
        });
        self.signer = Some(signer);
        Ok(())
    }

    fn parts(&mut self) -> Result<(&Provider, &SignatureKeyPair, &mut MlsGroup), String> {
        let group = self.group.as_mut().ok_or("no group")?;
        Ok((&self.provider, self.signer.as_ref().ok_or("no signer")?, group))
    }

    fn run(&mut self, cmd: &str, args: &[&str]) -> R {
        match cmd {
            "keypackage" => {
                let cs = suite(args)?;
                self.identity(cs)?;
                let bundle = KeyPackage::builder()
                    .build(cs, &self.provider, self.signer.as_ref().unwrap(), self.credential.clone().unwrap())
                    .map_err(err("key package"))?;
                Ok(vec![ser(&MlsMessageOut::from(bundle.key_package().clone()))?])
            }
            "create" => {
                let cs = suite(args)?;
                self.identity(cs)?;
                let group = MlsGroup::new(
                    &self.provider,
                    self.signer.as_ref().unwrap(),
                    &config(cs),
                    self.credential.clone().unwrap(),
                )
                .map_err(err("create"))?;
                self.group = Some(group);
                Ok(vec![])
            }
            "join" => {
                let MlsMessageBodyIn::Welcome(welcome) = body(&hex_arg(args, 0)?)? else {
                    return Err("expected a Welcome".into());
                };
                let group = StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None)
                    .map_err(err("welcome"))?
                    .into_group(&self.provider)
                    .map_err(err("welcome"))?;
                self.group = Some(group);
                Ok(vec![])
            }
            "external_join" => {
                let MlsMessageBodyIn::GroupInfo(gi) = body(&hex_arg(args, 0)?)? else {
                    return Err("expected a GroupInfo".into());
                };
                self.identity(gi.ciphersuite())?;
                let (group, bundle) = MlsGroup::external_commit_builder()
                    .with_config(join_config())
                    .build_group(&self.provider, gi, self.credential.clone().unwrap())
                    .map_err(err("external commit"))?
                    .load_psks(self.provider.storage())
                    .map_err(err("external commit"))?
                    .build(self.provider.rand(), self.provider.crypto(), self.signer.as_ref().unwrap(), |_| true)
                    .map_err(err("external commit"))?
                    .finalize(&self.provider)
                    .map_err(err("external commit"))?;
                self.group = Some(group);
                Ok(vec![ser(bundle.commit())?])
            }
            "add" => {
                let bytes = hex_arg(args, 0)?;
                let (provider, signer, group) = self.parts()?;
                let MlsMessageBodyIn::KeyPackage(kp) = body(&bytes)? else {
                    return Err("expected a KeyPackage".into());
                };
                let kp = kp.validate(provider.crypto(), ProtocolVersion::Mls10).map_err(err("KeyPackage"))?;
                let (commit, welcome, _) = group.add_members(provider, signer, &[kp]).map_err(err("add"))?;
                group.merge_pending_commit(provider).map_err(err("merge"))?;
                Ok(vec![ser(&commit)?, ser(&welcome)?])
            }
            "update" => {
                let (provider, signer, group) = self.parts()?;
                let bundle = group
                    .self_update(provider, signer, LeafNodeParameters::default())
                    .map_err(err("update"))?;
                group.merge_pending_commit(provider).map_err(err("merge"))?;
                Ok(vec![ser(bundle.commit())?])
            }
            "remove" => {
                let leaf: u32 = args.first().ok_or("missing leaf")?.parse().map_err(err("leaf"))?;
                let (provider, signer, group) = self.parts()?;
                let (commit, _, _) = group
                    .remove_members(provider, signer, &[LeafNodeIndex::new(leaf)])
                    .map_err(err("remove"))?;
                group.merge_pending_commit(provider).map_err(err("merge"))?;
                Ok(vec![ser(&commit)?])
            }
            "send" => {
                let pt = hex_arg(args, 0)?;
                let (provider, signer, group) = self.parts()?;
                Ok(vec![ser(&group.create_message(provider, signer, &pt).map_err(err("send"))?)?])
            }
            "process" => {
                let msg = MlsMessageIn::tls_deserialize_exact(&hex_arg(args, 0)?).map_err(err("MLSMessage"))?;
                let (provider, _, group) = self.parts()?;
                let pm = msg.try_into_protocol_message().map_err(err("protocol message"))?;
                let processed = group.process_message(provider, pm).map_err(err("process"))?;
                match processed.into_content() {
                    ProcessedMessageContent::ApplicationMessage(m) => {
                        Ok(vec!["app".into(), hex::encode(m.into_bytes())])
                    }
                    ProcessedMessageContent::StagedCommitMessage(staged) => {
                        group.merge_staged_commit(provider, *staged).map_err(err("merge"))?;
                        Ok(vec!["commit".into()])
                    }
                    ProcessedMessageContent::ProposalMessage(p) => {
                        group.store_pending_proposal(provider.storage(), *p).map_err(err("store"))?;
                        Ok(vec!["proposal".into()])
                    }
                    _ => Ok(vec!["other".into()]),
                }
            }
            "groupinfo" => {
                let (provider, signer, group) = self.parts()?;
                Ok(vec![ser(&group.export_group_info(provider.crypto(), signer, true).map_err(err("group info"))?)?])
            }
            "auth" => {
                let (_, _, group) = self.parts()?;
                Ok(vec![hex::encode(group.epoch_authenticator().as_slice())])
            }
            "export" => {
                let label = String::from_utf8(hex_arg(args, 0)?).map_err(err("label"))?;
                let context = hex_arg(args, 1)?;
                let (provider, _, group) = self.parts()?;
                let secret = group.export_secret(provider.crypto(), &label, &context, 32).map_err(err("export"))?;
                Ok(vec![hex::encode(secret)])
            }
            "leaf" => {
                let (_, _, group) = self.parts()?;
                Ok(vec![group.own_leaf_index().u32().to_string()])
            }
            other => Err(format!("unknown command {other}")),
        }
    }
}

fn main() {
    let mut peer = Peer { provider: Provider::new().expect("libcrux"), signer: None, credential: None, group: None };
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.expect("stdin");
        let mut words = line.split_whitespace();
        let Some(cmd) = words.next() else { continue };
        let args: Vec<&str> = words.collect();
        let answer = match peer.run(cmd, &args) {
            Ok(parts) if parts.is_empty() => "ok".to_string(),
            Ok(parts) => format!("ok {}", parts.join(" ")),
            Err(e) => format!("err {}", e.replace('\n', " ")),
        };
        writeln!(out, "{answer}").expect("stdout");
        out.flush().expect("stdout");
    }
}
