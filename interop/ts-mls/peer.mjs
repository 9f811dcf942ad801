// The MLS working group's MLSClient gRPC service over the ts-mls npm package,
// so Intellacc's interop runner (and any other) can drive ts-mls.
//
// Usage: node peer.mjs --port P [--no-workarounds]   (0 picks a free port);
// prints "listening on 127.0.0.1:PORT" once bound.
//
// Known ts-mls 1.6 defects and what this peer does about them (only ever
// outside the bytes ts-mls signs):
// * Its ECDSA signature keys are compressed points (noble's default), against
//   RFC 9420 §5.1.1 (uncompressed SEC1). The peer generates the signature key
//   pair itself, uncompressed, and hands it to ts-mls before anything is signed.
// * Its external_pub GroupInfo extension holds the raw key, not the ExternalPub
//   struct (RFC 9420 §12.4.3.2), and it reads other implementations' extension
//   the same way. When joining externally the peer unwraps the struct for
//   ts-mls' key lookup only; the signed GroupInfo stays as received. GroupInfos
//   ts-mls signs cannot be fixed: that direction stays a recorded defect.
// --no-workarounds turns both off, so tests can prove the defects are still there.
// Operations ts-mls has no API for (Update proposals, PSKs in external commits,
// forcing a path) answer UNIMPLEMENTED or are noted below.

import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

import grpc from "@grpc/grpc-js"
import protoLoader from "@grpc/proto-loader"
import * as mls from "ts-mls"
import { decodeRatchetTree, encodeRatchetTree } from "ts-mls/ratchetTree.js"
import { decodeVarLenType, varLenTypeEncoder } from "ts-mls/codec/variableLength.js"
import { encode } from "ts-mls/codec/tlsEncoder.js"
import { externalSenderEncoder } from "ts-mls/externalSender.js"
import { makeResumptionPsk } from "ts-mls/resumption.js"

const here = dirname(fileURLToPath(import.meta.url))
const PROTO = process.env.MLS_INTEROP_PROTO ?? join(here, "..", "proto", "mls_client.proto")
const VERSION = JSON.parse(readFileSync(join(here, "node_modules", "ts-mls", "package.json"))).version

const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : dflt
}
const WORKAROUNDS = !args.includes("--no-workarounds")
const HOST = opt("--host", "127.0.0.1")
const PORT = opt("--port", "50053")

const SUITE_NAMES = Object.fromEntries(Object.entries(mls.ciphersuites).map(([name, id]) => [id, name]))
const SUITES = [1, 2, 3, 4, 5, 6, 7]
const enc = new TextEncoder()
const b64 = (u8) => Buffer.from(u8).toString("base64")
const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i])

class RpcError extends Error {
  constructor(code, message) {
    super(message)
    this.code = code
  }
}
const unimplemented = (what) => new RpcError(grpc.status.UNIMPLEMENTED, `ts-mls ${VERSION} has no API for ${what}`)

const impls = new Map()
async function impl(suite) {
  const name = typeof suite === "string" ? suite : SUITE_NAMES[suite]
  if (!name || !SUITES.includes(mls.ciphersuites[name])) throw new RpcError(grpc.status.INVALID_ARGUMENT, `suite ${suite} not supported`)
  if (!impls.has(name)) impls.set(name, { ...(await mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(name))), suiteName: name })
  return impls.get(name)
}

// -- keys and KeyPackages -------------------------------------------------------------
const NIST = { P256: "p256", P384: "p384", P521: "p521" }

async function signatureKeyPair(cs) {
  const sigAlg = mls.getCiphersuiteFromName(cs.suiteName).signature
  if (WORKAROUNDS && NIST[sigAlg]) {
    // RFC 9420 §5.1.1: ECDSA public keys are uncompressed SEC1 points.
    const curves = await import("@noble/curves/nist.js")
    const curve = curves[NIST[sigAlg]]
    const signKey = curve.utils.randomSecretKey()
    return { signKey, publicKey: curve.getPublicKey(signKey, false) }
  }
  return cs.signature.keygen()
}

// 12 weeks from an hour ago, as OpenMLS does: ts-mls' default lifetime is
// unbounded, which receivers may refuse (RFC 9420 §7.2; this library does).
function lifetime() {
  const now = BigInt(Math.floor(Date.now() / 1000))
  return { notBefore: now - 3600n, notAfter: now + 12n * 7n * 24n * 3600n }
}

async function newKeyPackage(cs, identity, keyPair) {
  const credential = { credentialType: "basic", identity }
  const keys = keyPair ?? (await signatureKeyPair(cs))
  const kp = await mls.generateKeyPackageWithKey(credential, mls.defaultCapabilities(), lifetime(), [], keys, cs)
  return { ...kp, keys, cs }
}

function decode(bytes, wireformat) {
  const out = mls.decodeMlsMessage(bytes, 0)
  if (!out) throw new RpcError(grpc.status.INVALID_ARGUMENT, "malformed MLSMessage")
  const msg = out[0]
  if (wireformat && msg.wireformat !== wireformat) throw new RpcError(grpc.status.INVALID_ARGUMENT, `expected ${wireformat}, got ${msg.wireformat}`)
  return msg
}
const wrap = (wireformat, key, value) => mls.encodeMlsMessage({ version: "mls10", wireformat, [key]: value })

function keyPackageOf(bytes) {
  return decode(bytes, "mls_key_package").keyPackage
}

// The external_pub workaround: ts-mls looks the extension up with find() and
// uses its data as the raw key; give it the key inside the ExternalPub struct
// while the signed extension bytes stay untouched.
function unwrapExternalPub(gi) {
  if (!WORKAROUNDS) return gi
  const exts = [...gi.extensions]
  const realFind = exts.find.bind(exts)
  exts.find = (pred) => {
    const e = realFind(pred)
    if (e && e.extensionType === "external_pub") {
      return { extensionType: "external_pub", extensionData: decodeVarLen(e.extensionData) }
    }
    return e
  }
  return { ...gi, extensions: exts }
}
function decodeVarLen(data) {
  // opaque<V>: a QUIC-style varint length, then the bytes.
  const prefix = 1 << (data[0] >> 6)
  let len = data[0] & 0x3f
  for (let i = 1; i < prefix; i++) len = (len << 8) | data[i]
  return data.subarray(prefix, prefix + len)
}

function extensionsFrom(list) {
  const names = Object.fromEntries(Object.entries(mls.defaultExtensionTypes).map(([n, v]) => [v, n]))
  return (list ?? []).map((e) => ({ extensionType: names[e.extension_type] ?? e.extension_type, extensionData: new Uint8Array(e.extension_data) }))
}

function leafOf(tree, identity) {
  for (let i = 0; i < tree.length; i += 2) {
    const n = tree[i]
    if (n && n.nodeType === "leaf" && eq(n.leaf.credential.identity, identity)) return i / 2
  }
  throw new RpcError(grpc.status.INVALID_ARGUMENT, "no member with that identity")
}

// -- state ------------------------------------------------------------------------------------
let nextId = 1
const members = new Map() // id -> { state, cs, encrypt, psks, own:Set, pending, keys }
const pendings = new Map() // id -> { kp, psks }
const reinits = new Map() // id -> { member, kp }
const signers = new Map() // id -> { keys, credential, cs }
const byIdentity = new Map() // identity b64 -> signature key pair
const newId = () => nextId++

function member(id) {
  const m = members.get(id)
  if (!m) throw new RpcError(grpc.status.NOT_FOUND, `unknown state id ${id}`)
  return m
}
const pskIndex = (m, state) => mls.makePskIndex(state ?? m.state, m.psks)
const authenticator = (state) => state.keySchedule.epochAuthenticator

async function proposalFrom(m, d, tree, groupId) {
  const cs = m.cs
  switch (Buffer.from(d.proposal_type).toString()) {
    case "add":
      return { proposalType: "add", add: { keyPackage: keyPackageOf(d.key_package) } }
    case "remove":
      return { proposalType: "remove", remove: { removed: leafOf(tree, d.removed_id) } }
    case "externalPSK":
      return { proposalType: "psk", psk: { preSharedKeyId: { psktype: "external", pskId: new Uint8Array(d.psk_id), pskNonce: cs.rng.randomBytes(cs.kdf.size) } } }
    case "resumptionPSK":
      return {
        proposalType: "psk",
        psk: { preSharedKeyId: { psktype: "resumption", usage: "application", pskGroupId: groupId, pskEpoch: BigInt(d.epoch_id), pskNonce: cs.rng.randomBytes(cs.kdf.size) } },
      }
    case "groupContextExtensions":
      return { proposalType: "group_context_extensions", groupContextExtensions: { extensions: extensionsFrom(d.extensions) } }
    case "reinit":
      return { proposalType: "reinit", reinit: { groupId: new Uint8Array(d.group_id), version: "mls10", cipherSuite: SUITE_NAMES[d.cipher_suite], extensions: extensionsFrom(d.extensions) } }
    default:
      throw new RpcError(grpc.status.INVALID_ARGUMENT, `unknown proposal type`)
  }
}

async function receive(m, bytes) {
  const msg = decode(bytes)
  if (msg.wireformat !== "mls_private_message" && msg.wireformat !== "mls_public_message") throw new RpcError(grpc.status.INVALID_ARGUMENT, `not a group message: ${msg.wireformat}`)
  // Not mls.processMessage: in ts-mls 1.6 it drops the PSK index for
  // PrivateMessages (a local API slip, nothing on the wire).
  const res =
    msg.wireformat === "mls_private_message"
      ? await mls.processPrivateMessage(m.state, msg.privateMessage, pskIndex(m), m.cs, mls.acceptAll)
      : { ...(await mls.processPublicMessage(m.state, msg.publicMessage, pskIndex(m), m.cs, mls.acceptAll)), kind: "newState" }
  m.state = res.newState
  return { res, msg }
}

async function takeProposals(m, list) {
  for (const raw of list ?? []) {
    if (m.own.has(b64(raw))) continue
    await receive(m, raw)
  }
}

async function propose(m, proposal) {
  const { newState, message } = await mls.createProposal(m.state, !m.encrypt, proposal, m.cs)
  m.state = newState
  const bytes = mls.encodeMlsMessage(message)
  m.own.add(b64(bytes))
  return { proposal: bytes }
}

function storeMember(state, cs, encrypt, psks, keys) {
  const id = newId()
  members.set(id, { state, cs, encrypt, psks: psks ?? {}, own: new Set(), pending: undefined, keys })
  return id
}

// A new group whose first commit adds memberKeyPackages and binds it to the
// old one with a resumption PSK (reinit §11.2 / branch §11.3); written on the
// public API so the Welcome can carry the ratchet tree.
async function subgroup(oldState, usage, cs, kp, groupId, extensions, memberKps, externalTree) {
  const group = await mls.createGroup(groupId, kp.publicPackage, kp.privatePackage, extensions, cs)
  const psk = makeResumptionPsk(oldState, usage, cs)
  const proposals = [...memberKps.map((k) => ({ proposalType: "add", add: { keyPackage: keyPackageOf(k) } })), { proposalType: "psk", psk: { preSharedKeyId: psk.id } }]
  const res = await mls.createCommit({ state: group, pskIndex: mls.makePskIndex(oldState, {}), cipherSuite: cs }, { extraProposals: proposals, ratchetTreeExtension: !externalTree })
  return res
}

// -- the RPCs -----------------------------------------------------------------------------------
const handlers = {
  async Name() {
    return { name: `ts-mls ${VERSION}${WORKAROUNDS ? "" : " (no workarounds)"}` }
  },
  async SupportedCiphersuites() {
    return { ciphersuites: SUITES }
  },
  async CreateGroup(r) {
    const cs = await impl(r.cipher_suite)
    const kp = await newKeyPackage(cs, new Uint8Array(r.identity))
    byIdentity.set(b64(r.identity), kp.keys)
    const state = await mls.createGroup(new Uint8Array(r.group_id), kp.publicPackage, kp.privatePackage, [], cs)
    return { state_id: storeMember(state, cs, r.encrypt_handshake, {}, kp.keys) }
  },
  async CreateKeyPackage(r) {
    const cs = await impl(r.cipher_suite)
    const kp = await newKeyPackage(cs, new Uint8Array(r.identity))
    const id = newId()
    pendings.set(id, { kp, psks: {} })
    return {
      transaction_id: id,
      key_package: wrap("mls_key_package", "keyPackage", kp.publicPackage),
      init_priv: kp.privatePackage.initPrivateKey,
      encryption_priv: kp.privatePackage.hpkePrivateKey,
      signature_priv: kp.privatePackage.signaturePrivateKey,
    }
  },
  async JoinGroup(r) {
    const p = pendings.get(r.transaction_id)
    if (!p) throw new RpcError(grpc.status.NOT_FOUND, "unknown transaction id")
    const welcome = decode(r.welcome, "mls_welcome").welcome
    const tree = r.ratchet_tree?.length ? decodeRatchetTree(r.ratchet_tree, 0)[0] : undefined
    const state = await mls.joinGroup(welcome, p.kp.publicPackage, p.kp.privatePackage, mls.makePskIndex(undefined, p.psks), p.kp.cs, tree)
    byIdentity.set(b64(r.identity), p.kp.keys)
    return { state_id: storeMember(state, p.kp.cs, r.encrypt_handshake, p.psks, p.kp.keys), epoch_authenticator: authenticator(state) }
  },
  async ExternalJoin(r) {
    if (r.psks?.length) throw unimplemented("PSKs in external commits")
    const gi = decode(r.group_info, "mls_group_info").groupInfo
    const suite = mls.ciphersuites[gi.groupContext.cipherSuite]
    const cs = await impl(suite)
    const prior = r.remove_prior ? byIdentity.get(b64(r.identity)) : undefined
    if (r.remove_prior && !prior) throw new RpcError(grpc.status.INVALID_ARGUMENT, "no prior state to remove")
    // ts-mls finds the leaf to remove by our signature key: rejoin with it.
    const kp = await newKeyPackage(cs, new Uint8Array(r.identity), prior)
    const tree = r.ratchet_tree?.length ? decodeRatchetTree(r.ratchet_tree, 0)[0] : undefined
    const { publicMessage, newState } = await mls.joinGroupExternal(unwrapExternalPub(gi), kp.publicPackage, kp.privatePackage, r.remove_prior, cs, tree)
    byIdentity.set(b64(r.identity), kp.keys)
    const commit = wrap("mls_public_message", "publicMessage", publicMessage)
    return { state_id: storeMember(newState, cs, r.encrypt_handshake, {}, kp.keys), commit, epoch_authenticator: authenticator(newState) }
  },
  async GroupInfo(r) {
    const m = member(r.state_id)
    const gi = r.external_tree
      ? await mls.createGroupInfoWithExternalPub(m.state, [], m.cs)
      : await mls.createGroupInfoWithExternalPubAndRatchetTree(m.state, [], m.cs)
    return { group_info: wrap("mls_group_info", "groupInfo", gi), ratchet_tree: r.external_tree ? encodeRatchetTree(m.state.ratchetTree) : new Uint8Array() }
  },
  async StateAuth(r) {
    return { state_auth_secret: authenticator(member(r.state_id).state) }
  },
  async Export(r) {
    const m = member(r.state_id)
    return { exported_secret: await mls.mlsExporter(m.state.keySchedule.exporterSecret, r.label, new Uint8Array(r.context), r.key_length, m.cs) }
  },
  async Protect(r) {
    const m = member(r.state_id)
    const { newState, privateMessage } = await mls.createApplicationMessage(m.state, new Uint8Array(r.plaintext), m.cs, new Uint8Array(r.authenticated_data))
    m.state = newState
    return { ciphertext: wrap("mls_private_message", "privateMessage", privateMessage) }
  },
  async Unprotect(r) {
    const m = member(r.state_id)
    const { res, msg } = await receive(m, r.ciphertext)
    if (res.kind !== "applicationMessage") throw new RpcError(grpc.status.INVALID_ARGUMENT, "not an application message")
    return { authenticated_data: msg.privateMessage.authenticatedData, plaintext: res.message }
  },
  async StorePSK(r) {
    const holder = members.get(r.state_or_transaction_id) ?? pendings.get(r.state_or_transaction_id)
    if (!holder) throw new RpcError(grpc.status.NOT_FOUND, "unknown state or transaction id")
    holder.psks[b64(r.psk_id)] = new Uint8Array(r.psk_secret)
    return {}
  },
  async AddProposal(r) {
    const m = member(r.state_id)
    return propose(m, { proposalType: "add", add: { keyPackage: keyPackageOf(r.key_package) } })
  },
  async UpdateProposal() {
    throw unimplemented("creating Update proposals")
  },
  async RemoveProposal(r) {
    const m = member(r.state_id)
    return propose(m, { proposalType: "remove", remove: { removed: leafOf(m.state.ratchetTree, r.removed_id) } })
  },
  async ExternalPSKProposal(r) {
    const m = member(r.state_id)
    return propose(m, await proposalFrom(m, { proposal_type: enc.encode("externalPSK"), psk_id: r.psk_id }))
  },
  async ResumptionPSKProposal(r) {
    const m = member(r.state_id)
    return propose(m, await proposalFrom(m, { proposal_type: enc.encode("resumptionPSK"), epoch_id: r.epoch_id }, undefined, m.state.groupContext.groupId))
  },
  async GroupContextExtensionsProposal(r) {
    const m = member(r.state_id)
    return propose(m, { proposalType: "group_context_extensions", groupContextExtensions: { extensions: extensionsFrom(r.extensions) } })
  },
  async ReInitProposal(r) {
    const m = member(r.state_id)
    return propose(m, await proposalFrom(m, { proposal_type: enc.encode("reinit"), group_id: r.group_id, cipher_suite: r.cipher_suite, extensions: r.extensions }))
  },
  async Commit(r) {
    // force_path is not offered by ts-mls: it adds a path exactly when one is required.
    const m = member(r.state_id)
    await takeProposals(m, r.by_reference)
    const extra = []
    for (const d of r.by_value ?? []) extra.push(await proposalFrom(m, d, m.state.ratchetTree, m.state.groupContext.groupId))
    const res = await mls.createCommit({ state: m.state, cipherSuite: m.cs, pskIndex: pskIndex(m) }, { wireAsPublicMessage: !m.encrypt, extraProposals: extra, ratchetTreeExtension: !r.external_tree })
    m.pending = res.newState
    return {
      commit: mls.encodeMlsMessage(res.commit),
      welcome: res.welcome ? wrap("mls_welcome", "welcome", res.welcome) : new Uint8Array(),
      ratchet_tree: r.external_tree ? encodeRatchetTree(res.newState.ratchetTree) : new Uint8Array(),
    }
  },
  async HandleCommit(r) {
    const m = member(r.state_id)
    await takeProposals(m, r.proposal)
    const { res } = await receive(m, r.commit)
    if (res.kind !== "newState") throw new RpcError(grpc.status.INVALID_ARGUMENT, "expected a commit")
    m.own.clear()
    return { state_id: r.state_id, epoch_authenticator: authenticator(m.state) }
  },
  async HandlePendingCommit(r) {
    const m = member(r.state_id)
    if (!m.pending) throw new RpcError(grpc.status.FAILED_PRECONDITION, "no pending commit")
    m.state = m.pending
    m.pending = undefined
    m.own.clear()
    return { state_id: r.state_id, epoch_authenticator: authenticator(m.state) }
  },
  async ReInitCommit(r) {
    return handlers.Commit(r)
  },
  async HandlePendingReInitCommit(r) {
    await handlers.HandlePendingCommit(r)
    return startReinit(r.state_id)
  },
  async HandleReInitCommit(r) {
    await handlers.HandleCommit(r)
    return startReinit(r.state_id)
  },
  async ReInitWelcome(r) {
    const ri = reinits.get(r.reinit_id)
    if (!ri) throw new RpcError(grpc.status.NOT_FOUND, "unknown reinit id")
    const re = ri.member.state.groupActiveState.reinit
    const res = await subgroup(ri.member.state, "reinit", ri.kp.cs, ri.kp, re.groupId, re.extensions, r.key_package, r.external_tree)
    const id = storeMember(res.newState, ri.kp.cs, ri.member.encrypt, {}, ri.kp.keys)
    return { state_id: id, welcome: wrap("mls_welcome", "welcome", res.welcome), ratchet_tree: r.external_tree ? encodeRatchetTree(res.newState.ratchetTree) : new Uint8Array(), epoch_authenticator: authenticator(res.newState) }
  },
  async HandleReInitWelcome(r) {
    const ri = reinits.get(r.reinit_id)
    if (!ri) throw new RpcError(grpc.status.NOT_FOUND, "unknown reinit id")
    const welcome = decode(r.welcome, "mls_welcome").welcome
    const tree = r.ratchet_tree?.length ? decodeRatchetTree(r.ratchet_tree, 0)[0] : undefined
    const state = await mls.joinGroupFromReinit(ri.member.state, welcome, ri.kp.publicPackage, ri.kp.privatePackage, tree)
    return { state_id: storeMember(state, ri.kp.cs, ri.member.encrypt, {}, ri.kp.keys), epoch_authenticator: authenticator(state) }
  },
  async CreateBranch(r) {
    const m = member(r.state_id)
    const own = m.state.ratchetTree[m.state.privatePath.leafIndex * 2].leaf
    const kp = await newKeyPackage(m.cs, own.credential.identity, m.keys)
    const res = await subgroup(m.state, "branch", m.cs, kp, new Uint8Array(r.group_id), extensionsFrom(r.extensions), r.key_packages, r.external_tree)
    const id = storeMember(res.newState, m.cs, m.encrypt, {}, kp.keys)
    return { state_id: id, welcome: wrap("mls_welcome", "welcome", res.welcome), ratchet_tree: r.external_tree ? encodeRatchetTree(res.newState.ratchetTree) : new Uint8Array(), epoch_authenticator: authenticator(res.newState) }
  },
  async HandleBranch(r) {
    const m = member(r.state_id)
    const p = pendings.get(r.transaction_id)
    if (!p) throw new RpcError(grpc.status.NOT_FOUND, "unknown transaction id")
    const welcome = decode(r.welcome, "mls_welcome").welcome
    const tree = r.ratchet_tree?.length ? decodeRatchetTree(r.ratchet_tree, 0)[0] : undefined
    const state = await mls.joinGroupFromBranch(m.state, welcome, p.kp.publicPackage, p.kp.privatePackage, tree, m.cs)
    return { state_id: storeMember(state, m.cs, m.encrypt, p.psks, p.kp.keys), epoch_authenticator: authenticator(state) }
  },
  async NewMemberAddProposal(r) {
    const gi = decode(r.group_info, "mls_group_info").groupInfo
    const suite = mls.ciphersuites[gi.groupContext.cipherSuite]
    const cs = await impl(suite)
    const kp = await newKeyPackage(cs, new Uint8Array(r.identity))
    const message = await mls.proposeAddExternal(gi, kp.publicPackage, kp.privatePackage, cs)
    const id = newId()
    pendings.set(id, { kp, psks: {} })
    return {
      transaction_id: id,
      proposal: mls.encodeMlsMessage(message),
      init_priv: kp.privatePackage.initPrivateKey,
      encryption_priv: kp.privatePackage.hpkePrivateKey,
      signature_priv: kp.privatePackage.signaturePrivateKey,
    }
  },
  async CreateExternalSigner(r) {
    const cs = await impl(r.cipher_suite)
    const keys = await signatureKeyPair(cs)
    const credential = { credentialType: "basic", identity: new Uint8Array(r.identity) }
    const id = newId()
    signers.set(id, { keys, credential, cs })
    return { signer_id: id, external_sender: mls.encodeExternalSender({ signaturePublicKey: keys.publicKey, credential }) }
  },
  async AddExternalSigner(r) {
    const m = member(r.state_id)
    const sender = mls.decodeExternalSender(new Uint8Array(r.external_sender), 0)[0]
    const exts = [...m.state.groupContext.extensions]
    const i = exts.findIndex((e) => e.extensionType === "external_senders")
    const senders = i >= 0 ? decodeVarLenType(mls.decodeExternalSender)(exts[i].extensionData, 0)[0] : []
    const data = encode(varLenTypeEncoder(externalSenderEncoder))([...senders, sender])
    const ext = { extensionType: "external_senders", extensionData: data }
    if (i >= 0) exts[i] = ext
    else exts.push(ext)
    return propose(m, { proposalType: "group_context_extensions", groupContextExtensions: { extensions: exts } })
  },
  async ExternalSignerProposal(r) {
    const s = signers.get(r.signer_id)
    if (!s) throw new RpcError(grpc.status.NOT_FOUND, "unknown signer id")
    const gi = decode(r.group_info, "mls_group_info").groupInfo
    const tree = r.ratchet_tree?.length ? decodeRatchetTree(r.ratchet_tree, 0)[0] : []
    const proposal = await proposalFrom({ cs: s.cs }, r.description, tree, gi.groupContext.groupId)
    const message = await mls.proposeExternal(gi, proposal, s.keys.publicKey, s.keys.signKey, s.cs)
    return { proposal: mls.encodeMlsMessage(message) }
  },
  async Free(r) {
    members.delete(r.state_id)
    return {}
  },
}

async function startReinit(stateId) {
  const m = member(stateId)
  const active = m.state.groupActiveState
  if (active.kind !== "suspendedPendingReinit") throw new RpcError(grpc.status.INVALID_ARGUMENT, "the commit did not reinitialize the group (§11.2)")
  const suite = mls.ciphersuites[active.reinit.cipherSuite]
  const cs = await impl(suite)
  const own = m.state.ratchetTree[m.state.privatePath.leafIndex * 2].leaf
  const kp = await newKeyPackage(cs, own.credential.identity)
  const id = newId()
  reinits.set(id, { member: m, kp })
  return { reinit_id: id, key_package: wrap("mls_key_package", "keyPackage", kp.publicPackage), epoch_authenticator: authenticator(m.state) }
}

// -- server ----------------------------------------------------------------------------------------
const definition = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, defaults: true, oneofs: true })
const service = grpc.loadPackageDefinition(definition).mls_client.MLSClient.service

const server = new grpc.Server()
const rpcs = {}
let queue = Promise.resolve()
for (const name of Object.keys(service)) {
  const handler = handlers[name]
  rpcs[name] = (call, callback) => {
    // One RPC at a time: the states are plain objects replaced on every call.
    queue = queue.then(async () => {
      if (!handler) return callback({ code: grpc.status.UNIMPLEMENTED, details: `${name} not implemented` })
      try {
        callback(null, await handler(call.request))
      } catch (e) {
        const code = e instanceof RpcError ? e.code : grpc.status.INVALID_ARGUMENT
        callback({ code, details: `${e?.constructor?.name ?? "Error"}: ${e?.message ?? e}` })
      }
    })
  }
}
server.addService(service, rpcs)
server.bindAsync(`${HOST}:${PORT}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(err)
    process.exit(1)
  }
  process.stdout.write(`listening on ${HOST}:${port}\n`)
})
