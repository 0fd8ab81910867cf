"""
Create the project's virtualenv on first use and re-run the script inside it.

The quick-start commands are a plain ``python3 scripts/...`` on a machine that
has nothing but Python, so this module uses the standard library only.
Requirements are installed again only when their files change: a stamp in
.venv holds their digest, and a re-run with nothing to do takes a second.
Another interpreter gets a venv of its own (``venv_for``), so the suite can
run on each Python and Django that CI tests without one venv undoing another.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["REPO_ROOT", "VENV_DIR", "ensure_venv", "venv_for"]

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = REPO_ROOT / ".venv"
DEV_REQUIREMENTS = REPO_ROOT / "requirements-dev.txt"
STAMP_NAME = ".requirements.sha256"


def venv_for(interpreter: str | None) -> Path:
    """The venv for ``interpreter`` (a command or a path): .venv for the one
    running this script, .venv-python3.13 for ``python3.13``."""
    if interpreter is None:
        return VENV_DIR
    return REPO_ROOT / f".venv-{Path(interpreter).name}"


def ensure_venv(
    venv_dir: Path = VENV_DIR,
    requirements: Path = DEV_REQUIREMENTS,
    *,
    interpreter: str | None = None,
) -> None:
    """Return when running in an up-to-date venv; otherwise re-run the script there.

    Create ``venv_dir`` with ``interpreter`` (by default the interpreter running
    this script) and install ``requirements`` as needed, then replace
    this process with the venv's Python on the same script and arguments. The
    stamp is checked inside the venv too, so a changed requirements file is
    installed even when the script was started with the venv's Python. The
    benchmark has a venv of its own (bench/.venv), built the same way.
    """
    python = venv_dir / "bin" / "python"
    stamp = venv_dir / STAMP_NAME
    if not python.exists():
        _create_venv(venv_dir, interpreter)
    digest = _requirements_digest(requirements)
    if _read_stamp(stamp) != digest:
        _install_requirements(python, requirements)
        stamp.write_text(digest + "\n")
    if Path(sys.prefix).resolve() != venv_dir.resolve():
        sys.stdout.flush()
        os.execv(python, [str(python), *sys.argv])


def _create_venv(venv_dir: Path, interpreter: str | None) -> None:
    """Create the venv, removing a half-made one so that the next run starts clean."""
    name = venv_dir.relative_to(REPO_ROOT)
    executable = sys.executable if interpreter is None else shutil.which(interpreter)
    if executable is None:
        sys.exit(f"Cannot create {name}: no {interpreter} on PATH.")
    print(f"Creating virtualenv in {name} ...", flush=True)
    if not _run_quietly([executable, "-m", "venv", str(venv_dir)]):
        shutil.rmtree(venv_dir, ignore_errors=True)
        sys.exit(
            f"Could not create {name} (output above). If it says ensurepip is not "
            "available, install Python's venv support (Debian/Ubuntu: apt-get "
            "install python3-venv) and run this again."
        )


def _install_requirements(python: Path, requirements: Path) -> None:
    print(
        f"Installing {requirements.relative_to(REPO_ROOT)} "
        "(the first time takes a minute) ..."
    )
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    if not _run_quietly([*pip, "install", "--requirement", str(requirements)]):
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


def _requirements_digest(requirements: Path) -> str:
    """Hash the requirements file and the ones it includes with ``-r``."""
    digest = hashlib.sha256()
    for path in _with_includes(requirements):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _with_includes(requirements: Path) -> list[Path]:
    paths = [requirements]
    for line in requirements.read_text().splitlines():
        if line.startswith(("-r ", "--requirement ")):
            included = requirements.parent / line.split(maxsplit=1)[1].strip()
            paths += _with_includes(included.resolve())
    return paths


def _read_stamp(stamp: Path) -> str | None:
    try:
        return stamp.read_text().strip()
    except FileNotFoundError:
        return None
