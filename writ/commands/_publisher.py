"""The publisher key for `writ orders apply` and `rollback`: `--publisher-key
KEY`, else the policy's `trust.publisher_key`. With one, every switch writes a
signed manifest beside the pointer (writ/blocklist/stores/signedset.py); with a
keyring at hand (--keyring, or the policy's trust.keyring) the key is checked
first, so a set the nodes would refuse is never published.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from writ.commands._common import UsageError

if TYPE_CHECKING:
    from writ.blocklist.stores.signedset import SetSigner
    from writ.policies import Policy

__all__ = ["add_publisher_args", "manifest_line", "publisher_from_args"]


def add_publisher_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--publisher-key", type=Path, metavar="KEY",
                   help="sign the published set's manifest with this OpenSSH private key "
                        "(default: the policy's trust.publisher_key; none: no manifest)")


def publisher_from_args(args: argparse.Namespace) -> SetSigner | None:
    """The signer asked for, checked against the keyring when there is one."""
    from writ.blocklist.signed.authorities import Role, Subject
    from writ.blocklist.signed.sshsigfmt import SigError, load_private_key, public_blob
    from writ.blocklist.stores.signedset import SetSigner
    from writ.commands._trust import keyring_from_args

    policy = _policy(args)
    path: Path | None = getattr(args, "publisher_key", None)
    if path is None and policy is not None and policy.trust.publisher_key:
        path = Path(policy.trust.publisher_key)
    if path is None:
        return None
    try:
        key = load_private_key(path.read_bytes())
    except OSError as e:
        raise UsageError(f"--publisher-key: cannot read {path}: {e.strerror or e}") from None
    except SigError as e:
        raise UsageError(f"--publisher-key {path}: {e}") from None
    lifetime = timedelta(seconds=policy.trust.manifest_lifetime if policy else 7 * 86400)
    ring = keyring_from_args(args)
    if ring is not None:
        now = datetime.now(UTC)
        entry, why = ring.judge(public_blob(key), Role.PUBLISHER,
                                [Subject("", "", now.date())], now)
        if entry is None:
            raise UsageError(f"--publisher-key {path}: {why}; the nodes would refuse the "
                             f"set; nothing was published")
    return SetSigner(key, lifetime)


def _policy(args: argparse.Namespace) -> Policy | None:
    from writ.policies import PolicyError, load_policy

    path: Path | None = getattr(args, "policy", None)
    if path is None:
        return None
    try:
        return load_policy(path)
    except PolicyError as e:
        raise UsageError("invalid policy:\n" + "\n".join(e.errors)) from None


def manifest_line(data: bytes) -> str:
    """`signed manifest N … valid until …` for the report of apply/rollback."""
    from writ.blocklist.signed.setmanifest import decode_manifest, digest

    m = decode_manifest(data)
    return (f"signed manifest {m.sequence} ({digest(data)[:16]}…), valid until "
            f"{m.expires.astimezone(UTC).isoformat(timespec='seconds')}")
