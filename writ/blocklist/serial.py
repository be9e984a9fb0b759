"""Acts to and from plain JSON-able values, and content-addressed versions.

The serial form is what Redis stores and what the version id hashes: same
acts → same bytes → same version. Positions are kept (they name the order
file and line in explanations) but are not part of the version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from writ.blocklist.model import Act, ActKind, BulkList, Position, Target, TargetKind

__all__ = ["act_from_dict", "act_to_dict", "acts_from_json", "acts_to_json", "version_of"]

SCHEMA = 1


def _pos(p: Position | None) -> list[Any] | None:
    return [p.file, p.line] if p is not None else None


def _unpos(v: Any) -> Position | None:
    return Position(str(v[0]), int(v[1])) if v else None


def _target(t: Target) -> dict[str, Any]:
    d: dict[str, Any] = {"k": t.kind.value, "h": t.host}
    if t.path:
        d["p"] = t.path
    if t.query:
        d["q"] = [list(kv) for kv in t.query]
    if not t.subdomains:
        d["s"] = False
    if t.pos is not None:
        d["@"] = _pos(t.pos)
    return d


def _untarget(d: dict[str, Any]) -> Target:
    return Target(
        TargetKind(d["k"]),
        str(d["h"]),
        str(d.get("p", "")),
        tuple((str(k), str(v)) for k, v in d.get("q", ())),
        bool(d.get("s", True)),
        _unpos(d.get("@")),
    )


def act_to_dict(a: Act) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": a.id,
        "kind": a.kind.value,
        "court": a.court,
        "case": a.case,
        "issued": a.issued.isoformat(),
        "effective": a.effective.isoformat(),
        "expires": a.expires.isoformat() if a.expires else None,
        "authority": a.authority,
        "legal_basis": a.legal_basis,
        "reference": a.reference,
        "summary": a.summary,
        "targets": [_target(t) for t in a.targets],
        "bulk": [
            {"file": b.file, "domains": list(b.domains), "urls": [_target(t) for t in b.urls],
             **({"ips": list(b.ips)} if b.ips else {}), "@": _pos(b.pos)}
            for b in a.bulk
        ],
        "amends": a.amends,
        "restores": None if a.restores is None else [_target(t) for t in a.restores],
        "keep_blocked": [_target(t) for t in a.keep_blocked],
        "condition": a.condition,
        "allow_public_suffix": a.allow_public_suffix,
        # Only when set: sets without IP targets keep their version ids.
        **({"collateral_acknowledged": True} if a.collateral_acknowledged else {}),
        "@": _pos(a.pos),
        # Who signed it (key ids, docs/regulator.md §10): shown by `writ explain --redis`,
        # not part of the version id (see version_of).
        **({"signers": list(a.signers)} if a.signers else {}),
    }
    # Written only when set, so that an unchanged folder keeps its version
    # (version_of hashes this dict) across the upgrade that added them.
    if a.summaries:
        out["summaries"] = [list(p) for p in a.summaries]
    if a.confidential:
        out["confidential"] = True
    return out


def act_from_dict(d: dict[str, Any]) -> Act:
    """Inverse of act_to_dict. Raises KeyError/ValueError/TypeError on foreign data."""
    return Act(
        id=str(d["id"]),
        kind=ActKind(d["kind"]),
        court=str(d["court"]),
        case=str(d["case"]),
        issued=date.fromisoformat(d["issued"]),
        effective=_aware(datetime.fromisoformat(d["effective"])),
        expires=_aware(datetime.fromisoformat(d["expires"])) if d.get("expires") else None,
        authority=d.get("authority"),
        legal_basis=d.get("legal_basis"),
        reference=d.get("reference"),
        summary=d.get("summary"),
        summaries=tuple((str(k), str(v)) for k, v in d.get("summaries", ())),
        confidential=bool(d.get("confidential", False)),
        targets=tuple(_untarget(t) for t in d.get("targets", ())),
        bulk=tuple(
            BulkList(
                str(b["file"]),
                tuple(str(n) for n in b["domains"]),
                tuple(_untarget(t) for t in b.get("urls", ())),
                _unpos(b.get("@")),
                tuple(str(n) for n in b.get("ips", ())),
            )
            for b in d.get("bulk", ())
        ),
        amends=d.get("amends"),
        restores=None if d.get("restores") is None else tuple(_untarget(t) for t in d["restores"]),
        keep_blocked=tuple(_untarget(t) for t in d.get("keep_blocked", ())),
        condition=d.get("condition"),
        allow_public_suffix=bool(d.get("allow_public_suffix", False)),
        collateral_acknowledged=bool(d.get("collateral_acknowledged", False)),
        pos=_unpos(d.get("@")),
        signers=tuple(str(k) for k in d.get("signers", ())),
    )


def _aware(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt.isoformat()} in serialised act")
    return dt


def _strip_positions(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_positions(x) for k, x in v.items() if k != "@"}
    if isinstance(v, list):
        return [_strip_positions(x) for x in v]
    return v


def acts_to_json(acts: Iterable[Act]) -> bytes:
    doc = {"schema": SCHEMA, "acts": [act_to_dict(a) for a in acts]}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def acts_from_json(data: bytes) -> tuple[Act, ...]:
    doc = json.loads(data)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ValueError("not a writ act set (schema mismatch)")
    return tuple(act_from_dict(d) for d in doc["acts"])


def version_of(acts: Sequence[Act]) -> str:
    """Content address of an act set: independent of file order and positions."""
    h = hashlib.sha256()
    for d in sorted((_strip_positions(act_to_dict(a)) for a in acts), key=lambda d: d["id"]):
        d.pop("signers", None)  # who signed is not what is ordered
        h.update(json.dumps(d, sort_keys=True, separators=(",", ":")).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]
