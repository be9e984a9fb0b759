"""Explanations: a decision with its provenance, as data and as a sentence.

Shared by `writ explain` and the admin API's /v1/explain so both say the same.
A target with `://` is a URL; an address or prefix (writ/blocklist/ipaddr.py
`looks_like_ip`) is judged against ip/ip_prefix rules — a prefix names every
order covering any part of it; anything else a name (DNS decision).
"""

from __future__ import annotations

from typing import Any

from writ.blocklist.canon import (
    CanonError,
    CanonicalURL,
    canonical_name,
    canonical_url,
    is_url,
    separator_reading,
)
from writ.blocklist.index import Decision, Index, Verdict
from writ.blocklist.ipaddr import IpError, canonical_ip, looks_like_ip

__all__ = ["explain", "sentence"]


def explain(index: Index, target: str) -> dict[str, Any]:
    """One JSON-able object: target, kind, decision, orders, rule, rules, host_level,
    restored_by (when a restoration lifted the host), signed_by (act id -> the
    keyring ids that signed it, when the acts were loaded with a keyring),
    blocklist_version, at; a URL also `canonical` (how writ reads it) and
    `read_as` (its second reading, when it has one); an invalid target has
    decision "invalid" and `error`."""
    url = is_url(target)
    ip = not url and looks_like_ip(target)
    out: dict[str, Any] = {"target": target, "kind": "url" if url else "ip" if ip else "name"}
    try:  # canonicalised once: the decision and the restoration note use the same host
        if ip:
            p = canonical_ip(target)
            host, d = str(p), index.decide_ip(target)
            out["canonical"] = host
            if not p.is_address:
                out["kind"] = "ip_prefix"
                out["addresses"] = p.size
        elif url:
            u = canonical_url(target)
            host, d = u.host, _decide_readings(index, u, out)
        else:
            host = canonical_name(target)
            d = index.decide_canonical_name(host)
    except (CanonError, IpError) as e:
        out.update(decision="invalid", orders=[], rule=None, error=str(e))
    else:
        out.update(decision=d.decision.value, orders=list(d.orders), rule=d.rule,
                   rules=list(d.rules), host_level=d.host_level)
        if d.decision is not Verdict.BLOCK and host in index.restored:
            out["restored_by"] = list(index.restored[host])
    signed = {i: list(a.signers) for i in [*out["orders"], *out.get("restored_by", [])]
              if (a := index.acts.get(i)) is not None and a.signers}
    if signed:  # loaded with a keyring: who vouched for each act behind the decision
        out["signed_by"] = signed
    out["blocklist_version"] = index.version
    out["at"] = index.at.isoformat()
    return out


def _decide_readings(index: Index, u: CanonicalURL, out: dict[str, Any]) -> Decision:
    """A URL as the proxy judges it: its canonical form (`canonical`) and, when
    `%2F`, `%5C` or `;params` give it a second reading (`read_as`), blocked if
    either reading is (docs/regulator.md, "How writ reads them")."""
    out["canonical"] = str(u)
    d = index.decide_canonical_url(u)
    alt = separator_reading(u.path)
    if alt is None:
        return d
    other = CanonicalURL(u.host, alt, u.query)
    out["read_as"] = str(other)
    if d.decision is Verdict.BLOCK:
        return d
    return index.decide_canonical_url(other)


def _acts(index: Index, ids: list[str]) -> str:
    parts = []
    for i in ids:
        a = index.acts.get(i)
        if a is None:
            parts.append(i)
            continue
        what = {"restore": "restoration", "revoke": "revocation"}.get(a.kind.value, "order")
        signed = f", signed by {', '.join(a.signers)}" if a.signers else ""
        parts.append(f"{i} ({what} of {a.court}, case {a.case}, "
                     f"issued {a.issued.isoformat()}{signed})")
    return "; ".join(parts)


def sentence(index: Index, e: dict[str, Any]) -> str:
    """A human sentence saying why."""
    t, d = e["target"], e["decision"]
    if "read_as" in e:
        t = f"{t} (read as {e['canonical']} and as {e['read_as']})"
    elif "canonical" in e and e["canonical"] not in t:
        t = f"{t} (read as {e['canonical']})"
    if d == "invalid":
        return f"INVALID    {t}: {e['error']}"
    if d == "block":
        what = {"url": "URL", "ip": "address", "ip_prefix": "prefix"}.get(e["kind"], "name")
        if e["kind"] == "ip_prefix":
            return (f"BLOCK      {t}: {len(e['rules'])} rule(s) cover part or all of this "
                    f"prefix ({', '.join(e['rules'])}) — {_acts(index, e['orders'])}")
        return (f"BLOCK      {t}: this {what} is blocked by rule `{e['rule']}` — "
                f"{_acts(index, e['orders'])}")
    if d == "url-rules":
        return (f"URL-RULES  {t}: DNS resolves this host (no host-level block); the proxy "
                f"blocks only the URLs named by {_acts(index, e['orders'])}")
    restored = e.get("restored_by")
    if restored:
        return f"ALLOW      {t}: access was restored by {_acts(index, restored)}"
    return f"ALLOW      {t}: no order in force blocks it"
