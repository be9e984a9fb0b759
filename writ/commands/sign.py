"""`writ orders sign FILE… --key KEY`: write FILE.sig (SSHSIG, namespace
writ-order) beside each act file or bulk list.

Invariants:
- The signature is OpenSSH's own format: `ssh-keygen -Y verify` checks it,
  and `ssh-keygen -Y sign -n writ-order -f KEY FILE` makes the same kind
  (use that for passphrase-protected keys, ssh-agent and hardware keys).
- Each FILE.sig is written whole (a temporary file, then a rename): a reader
  never sees half a signature.
- Exit 0: every file signed; 1: a file could not be read or written (the
  others are still signed); 2: a bad invocation (no key, unreadable key).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from writ.commands._common import UsageError

__all__ = ["configure_verb", "run_verb"]


def configure_verb(verb: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, metavar="FILE",
                   help="order files and bulk lists to sign (FILE.sig is written beside each)")
    p.add_argument("--key", type=Path, required=True, metavar="KEY",
                   help="an OpenSSH private key file (ed25519, ecdsa or rsa; unencrypted)")


def run_verb(verb: str, args: argparse.Namespace) -> int:
    from writ.blocklist.signed.sshsigfmt import (
        ORDER_NAMESPACE,
        SigError,
        fingerprint,
        load_private_key,
        public_blob,
        sign,
    )

    try:
        key = load_private_key(args.key.read_bytes())
    except OSError as e:
        raise UsageError(f"--key: cannot read {args.key}: {e.strerror or e}") from None
    except SigError as e:
        raise UsageError(f"--key {args.key}: {e}") from None
    status = 0
    for path in args.files:
        if path.suffix == ".sig":
            print(f"{path}: not signed: it is a signature itself", file=sys.stderr)
            status = 1
            continue
        target = Path(f"{path}.sig")
        if path.exists() and not path.is_file():  # a FIFO would block the read forever
            print(f"{path}: not signed: not a regular file", file=sys.stderr)
            status = 1
            continue
        try:
            data = path.read_bytes()
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(sign(data, key, ORDER_NAMESPACE))
            os.replace(tmp, target)
        except OSError as e:
            print(f"{path}: not signed: {e.strerror or e}", file=sys.stderr)
            status = 1
            continue
        print(f"{target}: signed by {fingerprint(public_blob(key))}")
    return status
