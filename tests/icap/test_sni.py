"""`writ squid-sni`, Squid's external ACL helper for the TLS SNI, as Squid runs
it: a process fed `[channel] SNI` lines, answering OK (blocked) or ERR, asking
the ICAP server (here in this loop on loopback), which records a TLS hello.

Squid's side (ssl_bump peek, then the helper) needs a Squid built with
OpenSSL; Debian's `squid` is not (docs/operator.md), so Squid itself is not
in this test.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.ports import free_port
from writ.audit import MemorySink
from writ.icap import IcapServer

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
        proc.stdin.write(line.encode() + b"\n")
        await proc.stdin.drain()
        answers.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip())
    proc.stdin.close()
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    return answers


async def test_the_helper_asks_writ_about_each_sni(server: IcapServer,
                                                   sink: MemorySink) -> None:
    host, port = server.addresses[0]
    answers = await helper(f"{host}:{port}/writ", [
        "blocked.example", "fine.example", "news.example", "-", "7 www.blocked.example",
        "8 BLOCKED.EXAMPLE.", "videohost.example",
    ])
    assert answers == ["OK message=writ-451", "ERR", "ERR", "ERR", "7 OK message=writ-451",
                       "8 OK message=writ-451", "ERR"]
    assert [(r["target"], r["decision"], r["action"]) for r in sink.records] == [
        ("TLS blocked.example", "tls-refused", "tls-refused"),
        ("TLS fine.example", "allow", "pass"),
        ("TLS news.example", "unenforceable", "pass"),
        ("TLS www.blocked.example", "tls-refused", "tls-refused"),
        ("TLS blocked.example", "tls-refused", "tls-refused"),
        ("TLS videohost.example", "unenforceable", "pass"),
    ]


async def test_writ_unreachable_fails_closed_unless_told_open() -> None:
    dead = f"127.0.0.1:{free_port()}/writ"
    assert await helper(dead, ["fine.example"]) == ["OK message=writ-unreachable"]
    assert await helper(dead, ["3 fine.example"], "--fail", "open") == \
        ["3 ERR message=writ-unreachable"]


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
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"OK message=writ-451\n"
        await first.shutdown()
        second = await run_icap(make_holder(), icap_policy(), sink,
                                listen=f"127.0.0.1:{port}")
        proc.stdin.write(b"blocked.example\n")
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"OK message=writ-451\n"
        await second.shutdown()
    finally:
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 30)
