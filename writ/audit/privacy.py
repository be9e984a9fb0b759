"""What a client address becomes before it enters the chain.

Invariants:
- A chained record can never be edited later, so by default a raw address
  never enters it: `pseudonymise` writes HMAC-SHA256(key, address) truncated to
  16 bytes (32 hex), and the key id (`client_key`) so an auditor holding the key
  can test "was 192.0.2.7 blocked?" and nobody else can.
- Keys live in files the operator controls, created 0600 when missing. With a
  rotation period every period gets its own random key (`<key_file>.<period>`);
  deleting an old key file unlinks the records written under it for good.
- `truncate` keeps the network (/24 for IPv4, /48 for IPv6); `raw` keeps the
  address, only where the law requires it.
- The same key and address always give the same pseudonym; different keys
  give unrelated ones.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from writ.policies import ClientPrivacy

__all__ = ["ClientMasker", "load_or_create_key", "period_id", "period_window", "strip_port"]

PSEUDONYM_BYTES = 16
_CACHE_MAX = 65_536


def load_or_create_key(path: Path) -> bytes:
    """The secret key in `path` (hex); a new random one, written 0600, if missing."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        # O_EXCL: two processes racing to create the key must not each keep their own.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_key(path)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key.hex() + "\n")
        return key
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path}: not a hex key") from None
    if len(key) < 16:
        raise ValueError(f"{path}: key too short ({len(key)} bytes, need at least 16)")
    return key


def period_id(rotation: str | None, epoch: float) -> str | None:
    """`2024-05-01` (daily), `2024-W18` (weekly, ISO), or None (one key)."""
    if rotation is None:
        return None
    day = datetime.fromtimestamp(epoch, UTC).date()
    if rotation == "daily":
        return day.isoformat()
    if rotation == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    raise ValueError(f"key_rotation: expected daily, weekly or none, got {rotation!r}")


def period_window(rotation: str | None, epoch: float) -> tuple[float, float]:
    """[from, until) epoch seconds of the key period holding `epoch`."""
    if rotation is None:
        return -math.inf, math.inf
    day = datetime.fromtimestamp(epoch, UTC).replace(hour=0, minute=0, second=0,
                                                     microsecond=0)
    if rotation == "weekly":
        day -= timedelta(days=day.weekday())
        return day.timestamp(), (day + timedelta(days=7)).timestamp()
    period_id(rotation, epoch)  # a bad name raises there
    return day.timestamp(), (day + timedelta(days=1)).timestamp()


def strip_port(client: str) -> str:
    """`192.0.2.7:5353` → `192.0.2.7`, `[2001:db8::1]:53` → `2001:db8::1`."""
    if client.startswith("["):
        return client[1:].split("]", 1)[0]
    if client.count(":") == 1:
        return client.split(":", 1)[0]
    return client


class ClientMasker:
    """Turns a raw client address into what the record may hold.

    `mask(client, epoch) -> (client_field, key_id or None)`.
    """

    def __init__(self, mode: ClientPrivacy, key_file: Path | None = None,
                 rotation: str | None = None) -> None:
        self.mode = ClientPrivacy(mode)
        self.key_file = key_file
        self.rotation = rotation
        period_id(rotation, 0.0)  # reject a bad rotation name now, not per record
        self._period: str | None = "\0unset"
        self._key = b""
        self._key_id: str | None = None
        self._cache: dict[str, str] = {}
        # [from, until) of the times whose records `mask` answers with the current
        # key (everything for raw and truncate); empty until a key is chosen.
        self.key_window = ((-math.inf, math.inf) if self.mode is not ClientPrivacy.PSEUDONYMISE
                           else (0.0, -1.0))

    def _select_key(self, epoch: float) -> None:
        period = period_id(self.rotation, epoch)
        if period == self._period:
            return
        assert self.key_file is not None
        if period is None:
            path = self.key_file
        else:
            path = self.key_file.with_name(f"{self.key_file.name}.{period}")
        self._key = load_or_create_key(path)
        # The id names the key without revealing it: the period, else a fingerprint.
        self._key_id = period or hashlib.sha256(self._key).hexdigest()[:12]
        self._period = period
        self._cache.clear()
        self.key_window = period_window(self.rotation, epoch)

    def mask(self, client: str, epoch: float) -> tuple[str, str | None]:
        if self.mode is ClientPrivacy.RAW:
            return client, None
        if self.mode is ClientPrivacy.TRUNCATE:
            return truncate(client), None
        if self.rotation is not None or self._period == "\0unset":
            self._select_key(epoch)
        found = self._cache.get(client)
        if found is None:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            address = strip_port(client)
            mac = hmac.new(self._key, address.encode("utf-8"), hashlib.sha256)
            found = mac.hexdigest()[: PSEUDONYM_BYTES * 2]
            self._cache[client] = found
        return found, self._key_id


def truncate(client: str) -> str:
    """The client's /24 (IPv4) or /48 (IPv6); a non-address is not kept at all."""
    try:
        ip = ipaddress.ip_address(strip_port(client))
    except ValueError:
        return "invalid"
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
