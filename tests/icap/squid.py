"""A Squid process owned by a test or a benchmark (no pytest here).

It runs Debian's `squid` binary in the foreground (`-N`) on a free loopback
port, on deploy/squid/squid.conf with the @…@ fields filled in, logs, pid and
error pages (Squid's templates plus writ's, deploy/squid/errors/) in its own
temporary folder, under its own service name (`-n`: its shared memory
segments do not meet another Squid's): never the system service, nothing on
disk.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.ports import free_port

__all__ = ["CONF", "SNI_CONF", "Squid", "is_openssl_build", "squid_binary", "writ_for_squid"]

CONF = Path(__file__).resolve().parents[2] / "deploy" / "squid" / "squid.conf"
ERRORS = CONF.parent / "errors"


def squid_templates(binary: str) -> Path:
    """Squid's own English error templates: DATADIR/errors/templates, DATADIR
    as `squid -v` shows it (/usr/share/squid on Debian)."""
    version = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"--datadir=([^' ]+)", version)
    return Path(found.group(1) if found else "/usr/share/squid") / "errors" / "templates"


def squid_binary() -> str | None:
    found = shutil.which("squid")
    if found:
        return found
    return "/usr/sbin/squid" if os.access("/usr/sbin/squid", os.X_OK) else None


# HTTPS with the SNI judged: deploy/squid/sni.conf, included where squid.conf says.
SNI_CONF = CONF.with_name("sni.conf")
_SNI_INCLUDE = "# include /etc/squid/writ-sni.conf\n"


def writ_for_squid(lib: Path) -> str:
    """The command that runs `writ` as Squid runs its helpers (sni.conf's
    @WRIT@). Squid started as root runs them as `proxy` (Debian's build),
    which may read neither this checkout nor this venv's Python (under
    /root): then a copy of writ's sources in `lib` (a folder of its own that
    `proxy` can reach, e.g. from tempfile.mkdtemp; the helper needs nothing
    else: writ.icap.sni) runs on the first Python 3.11+ `proxy` can start,
    this one or the system's. RuntimeError when there is none."""
    if os.geteuid() != 0:
        return f"/usr/bin/env PYTHONPATH={CONF.parents[2]} {sys.executable} -m writ.cli"
    lib.chmod(0o755)
    shutil.copytree(CONF.parents[2] / "writ", lib / "writ",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for python in (sys.executable, "/usr/bin/python3"):
        check = subprocess.run(
            ["runuser", "-u", "proxy", "--", "/usr/bin/env", f"PYTHONPATH={lib}", python,
             "-c", "import sys, writ.icap.sni; assert sys.version_info >= (3, 11)"],
            capture_output=True, check=False)
        if check.returncode == 0:
            return f"/usr/bin/env PYTHONPATH={lib} {python} -m writ.cli"
    raise RuntimeError(f"no Python 3.11+ that Squid's user `proxy` can run: {sys.executable} "
                       "is out of its reach, /usr/bin/python3 too old or missing "
                       "(.ci/run installs Debian's python3)")


def is_openssl_build(binary: str) -> bool:
    """Only a Squid built with OpenSSL has ssl_bump (Debian's `squid-openssl`)."""
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return "--with-openssl" in out.stdout


class Squid:
    def __init__(self, binary: str, *, icap_url: str | None, bypass: bool = False,
                 names: tuple[str, ...] = (), replace_writ_block: str | None = None,
                 extra: str = "", sni_helper: str | None = None) -> None:
        """`icap_url` (`127.0.0.1:PORT/writ`): writ's service; `names` resolve to
        127.0.0.1; `replace_writ_block`: lines that stand instead of the
        config's writ block (the benchmark's plain-Squid ACLs); `extra`: lines
        appended (@RUN_DIR@ is filled in there too); `sni_helper`: the command
        that stands for `writ` in deploy/squid/sni.conf (@WRIT@), which is then
        included, its port (ssl-bump, peeking at TLS hellos) in `sni_port`."""
        self.binary = binary
        text = CONF.read_text()
        if replace_writ_block is not None:
            start = text.index("# --- writ")
            end = text.index("\n# ---", start) + 1  # the closing rule line stays
            text = text[:start] + replace_writ_block + "\n" + text[end:]
        text += extra
        # Squid started as root runs as `proxy`: the folder must be open to it
        # (tmp_path's parents are not), and it is removed in stop().
        self.dir = Path(tempfile.mkdtemp(prefix="writ-squid-"))
        self.dir.chmod(0o777)
        self.sni_port = 0
        if sni_helper is not None:
            sni = self._sni_conf(sni_helper, icap_url or "127.0.0.1:1/none")
            text = text.replace(_SNI_INCLUDE, f"include {sni}\n", 1)
        self.port = free_port()
        (self.dir / "hosts").write_text(f"127.0.0.1 {' '.join(names) or 'localhost'}\n")
        errors = self.dir / "errors"
        templates = squid_templates(binary)
        if templates.is_dir():
            shutil.copytree(templates, errors)
        errors.mkdir(exist_ok=True)
        for page in ERRORS.iterdir():
            shutil.copyfile(page, errors / page.name)
        text = (text.replace("@HTTP_PORT@", str(self.port))
                .replace("@ICAP_URL@", icap_url or "127.0.0.1:1/none")
                .replace("@BYPASS@", "on" if bypass else "off")
                .replace("@ERROR_DIR@", str(errors))
                .replace("@RUN_DIR@", str(self.dir))
                .replace("@HOSTS@", str(self.dir / "hosts")))
        self.conf = self.dir / "squid.conf"
        self.conf.write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None

    def _sni_conf(self, helper: str, icap_url: str) -> Path:
        from tests.certs import self_signed  # (cryptography: only for this)

        # The ssl-bump port's certificate: loaded, never shown (nothing is bumped).
        (self.dir / "bump").mkdir()
        cert, key = self_signed(self.dir / "bump", "squid-peek.example")
        self.sni_port = free_port()
        path = self.dir / "sni.conf"
        path.write_text(SNI_CONF.read_text().replace("@BUMP_CERT@", str(cert))
                        .replace("@BUMP_KEY@", str(key)).replace("@WRIT@", helper)
                        .replace("@SNI_PORT@", str(self.sni_port))
                        .replace("@ICAP_URL@", icap_url))
        return path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        path = self.dir / "cache.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def start(self, timeout: float = 30) -> Squid:
        check = subprocess.run([self.binary, "-k", "parse", "-f", str(self.conf)],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            self.stop()
            raise RuntimeError(f"squid -k parse: {check.stderr[-2000:]}")
        self.proc = subprocess.Popen(
            [self.binary, "-N", "-n", f"writ{self.port}", "-f", str(self.conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                message = f"squid exited {self.proc.returncode}: {self.log()}"
                self.stop()
                raise RuntimeError(message)
            if all(map(_listens, (self.port, self.sni_port) if self.sni_port else (self.port,))):
                return self
            time.sleep(0.1)
        message = f"squid did not listen on {self.port}: {self.log()}"
        self.stop()
        raise RuntimeError(message)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # shutdown_lifetime 1 second
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
        # A Squid that died of a FATAL leaves its shared memory behind, and the
        # next one under this name (`-n`) would fail on it.
        for segment in Path("/dev/shm").glob(f"writ{self.port}-*"):
            segment.unlink(missing_ok=True)


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
