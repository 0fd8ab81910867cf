"""
A real nginx for end-to-end tests: Debian's package, installed when missing,
running the committed site configuration (docs/deploy/nginx.conf) with the
test's ports, upstreams and a self-signed certificate, as a child process
whose files all live in one temporary directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from tests.debian import install_packages

__all__ = [
    "NginxProcess",
    "install_nginx",
    "render_site",
    "self_signed_certificate",
]

BASE_DIR = Path(__file__).resolve().parent.parent
SITE_CONFIG = BASE_DIR / "docs" / "deploy" / "nginx.conf"

#: Debian's nginx, and the openssl command that makes the test certificate.
PACKAGES = {"nginx": "/usr/sbin/nginx", "openssl": "/usr/bin/openssl"}

#: The test's main configuration: what Debian's /etc/nginx/nginx.conf does
#: for a real deployment, with every path inside the test's directory.
MAIN_CONFIG = """\
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;

events {{
    worker_connections 256;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {site};
}}
"""


def install_nginx() -> str:
    """Return nginx's path, installing Debian's packages first if missing."""
    install_packages(PACKAGES, needed_by="the nginx tests need nginx")
    return PACKAGES["nginx"]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, valid one day; clients trust it
    by loading the certificate as their only CA."""
    certificate, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            PACKAGES["openssl"],
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return certificate, key


def render_site(replacements: Mapping[str, str | None]) -> str:
    """
    The committed site configuration with whole lines replaced.

    Each key is a directive as written in the file (``listen 443 ssl;``,
    spaces collapsed); its line is replaced by the value, or dropped for
    None. A key that doesn't match exactly one line fails: the file and the
    test moved apart.
    """
    lines = SITE_CONFIG.read_text().splitlines()
    for directive, replacement in replacements.items():
        found = [n for n, line in enumerate(lines) if _directive(line) == directive]
        assert len(found) == 1, (
            f"{directive!r} is on {len(found)} lines of {SITE_CONFIG}"
        )
        if replacement is None:
            del lines[found[0]]
        else:
            indent = lines[found[0]][: -len(lines[found[0]].lstrip())]
            lines[found[0]] = indent + replacement
    return "\n".join(lines) + "\n"


def _directive(line: str) -> str:
    """A line without its comment, its spaces collapsed."""
    return " ".join(line.partition("#")[0].split())


class NginxProcess:
    """
    ``nginx -p DIR -c nginx.conf -g 'daemon off;'``, for one site.

    Stopped with SIGTERM (nginx's fast shutdown: open sockets are closed).
    ``log()`` returns the error log, for failure messages.
    """

    def __init__(self, binary: str, directory: Path, site: str, *, port: int) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port
        (directory / "site.conf").write_text(site)
        # Workers run as whoever runs the tests (root in CI), so that they
        # may use the temporary paths inside pytest's private directory; a
        # deployment keeps Debian's www-data.
        user = "user root root;" if os.geteuid() == 0 else ""
        (directory / "nginx.conf").write_text(
            MAIN_CONFIG.format(user=user, dir=directory, site=directory / "site.conf")
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> None:
        """Start nginx and wait until it accepts connections on ``port``."""
        self.process = subprocess.Popen(
            [
                self.binary,
                "-p",
                str(self.directory),
                "-c",
                str(self.directory / "nginx.conf"),
                "-e",
                str(self.directory / "error.log"),
                "-g",
                "daemon off;",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"nginx exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"nginx doesn't listen on {self.port} after {timeout}s:\n"
                        + self.log()
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def log(self, lines: int = 40) -> str:
        """The last lines of nginx's error log."""
        path = self.directory / "error.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> NginxProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
