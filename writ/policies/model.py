"""The operator's enforcement policy as frozen values.

Strategy, not matching: the blocklist says *whether* and *by what* a target is
blocked; the policy says *what we answer* and *what we record*. Defaults are
safe for one box: loopback listeners, no open resolver, fail-closed,
pseudonymised clients.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

from writ.blocklist.ipaddr import IpLimits, canonical_ip

__all__ = [
    "AuditPolicy",
    "ClientPrivacy",
    "DnsAction",
    "DnsPolicy",
    "FailMode",
    "IpPolicy",
    "OverLimit",
    "PagesPolicy",
    "Policy",
    "ProxyPolicy",
    "PublishPolicy",
    "TlsMode",
    "TrustPolicy",
    "UrlRuleMode",
    "WebPolicy",
]


class DnsAction(StrEnum):
    NXDOMAIN = "nxdomain"
    REFUSED = "refused"
    SINKHOLE = "sinkhole"


class UrlRuleMode(StrEnum):
    PASS = "pass"  # noqa: S105 -- not a password; resolve hosts with only URL rules normally
    STEER = "steer"  # answer the proxy's addresses so the URL filter sees the traffic


class OverLimit(StrEnum):
    TRUNCATE = "truncate"  # TC=1 with the question: a real client retries over TCP
    REFUSED = "refused"
    DROP = "drop"  # no answer at all


class TlsMode(StrEnum):
    PASSTHROUGH = "passthrough"  # decide on SNI only
    INTERCEPT = "intercept"  # clients trust writ's CA; URL rules apply inside TLS


class FailMode(StrEnum):
    CLOSED = "closed"  # no blocklist at all: SERVFAIL / 503
    OPEN = "open"


class ClientPrivacy(StrEnum):
    PSEUDONYMISE = "pseudonymise"
    TRUNCATE = "truncate"
    RAW = "raw"


def _default_acl() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
            "100.64.0.0/10", "fc00::/7", "fe80::/10"]
    return tuple(ipaddress.ip_network(n) for n in nets)


@dataclass(frozen=True, slots=True)
class DnsPolicy:
    listen: tuple[str, ...] = ("127.0.0.1:5300",)
    upstreams: tuple[str, ...] = ("127.0.0.1:53",)
    action: DnsAction = DnsAction.SINKHOLE
    sinkhole_ipv4: tuple[str, ...] = ("127.0.0.1",)
    sinkhole_ipv6: tuple[str, ...] = ("::1",)
    block_ttl: int = 60
    url_rules: UrlRuleMode = UrlRuleMode.PASS
    steer_ipv4: tuple[str, ...] = ("127.0.0.1",)
    steer_ipv6: tuple[str, ...] = ("::1",)
    allow_clients: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default_factory=_default_acl
    )
    upstream_timeout: float = 2.0
    cache_size: int = 100_000
    workers: int = 1
    # Limits against hostile clients and upstreams (docs/operator.md, "DNS limits").
    max_ttl: int = 86400  # upstream TTLs are capped here (Unbound cache-max-ttl)
    max_udp_size: int = 1232  # largest UDP answer, whatever a client advertises
    client_qps: int = 1000  # UDP queries a second per client address; 0: no limit
    over_limit: OverLimit = OverLimit.TRUNCATE  # what a client over client_qps gets
    client_tcp_conns: int = 32  # open TCP connections per client address
    max_tcp_conns: int = 1000  # open TCP connections in all (per worker)
    tcp_idle: float = 10.0  # seconds a TCP connection may sit idle (or unread)
    tcp_unsent_bytes: int = 65536  # answers waiting for a client that does not read
    upstream_queries: int = 512  # upstream exchanges in flight (each holds a socket)
    max_public_prefix_v4: int = 8  # allow_clients may cover at most one /8 of public IPv4
    max_public_prefix_v6: int = 32  # … and at most one /32 of public IPv6
    # `writ dns`'s metrics listener (/metrics, /healthz, /readyz); None: none
    # (docs/operator.md §6). `writ serve` has these on web.listen instead.
    metrics: str | None = None


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    listen: str = "127.0.0.1:8080"
    mode: str = "regular"  # regular | transparent
    tls: TlsMode = TlsMode.PASSTHROUGH
    # Where DNS-steered clients connect (dns.url_rules: steer): plain HTTP
    # (port 80 style, destination from the Host header) and TLS (port 443
    # style, destination from the SNI). Empty: no steer listeners.
    steer_http: tuple[str, ...] = ()
    steer_tls: tuple[str, ...] = ()
    # `writ proxy` processes sharing the proxy's ports (SO_REUSEPORT); 0: one per CPU.
    workers: int = 0
    metrics: str | None = None  # `writ proxy`'s metrics listener, as dns.metrics


@dataclass(frozen=True, slots=True)
class IcapPolicy:
    # The ICAP service (writ behind Squid, docs/operator.md). `writ icap` always
    # runs it; `writ serve` only with `enabled: true`. Bind it to loopback or a
    # private address: whoever can connect names the client (X-Client-IP).
    enabled: bool = False
    listen: str = "127.0.0.1:1344"
    service: str = "writ"  # icap://HOST:PORT/writ
    max_connections: int = 1024
    idle_timeout: float = 300.0
    options_ttl: int = 60  # seconds a client may keep the OPTIONS answer (and its ISTag)
    metrics: str | None = None  # `writ icap`'s metrics listener, as dns.metrics


@dataclass(frozen=True, slots=True)
class WebPolicy:
    listen: str = "127.0.0.1:8451"
    token_file: str | None = None  # bearer token for the admin API


@dataclass(frozen=True, slots=True)
class PagesPolicy:
    """The public pages: block page and register (docs/operator.md, "Public pages")."""

    default_language: str = "en"  # when Accept-Language names none we have
    languages_dir: str | None = None  # operator catalogs: LANG/LC_MESSAGES/writ.po
    register_url: str | None = None  # public base URL of `writ web`'s register
    blocked_by: str | None = None  # another page for `Link: rel="blocked-by"`
    contest: str | None = None  # how to contest a block, shown on every block page
    rate_limit: int = 120  # register requests per client per minute


@dataclass(frozen=True, slots=True)
class AuditPolicy:
    path: str = "state/audit/decisions.log"
    log_allowed: bool = False
    client_privacy: ClientPrivacy = ClientPrivacy.PSEUDONYMISE
    key_file: str = "state/audit/client.key"
    key_rotation: str | None = None  # None | "daily" | "weekly"
    rotate_bytes: int = 256 * 1024 * 1024
    rotate_seconds: int | None = 86400
    fsync: str = "batch"  # batch | interval | never
    checkpoint_every: int = 10_000
    checkpoint_seconds: int = 60
    signing_key_file: str = "state/audit/signing.key"
    checkpoint_file: str = "state/audit/checkpoints.log"
    checkpoint_push_file: str | None = None  # a second copy, e.g. on a mount the auditor owns
    checkpoint_push_redis: bool = False  # also push to Redis under the writ prefix (with --redis)
    # When the writer cannot write: keep enforcing (decisions counted as dropped,
    # /readyz failing) or stop the node (SIGTERM to itself). docs/operator.md.
    on_failure: str = "enforce"  # enforce | fail


@dataclass(frozen=True, slots=True)
class PublishPolicy:
    # `writ orders apply` refuses, without --allow-removals, a set that removes
    # more acts than this from the live version, or that is empty while the live
    # one is not: a wrong folder must not lift every block (docs/regulator.md).
    max_removed_acts: int = 10


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    # The keyring (YAML) of keys allowed to sign acts and published sets; with
    # one, every act file and bulk list must carry a valid in-scope issuer
    # signature (FILE.sig). None: signatures are not checked.
    keyring: str | None = None
    # `writ orders apply/rollback`: the publisher's OpenSSH private key that signs
    # each published set's manifest (--publisher-key overrides). None: no manifest.
    publisher_key: str | None = None
    # How long a signed manifest stays valid (seconds, default 7 days). Past it a
    # node keeps enforcing the set and raises the `expired` alarm (docs/operator.md).
    manifest_lifetime: int = 7 * 86400


@dataclass(frozen=True, slots=True)
class IpPolicy:
    # The collateral guard for ip/ip_prefix targets (docs/regulator.md):
    # prefixes wider than these need `collateral_acknowledged: true` in the act.
    max_prefix_ipv4: int = 24
    max_prefix_ipv6: int = 48
    # Special-purpose ranges (private, loopback, link-local, …) orders may
    # target anyway, as canonical prefixes; e.g. 127.0.0.0/8 for tests.
    allow_ranges: tuple[str, ...] = ()

    def limits(self) -> IpLimits:
        return IpLimits(self.max_prefix_ipv4, self.max_prefix_ipv6,
                        tuple(canonical_ip(r) for r in self.allow_ranges))


@dataclass(frozen=True, slots=True)
class Policy:
    node: str = "writ-node"
    operator: str = "Example ISP"
    transparency_url: str = "https://isp.example/blocking"
    timezone: str = "UTC"
    fail: FailMode = FailMode.CLOSED
    dns: DnsPolicy = field(default_factory=DnsPolicy)
    proxy: ProxyPolicy = field(default_factory=ProxyPolicy)
    icap: IcapPolicy = field(default_factory=IcapPolicy)
    web: WebPolicy = field(default_factory=WebPolicy)
    pages: PagesPolicy = field(default_factory=PagesPolicy)
    audit: AuditPolicy = field(default_factory=AuditPolicy)
    trust: TrustPolicy = field(default_factory=TrustPolicy)
    publish: PublishPolicy = field(default_factory=PublishPolicy)
    ip: IpPolicy = field(default_factory=IpPolicy)
