"""
Create the project's virtualenv on first use and re-run the script inside it.

The quick-start commands are a plain ``python3 scripts/...`` on a machine that
has nothing but Python, so this module uses the standard library only.
Requirements are installed again only when their files change: a stamp in
.venv holds their digest, and a re-run with nothing to do takes a second.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["REPO_ROOT", "VENV_DIR", "ensure_venv"]

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = REPO_ROOT / ".venv"
VENV_PYTHON = VENV_DIR / "bin" / "python"
REQUIREMENTS = (REPO_ROOT / "requirements.txt", REPO_ROOT / "requirements-dev.txt")
STAMP = VENV_DIR / ".requirements.sha256"


def ensure_venv() -> None:
    """Return when running in an up-to-date .venv; otherwise re-run the script there.

    Create .venv and install the requirements as needed, then replace this
    process with the venv's Python on the same script and arguments. The stamp
    is checked inside the venv too, so a changed requirements file is installed
    even when the script was started with .venv/bin/python.
    """
    if not VENV_PYTHON.exists():
        _create_venv()
    digest = _requirements_digest()
    if _read_stamp() != digest:
        _install_requirements()
        STAMP.write_text(digest + "\n")
    if Path(sys.prefix).resolve() != VENV_DIR.resolve():
        sys.stdout.flush()
        os.execv(VENV_PYTHON, [str(VENV_PYTHON), *sys.argv])


def _create_venv() -> None:
    """Create .venv, removing a half-made one so that the next run starts clean."""
    print("Creating virtualenv in .venv ...", flush=True)
    if not _run_quietly([sys.executable, "-m", "venv", str(VENV_DIR)]):
        shutil.rmtree(VENV_DIR, ignore_errors=True)
        sys.exit(
            "Could not create .venv (output above). If it says ensurepip is not "
            "available, install Python's venv support (Debian/Ubuntu: apt-get "
            "install python3-venv) and run this again."
        )


def _install_requirements() -> None:
    print("Installing requirements into .venv (the first time takes a minute) ...")
    requirements = str(REPO_ROOT / "requirements-dev.txt")
    pip = [str(VENV_PYTHON), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    if not _run_quietly([*pip, "install", "--requirement", requirements]):
        sys.exit("pip install failed (output above); fix that and run this again.")


def _run_quietly(command: list[str]) -> bool:
    """Run ``command`` with its output held back; show it only if it fails."""
    sys.stdout.flush()
    result = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        check=False,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout)
    return result.returncode == 0


def _requirements_digest() -> str:
    """Hash both requirements files: dev includes the runtime one with ``-r``."""
    digest = hashlib.sha256()
    for path in REQUIREMENTS:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _read_stamp() -> str | None:
    try:
        return STAMP.read_text().strip()
    except FileNotFoundError:
        return None
