"""judge_destination (writ/proxy/destination.py): what server_connect does
with a destination — connect to a judged address, refuse a blocked one,
refuse one it could not resolve — as a table over resolver answers."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest

from tests.blocklist.builders import T0, act
from writ.blocklist import Blocklist, Index, Target, TargetKind
from writ.proxy.destination import Connect, Refuse, Unresolved, judge_destination


def index(*targets: str) -> Index:
    acts = [act(f"IP-{i}", targets=(Target(
        TargetKind.IP_PREFIX if "/" in t else TargetKind.IP, t),)) for i, t in enumerate(targets)]
    return Blocklist(acts).at(T0.replace(year=2016))


IDX = index("198.51.100.0/24", "2001:db8::/32")


class answering:
    """A resolver giving `answer` (or raising the OSError in it); `calls` the names asked."""

    def __init__(self, *answer: str | OSError) -> None:
        self.answer = answer
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        if self.answer and isinstance(self.answer[0], OSError):
            raise self.answer[0]
        return [a for a in self.answer if isinstance(a, str)]


@pytest.mark.parametrize(("answer", "expected"), [
    (("192.0.2.7",), Connect("192.0.2.7")),
    (("192.0.2.7", "192.0.2.8"), Connect("192.0.2.7")),  # the first: what connect tries first
    (("fe80::1%eth0",), Connect("fe80::1%eth0")),  # the scope id kept to connect with
    (("not an address", "192.0.2.9"), Connect("192.0.2.9")),
    ((), Unresolved("no address")),
    (("not an address",), Unresolved("no address")),
    ((socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),),
     Unresolved("[Errno -3] Temporary failure in name resolution")),
    ((OSError(),), Unresolved("OSError")),
])
async def test_a_name_resolves_to_what_is_connected_or_refused(
        answer: tuple[str | OSError, ...], expected: object) -> None:
    resolve = answering(*answer)
    assert await judge_destination(IDX, "dest.test", 80, resolve) == expected
    assert resolve.calls == ["dest.test"]


async def test_every_blocked_address_is_named() -> None:
    got = await judge_destination(IDX, "dest.test", 80, answering(
        "192.0.2.7", "2001:db8::5", "198.51.100.3"))
    assert isinstance(got, Refuse)
    assert got.address == "2001:db8::5"
    assert got.decision.orders == ("IP-0", "IP-1")


@pytest.mark.parametrize(("host", "expected"), [
    ("198.51.100.3", "198.51.100.3"), ("[2001:db8::5]", "2001:db8::5"),
    ("192.0.2.7", None), ("[::1]", None),
])
async def test_an_address_literal_is_judged_without_resolving(
        host: str, expected: str | None) -> None:
    resolve = answering()
    got = await judge_destination(IDX, host, 80, resolve)
    assert (got.address if isinstance(got, Refuse) else got) == expected
    assert resolve.calls == []


async def test_without_ip_rules_nothing_is_resolved() -> None:
    resolve = answering("198.51.100.3")
    assert await judge_destination(index(), "dest.test", 80, resolve) is None
    assert resolve.calls == []
