"""`writ export rpz`: the domain blocks in force as an RPZ zone that BIND's
named-checkzone accepts and that a real Unbound enforces."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from tests.export.standin import udp_standin
from writ.blocklist import Act, ActKind, Target, TargetKind, fold
from writ.cli import main
from writ.export import RpzAction, RpzOptions, render_rpz

T0 = datetime(2020, 1, 1, tzinfo=UTC)
AT = datetime(2020, 6, 1, tzinfo=UTC)


def domain(host: str, subdomains: bool = True) -> Target:
    return Target(TargetKind.DOMAIN, host, subdomains=subdomains)


def url(host: str, path: str) -> Target:
    return Target(TargetKind.URL, host, path)


def block(id_: str, *targets: Target, **kw: object) -> Act:
    fields: dict[str, object] = {
        "court": "Court", "case": "1/2020", "issued": date(2020, 1, 1), "effective": T0,
    }
    fields.update(kw)
    return Act(id_, ActKind.BLOCK, targets=targets, **fields)  # type: ignore[arg-type]


ACTS = (
    block("ORD-1", domain("videohost.example"), domain("www.forum.example", subdomains=False),
          url("news.example", "/watch"),
          court="Северный District Court\nof Example; (sic)", reference="https://court.example/1"),
    block("ORD-2", domain("videohost.example"), domain("mirror.example")),
    block("ORD-3", domain("restored.example"), domain("kept.example")),
    Act("ORD-3-R", ActKind.RESTORE, "Court", "1/2020", date(2020, 2, 1), T0, amends="ORD-3",
        restores=(domain("restored.example"),), keep_blocked=(url("restored.example", "/v/1"),)),
    block("ORD-OLD", domain("expired.example"), expires=datetime(2020, 3, 1, tzinfo=UTC)),
    block("ORD-LATER", domain("future.example"), effective=datetime(2021, 1, 1, tzinfo=UTC)),
    block("ORD-URL", url("www.forum.example", "/thread/9"), url("sub.videohost.example", "/x")),
)


def zone_at(at: datetime = AT, options: RpzOptions | None = None) -> str:
    return render_rpz(fold(ACTS, at), "v123", options, {a.id: a for a in ACTS})


def records(zone: str) -> list[tuple[str, str, str, str]]:
    """(owner, type, rdata, comment) of every policy record."""
    out = []
    for line in zone.splitlines():
        if not line or line.startswith((";", "$", "@")):
            continue
        rr, _, comment = line.partition(";")
        owner, rtype, rdata = rr.split()
        out.append((owner, rtype, rdata, comment.strip()))
    return out


# -- contents --------------------------------------------------------------


def test_domain_blocks_become_name_and_wildcard_triggers() -> None:
    got = {(owner, rtype, rdata) for owner, rtype, rdata, _ in records(zone_at())}
    assert got == {
        ("videohost.example", "CNAME", "."),
        ("*.videohost.example", "CNAME", "."),
        ("mirror.example", "CNAME", "."),
        ("*.mirror.example", "CNAME", "."),
        ("kept.example", "CNAME", "."),
        ("*.kept.example", "CNAME", "."),
        ("www.forum.example", "CNAME", "."),  # subdomains: false: no wildcard
    }


def test_every_record_names_all_its_orders_in_a_comment() -> None:
    why = {owner: comment for owner, _, _, comment in records(zone_at())}
    assert why["videohost.example"] == "ORD-1 ORD-2"
    assert why["*.videohost.example"] == "ORD-1 ORD-2"
    assert why["www.forum.example"] == "ORD-1"


def test_provenance_is_in_comments_never_in_records() -> None:
    zone = zone_at()
    assert all(rtype == "CNAME" for _, rtype, _, _ in records(zone))
    assert " TXT " not in zone
    header = [line for line in zone.splitlines() if line.startswith(";   ORD-1:")]
    # A court name with a newline and a ';' stays on one comment line.
    assert header == [
        ";   ORD-1: Северный District Court of Example; (sic), case 1/2020, issued 2020-01-01, "
        "https://court.example/1"
    ]
    assert ";   ORD-3-R: Court, case 1/2020, issued 2020-02-01" in zone


def test_url_only_hosts_are_not_triggers_but_listed_in_comments() -> None:
    zone = zone_at()
    owners = {r[0] for r in records(zone)}
    assert "news.example" not in owners
    assert "restored.example" not in owners  # lifted by ORD-3-R; its kept video is a URL rule
    assert ";   news.example: ORD-1" in zone
    assert ";   restored.example: ORD-3 ORD-3-R" in zone
    # URL rules on hosts DNS already blocks are not "URL only".
    assert "sub.videohost.example:" not in zone
    assert "www.forum.example:" not in zone


def test_the_instant_decides_what_is_in_the_zone() -> None:
    before = {r[0] for r in records(zone_at(datetime(2020, 2, 1, tzinfo=UTC)))}
    after = {r[0] for r in records(zone_at(datetime(2021, 6, 1, tzinfo=UTC)))}
    assert "expired.example" in before
    assert "expired.example" not in after
    assert "future.example" not in before
    assert "future.example" in after
    assert not records(zone_at(datetime(2019, 1, 1, tzinfo=UTC)))


def test_nodata_and_sinkhole_actions() -> None:
    nodata = records(zone_at(options=RpzOptions(action=RpzAction.NODATA)))
    assert {rdata for _, _, rdata, _ in nodata} == {"*."}
    sink = records(zone_at(options=RpzOptions(action=RpzAction.SINKHOLE,
                                              sinkhole=("192.0.2.80", "2001:db8::80"))))
    assert ("mirror.example", "A", "192.0.2.80", "ORD-2") in sink
    assert ("*.mirror.example", "AAAA", "2001:db8::80", "ORD-2") in sink


def test_names_rpz_cannot_express_are_left_out_with_a_reason() -> None:
    long_name = ".".join(["a" * 60] * 3) + ".example"  # 191 octets: fits alone
    acts = (block("ORD-L", domain(long_name)), block("ORD-K", domain("x.rpz-ip")))
    zone = render_rpz(fold(acts, AT), "v", RpzOptions(origin="a-long-policy-zone." * 3))
    owners = {r[0] for r in records(zone)}
    assert owners == {long_name, f"*.{long_name}"}
    zone = render_rpz(fold(acts, AT), "v", RpzOptions(origin=("p" * 60 + ".") * 1))
    assert f"; left out *.{long_name}: longer than 255 octets" not in zone
    zone = render_rpz(fold(acts, AT), "v", RpzOptions(origin=("p" * 60 + ".") * 2))
    assert f"; left out *.{long_name}: longer than 255 octets" in zone
    assert "; left out x.rpz-ip: its last label is an RPZ trigger keyword" in zone


def test_serial_defaults_to_the_instant() -> None:
    assert f" {int(AT.timestamp())} " in zone_at()
    assert " 42 3600 " in zone_at(options=RpzOptions(serial=42))


# -- the zone loads in real resolvers ---------------------------------------


def _tool(name: str, required_in_ci: bool) -> str:
    path = shutil.which(name) or next(
        (p for d in ("/usr/sbin", "/usr/bin") if os.access(p := f"{d}/{name}", os.X_OK)), None
    )
    if path is None:
        if required_in_ci and os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI (apt-get install bind9-utils)")
        pytest.skip(f"{name} is not installed")
    return path


def _sample_zone(tmp_path: Path) -> Path:
    path = tmp_path / "writ.rpz"
    path.write_text(zone_at(), encoding="utf-8")
    return path


def test_zone_loads_in_named_checkzone(tmp_path: Path) -> None:
    checkzone = _tool("named-checkzone", required_in_ci=True)
    for action in (RpzOptions(), RpzOptions(action=RpzAction.SINKHOLE,
                                            sinkhole=("192.0.2.80", "2001:db8::80"))):
        path = tmp_path / "writ.rpz"
        path.write_text(zone_at(options=action), encoding="utf-8")
        r = subprocess.run([checkzone, "rpz.writ.", str(path)], capture_output=True,
                           text=True, timeout=30, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"loaded serial {int(AT.timestamp())}" in r.stdout


def _unbound_conf(tmp_path: Path, zone: Path, port: int, upstream: int) -> Path:
    conf = tmp_path / "unbound.conf"
    conf.write_text(f"""
server:
    interface: 127.0.0.1
    port: {port}
    do-tcp: no
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{tmp_path}"
    pidfile: "{tmp_path}/unbound.pid"
    use-syslog: no
    logfile: ""
    do-not-query-localhost: no
    outgoing-interface: 127.0.0.1
    access-control: 127.0.0.0/8 allow
    module-config: "respip validator iterator"
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@{upstream}
rpz:
    name: rpz.writ.
    zonefile: {zone}
""")
    return conf


def test_zone_passes_unbound_checkconf(tmp_path: Path) -> None:
    checkconf = _tool("unbound-checkconf", required_in_ci=False)
    conf = _unbound_conf(tmp_path, _sample_zone(tmp_path), 5300, 53)
    r = subprocess.run([checkconf, str(conf)], capture_output=True, text=True, timeout=30,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def upstream() -> Iterator[int]:
    """A loopback DNS server answering 192.0.2.1 for every A query: what
    Unbound forwards to when the zone does not block a name."""

    def answer(q: DNSRecord, reply: DNSRecord) -> None:
        if q.q.qtype == QTYPE.A:
            reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=60))

    with udp_standin(answer) as port:
        yield port


def _ask(port: int, name: str, timeout: float = 5) -> tuple[str, list[str]]:
    q = DNSRecord.question(name, "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q.pack(), ("127.0.0.1", port))
        r = DNSRecord.parse(s.recv(4096))
    return RCODE.get(r.header.rcode), [str(rr.rdata) for rr in r.rr if rr.rtype == QTYPE.A]


def start_unbound(binary: str, tmp_path: Path, zone: Path,
                  upstream: int) -> tuple[subprocess.Popen[bytes], int]:
    """A live Unbound loading `zone`, forwarding to `upstream`; (process, port)."""
    from tests.conftest import free_dns_port

    for _attempt in range(3):  # a free port can be taken between our check and Unbound's bind
        port = free_dns_port()
        conf = _unbound_conf(tmp_path, zone, port, upstream)
        proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        if _until_answering(proc, port):
            return proc, port
        proc.wait(timeout=10)
    err = proc.stderr.read() if proc.stderr else b""
    pytest.fail(f"unbound did not start: {err!r}")


def _until_answering(proc: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + 15
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            _ask(port, "ready.test", timeout=0.2)
        except OSError:
            time.sleep(0.1)
        else:
            return True
    if proc.poll() is None:
        proc.terminate()
    return False


@pytest.mark.e2e
def test_unbound_enforces_the_zone(tmp_path: Path, upstream: int) -> None:
    binary = _tool("unbound", required_in_ci=False)  # Unbound 1.10+ has rpz:

    proc, port = start_unbound(binary, tmp_path, _sample_zone(tmp_path), upstream)
    try:
        expected = {
            "videohost.example": ("NXDOMAIN", []),
            "cdn.videohost.example": ("NXDOMAIN", []),  # *.name
            "www.forum.example": ("NXDOMAIN", []),
            "forum.example": ("NOERROR", ["192.0.2.1"]),
            "x.www.forum.example": ("NOERROR", ["192.0.2.1"]),  # subdomains: false
            "news.example": ("NOERROR", ["192.0.2.1"]),  # URL rules only
            "restored.example": ("NOERROR", ["192.0.2.1"]),  # restored, video kept by URL
            "expired.example": ("NOERROR", ["192.0.2.1"]),
        }
        got = {name: _ask(port, name) for name in expected}
        assert got == expected
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- the command ------------------------------------------------------------

ORDER = """\
id: ORD-CLI
court: District Court
case: "7/2020"
issued: 2020-01-01
targets:
  - domain: blocked.example
  - url: http://news.example/watch?v=abc
"""


def test_export_command_writes_a_zone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    orders = tmp_path / "orders"
    orders.mkdir()
    (orders / "ord.yaml").write_text(ORDER)
    out = tmp_path / "zone" / "writ.rpz"
    out.parent.mkdir()
    assert main(["export", "rpz", "--orders", str(orders), "--at", "2020-06-01",
                 "--origin", "rpz.isp.example", "-o", str(out)]) == 0
    zone = out.read_text()
    assert "$ORIGIN rpz.isp.example.\n" in zone
    assert "blocked.example CNAME . ; ORD-CLI\n" in zone
    assert "*.blocked.example CNAME . ; ORD-CLI\n" in zone
    assert ";   news.example: ORD-CLI\n" in zone
    assert [p.name for p in out.parent.iterdir()] == ["writ.rpz"]  # no temp file left
    assert main(["export", "rpz", "--orders", str(orders), "--at", "2019-06-01"]) == 0
    assert "blocked.example" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--action", "sinkhole"], "--action sinkhole needs at least one --sinkhole"),
        (["--sinkhole", "192.0.2.80"], "--sinkhole only goes with --action sinkhole"),
        (["--action", "sinkhole", "--sinkhole", "blockpage.example"], "not an IP address"),
        (["--origin", "a..b"], "--origin: not a zone name"),
        (["--serial", "4294967296"], "--serial: must be"),
        (["--timezone", "Mars/Base"], "--timezone: unknown time zone"),
        (["--at", "yesterday"], "--at: not a date or time"),
        (["-o", "/nonexistent-dir/writ.rpz"], "-o: cannot write"),
    ],
)
def test_export_command_refuses_bad_invocations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "ord.yaml").write_text(ORDER)
    assert main(["export", "rpz", "--orders", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_export_command_reports_invalid_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.yaml").write_text("id: X\ncourt: C\n")
    assert main(["export", "rpz", "--orders", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "bad.yaml:" in captured.err
    assert captured.out == ""

