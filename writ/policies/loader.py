"""Loading a policy file (policies/*.yaml) into a frozen `Policy`.

Invariants:
- YAML is read with the safe loader only (LibYAML's CSafeLoader when present)
  and composed into nodes first, so every error names `FILE:LINE: KEY`.
- Validation is total: unknown and duplicate keys, wrong types, bad enum
  values, addresses, networks, ports, URLs and time zones are all reported in
  one run; a policy with any error is never returned.
- Keys are the model's field names (writ/policies/model.py); a key left out
  keeps the model's default, so an empty file is the default policy.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from writ.policies import _checks as c
from writ.policies.model import (
    AuditPolicy,
    ClientPrivacy,
    DnsAction,
    DnsPolicy,
    FailMode,
    IcapPolicy,
    IpPolicy,
    OverLimit,
    PagesPolicy,
    Policy,
    ProxyPolicy,
    PublishPolicy,
    TlsMode,
    TrustPolicy,
    UrlRuleMode,
    WebPolicy,
)

__all__ = ["PolicyError", "load_policy", "parse_policy"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PolicyError(Exception):
    """An invalid policy; `.errors` holds `FILE:LINE: KEY: message` lines."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclasses.dataclass(frozen=True, slots=True)
class _Key:
    check: Callable[[object], object]
    many: bool = False  # a list (a single scalar is read as a list of one)


_DNS: dict[str, _Key] = {
    "listen": _Key(c.endpoint(), many=True),
    "upstreams": _Key(c.endpoint(default_port=53), many=True),
    "action": _Key(c.enum(DnsAction)),
    "sinkhole_ipv4": _Key(c.address(4), many=True),
    "sinkhole_ipv6": _Key(c.address(6), many=True),
    "block_ttl": _Key(c.integer(0, 86400)),
    "url_rules": _Key(c.enum(UrlRuleMode)),
    "steer_ipv4": _Key(c.address(4), many=True),
    "steer_ipv6": _Key(c.address(6), many=True),
    "allow_clients": _Key(c.network, many=True),
    "upstream_timeout": _Key(c.seconds),
    "cache_size": _Key(c.integer(0)),
    "workers": _Key(c.integer(1, 64)),
    "max_ttl": _Key(c.integer(0, 604800)),
    "max_udp_size": _Key(c.integer(512, 4096)),
    "client_qps": _Key(c.integer(0)),
    "over_limit": _Key(c.enum(OverLimit)),
    "client_tcp_conns": _Key(c.integer(1)),
    "max_tcp_conns": _Key(c.integer(1)),
    "tcp_idle": _Key(c.seconds),
    "tcp_unsent_bytes": _Key(c.integer(4096)),
    "upstream_queries": _Key(c.integer(1, 65536)),
    "max_public_prefix_v4": _Key(c.integer(1, 32)),
    "max_public_prefix_v6": _Key(c.integer(1, 128)),
    "metrics": _Key(c.optional(c.endpoint())),
}
_PROXY: dict[str, _Key] = {
    "listen": _Key(c.endpoint()),
    "mode": _Key(c.choice("regular", "transparent")),
    "tls": _Key(c.enum(TlsMode)),
    "steer_http": _Key(c.endpoint(), many=True),
    "steer_tls": _Key(c.endpoint(), many=True),
    "workers": _Key(c.integer(0, 64)),
    "metrics": _Key(c.optional(c.endpoint())),
}
_ICAP: dict[str, _Key] = {
    "enabled": _Key(c.boolean),
    "listen": _Key(c.endpoint()),
    "service": _Key(c.node_name),  # the same alphabet: letters, digits, . _ -
    "max_connections": _Key(c.integer(1, 65536)),
    "idle_timeout": _Key(c.seconds),
    "options_ttl": _Key(c.integer(1, 86400)),
    "metrics": _Key(c.optional(c.endpoint())),
}
_WEB: dict[str, _Key] = {
    "listen": _Key(c.endpoint()),
    "token_file": _Key(c.optional(c.text)),
}
_PAGES: dict[str, _Key] = {
    "default_language": _Key(c.language),
    "languages_dir": _Key(c.optional(c.text)),
    "register_url": _Key(c.optional(c.http_url)),
    "blocked_by": _Key(c.optional(c.http_url)),
    "contest": _Key(c.optional(c.text)),
    "rate_limit": _Key(c.integer(1)),
}
_AUDIT: dict[str, _Key] = {
    "path": _Key(c.text),
    "log_allowed": _Key(c.boolean),
    "client_privacy": _Key(c.enum(ClientPrivacy)),
    "key_file": _Key(c.text),
    "key_rotation": _Key(c.optional(c.choice("daily", "weekly"))),
    "rotate_bytes": _Key(c.integer(4096)),
    "rotate_seconds": _Key(c.optional(c.integer(1))),
    "fsync": _Key(c.choice("batch", "interval", "never")),
    "checkpoint_every": _Key(c.integer(1)),
    "checkpoint_seconds": _Key(c.integer(1)),
    "signing_key_file": _Key(c.text),
    "checkpoint_file": _Key(c.text),
    "checkpoint_push_file": _Key(c.optional(c.text)),
    "checkpoint_push_redis": _Key(c.boolean),
    "on_failure": _Key(c.choice("enforce", "fail")),
}
_PUBLISH: dict[str, _Key] = {
    "max_removed_acts": _Key(c.integer(0)),
}
_TRUST: dict[str, _Key] = {
    "keyring": _Key(c.optional(c.text)),
    "publisher_key": _Key(c.optional(c.text)),
    "manifest_lifetime": _Key(c.integer(60, 366 * 86400)),
}
_IP: dict[str, _Key] = {
    "max_prefix_ipv4": _Key(c.integer(0, 32)),
    "max_prefix_ipv6": _Key(c.integer(0, 128)),
    "allow_ranges": _Key(c.ip_range, many=True),
}
_SECTIONS: dict[str, tuple[type[Any], dict[str, _Key]]] = {
    "dns": (DnsPolicy, _DNS),
    "proxy": (ProxyPolicy, _PROXY),
    "icap": (IcapPolicy, _ICAP),
    "web": (WebPolicy, _WEB),
    "pages": (PagesPolicy, _PAGES),
    "audit": (AuditPolicy, _AUDIT),
    "trust": (TrustPolicy, _TRUST),
    "publish": (PublishPolicy, _PUBLISH),
    "ip": (IpPolicy, _IP),
}
_TOP: dict[str, _Key] = {
    "node": _Key(c.node_name),
    "operator": _Key(c.text),
    "transparency_url": _Key(c.http_url),
    "timezone": _Key(c.timezone),
    "fail": _Key(c.enum(FailMode)),
}


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file. Raises PolicyError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise PolicyError([f"{path}:1: policy: cannot read: {reason}"]) from None
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate policy YAML `text`; `source` names it in errors."""
    return _Reader(source).read(text)


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []
        self.lines: dict[str, int] = {}  # dotted key -> line, for cross-key checks
        self.construct = SafeConstructor()

    def error(self, node: Node | int, key: str, message: str) -> None:
        line = node if isinstance(node, int) else node.start_mark.line + 1
        self.errors.append(f"{self.source}:{line}: {key}: {message}")

    def read(self, text: str) -> Policy:
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problem = getattr(e, "problem", None) or str(e)
            message = f"{self.source}:{line}: policy: not valid YAML: {problem}"
            raise PolicyError([message]) from None
        top: dict[str, Any] = {}
        if root is not None:
            if isinstance(root, MappingNode):
                top = self.mapping(root, "", {**_TOP, **dict.fromkeys(_SECTIONS)})
            else:
                self.error(root, "policy", "expected a mapping of keys at the top level")
        if self.errors:
            raise PolicyError(self.errors)
        policy = Policy(**top)
        self.cross_checks(policy)
        if self.errors:
            raise PolicyError(self.errors)
        return policy

    def mapping(
        self, node: MappingNode, prefix: str, keys: dict[str, _Key | None]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: set[str] = set()
        for knode, vnode in node.value:
            name = knode.value if isinstance(knode, ScalarNode) else None
            dotted = f"{prefix}{name}"
            if not isinstance(name, str) or name not in keys:
                known = ", ".join(sorted(keys))
                self.error(knode, dotted if name else prefix or "policy",
                           f"unknown key (known keys: {known})")
                continue
            if name in seen:
                self.error(knode, dotted, "duplicate key")
                continue
            seen.add(name)
            self.lines[dotted] = knode.start_mark.line + 1
            spec = keys[name]
            if spec is None:  # a section
                cls, section_keys = _SECTIONS[name]
                if isinstance(vnode, MappingNode):
                    fields = self.mapping(vnode, f"{dotted}.", dict(section_keys))
                    out[name] = cls(**fields)
                elif not _is_null(vnode):
                    self.error(vnode, dotted, "expected a mapping of keys")
                continue
            value = self.value(vnode, dotted, spec)
            if value is not _BAD:
                out[name] = value
        return out

    def value(self, node: Node, key: str, spec: _Key) -> object:
        if spec.many:
            items = node.value if isinstance(node, SequenceNode) else [node]
            if isinstance(node, ScalarNode) and _is_null(node):
                items = []
            got = [self.value(item, key, _Key(spec.check)) for item in items]
            return _BAD if _BAD in got else tuple(got)
        if not isinstance(node, ScalarNode):
            shape = "a list" if isinstance(node, SequenceNode) else "a mapping"
            self.error(node, key, f"expected a single value, got {shape}")
            return _BAD
        try:
            return spec.check(self.construct.construct_object(node, deep=True))
        except c.BadValueError as e:
            self.error(node, key, str(e))
        except (yaml.YAMLError, ValueError) as e:  # e.g. an impossible date
            self.error(node, key, f"unreadable value: {e}")
        return _BAD

    def cross_checks(self, p: Policy) -> None:
        """Rules between keys; each error points at the key to change."""
        d = p.dns

        def at(key: str) -> int:
            return self.lines.get(key) or self.lines.get(key.partition(".")[0]) or 1

        if not d.listen:
            self.error(at("dns.listen"), "dns.listen", "needs at least one ADDRESS:PORT")
        if not d.upstreams:
            self.error(at("dns.upstreams"), "dns.upstreams", "needs at least one upstream")
        if not d.allow_clients:
            self.error(at("dns.allow_clients"), "dns.allow_clients",
                       "empty: no client could query; list the networks you serve")
        # docs/design.md: no open resolver. Judged on the union: 0.0.0.0/1 + 128.0.0.0/1
        # is 0.0.0.0/0 by another name.
        for version, bits, key in ((4, 32, "max_public_prefix_v4"),
                                   (6, 128, "max_public_prefix_v6")):
            prefix = getattr(d, key)
            n = c.public_addresses(d.allow_clients, version)
            if n > 2 ** (bits - prefix):
                self.error(at("dns.allow_clients"), "dns.allow_clients",
                           f"together these networks admit {n:,} public IPv{version} addresses,"
                           f" more than one /{prefix} (dns.{key}): that is an open resolver;"
                           " list the client networks you serve")
        if d.action is DnsAction.SINKHOLE and not (d.sinkhole_ipv4 or d.sinkhole_ipv6):
            self.error(at("dns.action"), "dns.action",
                       "sinkhole needs dns.sinkhole_ipv4 or dns.sinkhole_ipv6 addresses")
        if d.url_rules is UrlRuleMode.STEER and not (d.steer_ipv4 or d.steer_ipv6):
            self.error(at("dns.url_rules"), "dns.url_rules",
                       "steer needs dns.steer_ipv4 or dns.steer_ipv6 (the proxy's addresses)")
        # One TCP port cannot serve two listeners (DNS also listens on TCP).
        # A wildcard address (0.0.0.0, ::) takes the port on every address.
        tcp = [("dns.listen", e) for e in d.listen]
        tcp += [("proxy.listen", p.proxy.listen), ("web.listen", p.web.listen)]
        if p.icap.enabled or "icap" in self.lines:
            tcp.append(("icap.listen", p.icap.listen))
        tcp += [("proxy.steer_http", e) for e in p.proxy.steer_http]
        tcp += [("proxy.steer_tls", e) for e in p.proxy.steer_tls]
        tcp += [(f"{name}.metrics", where) for name, where in (
            ("dns", d.metrics), ("proxy", p.proxy.metrics), ("icap", p.icap.metrics)) if where]
        for i, later in enumerate(tcp):
            for earlier in tcp[:i]:
                if later[0] != earlier[0] and _overlap(later[1], earlier[1]):
                    # Blame the key the file sets, not a default it left alone.
                    first, second = later, earlier
                    if first[0] not in self.lines and second[0] in self.lines:
                        first, second = second, first
                    self.error(at(first[0]), first[0],
                               f"{first[1]} collides with {second[0]} {second[1]}")
                    break


class _Bad:
    pass


_BAD = _Bad()


def _overlap(a: str, b: str) -> bool:
    (ha, pa), (hb, pb) = c.parse_endpoint(a), c.parse_endpoint(b)
    if pa != pb:
        return False
    ia, ib = ipaddress.ip_address(ha), ipaddress.ip_address(hb)
    return ia == ib or (ia.version == ib.version and (ia.is_unspecified or ib.is_unspecified))


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"
