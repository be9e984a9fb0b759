"""`rediss://`: publishing and following a blocklist over TLS, against a real
redis-server serving TLS on loopback with a certificate made for the test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.blocklist.stores.conftest import wait_for
from tests.blocklist.stores.test_cli import writ
from tests.certs import self_signed
from tests.conftest import RedisServer, redis_binary
from writ.blocklist import BlocklistHolder
from writ.blocklist.stores import RedisStore


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(rediss:// URL trusting the test certificate, certificate path)."""
    binary = redis_binary()
    folder = tmp_path_factory.mktemp("redis-tls")
    cert, key = self_signed(folder, "127.0.0.1")
    server = RedisServer(binary, folder, tls=(cert, key))
    try:
        server.start()
    except RuntimeError:
        if os.environ.get("WRIT_REQUIRE_REDIS"):
            raise
        pytest.skip("this redis-server does not serve TLS")
    yield f"rediss://127.0.0.1:{server.tls_port}/0?ssl_ca_certs={cert}", cert
    server.stop()




async def test_publish_and_follow_over_tls(tls_redis: tuple[str, Path], orders: Path,
                                           tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = tls_redis
    # the CLI runs its own event loop: off this test's loop, as a regulator's shell would
    code, out, err = await asyncio.to_thread(writ, capsys, "orders", "apply", str(orders),
                                             "--redis", url, "--prefix", "tlstest")
    assert code == 0, err
    assert "published version" in out
    store = RedisStore(url, prefix="tlstest", state_dir=tmp_path / "node")
    holder = BlocklistHolder()
    await store.start(holder)
    try:
        await wait_for(lambda: holder.index is not None, timeout=5)
        assert holder.index is not None
        assert holder.index.decide_name("x.b.example").blocked
        assert store.status().source == "redis"
    finally:
        await store.stop()


def test_an_untrusted_certificate_is_refused_clearly(tls_redis: tuple[str, Path], orders: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = tls_redis
    untrusting = url.partition("?")[0]  # the system's CAs do not know the test certificate
    code, out, err = writ(capsys, "orders", "apply", str(orders), "--redis", untrusting,
                          "--prefix", "tlstest")
    assert code != 0
    assert "certificate verify failed" in err
    assert "Traceback" not in err
    assert "published version" not in out
