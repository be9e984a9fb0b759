"""The import rules of DESIGN §1, checked on the source (no imports executed).

- writ.blocklist, the pure core, imports none of dns/proxy/web/audit and no
  network library (its stores/ subpackage, the I/O edge of the core, may use
  Redis and asyncio, but still no shell);
- writ.audit imports only the core's types (and the policy model);
- the shells dns, proxy and web never import each other;
- no module is named after a third-party import (mitmproxy's -s loader puts
  the script's folder on sys.path).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WRIT = Path(__file__).resolve().parents[1] / "writ"
NETWORK = {"socket", "asyncio", "redis", "aiohttp", "mitmproxy", "dnslib", "uvloop", "ssl"}
SHELLS = {"writ.dns", "writ.proxy", "writ.web"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((WRIT / package).rglob("*.py"))


def under(name: str, prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", [p for p in modules("blocklist") if "stores" not in p.parts],
                         ids=lambda p: p.name)
def test_the_core_is_pure(path: Path) -> None:
    bad = {m for m in imports(path)
           if under(m, SHELLS | {"writ.audit", "writ.node", "writ.commands"})
           or m.split(".")[0] in NETWORK}
    assert not bad, f"{path.relative_to(WRIT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules("blocklist/stores"), ids=lambda p: p.name)
def test_the_stores_import_no_shell(path: Path) -> None:
    bad = {m for m in imports(path) if under(m, SHELLS | {"writ.audit", "writ.node"})}
    assert not bad, f"{path.relative_to(WRIT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", modules("audit"), ids=lambda p: p.name)
def test_audit_imports_only_core_types(path: Path) -> None:
    bad = {m for m in imports(path) if m.startswith("writ")
           and not under(m, {"writ.audit", "writ.blocklist", "writ.policies"})}
    assert not bad, f"{path.relative_to(WRIT)} imports {sorted(bad)}"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_shells_never_import_each_other(shell: str) -> None:
    others = SHELLS - {shell}
    for path in modules(shell.split(".")[1]):
        bad = {m for m in imports(path) if under(m, others)}
        assert not bad, f"{path.relative_to(WRIT)} imports {sorted(bad)}"


def test_no_module_shadows_a_third_party_package() -> None:
    shadowing = {"dns", "redis", "yaml", "proxy", "mitmproxy", "dnslib", "aiohttp",
                 "structlog", "idna", "cryptography", "socket", "asyncio", "http", "json"}
    named = [p for p in WRIT.rglob("*.py") if p.stem in shadowing]
    assert not named, named


@pytest.mark.parametrize("path", modules("icap"), ids=lambda p: p.name)
def test_icap_shares_only_the_proxys_verdict(path: Path) -> None:
    """writ.icap is a shell too: of the proxy it uses the pure verdict
    (judge.py) and the record's way of showing a host (facts.shown), one
    source of truth; nothing of mitmproxy's, and no other shell."""
    allowed = {"writ.proxy.judge", "writ.proxy.facts"}
    bad = {m for m in imports(path)
           if (under(m, SHELLS) and m not in allowed) or m.split(".")[0] == "mitmproxy"}
    assert not bad, f"{path.relative_to(WRIT)} imports {sorted(bad)}"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_no_shell_imports_icap(shell: str) -> None:
    for path in modules(shell.split(".")[1]):
        bad = {m for m in imports(path) if under(m, {"writ.icap"})}
        assert not bad, f"{path.relative_to(WRIT)} imports {sorted(bad)}"
