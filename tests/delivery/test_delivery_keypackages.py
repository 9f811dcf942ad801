"""KeyPackages: verified upload, stock count, atomic one-per-device claims."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
from ds_client import PASSWORD, Device, add_device, b64, unb64
from ds_harness import ServerProcess
from ds_mls import new_client

MakeDevice = Callable[..., Awaitable[Device]]


async def test_upload_count_claim_and_last_resort(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    regular = await bob.upload_key_packages(2)
    [last_resort] = await bob.upload_key_packages(1, last_resort=True)
    r = await bob.get("/api/mls/key-packages/count")
    assert r.json() == {"cipher_suite": 1, "count": 2, "last_resort": True}

    claimed = []
    for _ in range(4):
        r = await alice.claim(bob.user_id)
        assert r.status_code == 200, r.text
        [item] = r.json()["key_packages"]
        assert item["device_id"] == bob.device_id
        assert item["identity"] == bob.identity.decode()
        claimed.append((unb64(item["key_package"]), item["last_resort"]))
    # Regular ones once each, oldest first; then the last-resort one, which is kept.
    assert claimed == [(regular[0], False), (regular[1], False),
                       (last_resort, True), (last_resort, True)]
    r = await bob.get("/api/mls/key-packages/count")
    assert r.json() == {"cipher_suite": 1, "count": 0, "last_resort": True}


async def test_retried_upload_is_idempotent(make_device: MakeDevice) -> None:
    bob = await make_device()
    kps = bob.mls.generate_key_packages(3)
    body = {"key_packages": [b64(k) for k in kps]}
    first = await bob.post("/api/mls/key-packages", body)
    again = await bob.post("/api/mls/key-packages", body)
    stock = [{"cipher_suite": 1, "count": 3, "last_resort": False}]
    assert first.json() == {"accepted": 3, "duplicates": 0, "count": 3, "last_resort": False,
                            "stock": stock}
    assert again.json() == {"accepted": 0, "duplicates": 3, "count": 3, "last_resort": False,
                            "stock": stock}


async def test_new_last_resort_replaces_the_old(make_device: MakeDevice, db: asyncpg.Connection
                                                ) -> None:
    bob = await make_device()
    await bob.upload_key_packages(1, last_resort=True)
    [newer] = await bob.upload_key_packages(1, last_resort=True)
    rows = await db.fetch(
        "SELECT key_package_data FROM mls_key_packages k JOIN devices d ON d.id = k.device_id "
        "WHERE d.device_id = $1 AND k.last_resort", bob.device_id
    )
    assert [r["key_package_data"] for r in rows] == [newer]
    two = bob.mls.generate_key_packages(2, last_resort=True)
    r = await bob.post("/api/mls/key-packages", {"key_packages": [b64(k) for k in two]})
    assert r.status_code == 400 and r.json()["error"] == "too_many_last_resort"


async def test_claim_returns_one_per_device_except_the_callers(
    base_url: str, make_device: MakeDevice
) -> None:
    alice = await make_device()
    alice2 = await add_device(base_url, alice.user_id)
    bob = await make_device()
    try:
        await alice.upload_key_packages(1)
        await alice2.upload_key_packages(1)
        r = await bob.claim(alice.user_id)
        assert {k["device_id"] for k in r.json()["key_packages"]} == {
            alice.device_id, alice2.device_id
        }
        # Alice's own devices: the caller's device is left out; none left -> reported.
        r = await alice.claim(alice.user_id)
        assert r.json()["key_packages"] == []
        assert r.json()["devices_without_key_packages"] == [alice2.device_id]
        r = await bob.claim("nobody-" + bob.user_id[:8])
        assert r.status_code == 404
        # Named devices only (adding a user partly in a group uses up no KeyPackage
        # of a device already there); unknown names are reported.
        await alice.upload_key_packages(1)
        await alice2.upload_key_packages(1)
        r = await bob.get(f"/api/mls/key-packages/{alice.user_id}?device_id={alice2.device_id}"
                          "&device_id=nosuchdevice")
        assert r.status_code == 200, r.text
        assert [k["device_id"] for k in r.json()["key_packages"]] == [alice2.device_id]
        assert r.json()["devices_without_key_packages"] == ["nosuchdevice"]
        assert (await alice.get("/api/mls/key-packages/count")).json()["count"] == 1
        assert (await alice2.get("/api/mls/key-packages/count")).json()["count"] == 0
    finally:
        await alice2.close()


async def test_key_package_must_be_the_callers_device(base_url: str, make_device: MakeDevice
                                                     ) -> None:
    alice, bob = await make_device(), await make_device()
    # Someone else's identity.
    r = await alice.post("/api/mls/key-packages",
                         {"key_packages": [b64(bob.mls.generate_key_packages(1)[0])]})
    assert r.status_code == 403 and r.json()["error"] == "not_your_device"
    assert "identity" in r.json()["detail"]
    # Alice's identity, but a key that is not her device's registered identity key.
    impostor = new_client(alice.user_id, alice.device_id)
    r = await alice.post("/api/mls/key-packages",
                         {"key_packages": [b64(impostor.generate_key_packages(1)[0])]})
    assert r.status_code == 403 and "signature key" in r.json()["detail"]
    # A session without a device cannot upload at all.
    login = await alice.http.post(
        "/api/auth/login", json={"username": alice.user_id, "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    r = await alice.http.post("/api/mls/key-packages", headers=headers,
                              json={"key_packages": [b64(alice.mls.generate_key_packages(1)[0])]})
    assert r.status_code == 403 and r.json()["error"] == "no_device"


async def test_malformed_and_forged_key_packages_get_400(make_device: MakeDevice) -> None:
    alice = await make_device()
    good = alice.mls.generate_key_packages(1)[0]
    forged = bytearray(good)
    forged[-5] ^= 0x01  # inside the KeyPackage signature
    gid = await alice.create_group()
    cases = {
        "garbage": (b"\x00\x01\x00\x05garbage", "malformed_mls"),
        "truncated": (good[:-10], "malformed_mls"),
        "forged": (bytes(forged), "mls_signature_invalid"),
        "not a key package": (alice.mls.encrypt_message(gid, b"x"), "invalid_mls"),
    }
    for name, (data, code) in cases.items():
        r = await alice.post("/api/mls/key-packages", {"key_packages": [b64(good), b64(data)]})
        assert r.status_code == 400, (name, r.text)
        assert r.json()["error"] == code, (name, r.json())
        assert r.json()["detail"].startswith("key_packages[1]"), name
    # Nothing of a refused batch was stored, not even its good first element.
    assert (await alice.get("/api/mls/key-packages/count")).json()["count"] == 0
    r = await alice.post("/api/mls/key-packages", {"key_packages": []})
    assert r.status_code == 400


async def test_concurrent_claims_never_share_a_key_package(base_url: str, make_device: MakeDevice
                                                          ) -> None:
    bob = await make_device()
    claimers = [await make_device() for _ in range(8)]
    uploaded = set(await bob.upload_key_packages(20))
    [last_resort] = await bob.upload_key_packages(1, last_resort=True)

    async def claim(d: Device) -> list[tuple[bytes, bool]]:
        out = []
        for _ in range(4):
            r = await d.claim(bob.user_id)
            assert r.status_code == 200, r.text
            out += [(unb64(k["key_package"]), k["last_resort"]) for k in r.json()["key_packages"]]
        return out

    results = [kp for batch in await asyncio.gather(*(claim(d) for d in claimers))
               for kp in batch]
    regular = [kp for kp, lr in results if not lr]
    assert len(results) == 32
    assert len(regular) == len(set(regular)) == 20  # each exactly once
    assert set(regular) == uploaded
    assert all(kp == last_resort for kp, lr in results if lr)
    assert (await bob.get("/api/mls/key-packages/count")).json()["count"] == 0


async def test_claims_are_rate_limited(
    server_factory: Callable[..., ServerProcess], database_factory: Callable[[], str]
) -> None:
    from ds_client import register_device

    srv = server_factory(database_factory(), DS_RATE_KEY_PACKAGE_CLAIM="3/60")
    alice = await register_device(srv.base_url)
    bob = await register_device(srv.base_url)
    try:
        await bob.upload_key_packages(5)
        codes = [(await alice.claim(bob.user_id)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        assert (await bob.get("/api/mls/key-packages/count")).json()["count"] == 2
    finally:
        await alice.close()
        await bob.close()


async def test_device_can_delete_all_its_key_packages(make_device: MakeDevice) -> None:
    alice, bob = await make_device(), await make_device()
    await bob.upload_key_packages(3)
    await bob.upload_key_packages(1, last_resort=True)
    r = await bob.http.delete("/api/mls/key-packages", headers=bob.headers)
    assert r.status_code == 200 and r.json() == {"deleted": 4}
    assert (await bob.get("/api/mls/key-packages/count")).json() == {
        "cipher_suite": 1, "count": 0, "last_resort": False}
    r = await alice.claim(bob.user_id)
    assert r.json()["key_packages"] == []
    assert r.json()["devices_without_key_packages"] == [bob.device_id]
