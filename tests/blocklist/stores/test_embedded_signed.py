"""The embedded store (`--orders DIR`) with `trust.keyring`: every load demands
the signatures, a refused folder is an invalid one (the last good set stays,
stale, logged), and a key revoked in the keyring takes effect without a restart
or an edit of the folder."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.blocklist.stores.conftest import wait_for, write
from writ.blocklist import BlocklistHolder
from writ.blocklist.stores import EmbeddedStore

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def signed(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "court_orders", tmp_path / "orders")
    shutil.copy(REPO / "keys" / "demo-DO-NOT-USE" / "keyring.yaml", tmp_path / "keyring.yaml")
    return tmp_path


@pytest.fixture
async def started(signed: Path) -> AsyncIterator[tuple[EmbeddedStore, BlocklistHolder]]:
    store = EmbeddedStore(signed / "orders", tz=UTC, interval=0.05,
                          keyring=signed / "keyring.yaml")
    holder = BlocklistHolder()
    await store.start(holder)
    yield store, holder
    await store.stop()


async def test_a_tampered_list_is_refused_and_the_last_good_set_stays(
        signed: Path, started: tuple[EmbeddedStore, BlocklistHolder]) -> None:
    store, holder = started
    good = store.status().version
    assert good is not None
    assert holder.index is not None
    assert not holder.index.decide_name("lawful-news.example").blocked
    lst = signed / "orders" / "lists" / "ex-2016-0314-mirrors.txt"
    write(lst, lst.read_text() + "lawful-news.example\n")
    await wait_for(lambda: store.status().stale, timeout=5)
    st = store.status()
    assert st.version == good
    assert "1 error(s)" in str(st.last_error)
    assert not holder.index.decide_name("lawful-news.example").blocked


async def test_a_key_revoked_in_the_keyring_takes_effect_without_a_restart(
        signed: Path, started: tuple[EmbeddedStore, BlocklistHolder]) -> None:
    store, holder = started
    good = store.status().version
    ring = signed / "keyring.yaml"
    today = datetime.now(UTC).date().isoformat()
    text = ring.read_text().replace("revoked: null", f"revoked: {today}", 1)
    write(ring, text)  # revokes demo-issuer, which signed every sample order
    await wait_for(lambda: store.status().stale, timeout=5)
    assert store.status().version == good  # refused like an invalid folder: last good stays
    assert holder.index is not None
    assert holder.index.version == good


async def test_an_unsigned_folder_is_not_loaded_at_all(tmp_path: Path) -> None:
    shutil.copytree(REPO / "court_orders", tmp_path / "orders",
                    ignore=shutil.ignore_patterns("*.sig"))
    store = EmbeddedStore(tmp_path / "orders", tz=UTC,
                          keyring=REPO / "keys" / "demo-DO-NOT-USE" / "keyring.yaml")
    holder = BlocklistHolder()
    await store.start(holder)
    try:
        assert not holder.ready
        assert "error(s) in the orders" in str(store.status().last_error)
    finally:
        await store.stop()


async def test_a_list_swapped_between_two_signed_orders_is_refused(
        signed: Path, started: tuple[EmbeddedStore, BlocklistHolder],
        capsys: pytest.CaptureFixture[str]) -> None:
    from writ.cli import main

    store, holder = started
    orders = signed / "orders"
    write(orders / "ex-2099-x.yaml", "id: EX-2099-X\ncourt: Example District Court\n"
          "case: '9/2099'\nissued: 2016-01-01\ntargets:\n  - file: lists/x.txt\n")
    write(orders / "lists" / "x.txt", "# acts: EX-2099-X\nlawful-news.example\n")
    key = str(REPO / "keys" / "demo-DO-NOT-USE" / "demo-issuer")
    assert main(["orders", "sign", str(orders / "ex-2099-x.yaml"),
                 str(orders / "lists" / "x.txt"), "--key", key]) == 0
    await wait_for(lambda: holder.index is not None
                   and "EX-2099-X" in holder.index.acts, timeout=5)
    good = store.status().version
    # Swap: the other order's list (and its valid signature) put in place of the mirrors list.
    mirrors = orders / "lists" / "ex-2016-0314-mirrors.txt"
    write(mirrors, (orders / "lists" / "x.txt").read_text())
    write(Path(f"{mirrors}.sig"), (orders / "lists" / "x.txt.sig").read_text())
    await wait_for(lambda: store.status().stale, timeout=5)
    st = store.status()
    assert st.version == good
    assert "1 error(s)" in str(st.last_error)
    logged = capsys.readouterr().out
    assert "ex-2016-0314-mirrors.txt: signature:" in logged
    assert "not for EX-2016-0314-RVSD" in logged
