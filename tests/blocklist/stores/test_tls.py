"""`rediss://`: publishing and following a blocklist over TLS, against a real
redis-server serving TLS on loopback with a certificate made for the test."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.blocklist.stores.conftest import wait_for
from tests.blocklist.stores.test_cli import writ
from tests.conftest import RedisServer
from writ.blocklist import BlocklistHolder
from writ.blocklist.stores import RedisStore


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid for a day: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "writ test redis")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(rediss:// URL trusting the test certificate, certificate path)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("WRIT_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed and WRIT_REQUIRE_REDIS is set")
        pytest.skip("redis-server is not installed")
    folder = tmp_path_factory.mktemp("redis-tls")
    cert, key = _self_signed(folder)
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
