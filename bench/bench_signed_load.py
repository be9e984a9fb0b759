"""What signatures add to a load: 1,000 signed act files plus a signed
1,000,000-line bulk list, loaded with and without the keyring.

    python bench/bench_signed_load.py [--acts N] [--names N] [--rounds R] [--quick]

Goal (issue 13): verifying 1,000 signed acts plus a signed 1,000,000-line
list adds ≤ 1 s to the load. The reference is the same `load_orders` on the
same folder without a keyring, measured in the same process, rounds
alternating (without, with, without, with, …); the added time is the median
of "with" minus the median of "without".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bulk_orders import write_bulk_order  # noqa: E402

BULK = """\
id: BENCH-SIGNED-LIST
court: Bench District Court
case: "1/2026"
issued: 2025-01-01
targets:
  - file: lists/names.txt
"""

ACT = """\
id: BENCH-SIGNED-{i}
court: Bench District Court
case: "{i}/2026"
issued: 2025-01-01
targets:
  - domain: site{i}.example
  - url: https://video{i}.example/v/{i}
"""


def build(folder: Path, acts: int, names: int) -> Path:
    """The folder, every file signed; returns the keyring's path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from writ.blocklist.loader import order_files
    from writ.blocklist.signed.sshsigfmt import ORDER_NAMESPACE, sign

    write_bulk_order(folder, BULK, names)
    for i in range(acts):
        (folder / f"act-{i:05d}.yaml").write_text(ACT.format(i=i))
    key = ed25519.Ed25519PrivateKey.generate()
    for path, _ in order_files(folder):
        Path(f"{path}.sig").write_bytes(sign(path.read_bytes(), key, ORDER_NAMESPACE))
    lst = folder / "lists" / "names.txt"
    Path(f"{lst}.sig").write_bytes(sign(lst.read_bytes(), key, ORDER_NAMESPACE))
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    ring = folder.parent / "keyring.yaml"
    ring.write_text(f"""keys:
  - id: bench
    principal: Bench District Court
    roles: [issuer]
    key: {public}
    valid_from: 2020-01-01
    scope:
      acts: ["BENCH-*"]
""")
    return ring


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--acts", type=int, default=1000)
    ap.add_argument("--names", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100 acts, 100,000 names, 1 round")
    args = ap.parse_args(argv)
    if args.quick:
        args.acts, args.names, args.rounds = 100, 100_000, 1

    from writ.blocklist import load_orders
    from writ.blocklist.signed.authorities import load_keyring
    from writ.blocklist.signed.sigcheck import OrderTrust

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "orders"
        folder.mkdir()
        ring_path = build(folder, args.acts, args.names)
        ring, errors = load_keyring(ring_path)
        assert ring is not None, errors
        trust = OrderTrust(ring, datetime.now(UTC))
        plain: list[float] = []
        signed: list[float] = []
        for _ in range(args.rounds):
            for out, t in ((plain, None), (signed, trust)):
                t0 = time.perf_counter()
                result = load_orders(folder, UTC, t)
                out.append(time.perf_counter() - t0)
                if not result.ok:
                    raise SystemExit(f"unexpected errors: {[str(e) for e in result.errors[:3]]}")
                assert len(result.acts) == args.acts + 1
                assert t is None or result.acts[0].signers == ("bench",)
        p, s = statistics.median(plain), statistics.median(signed)
        print(f"{args.acts} signed acts + a signed {args.names:,}-line list, "
              f"{args.rounds} rounds each, alternating")
        print(f"  without keyring: median {p:.3f} s  ({', '.join(f'{x:.3f}' for x in plain)})")
        print(f"  with keyring:    median {s:.3f} s  ({', '.join(f'{x:.3f}' for x in signed)})")
        print(f"  added by signature checks: {s - p:+.3f} s (goal ≤ 1 s)")
        return {"plain_s": p, "signed_s": s, "added_s": s - p}


if __name__ == "__main__":
    main()
