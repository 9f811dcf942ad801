// Crypto primitives for the MLS library under Pyodide (src/mls/crypto/pyodide.py).
//
// One ES module for the browser (bare names resolved by the page's import map, see
// build.py) and for Node (resolved from node_modules, see scripts/pyodide_run.mjs).
// `init()` waits for libsodium's WebAssembly and returns an object of *synchronous*
// functions, so Python can call them through the FFI without awaiting: one crossing
// per primitive. Algorithms are passed as the numeric identifiers of
// mls.crypto.provider (HPKE AEAD/KEM ids, TLS SignatureScheme values).
//
// Every function takes Uint8Arrays. Failures caused by the inputs (bad tag, invalid
// point or scalar, all-zero shared secret) return `undefined` (None in Python), never
// throw: the Python side turns that into CryptoError/DecryptionError without paying for
// a JS exception crossing the FFI. `verify` returns a boolean and never throws on
// garbage. An unknown algorithm id is a programming error and throws.
//
// Libraries: libsodium for Ed25519, X25519 and ChaCha20-Poly1305 (IETF); noble for
// AES-GCM (no AES in libsodium's portable WebAssembly build) and for the curves
// libsodium lacks: P-256/384/521 and Ed448/X448; @noble/post-quantum for ML-KEM
// (FIPS 203). Hybrid KEMs are composed in Python (src/mls/crypto/kem.py).

import sodium from "libsodium-wrappers-sumo";
import { gcm } from "@noble/ciphers/aes.js";
import { p256, p384, p521 } from "@noble/curves/nist.js";
import { ed448, x448 } from "@noble/curves/ed448.js";
import { ml_kem768, ml_kem1024 } from "@noble/post-quantum/ml-kem.js";

/** Name under which Python imports the primitives (`import mls_crypto_js`). */
export const MODULE_NAME = "mls_crypto_js";

// Identifiers, as in src/mls/crypto/provider.py.
const AES128GCM = 0x0001;
const AES256GCM = 0x0002;
const CHACHA20POLY1305 = 0x0003;
const DHKEM_P256 = 0x0010;
const DHKEM_P384 = 0x0011;
const DHKEM_P521 = 0x0012;
const DHKEM_X25519 = 0x0020;
const DHKEM_X448 = 0x0021;
const MLKEM768 = 0x0041;
const MLKEM1024 = 0x0042;
const ECDSA_P256_SHA256 = 0x0403;
const ECDSA_P384_SHA384 = 0x0503;
const ECDSA_P521_SHA512 = 0x0603;
const ED25519 = 0x0807;
const ED448 = 0x0808;

// noble's P-256/384/521 objects prehash with SHA-256/384/512 respectively, which is
// exactly what the MLS ECDSA schemes require.
const NIST_KEM = { [DHKEM_P256]: p256, [DHKEM_P384]: p384, [DHKEM_P521]: p521 };
const MLKEM = { [MLKEM768]: ml_kem768, [MLKEM1024]: ml_kem1024 };
const MLKEM_SEED_LEN = 64; // d || z (FIPS 203 §6.1), the HPKE private key
const ECDSA = { [ECDSA_P256_SHA256]: p256, [ECDSA_P384_SHA384]: p384, [ECDSA_P521_SHA512]: p521 };
// Signing: RFC 6979 deterministic nonces (no dependence on the RNG for k), low-S.
const ECDSA_SIGN_OPTS = Object.freeze({ prehash: true, lowS: true, format: "der" });
// Verifying: other implementations (OpenSSL, Go, ...) emit high-S signatures, which are
// valid ECDSA; noble rejects them unless lowS is false.
const ECDSA_VERIFY_OPTS = Object.freeze({ prehash: true, lowS: false, format: "der" });
// RFC 8032 strict decoding, as OpenSSL does (noble's zip215 mode is more permissive).
const ED448_VERIFY_OPTS = Object.freeze({ zip215: false });

function unknown(kind, id) {
  throw new RangeError(`mls_crypto_js: unknown ${kind} identifier ${id}`);
}

function isAllZero(bytes) {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]; // no early exit: constant time
  return acc === 0;
}

/**
 * Guards an exported primitive: its byte arguments must be Uint8Arrays. `attempt`
 * below turns library exceptions into "invalid input", so without this check a caller
 * passing the wrong type (say, a Python bytes proxy instead of `to_js(bytes)`) would
 * see a plausible CryptoError instead of its bug.
 */
function checked(fn) {
  return (alg, ...args) => {
    for (const a of args) {
      if (!(a instanceof Uint8Array)) throw new TypeError(`mls_crypto_js.${fn.name}: expected Uint8Array arguments`);
    }
    return fn(alg, ...args);
  };
}

/**
 * The packed form of a primitive, for callers that pay per argument crossing (Pyodide
 * copies each Uint8Array separately): `(alg, buf, ...lengths)` where `buf` is the byte
 * arguments concatenated and `lengths` the sizes of all but the last. Splitting makes
 * views, not copies; the primitive sees the same arguments as unpacked.
 */
function packed(fn) {
  return (alg, buf, ...lengths) => {
    if (!(buf instanceof Uint8Array)) throw new TypeError(`mls_crypto_js.${fn.name}: expected a Uint8Array`);
    const parts = [];
    let at = 0;
    for (const n of lengths) {
      if (!Number.isInteger(n) || n < 0 || at + n > buf.length) {
        throw new RangeError(`mls_crypto_js.${fn.name}: argument lengths exceed the buffer`);
      }
      parts.push(buf.subarray(at, at + n));
      at += n;
    }
    parts.push(buf.subarray(at));
    return fn(alg, ...parts);
  };
}

/**
 * The by-address form of a primitive, for Pyodide: `(alg, addr0, len0, addr1, len1, ...)`
 * where each pair locates one byte argument in Python's own WebAssembly memory (the
 * bytes object's data, which Python keeps alive and unchanged during the call), so
 * that Python need not copy them into new Uint8Arrays (`to_js`, slower than the AES-GCM
 * of a short message). The arguments are copied here into a scratch buffer, each part
 * 4-byte aligned, and the primitive gets views of it: noble runs measurably slower on
 * views of the WebAssembly memory itself, and copies unaligned inputs. The scratch is
 * zeroed after each call (it held keys); nothing keeps a view of it (noble and
 * libsodium copy what they retain, `signer` copies or expands the key).
 */
function onHeap(fn, heap) {
  return (alg, ...refs) => withArgs(fn.name, heap(), refs, (args) => fn(alg, ...args));
}

let scratch = new Uint8Array(4096);
let scratchBusy = false;

/** Runs `body` on views of the scratch buffer holding the arguments `refs` locate. */
function withArgs(name, memory, refs, body) {
  if (refs.length % 2 !== 0) throw new RangeError(`mls_crypto_js.${name}: expected address/length pairs`);
  let size = 0;
  for (let i = 0; i < refs.length; i += 2) {
    const at = refs[i];
    const n = refs[i + 1];
    if (!Number.isInteger(at) || !Number.isInteger(n) || at < 0 || n < 0 || at + n > memory.length) {
      throw new RangeError(`mls_crypto_js.${name}: argument outside the Python heap`);
    }
    size += (n + 3) & ~3;
  }
  // The primitives never call back into Python, so calls do not nest; if one ever did,
  // it would get a buffer of its own instead of overwriting the outer call's arguments.
  const own = !scratchBusy;
  if (own && size > scratch.length) scratch = new Uint8Array(Math.max(size, 2 * scratch.length));
  const buf = own ? scratch : new Uint8Array(size);
  scratchBusy = true;
  const args = [];
  let to = 0;
  for (let i = 0; i < refs.length; i += 2) {
    const at = refs[i];
    const n = refs[i + 1];
    buf.set(memory.subarray(at, at + n), to);
    args.push(buf.subarray(to, to + n));
    to += (n + 3) & ~3;
  }
  try {
    return body(args);
  } finally {
    buf.fill(0, 0, size);
    if (own) scratchBusy = false;
  }
}

/** Runs `fn`, mapping any exception raised by the library on bad input to undefined. */
function attempt(fn) {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

/** Zeroes the expanded Ed25519 key of each collected `signer` closure. */
const expandedKeys = new FinalizationRegistry((key) => sodium.memzero(key));

function makePrimitives() {
  function aeadSeal(alg, key, nonce, aad, plaintext) {
    switch (alg) {
      case AES128GCM:
      case AES256GCM:
        return attempt(() => gcm(key, nonce, aad).encrypt(plaintext));
      case CHACHA20POLY1305:
        return attempt(() =>
          sodium.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, aad, null, nonce, key),
        );
      default:
        return unknown("AEAD", alg);
    }
  }

  function aeadOpen(alg, key, nonce, aad, ciphertext) {
    switch (alg) {
      case AES128GCM:
      case AES256GCM:
        return attempt(() => gcm(key, nonce, aad).decrypt(ciphertext));
      case CHACHA20POLY1305:
        return attempt(() =>
          sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, ciphertext, aad, nonce, key),
        );
      default:
        return unknown("AEAD", alg);
    }
  }

  function mlkem(kem) {
    return MLKEM[kem] ?? unknown("KEM", kem);
  }

  /** ML-KEM.KeyGen_internal(d, z) of the 64-byte seed -> { publicKey, secretKey }. */
  function mlkemKeys(kem, seed) {
    if (seed.length !== MLKEM_SEED_LEN) return undefined;
    return attempt(() => mlkem(kem).keygen(seed));
  }

  /**
   * ML-KEM.Encaps: the 32-byte shared secret followed by the ciphertext, in one array
   * (one crossing); undefined if the encapsulation key fails FIPS 203 §7.2's check.
   */
  function kemEncap(kem, publicKey) {
    const scheme = mlkem(kem);
    const out = attempt(() => scheme.encapsulate(publicKey));
    if (out === undefined) return undefined;
    const joined = new Uint8Array(out.sharedSecret.length + out.cipherText.length);
    joined.set(out.sharedSecret);
    joined.set(out.cipherText, out.sharedSecret.length);
    return joined;
  }

  /** ML-KEM.Decaps with the key of the seed; implicit rejection on a wrong ciphertext. */
  function kemDecap(kem, seed, cipherText) {
    const keys = mlkemKeys(kem, seed);
    if (keys === undefined) return undefined;
    return attempt(() => mlkem(kem).decapsulate(cipherText, keys.secretKey));
  }

  function kemPublicKey(kem, privateKey) {
    switch (kem) {
      case MLKEM768:
      case MLKEM1024:
        return mlkemKeys(kem, privateKey)?.publicKey;
      case DHKEM_X25519:
        return attempt(() => sodium.crypto_scalarmult_base(privateKey));
      case DHKEM_X448:
        return attempt(() => x448.getPublicKey(privateKey));
      default: {
        const curve = NIST_KEM[kem] ?? unknown("KEM", kem);
        return attempt(() => curve.getPublicKey(privateKey, false));
      }
    }
  }

  function dh(kem, privateKey, publicKey) {
    let shared;
    switch (kem) {
      case DHKEM_X25519:
        // libsodium already refuses an all-zero result; the check below keeps the
        // guarantee independent of the library.
        shared = attempt(() => sodium.crypto_scalarmult(privateKey, publicKey));
        break;
      case DHKEM_X448:
        shared = attempt(() => x448.getSharedSecret(privateKey, publicKey));
        break;
      default: {
        const curve = NIST_KEM[kem] ?? unknown("KEM", kem);
        // The compressed encoding minus its first byte is the x-coordinate, which is the
        // DHKEM shared secret (RFC 9180 §7.1.1). noble checks the point is on the curve.
        const point = attempt(() => curve.getSharedSecret(privateKey, publicKey, true));
        return point === undefined ? undefined : point.subarray(1);
      }
    }
    return shared === undefined || isAllZero(shared) ? undefined : shared;
  }

  /**
   * The DH shared secret followed by the private key's public key, in one array (one
   * crossing for HPKE Encap/Decap, RFC 9180 §4.1); undefined if either fails.
   */
  function dhWithPublic(kem, privateKey, publicKey) {
    const shared = dh(kem, privateKey, publicKey);
    if (shared === undefined) return undefined;
    const own = kemPublicKey(kem, privateKey);
    if (own === undefined) return undefined;
    const joined = new Uint8Array(shared.length + own.length);
    joined.set(shared);
    joined.set(own, shared.length);
    return joined;
  }

  function signaturePublicKey(scheme, privateKey) {
    switch (scheme) {
      case ED25519:
        return attempt(() => sodium.crypto_sign_seed_keypair(privateKey).publicKey);
      case ED448:
        return attempt(() => ed448.getPublicKey(privateKey));
      default: {
        const curve = ECDSA[scheme] ?? unknown("signature scheme", scheme);
        return attempt(() => curve.getPublicKey(privateKey, false));
      }
    }
  }

  function sign(scheme, privateKey, message) {
    switch (scheme) {
      case ED25519:
        // Our private keys are RFC 8032 32-byte seeds; libsodium signs with the expanded
        // 64-byte key, derived here so that Python crosses the FFI once.
        return attempt(() => {
          const { privateKey: expanded } = sodium.crypto_sign_seed_keypair(privateKey);
          try {
            return sodium.crypto_sign_detached(message, expanded);
          } finally {
            sodium.memzero(expanded);
          }
        });
      case ED448:
        return attempt(() => ed448.sign(message, privateKey));
      default: {
        const curve = ECDSA[scheme] ?? unknown("signature scheme", scheme);
        return attempt(() => curve.sign(message, privateKey, ECDSA_SIGN_OPTS));
      }
    }
  }

  /**
   * A signing function for one private key, or undefined if the key is invalid. For
   * Ed25519 the expanded key is derived once (it costs as much as a signature), as
   * the CPython provider loads its key once; the closure holds it until released,
   * and the expanded key is zeroed once the closure has been collected (as each
   * one-shot `sign` zeroes it right away).
   */
  function signer(scheme, privateKey) {
    if (signaturePublicKey(scheme, privateKey) === undefined) return undefined;
    if (scheme === ED25519) {
      const { privateKey: expanded } = sodium.crypto_sign_seed_keypair(privateKey);
      const signFn = (message) => {
        if (!(message instanceof Uint8Array)) throw new TypeError("mls_crypto_js.signer: expected a Uint8Array");
        return attempt(() => sodium.crypto_sign_detached(message, expanded));
      };
      expandedKeys.register(signFn, expanded);
      return signFn;
    }
    const key = privateKey.slice();
    return (message) => {
      if (!(message instanceof Uint8Array)) throw new TypeError("mls_crypto_js.signer: expected a Uint8Array");
      return sign(scheme, key, message);
    };
  }

  function verify(scheme, publicKey, message, signature) {
    switch (scheme) {
      case ED25519:
        return attempt(() => sodium.crypto_sign_verify_detached(signature, message, publicKey)) === true;
      case ED448:
        return attempt(() => ed448.verify(signature, message, publicKey, ED448_VERIFY_OPTS)) === true;
      default: {
        const curve = ECDSA[scheme] ?? unknown("signature scheme", scheme);
        return attempt(() => curve.verify(signature, message, publicKey, ECDSA_VERIFY_OPTS)) === true;
      }
    }
  }

  const raw = { aeadSeal, aeadOpen, kemPublicKey, kemEncap, kemDecap, dh, dhWithPublic, signaturePublicKey, sign, verify, signer };
  const exported = Object.freeze({
    aead_seal: checked(aeadSeal),
    aead_open: checked(aeadOpen),
    kem_public_key: checked(kemPublicKey),
    kem_encap: checked(kemEncap),
    kem_decap: checked(kemDecap),
    dh: checked(dh),
    signature_public_key: checked(signaturePublicKey),
    sign: checked(sign),
    verify: checked(verify),
    signer: checked(signer),
    aead_seal_packed: packed(aeadSeal),
    aead_open_packed: packed(aeadOpen),
    kem_public_key_packed: packed(kemPublicKey),
    kem_encap_packed: packed(kemEncap),
    kem_decap_packed: packed(kemDecap),
    dh_packed: packed(dh),
    dh_with_public_packed: packed(dhWithPublic),
    signature_public_key_packed: packed(signaturePublicKey),
    sign_packed: packed(sign),
    verify_packed: packed(verify),
  });
  return { exported, raw: Object.freeze(raw) };
}

/**
 * The by-address forms (`onHeap`) of every primitive over `heap()`, Python's memory as a
 * Uint8Array (read at each call: the memory may have grown, detaching older views),
 * and `heap_probe` for the Python side to check that addresses and memory agree
 * before it relies on them.
 */
function heapPrimitives(raw, heap) {
  function signerOnHeap(scheme, ...refs) {
    const fn = withArgs("signer", heap(), refs, (args) => raw.signer(scheme, ...args));
    if (fn === undefined) return undefined;
    return (at, n) => withArgs("signer", heap(), [at, n], (args) => fn(...args));
  }
  return {
    heap_probe: (at, n) => withArgs("heap_probe", heap(), [at, n], (args) => args[0].slice()),
    aead_seal_heap: onHeap(raw.aeadSeal, heap),
    aead_open_heap: onHeap(raw.aeadOpen, heap),
    kem_public_key_heap: onHeap(raw.kemPublicKey, heap),
    kem_encap_heap: onHeap(raw.kemEncap, heap),
    kem_decap_heap: onHeap(raw.kemDecap, heap),
    dh_heap: onHeap(raw.dh, heap),
    dh_with_public_heap: onHeap(raw.dhWithPublic, heap),
    signature_public_key_heap: onHeap(raw.signaturePublicKey, heap),
    sign_heap: onHeap(raw.sign, heap),
    verify_heap: onHeap(raw.verify, heap),
    signer_heap: signerOnHeap,
  };
}

let primitives;
let rawPrimitives; // the unchecked functions, for heapPrimitives

/**
 * Initializes the libraries (libsodium compiles its WebAssembly asynchronously) and
 * returns the synchronous primitives. Idempotent.
 */
export async function init() {
  if (primitives === undefined) {
    await sodium.ready;
    ({ exported: primitives, raw: rawPrimitives } = makePrimitives());
  }
  return primitives;
}

/**
 * Initializes the primitives and registers them in `pyodide` as MODULE_NAME, with
 * their by-address forms over this instance's memory when Pyodide exposes it (its
 * Emscripten module's HEAPU8; src/mls/crypto/pyodide.py checks them with
 * `heap_probe` and otherwise uses the copying forms).
 */
export async function register(pyodide) {
  const base = await init();
  const module = pyodide._module;
  const heapForms = module?.HEAPU8 instanceof Uint8Array ? heapPrimitives(rawPrimitives, () => module.HEAPU8) : {};
  pyodide.registerJsModule(MODULE_NAME, Object.freeze({ ...base, ...heapForms }));
}
