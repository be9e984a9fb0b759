"""Squid + writ's ICAP service vs plain Squid with the same rules as ACLs.

    python bench/bench_icap.py [--quick] [--names N] [--urls U] [--seconds S] [--pairs P]

Goal (issue 17): Squid + writ ICAP ≥ 0.5x plain Squid's req/s, ICAP decision
p99 ≤ 2 ms.

Same run, same Squid binary and configuration (deploy/squid/squid.conf), two
Squid processes side by side on loopback:
- "icap": the config as shipped, writ's ICAP service (`writ icap`, one
  process) deciding every request;
- "plain": the writ block replaced by ACLs holding the same rules: N blocked
  names as one `dstdomain` file (`.name`: the name and its subdomains) and U
  URL rules as one `url_regex` file; `http_access deny` on each.
writ's orders: the same N names (a bulk list) and U URL rules on 100 hosts.
A keep-alive origin answers 1 KB. `wrk` (one thread, 8 connections, a Lua
line that makes its requests absolute-form, as a proxy's clients send them)
asks for an allowed URL on a host that has URL rules, so both sides do the
URL-level check. P pairs of S-second runs, alternating which goes first.
The ICAP decision time is Squid's own measure (`%icap::tr`, ms from the
transaction's start to writ's answer, in its icap_log), over the icap runs.
Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bulk_orders import write_bulk_order  # noqa: E402
from tests.icap.squid import Squid, squid_binary  # noqa: E402
from tests.ports import free_port  # noqa: E402

ORDER = """\
id: BENCH-ICAP-1
court: Bench District Court
case: "1/2026"
issued: 2025-01-01
summary: N mirror names and U URL rules on 100 news hosts
targets:
  - file: lists/names.txt
"""

ORIGIN = r"""
import asyncio, sys
BODY = b"x" * 1024
RESP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
        % len(BODY)) + BODY
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, d):
        self.buf += d
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.t.write(RESP)
async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    async with srv: await srv.serve_forever()
asyncio.run(main())
"""

ICAP_LOG = """
logformat writ_icap %icap::tr
icap_log stdio:@RUN_DIR@/icap.log writ_icap
"""


def url_rules(u: int) -> list[tuple[str, str]]:
    """(writ's URL line, Squid's url_regex) for U rules on news0..news99.example."""
    out = []
    for i in range(u):
        host = f"news{i % 100}.example"
        out.append((f"http://{host}/watch?v=blocked{i}",
                    rf"^http://{re.escape(host)}(:[0-9]+)?/watch\?v=blocked{i}$"))
    return out


def write_rules(work: Path, names: int, urls: int) -> None:
    rules = url_rules(urls)
    header = "".join(f"{line}\n" for line, _ in rules)
    write_bulk_order(work / "orders", ORDER, names, header=header)
    with open(work / "names.acl", "w", encoding="ascii") as f:
        step = 50_000
        for start in range(0, names, step):
            f.write("".join(f".mirror{i}.host{i % 997}.example\n"
                            for i in range(start, min(names, start + step))))
    (work / "urls.acl").write_text("".join(f"{rx}\n" for _, rx in rules))


def plain_block(work: Path) -> str:
    return (f'acl writ_names dstdomain "{work / "names.acl"}"\n'
            f'acl writ_urls url_regex "{work / "urls.acl"}"\n'
            "http_access deny writ_names\nhttp_access deny writ_urls\n")


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def get_status(proxy: int, url: str) -> int:
    with socket.create_connection(("127.0.0.1", proxy), timeout=30) as c:
        host = url.split("/")[2]
        c.sendall(f"GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return int(c.recv(64).split(b" ")[1])


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(proxy: int, url: str, seconds: int, work: Path) -> dict[str, float]:
    script = work / "absolute.lua"
    host = url.split("/")[2]
    script.write_text(f'wrk.path = "{url}"\nwrk.headers["Host"] = "{host}"\n')
    out = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{proxy}/"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p99_ms": float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan"),
            "non_2xx": float(bad.group(1)) if bad else 0.0}


def direct_rtt(icap: int, url: str, n: int) -> list[float]:
    """ms per REQMOD → answer, one persistent connection, no Squid: writ's own
    decision time as an ICAP client on loopback sees it."""
    host = url.split("/")[2]
    http = (f"GET {url} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: wrk\r\n\r\n").encode()
    msg = (b"REQMOD icap://127.0.0.1/writ ICAP/1.0\r\nHost: 127.0.0.1\r\n"
           b"X-Client-IP: 127.0.0.1\r\nAllow: 204\r\n"
           b"Encapsulated: req-hdr=0, null-body=%d\r\n\r\n" % len(http)) + http
    out = []
    with socket.create_connection(("127.0.0.1", icap), timeout=30) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            t = time.perf_counter()
            c.sendall(msg)
            answer = c.recv(4096)
            out.append((time.perf_counter() - t) * 1000)
            if not answer.startswith(b"ICAP/1.0 204"):
                raise RuntimeError(f"unexpected ICAP answer {answer[:60]!r}")
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small lists, short runs (smoke)")
    ap.add_argument("--names", type=int, default=None, help="blocked names (1,000,000)")
    ap.add_argument("--urls", type=int, default=1000, help="URL rules (1,000)")
    ap.add_argument("--seconds", type=int, default=None, help="wrk duration per run (10)")
    ap.add_argument("--pairs", type=int, default=None, help="plain/icap pairs (6)")
    args = ap.parse_args(argv)
    names = args.names or (10_000 if args.quick else 1_000_000)
    seconds = args.seconds or (2 if args.quick else 10)
    pairs = args.pairs or (2 if args.quick else 6)
    binary = squid_binary()
    if binary is None or shutil.which("wrk") is None:
        print("bench_icap: needs squid and wrk (apt-get install -y squid wrk); skipped")
        return {"skipped": "squid or wrk missing"}

    work = Path(tempfile.mkdtemp(prefix="writ-bench-icap-"))
    procs: list[subprocess.Popen[bytes]] = []
    squids: list[Squid] = []
    try:
        t0 = time.perf_counter()
        write_rules(work, names, args.urls)
        origin = free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", ORIGIN, str(origin)],
                                      stderr=subprocess.DEVNULL))
        icap = free_port()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "writ.cli", "icap", "--orders", str(work / "orders"),
             "--listen", f"127.0.0.1:{icap}", "--state-dir", str(work / "state"),
             "--audit-log", str(work / "audit" / "decisions.log")],
            cwd=work, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            stderr=subprocess.DEVNULL))
        writ_pid = procs[-1].pid
        hosts = ("news7.example", "mirror7.host7.example")
        plain = Squid(binary, icap_url=None, names=hosts, replace_writ_block=plain_block(work))
        with_writ = Squid(binary, icap_url=f"127.0.0.1:{icap}/writ", names=hosts,
                          extra=ICAP_LOG)
        squids += [plain, with_writ]
        wait_port(origin, 30)
        wait_port(icap, 300)
        plain.start(timeout=600)
        with_writ.start()
        print(f"bench_icap: {names:,} names + {args.urls:,} URL rules loaded in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
        blocked = f"http://mirror7.host7.example:{origin}/"
        url = f"http://news7.example:{origin}/watch?v=other&t=1"
        # Both really enforce: blocked → 451 (writ) / 403 (Squid's ACL); allowed → 200.
        checks = {"icap_blocked": get_status(with_writ.port, blocked),
                  "plain_blocked": get_status(plain.port, blocked),
                  "icap_url_blocked": get_status(with_writ.port,
                                                 f"http://news7.example:{origin}/watch?v=blocked7"),
                  "plain_url_blocked": get_status(plain.port,
                                                  f"http://news7.example:{origin}/watch?v=blocked7"),
                  "icap_allowed": get_status(with_writ.port, url),
                  "plain_allowed": get_status(plain.port, url)}
        print("bench_icap: checks", checks, flush=True)
        if checks != {"icap_blocked": 451, "plain_blocked": 403, "icap_url_blocked": 451,
                      "plain_url_blocked": 403, "icap_allowed": 200, "plain_allowed": 200}:
            raise RuntimeError(f"a variant does not enforce as expected: {checks}")
        rtt = direct_rtt(icap, url, 2_000 if args.quick else 20_000)
        for sq in squids:  # warm-up
            wrk(sq.port, url, 1, work)
        (with_writ.dir / "icap.log").write_text("")  # decisions of the timed runs only
        rows = []
        for i in range(pairs):
            order = [("plain", plain), ("icap", with_writ)]
            if i % 2:
                order.reverse()
            row: dict[str, Any] = {}
            for name, sq in order:
                assert sq.proc is not None
                pids = {"squid": sq.proc.pid, **({"writ": writ_pid} if name == "icap" else {})}
                before = {k: cpu_s(pid) for k, pid in pids.items()}
                row[name] = wrk(sq.port, url, seconds, work)
                done = row[name]["rps"] * seconds  # requests served in the run
                for k, pid in pids.items():  # CPU per request, in microseconds
                    row[name][f"{k}_cpu_us"] = (cpu_s(pid) - before[k]) / done * 1e6
            row["ratio"] = row["icap"]["rps"] / row["plain"]["rps"]
            rows.append(row)
            print(f"bench_icap: pair {i + 1}: plain {row['plain']['rps']:,.0f} req/s "
                  f"(squid {row['plain']['squid_cpu_us']:.0f} us CPU/req), "
                  f"icap {row['icap']['rps']:,.0f} req/s (squid "
                  f"{row['icap']['squid_cpu_us']:.0f} + writ {row['icap']['writ_cpu_us']:.0f} "
                  f"us CPU/req), ratio {row['ratio']:.2f}", flush=True)
        time.sleep(1.5)  # Squid's access/icap logs are buffered
        tr = [float(x) for x in (with_writ.dir / "icap.log").read_text().split()
              if re.fullmatch(r"\d+(\.\d+)?", x)]
        result = {
            "names": names, "urls": args.urls, "seconds": seconds, "pairs": rows,
            "median_plain_rps": statistics.median(r["plain"]["rps"] for r in rows),
            "median_icap_rps": statistics.median(r["icap"]["rps"] for r in rows),
            "median_ratio": statistics.median(r["ratio"] for r in rows),
            "icap_tr_ms": {"n": len(tr), "p50": _pct(tr, 0.5), "p99": _pct(tr, 0.99),
                           "max": max(tr) if tr else float("nan")},
            "direct_rtt_ms": {"n": len(rtt), "p50": _pct(rtt, 0.5), "p99": _pct(rtt, 0.99)},
            "cpu_us_per_req": {
                "plain_squid": statistics.median(r["plain"]["squid_cpu_us"] for r in rows),
                "icap_squid": statistics.median(r["icap"]["squid_cpu_us"] for r in rows),
                "icap_writ": statistics.median(r["icap"]["writ_cpu_us"] for r in rows)},
            "non_2xx": sum(r[k]["non_2xx"] for r in rows for k in ("plain", "icap")),
        }
        print(json.dumps({k: v for k, v in result.items() if k != "pairs"}, indent=1))
        return result
    finally:
        for sq in squids:
            sq.stop()
        for p in procs:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
