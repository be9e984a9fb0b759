"""Which clients may query: writ is never an open resolver.

Invariant: an address is allowed only if it lies in one of the policy's
networks (default: loopback and private ranges). IPv4-mapped IPv6 addresses
(::ffff:a.b.c.d, seen on dual-stack sockets) are judged as the IPv4 address.
Verdicts are memoised per address string, bounded so a scan of many sources
cannot grow memory without limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["ClientACL"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientACL:
    def __init__(self, networks: Iterable[Network], memo_size: int = 65536) -> None:
        self.networks = tuple(networks)
        self._memo: dict[str, bool] = {}
        self._memo_size = memo_size

    def allowed(self, host: str) -> bool:
        v = self._memo.get(host)
        if v is None:
            v = self._judge(host)
            if len(self._memo) >= self._memo_size:
                self._memo.clear()
            self._memo[host] = v
        return v

    def _judge(self, host: str) -> bool:
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr.version == n.version and addr in n for n in self.networks)
