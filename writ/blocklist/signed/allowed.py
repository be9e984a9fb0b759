"""The keyring as an OpenSSH `allowed_signers` file, for `ssh-keygen -Y verify`.

An auditor who trusts neither writ nor its authors checks a signature with
OpenSSH alone:

    ssh-keygen -Y verify -f allowed_signers -I KEY-ID -n writ-order \\
        -O verify-time=ISSUEDZ -s FILE.sig < FILE

Each key's principal in the file is its keyring id (the authority's name is
in the comment above it); `namespaces=` limits issuer keys to `writ-order`
and publisher keys to `writ-manifest`; `valid-after`/`valid-before` are the
key's window in UTC (valid_until is inclusive, so valid-before is the next
day). A key revoked at the instant of export is left out, with a comment
saying so: OpenSSH has no "revoked on" date, only "not trusted".
Scope is writ's own rule and has no allowed_signers form: the comment states it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from writ.blocklist.signed.authorities import Keyring, Role
from writ.blocklist.signed.sshsigfmt import MANIFEST_NAMESPACE, ORDER_NAMESPACE

__all__ = ["allowed_signers"]

_NAMESPACE = {Role.ISSUER: ORDER_NAMESPACE, Role.PUBLISHER: MANIFEST_NAMESPACE}


def _stamp(d: date) -> str:
    return d.strftime("%Y%m%d") + "Z"


def allowed_signers(keyring: Keyring, at: datetime) -> str:
    """The allowed_signers text for `keyring` as it stands at `at`."""
    out = [f"# allowed_signers exported by `writ keys allowed-signers` from {keyring.source}",
           f"# at {at.isoformat(timespec='seconds')}; principals are keyring key ids."]
    for key in keyring.keys:  # no blank lines: ssh-keygen -Y find-principals warns on them
        out.append(f"# {key.id}: {key.principal}; roles {', '.join(sorted(key.roles))}"
                   + (f"; scope {key.scope}" if Role.ISSUER in key.roles else ""))
        if key.revoked is not None and at.date() >= key.revoked:
            out.append(f"# REVOKED on {key.revoked}: not trusted; left out")
            continue
        namespaces = ",".join(_NAMESPACE[r] for r in sorted(key.roles))
        options = [f'namespaces="{namespaces}"', f'valid-after="{_stamp(key.valid_from)}"']
        if key.valid_until is not None:
            options.append(f'valid-before="{_stamp(key.valid_until + timedelta(days=1))}"')
        kind, b64 = key.public.split()[:2]
        out.append(f"{key.id} {','.join(options)} {kind} {b64}")
    return "\n".join(out) + "\n"
