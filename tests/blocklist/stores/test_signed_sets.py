"""Signed sets on a node following Redis (docs/auditor.md "Signed sets"): the
"Bad input" matrix of issue #13 on a real RedisStore (the node's store) against
the session's own redis-server. Each refused set changes nothing on the node
and is refused with a message naming the file and the key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.blocklist.signed.support import SigningKey, key_entry, new_key
from tests.blocklist.stores.conftest import block, node_starter, version, wait_for
from writ.blocklist import Blocklist, BlocklistHolder
from writ.blocklist.signed import build_manifest, digest, sign_manifest
from writ.blocklist.stores import RedisStore, Registry, publish, rollback
from writ.blocklist.stores.blob import encode_acts
from writ.blocklist.stores.registry import SignedSet
from writ.blocklist.stores.signedset import SetSigner, set_files, sign_set


@dataclass
class World:
    keyring: Path
    pub: SigningKey  # publisher
    court: SigningKey  # issuer only: wrong role for a manifest
    stranger: SigningKey  # not in the keyring
    revoked: SigningKey  # publisher, revoked
    expired: SigningKey  # publisher, no longer valid

    def signer(self, key: SigningKey | None = None, **lifetime: float) -> SetSigner:
        return SetSigner((key or self.pub).private, timedelta(**lifetime or {"days": 7}))


@pytest.fixture
def world(tmp_path: Path) -> World:
    pub, court, stranger = new_key("pub-1"), new_key("court-1"), new_key("stranger")
    revoked, expired = new_key("pub-revoked"), new_key("pub-old")
    path = tmp_path / "keyring.yaml"
    path.write_text("keys:" + "".join([
        key_entry(pub, roles="[publisher]", acts="", principal="Example Regulator"),
        key_entry(court),
        key_entry(revoked, roles="[publisher]", acts="", principal="Example Regulator",
                  revoked="2020-01-01"),
        key_entry(expired, roles="[publisher]", acts="", principal="Example Regulator",
                  valid_until="2020-12-31"),
    ]) + "\n")
    return World(path, pub, court, stranger, revoked, expired)


@pytest.fixture
async def nodes(redis_url: str, tmp_path: Path, world: World
                ) -> AsyncIterator[Callable[..., object]]:
    async with node_starter(redis_url, tmp_path, poll_interval=0.2, max_backoff=0.3,
                            keyring=world.keyring) as start:
        yield start


A = Blocklist([block("A", "a.example")])
B = Blocklist([block("A", "a.example"), block("B", "b.example")])


async def signed_publish(registry: Registry, world: World, bl: Blocklist) -> str:
    done = await publish(registry, bl, by="tester@test", signer=world.signer())
    return done.version


async def refused(store: RedisStore, holder: BlocklistHolder, was: str | None,
                  *words: str) -> str:
    """Wait for the refusal; the node still enforces `was`; the message has `words`."""
    await wait_for(lambda: store.status().sets_refused > 0, timeout=5)
    st = store.status()
    assert version(holder) == was
    assert st.last_error is not None
    for w in words:
        assert w in st.last_error, st.last_error
    return st.last_error


async def test_a_signed_set_is_enforced_and_a_newer_one_followed(
        registry: Registry, world: World, nodes) -> None:  # type: ignore[no-untyped-def]
    v1 = await signed_publish(registry, world, A)
    store, holder = await nodes()
    assert version(holder) == v1
    assert store.status().manifest_sequence == 1
    v2 = await signed_publish(registry, world, B)
    await wait_for(lambda: version(holder) == v2)
    st = store.status()
    assert (st.manifest_sequence, st.sets_refused, st.alarm, st.stale) == (2, 0, None, False)


async def test_without_a_manifest_nothing_is_enforced(
        registry: Registry, world: World, nodes) -> None:  # type: ignore[no-untyped-def]
    await publish(registry, A, by="tester@test")  # no publisher key
    store, holder = await nodes()
    assert version(holder) is None
    assert "no signed manifest" in str(store.status().last_error)


async def test_a_tampered_blob_is_refused(
        registry: Registry, world: World, nodes) -> None:  # type: ignore[no-untyped-def]
    v1 = await signed_publish(registry, world, A)
    v2 = await signed_publish(registry, world, B)
    await registry.client.set(registry.keys.current, v1)  # (prepare: node on v1 first)
    await registry.client.hset(registry.keys.manifest, mapping={"data": b"", "sig": b""})
    store, holder = await nodes()
    assert version(holder) is None  # no valid manifest in force at all: not even v1
    # Now the real attack: the signed manifest of v2 is back, v2's blob rewritten with
    # other acts and a matching checksum (only the manifest can tell).
    forged = encode_acts([block("A", "a.example"), block("B", "b.example", "victim.example")])
    man = await registry.client.hgetall(registry.keys.manifest_at(2))
    await registry.client.hset(registry.keys.version(v2),
                               mapping={"data": forged.data, "sha256": forged.sha256})
    await registry.client.hset(registry.keys.manifest, mapping={
        "data": man[b"data"], "sig": man[b"sig"], "sequence": 2, "version": v2})
    await registry.client.set(registry.keys.current, v2)
    before = store.status().sets_refused
    await wait_for(lambda: store.status().sets_refused > before)
    err = str(store.status().last_error)
    assert version(holder) is None
    for word in (f"version/{v2} does not match", "pub-1"):
        assert word in err, err


async def test_a_tampered_blob_changes_nothing_on_a_node_in_force(
        registry: Registry, world: World, nodes) -> None:  # type: ignore[no-untyped-def]
    v1 = await signed_publish(registry, world, A)
    store, holder = await nodes()
    assert version(holder) == v1
    forged = encode_acts([block("A", "a.example", "victim.example")])
    b_vid = Blocklist([block("A", "a.example", "victim.example")]).version
    # a forged version written beside, the pointer moved, the manifest left as it is
    await registry.client.hset(registry.keys.version(b_vid),
                               mapping={"data": forged.data, "sha256": forged.sha256})
    await registry.client.set(registry.keys.current, b_vid)
    err = await refused(store, holder, v1, f"version/{b_vid}", "pub-1")
    assert "file-unlisted" in err or "file-missing" in err, err
    assert not holder.index.decide_name("victim.example").blocked  # type: ignore[union-attr]


@pytest.mark.parametrize(("who", "words"), [
    ("stranger", ("not in the keyring",)),
    ("court", ("court-1",)),
    ("revoked", ("pub-revoked",)),
    ("expired", ("pub-old",)),
])
async def test_a_manifest_by_a_key_that_may_not_publish_is_refused(
        registry: Registry, world: World, nodes, who: str,  # type: ignore[no-untyped-def]
        words: tuple[str, ...]) -> None:
    v1 = await signed_publish(registry, world, A)
    store, holder = await nodes()
    await publish(registry, B, by="mallory@test", signer=world.signer(getattr(world, who)))
    err = await refused(store, holder, v1, "bad-signature", "manifest 2", *words)
    assert "b.example" not in err
    assert store.status().manifest_sequence == 1


async def test_a_replayed_older_set_is_refused_even_after_a_restart(
        registry: Registry, world: World, nodes) -> None:  # type: ignore[no-untyped-def]
    v1 = await signed_publish(registry, world, A)
    old = await registry.client.hgetall(registry.keys.manifest)
    v2 = await signed_publish(registry, world, B)
    store, holder = await nodes(state="n")
    assert (version(holder), store.status().manifest_sequence) == (v2, 2)
    await store.stop()
    # Replay: the pointer and the manifest of sequence 1, exactly as signed then.
    await registry.client.hset(registry.keys.manifest, mapping=old)
    await registry.client.set(registry.keys.current, v1)
    store2, holder2 = await nodes(state="n")
    err = str(store2.status().last_error)
    for word in ("rollback", "manifest 1", "pub-1"):
        assert word in err, err
    assert version(holder2) == v2  # the disk copy of the set in force, not the replay
    assert store2.status().stale


async def test_a_second_manifest_with_the_same_sequence_is_refused(
        registry: Registry, world: World, nodes) -> None:  # type: ignore[no-untyped-def]
    v1 = await signed_publish(registry, world, A)
    store, holder = await nodes()
    _stored, _ = await registry.fetch(B.version)
    enc = encode_acts(B.acts)
    await registry.put(B, enc, {}, None)
    m = build_manifest(set_files(B.version, enc.data), 1, datetime.now(UTC),
                       datetime.now(UTC) + timedelta(days=1), None)
    data, sig = sign_manifest(m, world.pub.private)
    await registry.client.hset(registry.keys.manifest, mapping={"data": data, "sig": sig})
    await registry.client.set(registry.keys.current, B.version)
    await refused(store, holder, v1, "equivocation", "manifest 1")


@pytest.mark.parametrize("sig", [b"", b"-----BEGIN SSH SIGNATURE-----\nnot base64\n",
                                 b"\x00" * 100])
async def test_a_malformed_signature_is_refused(
        registry: Registry, world: World, nodes, sig: bytes) -> None:  # type: ignore[no-untyped-def]
    v1 = await signed_publish(registry, world, A)
    store, holder = await nodes()
    await registry.put(B, encode_acts(B.acts), {}, None)
    good = await sign_set(registry, B.version, world.signer(), datetime.now(UTC))
    spoiled = replace(good, sig=sig)  # the pointer and the manifest switch together
    await registry.switch(B.version, v1, {}, 10, 0.0, signed=spoiled)
    await refused(store, holder, v1, "bad-signature", "manifest 2")


async def test_a_manifest_that_does_not_parse_is_refused(
        registry: Registry, world: World, nodes) -> None:  # type: ignore[no-untyped-def]
    v1 = await signed_publish(registry, world, A)
    store, holder = await nodes()
    enc = encode_acts(B.acts)
    await registry.put(B, enc, {}, None)
    await registry.client.hset(registry.keys.manifest, mapping={
        "data": b'{"writ_manifest": 1}', "sig": b"x"})
    await registry.client.set(registry.keys.current, B.version)
    await refused(store, holder, v1, "malformed")


async def test_past_expiry_the_set_stays_and_the_alarm_is_raised(
        registry: Registry, world: World, nodes) -> None:  # type: ignore[no-untyped-def]
    now = [datetime.now(UTC)]
    v1 = await signed_publish(registry, world, A)
    store, holder = await nodes(clock=lambda: now[0])
    assert store.status().alarm is None
    now[0] += timedelta(days=8)
    st = store.status()
    assert (st.alarm, st.version, st.ready) == ("expired", v1, True)
    assert version(holder) == v1  # still enforced: a cut-off publisher cannot blank nodes
    # an expired manifest is not switched to either
    now[0] = datetime.now(UTC)
    await publish(registry, B, by="tester@test", signer=world.signer(seconds=1),
                  now=datetime.now(UTC) - timedelta(seconds=10))
    await refused(store, holder, v1, "expired", "manifest 2")


async def test_renewing_an_unchanged_set_clears_the_alarm(
        registry: Registry, world: World, nodes) -> None:  # type: ignore[no-untyped-def]
    now = [datetime.now(UTC)]
    v1 = await signed_publish(registry, world, A)
    store, holder = await nodes(clock=lambda: now[0])
    index = holder.index
    now[0] += timedelta(days=8)
    assert store.status().alarm == "expired"
    await publish(registry, A, by="tester@test", signer=world.signer(days=30),
                  now=now[0])  # unchanged: a fresh manifest (renew)
    await wait_for(lambda: store.status().manifest_sequence == 2)
    assert store.status().alarm is None
    assert holder.index is index
    assert version(holder) == v1


async def test_a_signed_rollback_is_a_new_higher_manifest(
        registry: Registry, world: World, nodes) -> None:  # type: ignore[no-untyped-def]
    v1 = await signed_publish(registry, world, A)
    v2 = await signed_publish(registry, world, B)
    store, holder = await nodes()
    assert version(holder) == v2
    done = await rollback(registry, v1, by="tester@test", signer=world.signer())
    assert done.manifest is not None
    assert done.manifest.sequence == 3
    await wait_for(lambda: version(holder) == v1)
    assert store.status().manifest_sequence == 3
    history = await registry.history()
    assert history[0]["action"] == "rollback"
    assert history[0]["manifest"] == 3


async def test_a_switch_reports_its_manifest_for_the_audit_chain(
        registry: Registry, world: World, nodes) -> None:  # type: ignore[no-untyped-def]
    got: list[dict[str, object]] = []
    v1 = await signed_publish(registry, world, A)
    await nodes(on_switch=got.append)
    data, _, _seq = await registry.manifest()  # type: ignore[misc]
    assert got == [{"blocklist_version": v1, "manifest_sequence": 1,
                    "manifest_digest": digest(data), "signers": ["pub-1"],
                    "manifest_created": got[0]["manifest_created"],
                    "manifest_expires": got[0]["manifest_expires"],
                    "manifest_previous": None}]
    json.dumps(got)  # plain JSON for the audit record


async def test_two_publishers_cannot_sign_the_same_sequence(
        registry: Registry, world: World) -> None:
    from writ.blocklist.stores import ConflictError

    await signed_publish(registry, world, A)
    enc = encode_acts(B.acts)
    await registry.put(B, enc, {}, None)
    stale = SignedSet(b"{}", b"x", 2, None)  # built on "no manifest": another one is in force
    with pytest.raises(ConflictError, match="manifest 1"):
        await registry.switch(B.version, A.version, {}, 10, 0.0, signed=stale)
    assert await registry.current() == A.version


async def test_a_node_whose_keyring_is_unreadable_enforces_nothing(
        registry: Registry, world: World, redis_url: str, tmp_path: Path) -> None:
    await signed_publish(registry, world, A)
    store = RedisStore(redis_url, prefix="writtest", state_dir=tmp_path / "k",
                       keyring=tmp_path / "missing.yaml")
    holder = BlocklistHolder()
    await store.start(holder)
    try:
        assert holder.index is None
        assert "missing.yaml" in str(store.status().last_error)
    finally:
        await store.stop()
