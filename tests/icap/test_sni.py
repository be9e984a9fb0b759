"""`writ squid-sni`, Squid's external ACL helper for the TLS SNI, as Squid runs
it: a process fed `[channel] SNI` lines, answering OK (allowed) or ERR (refused), asking
the ICAP server (here in this loop on loopback), which records a TLS hello.

Squid's side (ssl_bump peek, then the helper) is tested with Squid itself in
tests/icap/test_squid_sni.py.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.ports import closed_port, free_port
from writ.audit import MemorySink
from writ.icap import IcapServer
from writ.icap.sni import wire_name

ROOT = Path(__file__).resolve().parents[2]


async def helper(icap: str, lines: list[str], *extra: str) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "writ.cli", "squid-sni", "--icap", icap, *extra,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdin is not None
    assert proc.stdout is not None
    answers = []
    for line in lines:  # one at a time, as Squid without concurrency does
        proc.stdin.write(line.encode("utf-8", "surrogateescape") + b"\n")
        await proc.stdin.drain()
        answers.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip())
    proc.stdin.close()
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    return answers


async def test_the_helper_asks_writ_about_each_sni(server: IcapServer,
                                                   sink: MemorySink) -> None:
    host, port = server.addresses[0]
    answers = await helper(f"{host}:{port}/writ", [
        "blocked.example -", "fine.example -", "news.example", "- -", "-",
        "www.blocked.example 192.0.2.7 -", "BLOCKED.EXAMPLE. -", "videohost.example -",
    ])
    assert answers == ["ERR message=writ-451", "OK", "OK", "OK", "OK",
                       "ERR message=writ-451", "ERR message=writ-451", "OK"]
    assert [(r["target"], r["decision"], r["action"]) for r in sink.records] == [
        ("TLS blocked.example", "tls-refused", "tls-refused"),
        ("TLS fine.example", "allow", "pass"),
        ("TLS news.example", "unenforceable", "pass"),
        ("TLS www.blocked.example", "tls-refused", "tls-refused"),
        ("TLS blocked.example", "tls-refused", "tls-refused"),
        ("TLS videohost.example", "unenforceable", "pass"),
    ]
    # `%>a` in the format: the client Squid saw, as its REQMODs name it
    assert sink.records[3]["client"] == "192.0.2.7"
    assert sink.records[0]["client"] != "192.0.2.7"


async def test_with_concurrency_the_channel_is_echoed(server: IcapServer,
                                                      sink: MemorySink) -> None:
    host, port = server.addresses[0]
    answers = await helper(f"{host}:{port}/writ", [
        "7 www.blocked.example -", "0 fine.example 127.0.0.1 -", "3 - -",
    ], "--concurrent")
    assert answers == ["7 ERR message=writ-451", "0 OK", "3 OK"]
    assert [r["target"] for r in sink.records] == ["TLS www.blocked.example",
                                                   "TLS fine.example"]


# Names a client may write in its hello that are no host name. Squid 5 sends
# `%ssl::>sni` raw unless the format escapes it (`%#ssl::>sni`, shipped); the
# helper hands every one to writ, which refuses what it cannot read, as its
# proxy refuses such a hello. Before, `/`, `@`, `\` and long names were
# passed without asking, and `x blocked.example` was judged as `x`.
ODD_SNIS = [
    "blocked.example/", "blocked.example@", "blocked.example\\", "x blocked.example",
    "fine.example%0Afine.example", "fine.example%20x", "a" * 300 + ".example",
    "fine.example\udcff", "b" * 5000,
]


async def test_a_name_writ_cannot_read_is_refused_and_recorded(
        server: IcapServer, sink: MemorySink) -> None:
    host, port = server.addresses[0]
    answers = await helper(f"{host}:{port}/writ", [f"{n} -" for n in ODD_SNIS])
    assert answers == ["ERR message=writ-400"] * len(ODD_SNIS)
    assert [(r["decision"], r["action"]) for r in sink.records] == \
        [("invalid", "tls-refused")] * len(ODD_SNIS)


def test_the_icap_request_carries_no_byte_of_the_name_raw() -> None:
    assert wire_name("blocked.example") == "blocked.example"
    assert wire_name("[2001:db8::1]") == "[2001:db8::1]"
    assert wire_name("a b\r\nX-Writ-Check: none") == "a%20b%0D%0AX-Writ-Check:%20none"
    assert wire_name("\udcff\u00e9") == "%FF%C3%A9"
    assert wire_name("a" * 2000) == "a" * 1024 + "%"


async def test_writ_unreachable_fails_closed_unless_told_open() -> None:
    with closed_port() as port:
        dead = f"127.0.0.1:{port}/writ"
        assert await helper(dead, ["fine.example -"]) == ["ERR message=writ-unreachable"]
        assert await helper(dead, ["3 fine.example -"], "--fail", "open", "--concurrent") == \
            ["3 OK message=writ-unreachable"]


async def test_writ_restarting_between_questions_is_survived(sink: MemorySink) -> None:
    """The helper's persistent connection is reopened once when writ closed it."""
    from tests.icap.conftest import icap_policy, make_holder
    from writ.icap import run_icap

    port = free_port()
    first = await run_icap(make_holder(), icap_policy(), sink, listen=f"127.0.0.1:{port}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "writ.cli", "squid-sni", "--icap", f"127.0.0.1:{port}/writ",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        proc.stdin.write(b"blocked.example\n")
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ERR message=writ-451\n"
        await first.shutdown()
        second = await run_icap(make_holder(), icap_policy(), sink,
                                listen=f"127.0.0.1:{port}")
        proc.stdin.write(b"blocked.example\n")
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ERR message=writ-451\n"
        await second.shutdown()
    finally:
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 30)
