"""The import rules of docs/design.md §1, checked on the source (no imports executed).

- writ.blocklist, the pure core, imports none of dns/proxy/web/audit and no
  network library (its stores/ subpackage, the I/O edge of the core, may use
  Redis and asyncio, but still no shell);
- writ.audit imports only the core's types (and the policy model);
- the shells dns, proxy and web never import each other, writ.node or
  writ.commands (they receive what they need through their constructors);
- writ.node never imports writ.commands (domain errors are raised below and
  turned into CLI errors in writ/commands/);
- the import graph of writ/ has no cycles;
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
    """Every module named by an import anywhere in the file; `from P import x`
    names P and P.x (x may be a module: `from writ import node` is writ.node)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
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


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_shells_never_import_the_wiring_or_the_commands(shell: str) -> None:
    for path in modules(shell.split(".")[1]):
        bad = {m for m in imports(path) if under(m, {"writ.node", "writ.commands"})}
        assert not bad, f"{path.relative_to(WRIT)} imports {sorted(bad)}"


def test_the_node_never_imports_the_commands() -> None:
    bad = {m for m in imports(WRIT / "node.py") if under(m, {"writ.commands"})}
    assert not bad, f"node.py imports {sorted(bad)}"


def module_name(path: Path) -> str:
    parts = path.relative_to(WRIT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the writ modules it imports, at any depth of its code (imports
    inside functions and under TYPE_CHECKING count too). `from P import m`,
    where P.m is a module, is an edge to P.m alone: Python loads P first in any
    case, as it does for every import of a submodule, and that is no cycle."""
    paths = {module_name(p): p for p in WRIT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in paths)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                subs = {f"{base}.{a.name}" for a in node.names} & paths.keys()
                edges.update(subs)
                if len(subs) < len(node.names) and base in paths:
                    edges.add(base)
        graph[name] = edges - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 50  # the walk found the package
    found = cycles(graph)
    detail = [{m: sorted(graph[m] & set(c)) for m in c} for c in found]
    assert not found, detail


def test_a_cycle_is_found() -> None:
    """The detector itself: a planted cycle, and a chain that is none."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_module_shadows_a_third_party_package() -> None:
    shadowing = {"dns", "redis", "yaml", "proxy", "mitmproxy", "dnslib", "aiohttp",
                 "structlog", "idna", "cryptography", "socket", "asyncio", "http", "json"}
    named = [p for p in WRIT.rglob("*.py") if p.stem in shadowing]
    assert not named, named


def test_code_cites_the_repositorys_own_design() -> None:
    """Comments cite docs/design.md, which is in the repository, and only
    sections it has; never documents that are not (docs/design.md)."""
    import re

    root = WRIT.parent
    headings = set(re.findall(r"^## (\d+)\.", (root / "docs" / "design.md").read_text(), re.M))
    foreign = re.compile(r"\b(?:DESIGN|STYLE) §|\.\./shared\b|/work/(?:shared)")
    cited = re.compile(r"docs/design\.md §(\d+)")
    bad = []
    for path in [*WRIT.rglob("*.py"), *(root / "tests").rglob("*.py"),
                 *(root / "bench").rglob("*.py"), *(root / "docs").glob("*.md")]:
        text = path.read_text()
        bad += [f"{path.relative_to(root)}: {m.group(0)}" for m in foreign.finditer(text)]
        bad += [f"{path.relative_to(root)}: §{n} (no such section)"
                for n in cited.findall(text) if n not in headings]
    assert not bad, bad


# The parts of a running node, and who may put them together (docs/design.md §4).
WIRING = {"DnsServer", "Listeners", "open_store", "run_proxy", "run_web", "from_policy"}


def test_only_the_node_wires_a_node() -> None:
    """No command or shell builds a node's parts itself (as `writ dns --workers`
    did, in commands/dnsd.py and dns/workers.py): they go through writ.node."""
    bad = []
    for path in sorted(WRIT.rglob("*.py")):
        rel = path.relative_to(WRIT).as_posix()
        if rel == "node.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else (
                    f.attr if isinstance(f, ast.Attribute) else "")
                if name in WIRING:
                    bad.append(f"{rel}:{node.lineno}: {name}()")
    assert not bad, bad


@pytest.mark.parametrize("path", modules("icap"), ids=lambda p: p.name)
def test_icap_shares_only_the_proxys_verdict(path: Path) -> None:
    """writ.icap is a shell too: of the proxy it uses the pure verdict
    (judge.py) and the record's way of showing a host (facts.shown), one
    source of truth; nothing of mitmproxy's, and no other shell."""
    allowed = {"writ.proxy.judge", "writ.proxy.facts"}
    bad = {m for m in imports(path)
           if (under(m, SHELLS) and not under(m, allowed)) or m.split(".")[0] == "mitmproxy"}
    assert not bad, f"{path.relative_to(WRIT)} imports {sorted(bad)}"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_no_shell_imports_icap(shell: str) -> None:
    for path in modules(shell.split(".")[1]):
        bad = {m for m in imports(path) if under(m, {"writ.icap"})}
        assert not bad, f"{path.relative_to(WRIT)} imports {sorted(bad)}"
