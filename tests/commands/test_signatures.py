"""Signed orders on the command line: `writ orders sign`, `writ orders check
--keyring/--policy`, `writ keys check|allowed-signers`, `writ explain`, and
OpenSSH's own `ssh-keygen -Y verify` on what writ signs and exports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.blocklist.signed.sshkeys import keygen, needs_ssh_keygen, ssh_sign, ssh_verify
from tests.blocklist.signed.support import key_entry, new_key

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "keys" / "demo-DO-NOT-USE"

pytestmark = needs_ssh_keygen


def writ(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "writ.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_sample_orders_verify_with_the_demo_keyring() -> None:
    r = writ("orders", "check", "court_orders", "--policy", "policies/demo-signed.yaml",
             cwd=REPO)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert r.stdout.endswith(
        "; every file signed (keyring keys/demo-DO-NOT-USE/keyring.yaml)\n")


@pytest.fixture
def signed_copy(tmp_path: Path) -> Path:
    """The sample orders and the demo keyring, copied (tests may tamper)."""
    shutil.copytree(REPO / "court_orders", tmp_path / "court_orders")
    shutil.copytree(DEMO, tmp_path / "keys")
    return tmp_path


def test_a_tampered_sample_exits_1_naming_file_and_key(signed_copy: Path) -> None:
    act = signed_copy / "court_orders" / "ex-2016-0314-rvsd.yaml"
    act.write_text(act.read_text().replace("Riverside", "Riverbank"))
    r = writ("orders", "check", "court_orders", "--keyring", "keys/keyring.yaml",
             cwd=signed_copy)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == (
        "court_orders/ex-2016-0314-rvsd.yaml: signature: ex-2016-0314-rvsd.yaml.sig: bad "
        "signature: the file's bytes are not what the key signed (by key demo-issuer, "
        "Demonstration regulator (signs the sample orders)) [EX-2016-0314-RVSD]")
    # explain refuses the same folder with the same lines
    e = writ("explain", "--orders", "court_orders", "--keyring", "keys/keyring.yaml",
             "videohost.example", cwd=signed_copy)
    assert e.returncode == 1
    assert r.stderr.splitlines()[0] in e.stderr.splitlines()


def test_writ_orders_sign_verifies_with_ssh_keygen(signed_copy: Path) -> None:
    """Sign with writ, export allowed_signers with writ, verify with OpenSSH."""
    act = signed_copy / "court_orders" / "ex-2015-0907-vh.yaml"
    Path(f"{act}.sig").unlink()
    r = writ("orders", "sign", str(act), "--key", "keys/demo-issuer", cwd=signed_copy)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{act}.sig: signed by SHA256:")
    out = writ("keys", "allowed-signers", "--keyring", "keys/keyring.yaml", "-o", "allowed",
               cwd=signed_copy)
    assert out.returncode == 0, out.stderr
    allowed = signed_copy / "allowed"
    got = ssh_verify(allowed, "demo-issuer", act, Path(f"{act}.sig"), at="20150907Z")
    assert got.returncode == 0, got.stderr + got.stdout
    found = subprocess.run(["ssh-keygen", "-Y", "find-principals", "-f", str(allowed),
                            "-s", f"{act}.sig"], capture_output=True, text=True, check=False)
    assert (found.returncode, found.stdout, found.stderr) == (0, "demo-issuer\n", "")
    # the window travels with the key: a date after valid_until is refused by OpenSSH too
    late = ssh_verify(allowed, "demo-issuer", act, Path(f"{act}.sig"), at="20310102Z")
    assert late.returncode != 0
    # and the namespace: a publisher key is not trusted for orders
    wrong = ssh_verify(allowed, "demo-publisher", act, Path(f"{act}.sig"), at="20270101Z")
    assert wrong.returncode != 0


def test_ssh_keygen_signed_orders_check_with_writ(tmp_path: Path) -> None:
    key = keygen(tmp_path, "court")
    (tmp_path / "keyring.yaml").write_text(
        "keys:\n  - id: court\n    principal: Example Court\n    roles: [issuer]\n"
        f"    key: {Path(f'{key}.pub').read_text().strip()}\n    valid_from: 2015-01-01\n"
        "    scope: {acts: ['EX-*']}\n")
    orders = tmp_path / "orders"
    orders.mkdir()
    act = orders / "a.yaml"
    act.write_text("id: EX-1\ncourt: Example Court\ncase: '1'\nissued: 2016-01-01\n"
                   "targets:\n  - domain: blocked.example\n")
    ssh_sign(key, act)
    r = writ("orders", "check", "orders", "--keyring", "keyring.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    e = writ("explain", "--orders", "orders", "--keyring", "keyring.yaml", "--json",
             "www.blocked.example", cwd=tmp_path)
    assert json.loads(e.stdout)["signed_by"] == {"EX-1": ["court"]}


def test_revoked_keys_are_left_out_of_allowed_signers(tmp_path: Path) -> None:
    k = new_key("old-key")
    (tmp_path / "keyring.yaml").write_text("keys:" + key_entry(k, revoked="2026-01-01") + "\n")
    before = writ("keys", "allowed-signers", "--keyring", "keyring.yaml", "--at", "2025-12-31",
                  cwd=tmp_path)
    after = writ("keys", "allowed-signers", "--keyring", "keyring.yaml", "--at", "2026-01-01",
                 cwd=tmp_path)
    line = 'old-key namespaces="writ-order",valid-after="20100101Z",valid-before="20310101Z" '
    assert line + k.public_line.split()[0] in before.stdout
    assert "old-key namespaces" not in after.stdout
    assert "# REVOKED on 2026-01-01: not trusted; left out" in after.stdout


def test_an_encrypted_key_is_a_clear_error(tmp_path: Path) -> None:
    key = keygen(tmp_path, "locked", passphrase="correct horse")
    (tmp_path / "a.yaml").write_text("id: EX-1\n")
    r = writ("orders", "sign", "a.yaml", "--key", str(key), cwd=tmp_path)
    assert r.returncode == 2
    assert "protected by a passphrase" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "a.yaml.sig").exists()


def test_bad_keyrings_are_reported_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "keyring.yaml").write_text(
        "keys:\n  - id: k\n    principal: P\n    roles: [signer]\n    key: ssh-ed25519 !!\n"
        "    valid_from: someday\n")
    r = writ("keys", "check", "keyring.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "keyring.yaml:4: keys[1].roles: each role is issuer or publisher",
        "keyring.yaml:5: keys[1].key: not an OpenSSH public key: '!!'… is not a key blob",
        "keyring.yaml:6: keys[1].valid_from: must be a date (YYYY-MM-DD)",
    ]
    (tmp_path / "p.yaml").write_text("trust:\n  keyring: keyring.yaml\n")
    p = writ("policy", "check", "p.yaml", cwd=tmp_path)
    assert p.returncode == 1
    assert "p.yaml: trust.keyring: keyring.yaml:4: keys[1].roles:" in p.stderr
    c = writ("orders", "check", ".", "--policy", "p.yaml", cwd=tmp_path)
    assert c.returncode == 2
    assert "invalid keyring" in c.stderr
