"""Test helpers: OpenSSH keys made by the real ssh-keygen, and its -Y verbs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SSH_KEYGEN = shutil.which("ssh-keygen")
needs_ssh_keygen = pytest.mark.skipif(SSH_KEYGEN is None, reason="ssh-keygen not installed")


def keygen(folder: Path, name: str, kind: str = "ed25519", passphrase: str = "") -> Path:
    """A new key pair folder/name (+ .pub), made by ssh-keygen."""
    assert SSH_KEYGEN is not None
    path = folder / name
    args = [SSH_KEYGEN, "-q", "-t", kind, "-N", passphrase, "-C", name, "-f", str(path)]
    if kind == "rsa":
        args += ["-b", "3072"]
    if kind == "ecdsa":
        args += ["-b", "256"]
    subprocess.run(args, check=True, capture_output=True)
    return path


def public_line(key: Path) -> str:
    return key.with_suffix(".pub").read_text().strip() if key.suffix == "" else \
        Path(str(key) + ".pub").read_text().strip()


def ssh_sign(key: Path, file: Path, namespace: str = "writ-order") -> Path:
    """`ssh-keygen -Y sign`: writes file.sig."""
    assert SSH_KEYGEN is not None
    subprocess.run([SSH_KEYGEN, "-q", "-Y", "sign", "-n", namespace, "-f", str(key), str(file)],
                   check=True, capture_output=True)
    return Path(str(file) + ".sig")


def ssh_verify(allowed: Path, principal: str, file: Path, sig: Path,
               namespace: str = "writ-order", at: str | None = None
               ) -> subprocess.CompletedProcess[str]:
    """`ssh-keygen -Y verify` (exit 0: good)."""
    assert SSH_KEYGEN is not None
    args = [SSH_KEYGEN, "-Y", "verify", "-f", str(allowed), "-I", principal, "-n", namespace,
            "-s", str(sig)]
    if at is not None:
        args += ["-O", f"verify-time={at}"]
    with file.open("rb") as f:
        return subprocess.run(args, stdin=f, capture_output=True, text=True, check=False)
