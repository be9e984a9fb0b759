"""The Dockerfile and docker-compose.yml, checked without a Docker engine:
they must reference only what exists in the repository and run only writ
commands that exist, as an unprivileged user, with ports on loopback."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from writ.cli import COMMANDS
from writ.commands.orders import VERBS
from writ.policies import load_policy, parse_endpoint

ROOT = Path(__file__).resolve().parents[1]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continuation line"
    return out


DOCKERFILE = instructions(ROOT / "Dockerfile")


def args_of(name: str) -> list[str]:
    return [rest for word, rest in DOCKERFILE if word == name]


def exec_form(rest: str) -> list[str]:
    value = yaml.safe_load(rest)  # a JSON array is YAML too
    assert isinstance(value, list), f"not exec form: {rest}"
    return [str(v) for v in value]


def check_writ_command(argv: list[str]) -> None:
    """argv runs a writ subcommand (and verb) that exists."""
    assert argv[0] == "writ", argv
    assert argv[1] in COMMANDS, f"no such writ command: {argv[1]}"
    if argv[1] == "orders":
        assert argv[2] in VERBS, f"no such orders verb: {argv[2]}"


CONTAINER_POLICY = load_policy(ROOT / "policies" / "container.yaml")


# -- Dockerfile --------------------------------------------------------------


def test_base_image_is_slim_python_312_or_newer() -> None:
    (base,) = args_of("FROM")
    m = re.fullmatch(r"python:3\.(\d+)-slim(?:-\w+)?", base)
    assert m, base
    assert int(m.group(1)) >= 12


def test_runs_as_an_unprivileged_user() -> None:
    users = args_of("USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # The last USER must come after every RUN, so nothing runs as root later.
    last_user = max(i for i, (w, _) in enumerate(DOCKERFILE) if w == "USER")
    assert all(i < last_user for i, (w, _) in enumerate(DOCKERFILE) if w == "RUN")


def test_copied_paths_exist_and_are_not_dockerignored() -> None:
    ignored = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    copies = args_of("COPY") + args_of("ADD")
    assert copies
    for rest in copies:
        *sources, _dest = rest.split()
        for src in sources:
            assert not src.startswith("--"), "COPY --from/--chown: extend this test"
            assert (ROOT / src).exists(), f"COPY source missing: {src}"
            hit = [p for p in ignored if fnmatch.fnmatch(src, p) or src.startswith(p + "/")]
            assert not hit, f"{src} is excluded by .dockerignore {hit}"


def test_installs_writ_with_pip() -> None:
    assert any("pip install" in r for r in args_of("RUN"))


def test_exposes_the_ports_of_the_baked_in_policy() -> None:
    exposed = {p for rest in args_of("EXPOSE") for p in rest.split()}
    dns_port = parse_endpoint(CONTAINER_POLICY.dns.listen[0])[1]
    assert {f"{dns_port}/udp", f"{dns_port}/tcp"} <= exposed
    for listen in (CONTAINER_POLICY.proxy.listen, CONTAINER_POLICY.web.listen):
        port = parse_endpoint(listen)[1]
        assert {str(port), f"{port}/tcp"} & exposed
    assert {"5300/udp", "5300/tcp", "8080/tcp", "8451/tcp"} <= exposed


def test_baked_in_policy_listens_where_published_ports_reach() -> None:
    # Inside a container a loopback listener is unreachable from outside.
    for listen in (*CONTAINER_POLICY.dns.listen, CONTAINER_POLICY.proxy.listen,
                   CONTAINER_POLICY.web.listen):
        assert parse_endpoint(listen)[0] in ("0.0.0.0", "::")


def test_healthcheck_asks_healthz_on_the_web_port_without_curl() -> None:
    (hc,) = args_of("HEALTHCHECK")
    cmd = exec_form(hc.split("CMD", 1)[1])
    assert cmd[:2] == ["python", "-c"]
    web_port = parse_endpoint(CONTAINER_POLICY.web.listen)[1]
    assert f"http://127.0.0.1:{web_port}/healthz" in cmd[2]
    compile(cmd[2], "<healthcheck>", "exec")  # the one-liner is valid Python


def test_default_command_serves_the_orders_mount_with_the_baked_in_policy() -> None:
    (cmd,) = args_of("CMD")
    argv = exec_form(cmd)
    check_writ_command(argv)
    assert argv[1] == "serve"
    assert argv[argv.index("--orders") + 1] == "/orders"
    policy = argv[argv.index("--policy") + 1]
    assert any(rest.split()[-1] == policy for rest in args_of("COPY"))


def test_hadolint_if_installed() -> None:
    # the dev extras install it next to this Python (Linux x86-64); else from PATH
    beside = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside) if beside.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (dev extras install it on Linux x86-64)")
    r = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


# -- docker-compose.yml ---------------------------------------------------------

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, object]] = COMPOSE["services"]
WRIT_SERVICES = {n: s for n, s in SERVICES.items() if s.get("image") == "writ:local"}


def test_compose_has_redis_a_one_shot_apply_and_two_nodes() -> None:
    assert {"redis", "orders-apply", "node-a", "node-b"} <= set(SERVICES)
    apply_cmd = SERVICES["orders-apply"]["command"]
    assert apply_cmd[:3] == ["writ", "orders", "apply"]
    assert "redis://redis:6379/0" in apply_cmd
    assert SERVICES["orders-apply"]["restart"] == "no"
    for node in ("node-a", "node-b"):
        cmd = SERVICES[node]["command"]
        assert cmd[:2] == ["writ", "serve"]
        assert cmd[cmd.index("--redis") + 1] == "redis://redis:6379/0"
        deps = SERVICES[node]["depends_on"]
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["orders-apply"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", sorted(WRIT_SERVICES))
def test_compose_runs_only_writ_commands_that_exist(name: str) -> None:
    check_writ_command(list(WRIT_SERVICES[name]["command"]))  # type: ignore[call-overload]


@pytest.mark.parametrize("name", sorted(WRIT_SERVICES))
def test_compose_builds_the_image_it_runs(name: str) -> None:
    assert WRIT_SERVICES[name].get("build") == "."


def test_compose_references_only_files_that_exist() -> None:
    named = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):  # type: ignore[attr-defined]
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in named, f"{name}: undeclared volume {source}"
        build = service.get("build")
        if build is not None:
            assert (ROOT / str(build) / "Dockerfile").is_file()


def test_compose_mounts_orders_read_only() -> None:
    (orders,) = [v for v in SERVICES["orders-apply"]["volumes"] if ":/orders" in v]
    assert orders.endswith(":ro")


def test_compose_publishes_ports_on_loopback_only_and_never_twice() -> None:
    seen: set[str] = set()
    for name, service in SERVICES.items():
        for port in service.get("ports", []):  # type: ignore[attr-defined]
            assert isinstance(port, str), f"{name}: use the string form HOST:PORT:PORT"
            host, host_port, _container = port.split(":")
            assert host == "127.0.0.1", f"{name}: {port} is not bound to loopback"
            proto = port.rsplit("/", 1)[1] if "/" in port else "tcp"
            key = f"{host_port}/{proto}"
            assert key not in seen, f"{name}: {key} published twice"
            seen.add(key)
    assert "ports" not in SERVICES["redis"], "Redis stays on the compose network"


def test_compose_nodes_publish_the_ports_their_policy_listens_on() -> None:
    policy_ports = {parse_endpoint(e)[1] for e in CONTAINER_POLICY.dns.listen}
    policy_ports |= {parse_endpoint(CONTAINER_POLICY.proxy.listen)[1],
                     parse_endpoint(CONTAINER_POLICY.web.listen)[1]}
    for node in ("node-a", "node-b"):
        vols = SERVICES[node]["volumes"]
        assert "./policies/container.yaml:/etc/writ/policy.yaml:ro" in vols
        inside = {int(p.split(":")[2].split("/")[0]) for p in SERVICES[node]["ports"]}
        assert inside == policy_ports
