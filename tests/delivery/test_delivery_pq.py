"""Post-quantum cipher suites through a real delivery service (docs/pq.md).

A device registered in suite 1 (Ed25519) keeps KeyPackage stocks in suite 1 and in
the hybrid X25519+ML-KEM-768 suite 0x004F; groups in 0x004F work end to end: Adds
with Welcomes, messages, commits, and an external join of a new device. Suites the
mls library does not implement, and KeyPackages whose suite field was changed, are
refused with a specific 4xx.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable

from ds_client import PASSWORD, Device, add_device, b64, gid_text, unb64
from ds_mls import external_join, new_client, plaintext_of

from delivery.config import Settings
from mls.key_package import KeyPackage
from mls.message import MLSMessage

MakeDevice = Callable[..., Awaitable[Device]]
PQ = 0x004F


def _suite_of(kp: bytes) -> int:
    body = MLSMessage.deserialize(kp).body
    assert isinstance(body, KeyPackage)
    return body.cipher_suite


async def _count(device: Device, suite: int | None = None) -> dict[str, object]:
    r = await device.get("/api/mls/key-packages/count",
                         params={} if suite is None else {"cipher_suite": suite})
    assert r.status_code == 200, r.text
    out: dict[str, object] = r.json()
    return out


async def test_stock_per_suite_and_claim_by_suite(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    classic = bob.mls.generate_key_packages(2) + bob.mls.generate_key_packages(1, True)
    pq = (bob.mls.generate_key_packages(2, ciphersuite=PQ)
          + bob.mls.generate_key_packages(1, True, ciphersuite=PQ))
    # One batch, one last-resort KeyPackage per suite.
    r = await bob.post("/api/mls/key-packages", {"key_packages": [b64(k) for k in classic + pq]})
    assert r.status_code == 201, r.text
    assert r.json()["stock"] == [{"cipher_suite": 1, "count": 2, "last_resort": True},
                                 {"cipher_suite": PQ, "count": 2, "last_resort": True}]
    assert await _count(bob) == {"cipher_suite": 1, "count": 2, "last_resort": True}
    assert await _count(bob, PQ) == {"cipher_suite": PQ, "count": 2, "last_resort": True}
    assert 2500 < len(pq[0]) < 3000 and len(classic[0]) < 400  # ~2.7 KB against ~0.3 KB

    # Without a suite a claim hands out the device's registered suite (the old API).
    r = await alice.claim(bob.user_id)
    assert [unb64(k["key_package"]) for k in r.json()["key_packages"]] == [classic[0]]
    got = []
    for _ in range(3):
        r = await alice.claim(bob.user_id, PQ)
        assert r.status_code == 200, r.text
        [item] = r.json()["key_packages"]
        got.append((unb64(item["key_package"]), item["last_resort"]))
    assert got == [(pq[0], False), (pq[1], False), (pq[2], True)]
    assert await _count(bob, PQ) == {"cipher_suite": PQ, "count": 0, "last_resort": True}
    assert await _count(bob) == {"cipher_suite": 1, "count": 1, "last_resort": True}
    # A newer last-resort KeyPackage replaces the old one of its own suite only.
    [newer] = await bob.upload_key_packages(1, last_resort=True, suite=PQ)
    r = await alice.claim(bob.user_id, PQ)
    assert unb64(r.json()["key_packages"][0]["key_package"]) == newer
    r = await alice.claim(bob.user_id, 1)
    assert unb64(r.json()["key_packages"][0]["key_package"]) == classic[1]
    # A suite the device publishes nothing in: it is listed as without KeyPackages.
    r = await alice.claim(bob.user_id, 0x004D)
    assert r.json()["key_packages"] == []
    assert r.json()["devices_without_key_packages"] == [bob.device_id]
    # The key directory lists the suites a device offers, even once its stock is gone.
    async def offered() -> list[int]:
        r = await alice.get(f"/api/users/{bob.user_id}/devices")
        [info] = r.json()["devices"]
        assert info["cipher_suite"] == 1
        suites: list[int] = info["cipher_suites"]
        return suites

    assert await offered() == [1, PQ]
    r = await bob.http.delete("/api/mls/key-packages", headers=bob.headers)
    assert r.status_code == 200
    assert await offered() == [1, PQ]
    two = bob.mls.generate_key_packages(2, last_resort=True, ciphersuite=PQ)
    r = await bob.post("/api/mls/key-packages", {"key_packages": [b64(k) for k in two]})
    assert r.status_code == 400 and r.json()["error"] == "too_many_last_resort"


async def test_unsupported_and_forged_suites_are_refused(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    [good] = bob.mls.generate_key_packages(1, ciphersuite=PQ)
    assert good[6:8] == PQ.to_bytes(2, "big")  # MLSMessage(version, wire format, KeyPackage)
    cases = [(0x1234, "invalid_mls"),  # no such suite in the mls library
             (0x004D, "mls_signature_invalid"),  # a real suite, but the signature covers it
             (1, "mls_signature_invalid")]
    for suite, code in cases:
        forged = good[:6] + suite.to_bytes(2, "big") + good[8:]
        r = await bob.post("/api/mls/key-packages", {"key_packages": [b64(forged)]})
        assert r.status_code == 400 and r.json()["error"] == code, r.text
    assert await _count(bob, PQ) == {"cipher_suite": PQ, "count": 0, "last_resort": False}
    r = await bob.post("/api/mls/key-packages", {"key_packages": [b64(good)]})
    assert r.status_code == 201, r.text  # exactly the forged field was wrong

    for path in ("/api/mls/key-packages/count", f"/api/mls/key-packages/{bob.user_id}"):
        r = await alice.get(path, params={"cipher_suite": 0x1234})
        assert r.status_code == 400 and r.json()["error"] == "unsupported_cipher_suite"
        assert "0x004f" in r.json()["detail"]
    # A supported suite of another signature scheme than the device's key (P-256).
    r = await alice.get("/api/mls/key-packages/count", params={"cipher_suite": 2})
    assert r.status_code == 400 and r.json()["error"] == "cipher_suite_mismatch"
    # Registering an identity key: suites come from the mls library's table, so a PQ
    # suite is accepted (an Ed25519 key) and an unknown one refused.
    r = await alice.http.post("/api/auth/login", json={"username": alice.user_id,
                                                       "password": PASSWORD})
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    key = b64(new_client(alice.user_id, "x").signature_public_key)
    r = await alice.http.post("/api/auth/devices", headers=headers,
                              json={"signature_key": key, "cipher_suite": 0x1234})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_cipher_suite"
    r = await alice.http.post("/api/auth/devices", headers=headers,
                              json={"signature_key": key, "cipher_suite": PQ})
    assert r.status_code == 201, r.text


async def test_group_in_pq_suite_end_to_end(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(1, suite=PQ)
    await bob.upload_key_packages(1)  # a suite-1 one must not be used for a PQ group
    gid = await alice.create_group(suite=PQ)
    r = await alice.get(f"/api/mls/groups/{gid_text(gid)}")
    assert r.json()["cipher_suite"] == PQ
    added = await alice.add(gid, [bob])
    assert added["seq"] >= 1
    [item] = await bob.welcomes()
    welcome = unb64(item["data"])
    assert 1500 < len(welcome) < 12000  # one HPKE ciphertext of ~1.1 KB, and the tree
    assert await bob.join_from_inbox() == [gid]
    assert bob.mls.group_suite(gid) == PQ
    bob.cursors[gid] = alice.cursors[gid]
    r = await bob.send(bob.mls.encrypt_message(gid, b"post-quantum hello"))
    assert r.status_code == 201, r.text
    assert plaintext_of((await alice.sync(gid))[-1]) == b"post-quantum hello"
    r = await alice.send(alice.mls.self_update(gid))
    assert r.status_code == 201, r.text
    alice.mls.merge_pending_commit(gid)
    alice.cursors[gid] = r.json()["seq"]
    await bob.sync(gid)
    assert bob.mls.epoch_authenticator(gid) == alice.mls.epoch_authenticator(gid)

    # A new device of Bob's joins by external commit once it offers the suite.
    bob2 = await add_device(bob.base_url, bob.user_id)
    try:
        assert (await bob2.get("/api/mls/groups/joinable")).json()["groups"] == []
        await bob2.upload_key_packages(1, last_resort=True, suite=PQ)
        r = await bob2.get("/api/mls/groups/joinable")
        assert [(g["group_id"], g["cipher_suite"]) for g in r.json()["groups"]] == [
            (gid_text(gid), PQ)]
        r = await bob2.get(f"/api/mls/groups/{gid_text(gid)}/group-info")
        commit, info, state = external_join(bob2.mls, unb64(r.json()["group_info"]))
        r = await bob2.send(commit, group_info=info)
        assert r.status_code == 201, r.text
        assert bob2.mls.import_group_state(state) == gid
        bob2.cursors[gid] = r.json()["seq"]
        for d in (alice, bob):
            await d.sync(gid)
        r = await bob2.send(bob2.mls.encrypt_message(gid, b"second device"))
        assert r.status_code == 201, r.text
        for d in (alice, bob):
            assert plaintext_of((await d.sync(gid))[-1]) == b"second device"
        assert len({d.mls.epoch_authenticator(gid) for d in (alice, bob, bob2)}) == 1
    finally:
        await bob2.close()


def _json_size(**fields: bytes) -> int:
    """Bytes of a JSON body or frame carrying ``fields`` in standard base64."""
    return len(json.dumps({k: b64(v) for k, v in fields.items()}))


async def test_default_limits_admit_a_1000_member_pq_group(make_device: MakeDevice) -> None:
    """The sizes of real 0x004F messages of a 1,000-member group (built here, in
    process) fit the default limits, and the running server's body limit admits them."""
    n = 1000
    owner = new_client("owner", "d")
    gid = b"pq-limits-group!"
    owner.create_group(gid, PQ)
    kps = [new_client(f"u{i}", "d").generate_key_packages(1, ciphersuite=PQ)[0]
           for i in range(1, n)]
    owner.add_members(gid, kps)
    owner.merge_pending_commit(gid)
    [late] = new_client("late", "d").generate_key_packages(1, ciphersuite=PQ)
    add_commit, welcome = owner.add_members(gid, [late])
    add_body = _json_size(message=add_commit, welcome=welcome,
                          group_info=owner.pending_group_info(gid))
    owner.merge_pending_commit(gid)
    update = owner.self_update(gid)
    update_body = _json_size(message=update, group_info=owner.pending_group_info(gid))
    print(f"N={n} 0x004F: add body {add_body / 1e6:.2f} MB, update body "
          f"{update_body / 1e6:.2f} MB, Welcome {len(welcome) / 1e6:.2f} MB")
    settings = Settings()
    assert 2 * 1024 * 1024 < update_body < add_body <= settings.max_body_bytes
    assert settings.max_body_bytes <= 16 * 1024 * 1024  # still bounded
    # What the push and the pages carry: one message or Welcome per frame or item.
    for frame in (_json_size(data=update), _json_size(data=welcome)):
        assert frame < settings.ws_buffer_bytes and frame < settings.page_max_bytes
    # The server refuses the forged content (400), not the size (413).
    alice = await make_device()
    gid2 = await alice.create_group(suite=PQ)
    junk = {"message": b64(gid2 + secrets.token_bytes(len(update) - len(gid2))),
            "group_info": b64(secrets.token_bytes(add_body * 3 // 4 - len(update)))}
    assert len(json.dumps(junk)) > 2 * 1024 * 1024
    r = await alice.post("/api/mls/messages/group", junk)
    assert r.status_code == 400, r.text  # (413 beyond: test_delivery_static.py)
