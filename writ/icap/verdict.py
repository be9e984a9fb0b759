"""An encapsulated HTTP request → the proxy's verdict and its answer (pure).

The same `judge()` as the mitmproxy addon (writ.proxy.judge: one source of
truth), the same 451/400/503 pages (writ.blockpage), the same record
targets. No I/O: the shell (writ.icap.server) writes and records.

Invariants:
- A request is judged on every name it carries: the request-target's
  authority (Squid sends absolute-form: `GET http://host/path`, `CONNECT
  host:443`) and every Host header.
- A CONNECT marked `X-Writ-Check: sni` (writ's SNI helper, writ.icap.sni)
  is a TLS hello: `tls-refused` for a blocked name (answered with the 451
  page all the same), `unenforceable` for a host with URL rules.
- A CONNECT carrying `X-Writ-SNI` (Squid's adaptation_meta, when it adapts
  the CONNECT again as it splices a peeked tunnel) is that tunnel's TLS
  hello: judged on the SNI and the CONNECT's host, recorded as `TLS name`.
  `-` (no SNI, or not peeked yet) leaves it a plain CONNECT.
- A CONNECT to a host with URL rules passes (Squid tunnels it unopened) and
  is recorded `unenforceable`: nothing inside the tunnel is judged behind
  Squid without interception (docs/operator.md, "writ behind Squid").
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from writ.blocklist import Index
from writ.blockpage import Page, bad_request_page, blocked_page, unavailable_page
from writ.icap.protocol import HttpHead, IcapRequest
from writ.policies import FailMode, Policy
from writ.proxy.facts import shown
from writ.proxy.judge import Facts, Kind, Ruling, judge

__all__ = ["Judged", "judge_icap", "page_for"]


@dataclass(frozen=True, slots=True)
class Judged:
    ruling: Ruling
    target: str  # as the audit record names it (the proxy's form)
    url: str  # as the block page names it


def _split(http: HttpHead) -> tuple[str | None, str, str]:
    """(authority from the request-target, scheme, origin-form path)."""
    target = http.target
    if http.method == "CONNECT":
        return target, "", ""
    if target.startswith("/") or target == "*":
        return None, "http", target
    parts = urlsplit(target)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"bad request-target {target[:80]!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    userinfo, at, authority = parts.netloc.rpartition("@")
    if at and "\\" in userinfo:
        # WHATWG reads `\` as a path separator: `a.example\@b.example` is
        # a.example to a browser; judged whole, it is refused as unreadable.
        authority = parts.netloc
    return authority, parts.scheme.lower(), path


def judge_icap(index: Index | None, req: IcapRequest, policy: Policy) -> Judged:
    """The verdict on one REQMOD (see the module docstring)."""
    fail_open = policy.fail is FailMode.OPEN
    http = req.http
    if http is None:
        out = judge(index, Facts(Kind.REQUEST, (), invalid=req.http_error or "unreadable"),
                    fail_open=fail_open)
        return Judged(out, "HTTP (unreadable)", "")
    try:
        authority, scheme, path = _split(http)
    except ValueError as e:
        out = judge(index, Facts(Kind.REQUEST, (), invalid=str(e)), fail_open=fail_open)
        return Judged(out, f"{http.method} {http.target[:200]}", http.target[:200])
    hosts = http.get_all("host")
    if http.method == "CONNECT" and req.headers.get("x-writ-check") == "sni":
        # writ's SNI helper (writ.icap.sni) asking for Squid about a peeked
        # ClientHello: judged and recorded as the proxy judges a TLS hello.
        out = judge(index, Facts(Kind.TLS, (authority,)), fail_open=fail_open)
        host = (authority or "").rpartition(":")[0] or authority or ""
        return Judged(out, f"TLS {shown(host)}", f"https://{host}/")
    sni = req.headers.get("x-writ-sni", "-")
    if http.method == "CONNECT" and sni not in ("-", ""):
        # Squid splicing a peeked tunnel adapts its CONNECT again, with the
        # hello's SNI (deploy/squid/sni.conf's adaptation_meta, URL-escaped):
        # judged on both names as the proxy judges a hello in a tunnel.
        out = judge(index, Facts(Kind.TLS, (sni, authority)), fail_open=fail_open)
        return Judged(out, f"TLS {shown(sni)}", f"https://{sni}/")
    if http.method == "CONNECT":
        out = judge(index, Facts(Kind.CONNECT, (authority,)), fail_open=fail_open)
        if out.decision == "url-rules":  # nothing inside the tunnel is seen behind Squid
            out = out._replace(decision="unenforceable")
        return Judged(out, f"CONNECT {shown(authority or '')}", f"https://{authority}/")
    out = judge(index, Facts(Kind.REQUEST, (authority, *hosts), path), fail_open=fail_open)
    shown_host = shown(hosts[0] if hosts else authority or "")
    return Judged(out, f"{http.method} {scheme}://{shown_host}{path}",
                  f"{scheme}://{authority or shown_host}{path}")


def page_for(judged: Judged, index: Index | None, policy: Policy,
             accept: str | None) -> Page:
    """The HTTP answer to a refused request, as the proxy gives it."""
    out = judged.ruling
    if out.action in ("451", "tls-refused") and out.d is not None and index is not None:
        return blocked_page(out.d, index.acts, policy, judged.url, accept=accept,
                            blocklist_version=index.version)
    if out.action == "400" or out.decision == "invalid":  # (a hello's: tls-refused)
        return bad_request_page(out.reason, accept)
    if out.decision == "no-blocklist":
        return unavailable_page("No blocklist is loaded yet; writ fails closed.", accept)
    return unavailable_page("writ could not judge this request (an internal error, "
                            "logged); it fails closed.", accept)
