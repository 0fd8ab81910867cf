"""
Run the linters CI runs: ruff check, ruff format --check, mypy.

    python3 scripts/lint.py

Creates .venv on first use, like the other scripts.
"""

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bootstrap import REPO_ROOT, VENV_DIR, ensure_venv

CHECKS = [
    ["ruff", "check", "."],
    ["ruff", "format", "--check", "."],
    ["mypy"],
]


def main() -> int:
    """Run every check, even after a failure; return non-zero if any failed."""
    ensure_venv()
    failed = []
    for command in CHECKS:
        print(f"== {' '.join(command)} ==", flush=True)
        binary = str(VENV_DIR / "bin" / command[0])
        if subprocess.run([binary, *command[1:]], cwd=REPO_ROOT).returncode != 0:
            failed.append(command[0] if len(command) == 1 else " ".join(command[:2]))
    if failed:
        print(f"lint: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
