"""The embedded store (`--orders DIR`): compiles the folder, reloads on change
(list files included), keeps the last good version on an invalid edit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.blocklist.stores.conftest import ORDER, wait_for, write
from writ.blocklist import BlocklistHolder
from writ.blocklist.stores import EmbeddedStore


@pytest.fixture
async def node(orders: Path, tmp_path: Path) -> AsyncIterator[tuple[EmbeddedStore,
                                                                    BlocklistHolder]]:
    store = EmbeddedStore(orders, state_dir=tmp_path / "state", interval=0.05)
    holder = BlocklistHolder()
    await store.start(holder)
    yield store, holder
    await store.stop()


def blocks(holder: BlocklistHolder, name: str) -> bool:
    return holder.index is not None and holder.index.decide_name(name).blocked


async def test_compiles_the_folder(node: tuple[EmbeddedStore, BlocklistHolder]) -> None:
    store, holder = node
    assert blocks(holder, "www.a.example")
    assert blocks(holder, "b.example")
    st = store.status()
    assert (st.source, st.ready, st.stale, st.last_error) == ("orders", True, False, None)


async def test_reloads_when_an_order_is_added(node: tuple[EmbeddedStore, BlocklistHolder],
                                              orders: Path) -> None:
    _, holder = node
    write(orders / "t2.yaml", ORDER.replace("T-1", "T-2").replace("a.example", "c.example")
          .replace("  - file: lists/t1.txt\n", ""))
    await wait_for(lambda: blocks(holder, "c.example"))
    assert holder.index is not None
    assert set(holder.index.acts) == {"T-1", "T-2"}


async def test_reloads_when_a_list_file_changes(node: tuple[EmbeddedStore, BlocklistHolder],
                                                orders: Path) -> None:
    _, holder = node
    write(orders / "lists" / "t1.txt", "b.example\nd.example\n")
    await wait_for(lambda: blocks(holder, "d.example"))


async def test_an_invalid_edit_keeps_the_last_good_version(
        node: tuple[EmbeddedStore, BlocklistHolder], orders: Path) -> None:
    store, holder = node
    good = holder.index
    write(orders / "t1.yaml", ORDER.replace("issued: 2020-01-01", "issued: not-a-date")
          .replace("a.example", "e.example"))
    await wait_for(lambda: store.status().last_error is not None)
    assert holder.index is good
    assert blocks(holder, "a.example")
    assert not blocks(holder, "e.example")
    st = store.status()
    assert st.stale
    assert "error" in (st.last_error or "")
    write(orders / "t1.yaml", ORDER.replace("a.example", "e.example"))  # fixed
    await wait_for(lambda: blocks(holder, "e.example"))
    assert store.status().last_error is None
    assert not store.status().stale


async def test_touching_a_file_without_changing_it_swaps_nothing(
        node: tuple[EmbeddedStore, BlocklistHolder], orders: Path) -> None:
    store, holder = node
    swaps: list[object] = []
    holder.on_swap(swaps.append)
    write(orders / "t1.yaml", ORDER)
    write(orders / "t2.yaml", ORDER.replace("T-1", "T-2"))
    await wait_for(lambda: store.reloads == 1)
    assert len(swaps) == 1


async def test_restart_on_an_invalid_folder_enforces_the_disk_copy(
        node: tuple[EmbeddedStore, BlocklistHolder], orders: Path, tmp_path: Path) -> None:
    store, _ = node
    version = store.status().version
    await store.stop()
    write(orders / "t1.yaml", "id: [broken\n")
    again = EmbeddedStore(orders, state_dir=tmp_path / "state", interval=0.05)
    h2 = BlocklistHolder()
    await again.start(h2)
    try:
        st = again.status()
        assert (st.source, st.version, st.stale, st.ready) == ("disk", version, True, True)
        assert blocks(h2, "a.example")
    finally:
        await again.stop()


async def test_an_invalid_folder_without_a_copy_is_not_ready(tmp_path: Path) -> None:
    d = tmp_path / "bad"
    write(d / "x.yaml", "id: X\n")  # missing court, case, issued, targets
    store = EmbeddedStore(d, state_dir=tmp_path / "none", interval=0.05)
    holder = BlocklistHolder()
    await store.start(holder)
    try:
        assert not holder.ready
        assert not store.status().ready
        assert "error" in (store.status().last_error or "")
    finally:
        await store.stop()
