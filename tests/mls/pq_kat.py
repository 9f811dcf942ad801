"""Known-answer checks of the post-quantum KEMs, runtime-neutral.

``tests/mls/test_pq_kem.py`` runs them through the CPython provider in-process and
``tests/browser/test_pq_pyodide.py`` sends this file's source to Pyodide to run them
through the Pyodide provider: the same vectors, the same expected bytes. Each check
returns ``(cases checked, failures)``; a failure names the case and what differed.

Sources (see ``vector_paths``):

* ML-KEM-768/1024: ``kat_MLKEM_{768,1024}.rsp`` of the ``cryptography_vectors``
  package on PyPI (1,000 cases each in the format of the FIPS 203 reference KATs:
  ``d``, ``z``, ``pk``, the ciphertext ``ct`` and shared secret ``ss``, and an
  invalid ciphertext ``ct_n`` with its implicit-rejection secret ``ss_n``).
* HPKE with ML-KEM-768, ML-KEM-1024 and MLKEM768-X25519: the draft-ietf-hpke-pq
  test vectors, as ``HPKE/hpke-pq-test-vectors.json`` of the same package
  (DeriveKeyPair, Decap, the key schedule, Open and Export).
* The X-Wing HPKE of OpenMLS's suites 0x004D-0x004F: ``data/openmls_pq_hpke.json``,
  written by ``tools/openmls_pq`` (``kat``) with openmls_libcrux_crypto 0.4.0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mls.crypto import SUITES, AeadAlg, CryptoProvider, HashAlg, KemAlg
from mls.crypto.hpke import Hpke
from mls.crypto.kem import MLKEM768, MLKEM768_X25519, MLKEM1024, Kem

DATA = Path(__file__).resolve().parent / "data"
OPENMLS_VECTORS = DATA / "openmls_pq_hpke.json"

#: The HPKE KEMs of draft-ietf-hpke-pq this library implements, by KEM identifier.
HPKE_PQ_KEMS: dict[int, Kem] = {0x0041: MLKEM768, 0x0042: MLKEM1024, 0x647A: MLKEM768_X25519}


def vector_paths() -> dict[str, Path]:
    """The vector files of the ``cryptography_vectors`` package (CPython only)."""
    import cryptography_vectors  # a test dependency, absent in Pyodide

    root = Path(cryptography_vectors.__file__).resolve().parent
    return {
        "mlkem768": root / "asymmetric" / "MLKEM" / "kat_MLKEM_768.rsp",
        "mlkem1024": root / "asymmetric" / "MLKEM" / "kat_MLKEM_1024.rsp",
        "hpke_pq": root / "HPKE" / "hpke-pq-test-vectors.json",
    }


def parse_rsp(text: str) -> list[dict[str, bytes]]:
    """The ``key = hex`` blocks of a KAT response file, one dict per ``count``."""
    cases: list[dict[str, bytes]] = []
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if not sep:
            continue
        if key == "count":
            cases.append({})
        elif cases:
            cases[-1][key] = bytes.fromhex(value)
    return cases


def check_mlkem(
    provider: CryptoProvider, kem: KemAlg, path: Path, limit: int | None = None
) -> tuple[int, list[str]]:
    """KeyGen_internal(d, z) gives ``pk``; Decaps gives ``ss`` for ``ct`` and the
    implicit-rejection ``ss_n`` for the invalid ``ct_n``."""
    cases = parse_rsp(path.read_text(encoding="ascii"))[:limit]
    failures = []
    for i, c in enumerate(cases):
        seed = c["d"] + c["z"]
        if provider.kem_public_key(kem, seed) != c["pk"]:
            failures.append(f"{kem.name} #{i}: public key")
        if provider.kem_decap(kem, seed, c["ct"]) != c["ss"]:
            failures.append(f"{kem.name} #{i}: shared secret")
        if provider.kem_decap(kem, seed, c["ct_n"]) != c["ss_n"]:
            failures.append(f"{kem.name} #{i}: implicit rejection")
    return len(cases), failures


def _check_keys(
    provider: CryptoProvider, kem: Kem, label: str, case: dict[str, Any], ikm: str, sk: str,
    pk: str,
) -> list[str]:
    failures = []
    got_sk, got_pk = kem.derive_key_pair(provider, bytes.fromhex(case[ikm]))
    if got_sk.hex() != case[sk] or got_pk.hex() != case[pk]:
        failures.append(f"{label}: DeriveKeyPair")
    if kem.public_key(provider, bytes.fromhex(case[sk])).hex() != case[pk]:
        failures.append(f"{label}: public key of the private key")
    return failures


def check_hpke_pq(provider: CryptoProvider, path: Path) -> tuple[int, list[str]]:
    """The draft-ietf-hpke-pq vectors of the KEMs here, with HKDF (the KDFs MLS uses)."""
    n, failures = 0, []
    for v in json.loads(path.read_text(encoding="utf-8")):
        kem = HPKE_PQ_KEMS.get(v["kem_id"])
        if kem is None or v["kdf_id"] not in (1, 2, 3) or v["mode"] != 0:
            continue
        n += 1
        label = f"KEM {v['kem_id']:#06x}/KDF {v['kdf_id']}/AEAD {v['aead_id']}"
        failures += _check_keys(provider, kem, label, v, "ikmR", "skRm", "pkRm")
        sk, enc = bytes.fromhex(v["skRm"]), bytes.fromhex(v["enc"])
        if kem.decap(provider, enc, sk).hex() != v["shared_secret"]:
            failures.append(f"{label}: Decap")
        hpke = Hpke(provider, kem, HashAlg(v["kdf_id"]), AeadAlg(v["aead_id"]))
        ctx = hpke.setup_base_r(enc, sk, bytes.fromhex(v["info"]))
        for i, e in enumerate(v["encryptions"]):  # sequence numbers 0, 1, ...
            if ctx.open(bytes.fromhex(e["aad"]), bytes.fromhex(e["ct"])).hex() != e["pt"]:
                failures.append(f"{label}: Open #{i}")
        for i, x in enumerate(v["exports"]):
            got = ctx.export(bytes.fromhex(x["exporter_context"]), x["L"])
            if got.hex() != x["exported_value"]:
                failures.append(f"{label}: Export #{i}")
    return n, failures


def check_openmls(provider: CryptoProvider, path: Path = OPENMLS_VECTORS) -> tuple[int, list[str]]:
    """OpenMLS's derive_hpke_keypair, hpke_seal and sender export, per MLS suite."""
    n, failures = 0, []
    for s in json.loads(path.read_text(encoding="utf-8"))["suites"]:
        params = SUITES[s["cipher_suite"]]
        hpke = Hpke(provider, params.kem, params.hash, params.aead)
        for i, c in enumerate(s["cases"]):
            n += 1
            label = f"suite {s['cipher_suite']:#06x} case {i}"
            failures += _check_keys(provider, params.kem, label, c, "ikm", "sk", "pk")
            sk = bytes.fromhex(c["sk"])
            pt = hpke.open_base(
                bytes.fromhex(c["kem_output"]), sk, bytes.fromhex(c["info"]),
                bytes.fromhex(c["aad"]), bytes.fromhex(c["ct"]),
            )
            if pt.hex() != c["pt"]:
                failures.append(f"{label}: Open")
            ctx = hpke.setup_base_r(bytes.fromhex(c["export_enc"]), sk, bytes.fromhex(c["info"]))
            if ctx.export(bytes.fromhex(c["exporter_context"]), 32).hex() != c["exported"]:
                failures.append(f"{label}: Export")
    return n, failures
