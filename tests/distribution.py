"""Building the distribution as a user would, for the packaging tests."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.servers import BASE_DIR

#: Not part of a source tree: environments, caches, earlier builds.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", ".cache", "build", "dist", "*.egg-info", "__pycache__", "runs"
)


def build_wheel(into: Path) -> Path:
    """
    Build the wheel (PEP 517, in an isolated environment) into ``into``.

    From a copy of the checkout: setuptools builds in the source tree and
    never removes a stale file from its ``build/``, so a file deleted from
    the repository could still ship from a developer's checkout.
    """
    source = into / "source"
    shutil.copytree(BASE_DIR, source, ignore=NOT_SOURCE)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(into), "."],
        cwd=source,
        check=True,
        timeout=300,
    )
    [wheel] = into.glob("*.whl")
    return wheel
