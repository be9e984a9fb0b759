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
import tempfile
import time
from pathlib import Path

from tests.ports import free_port

__all__ = ["CONF", "Squid", "squid_binary"]

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


class Squid:
    def __init__(self, binary: str, *, icap_url: str | None, bypass: bool = False,
                 names: tuple[str, ...] = (), replace_writ_block: str | None = None,
                 extra: str = "") -> None:
        """`icap_url` (`127.0.0.1:PORT/writ`): writ's service; `names` resolve to
        127.0.0.1; `replace_writ_block`: lines that stand instead of the
        config's writ block (the benchmark's plain-Squid ACLs); `extra`: lines
        appended (@RUN_DIR@ is filled in there too)."""
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
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
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
