"""
Debian packages the tests drive (nginx, GNU gettext), installed with
apt-get when missing, the way CI's machine has them: a test that needs one
skips where it can't be installed, and fails under CI, which must run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping

import pytest

__all__ = ["install_packages"]

#: apt-get waits this long for another apt run's lock, and for itself.
APT_LOCK_TIMEOUT = 120
APT_TIMEOUT = 600


def install_packages(packages: Mapping[str, str], *, needed_by: str) -> None:
    """
    Install the Debian ``packages`` (name: a file it installs) whose file is
    missing; skip the test, or fail it under CI, if that can't be done.
    """
    missing = [name for name, path in packages.items() if not os.path.exists(path)]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _unavailable(needed_by, f"{' and '.join(missing)} missing, and no root apt-get")
    problem = _apt_get("install", *missing)
    if problem:  # a fresh machine may have no package lists yet
        problem = _apt_get("update") or _apt_get("install", *missing)
    if problem:
        _unavailable(
            needed_by, f"apt-get could not install {' '.join(missing)}: {problem}"
        )


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(needed_by: str, reason: str) -> None:
    """Skip the test, or fail it under CI, which must run it."""
    if _under_ci():
        pytest.fail(f"{needed_by}: {reason}", pytrace=False)
    pytest.skip(reason)


def _apt_get(*args: str) -> str:
    """Run apt-get; return "" on success, else the end of its output."""
    command = ["apt-get", "-qq", "-o", f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT}"]
    if args[0] == "install":
        command += ["-y", "--no-install-recommends"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        result = subprocess.run(
            [*command, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=APT_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"apt-get {args[0]} took over {APT_TIMEOUT}s"
    if result.returncode == 0:
        return ""
    return (result.stderr or result.stdout).strip()[-500:]
