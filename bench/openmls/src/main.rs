//! Times OpenMLS 0.9.2 (RustCrypto provider, cipher suite 1) on the same
//! operations and tree shapes as `bench/bench_vs_openmls.py` times the Python
//! library, so the two can be compared side by side (issue 13).
//!
//! Usage: `intellacc-openmls-bench [--wall] --reps R N [N ...]`. Times are
//! the process's CPU time unless `--wall` asks for wall-clock time. For each N, prints one
//! JSON object per line: the medians of each operation (ms, or µs for the
//! application messages), the one-off times of building the group, and the
//! process's peak RSS so far.
//!
//! Tree shape, as on the Python side: the creator adds N-1 members in one
//! commit, the last of them joins and commits a self-update (so two full
//! paths), and the creator processes it. Each repetition then adds one member
//! (commit by the creator, processing by the other member, the joiner's
//! Welcome) and has the other member commit a self-update the creator
//! processes. Handshakes are PublicMessages, the tree travels in the Welcome's
//! GroupInfo (the Python defaults). Each commit time includes serializing the
//! messages and merging the pending commit; each processing time includes
//! parsing and merging, as Python's `commit`/`process` do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::signatures::Signer as _;
use tls_codec::{Deserialize as _, Serialize as _};

type Provider = OpenMlsRustCrypto;
const CS: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

struct Party {
    provider: Provider,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
}

fn party(identity: &str) -> Party {
    let provider = Provider::default();
    let signer = SignatureKeyPair::new(CS.signature_algorithm()).expect("signature key");
    signer.store(provider.storage()).expect("store signer");
    let credential = CredentialWithKey {
        credential: BasicCredential::new(identity.as_bytes().to_vec()).into(),
        signature_key: signer.public().into(),
    };
    Party { provider, signer, credential }
}

fn key_package(p: &Party) -> KeyPackage {
    KeyPackage::builder()
        .build(CS, &p.provider, &p.signer, p.credential.clone())
        .expect("key package")
        .key_package()
        .clone()
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build()
}

fn ser(m: &MlsMessageOut) -> Vec<u8> {
    m.tls_serialize_detached().expect("serialize")
}

/// The clock both sides read: the process's CPU time by default (robust on a
/// shared machine, and the program is single-threaded), or wall time.
#[derive(Clone, Copy)]
enum Clock {
    Cpu,
    Wall(Instant),
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CLOCK_PROCESS_CPUTIME_ID on Linux.
const PROCESS_CPUTIME: i32 = 2;

static WALL: AtomicBool = AtomicBool::new(false);

fn cpu_seconds() -> f64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { clock_gettime(PROCESS_CPUTIME, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

struct Start(Clock, f64);

fn now() -> Start {
    if WALL.load(Ordering::Relaxed) {
        Start(Clock::Wall(Instant::now()), 0.0)
    } else {
        Start(Clock::Cpu, cpu_seconds())
    }
}

fn ms(t: Start) -> f64 {
    match t.0 {
        Clock::Cpu => (cpu_seconds() - t.1) * 1e3,
        Clock::Wall(i) => i.elapsed().as_secs_f64() * 1e3,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Parses and processes a handshake message, merging the commit it carries.
fn process_commit(p: &Party, group: &mut MlsGroup, raw: &[u8]) {
    let msg = MlsMessageIn::tls_deserialize_exact(raw).expect("MLSMessage");
    let pm = msg.try_into_protocol_message().expect("protocol message");
    let processed = group.process_message(&p.provider, pm).expect("process_message");
    match processed.into_content() {
        ProcessedMessageContent::StagedCommitMessage(staged) => {
            group.merge_staged_commit(&p.provider, *staged).expect("merge")
        }
        _ => panic!("expected a commit"),
    }
}

fn join(p: &Party, raw: &[u8]) -> MlsGroup {
    let welcome = match MlsMessageIn::tls_deserialize_exact(raw).expect("MLSMessage").extract() {
        MlsMessageBodyIn::Welcome(w) => w,
        _ => panic!("expected a Welcome"),
    };
    StagedWelcome::new_from_welcome(&p.provider, &join_config(), welcome, None)
        .expect("stage welcome")
        .into_group(&p.provider)
        .expect("join")
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn bench(n: usize, reps: usize) -> String {
    let a = party("m/0");
    let config = MlsGroupCreateConfig::builder()
        .ciphersuite(CS)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .use_ratchet_tree_extension(true)
        .build();
    let mut creator = MlsGroup::new(&a.provider, &a.signer, &config, a.credential.clone())
        .expect("create group");
    // Building the group: KeyPackages are made outside the timings.
    let bulk = party("bulk");
    let b = party(&format!("m/{}", n - 1));
    let mut kps: Vec<KeyPackage> = (1..n - 1)
        .map(|i| {
            // A signature key per member: OpenMLS rejects duplicates in a tree.
            let signer = SignatureKeyPair::new(CS.signature_algorithm()).expect("signature key");
            let credential = CredentialWithKey {
                credential: BasicCredential::new(format!("m/{i}").into_bytes()).into(),
                signature_key: signer.public().into(),
            };
            KeyPackage::builder()
                .build(CS, &bulk.provider, &signer, credential)
                .expect("key package")
                .key_package()
                .clone()
        })
        .collect();
    kps.push(key_package(&b));
    let t = now();
    let (_, welcome, _) = creator.add_members(&a.provider, &a.signer, &kps).expect("bulk add");
    creator.merge_pending_commit(&a.provider).expect("merge");
    let welcome = ser(&welcome);
    let bulk_add_ms = ms(t);
    let t = now();
    let mut other = join(&b, &welcome);
    let bulk_join_ms = ms(t);
    let t = now();
    let bundle = other.self_update(&b.provider, &b.signer, LeafNodeParameters::default()).expect("update");
    let commit = ser(bundle.commit());
    other.merge_pending_commit(&b.provider).expect("merge");
    let first_update_ms = ms(t);
    let t = now();
    process_commit(&a, &mut creator, &commit);
    let first_process_ms = ms(t);

    let mut r: Vec<Vec<f64>> = vec![Vec::new(); 9];
    for i in 0..reps {
        let j = party(&format!("joiner/{n}-{i}"));
        let kp = key_package(&j);
        let t = now();
        let (commit, welcome, _) = creator.add_members(&a.provider, &a.signer, &[kp]).expect("add");
        let (commit, welcome) = (ser(&commit), ser(&welcome));
        creator.merge_pending_commit(&a.provider).expect("merge");
        r[0].push(ms(t));
        let t = now();
        process_commit(&b, &mut other, &commit);
        r[1].push(ms(t));
        let t = now();
        let joined = join(&j, &welcome);
        r[2].push(ms(t));
        drop(joined);
        let t = now();
        let bundle = other.self_update(&b.provider, &b.signer, LeafNodeParameters::default()).expect("update");
        let commit = ser(bundle.commit());
        other.merge_pending_commit(&b.provider).expect("merge");
        r[3].push(ms(t));
        let t = now();
        process_commit(&a, &mut creator, &commit);
        r[4].push(ms(t));
    }
    let payload = vec![0u8; 1024];
    for _ in 0..reps.max(200) {
        let t = now();
        let ct = ser(&creator.create_message(&a.provider, &a.signer, &payload).expect("protect"));
        r[5].push(ms(t) * 1e3);
        let t = now();
        let msg = MlsMessageIn::tls_deserialize_exact(&ct).expect("MLSMessage");
        let pm = msg.try_into_protocol_message().expect("protocol message");
        let processed = other.process_message(&b.provider, pm).expect("unprotect");
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(m) => assert_eq!(m.into_bytes().len(), 1024),
            _ => panic!("expected an application message"),
        }
        r[6].push(ms(t) * 1e3);
    }
    // The signature primitive alone, on a signed-content-sized input: every
    // message's signature is made and checked once (RFC 9420 §6.1).
    let data = vec![7u8; 1200];
    for _ in 0..reps.max(200) {
        let t = now();
        let sig = a.signer.sign(&data).expect("sign");
        r[7].push(ms(t) * 1e3);
        let t = now();
        a.provider
            .crypto()
            .verify_signature(
                openmls_traits::types::SignatureScheme::ED25519,
                &data,
                a.signer.public(),
                &sig,
            )
            .expect("verify");
        r[8].push(ms(t) * 1e3);
    }
    let names = [
        "add_commit_ms", "add_process_ms", "welcome_join_ms", "update_commit_ms",
        "update_process_ms", "encrypt_1KiB_us", "decrypt_1KiB_us", "ed25519_sign_us",
        "ed25519_verify_us",
    ];
    let mut out = format!("{{\"n\": {n}, \"reps\": {reps}");
    for (name, v) in names.iter().zip(r) {
        out += &format!(", \"{name}\": {:.4}", median(v));
    }
    out += &format!(
        ", \"bulk_add_ms\": {bulk_add_ms:.3}, \"bulk_join_ms\": {bulk_join_ms:.3}, \
         \"first_update_ms\": {first_update_ms:.3}, \"first_process_ms\": {first_process_ms:.3}, \
         \"peak_rss_kib\": {}}}",
        peak_rss_kib()
    );
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut reps = 5usize;
    let mut sizes = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--wall" {
            WALL.store(true, Ordering::Relaxed);
        } else if a == "--reps" {
            reps = it.next().and_then(|v| v.parse().ok()).expect("--reps R");
        } else {
            sizes.push(a.parse::<usize>().expect("group size"));
        }
    }
    for n in sizes {
        assert!(n >= 2, "a group size is at least 2");
        println!("{}", bench(n, reps));
    }
}
