"""Authentic orders: OpenSSH signatures (SSHSIG) on act files, bulk lists and
published sets, judged against a keyring (docs/regulator.md §10,
docs/auditor.md "Signed orders" and "Signed sets (manifests)").

Pure: `cryptography` for the keys, no network, no clock (instants are arguments).
"""

from writ.blocklist.signed.allowed import allowed_signers
from writ.blocklist.signed.authorities import (
    Key,
    Keyring,
    KeyringError,
    Role,
    Scope,
    Subject,
    load_keyring,
)
from writ.blocklist.signed.setmanifest import (
    Alarm,
    InForce,
    Manifest,
    ManifestError,
    Switch,
    build_manifest,
    decode_manifest,
    digest,
    encode_manifest,
    files_problem,
    in_force_alarm,
    judge_switch,
    sign_manifest,
    verify_manifest,
)
from writ.blocklist.signed.sigcheck import OrderTrust, check_signatures
from writ.blocklist.signed.sshsigfmt import (
    MANIFEST_NAMESPACE,
    ORDER_NAMESPACE,
    SigError,
    Verified,
    fingerprint,
    load_private_key,
    parse_public_line,
    public_blob,
    sign,
    verify,
)

__all__ = [
    "MANIFEST_NAMESPACE",
    "ORDER_NAMESPACE",
    "Alarm",
    "InForce",
    "Key",
    "Keyring",
    "KeyringError",
    "Manifest",
    "ManifestError",
    "OrderTrust",
    "Role",
    "Scope",
    "SigError",
    "Subject",
    "Switch",
    "Verified",
    "allowed_signers",
    "build_manifest",
    "check_signatures",
    "decode_manifest",
    "digest",
    "encode_manifest",
    "files_problem",
    "fingerprint",
    "in_force_alarm",
    "judge_switch",
    "load_keyring",
    "load_private_key",
    "parse_public_line",
    "public_blob",
    "sign",
    "sign_manifest",
    "verify",
    "verify_manifest",
]
