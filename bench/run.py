"""
The benchmark suite's one command.

    python3 bench/run.py                 # N = 1,000, 5,000, 10,000; writes
                                         # bench/results/latest.json and
                                         # docs/benchmarks.md (+ .png)
    python3 bench/run.py --smoke         # N = 50, < 60 s; what CI runs
    python3 bench/run.py --sizes 1000 --servers raw,ours
    python3 bench/run.py --sizes 1000 --servers raw,ours --events notification,push
                                         # live-only pushes A/B with notifications
    python3 bench/run.py --sizes 1000 --servers ours --ack off,on
                                         # clients acknowledge (live.js), A/B
                                         # with clients that don't

It builds bench/.venv on first use, starts a private Redis unless REDIS_URL
answers, and stops every process it started, on Ctrl-C too. See
docs/benchmarks.md for what it measures and how.
"""

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from scripts.bootstrap import ensure_venv  # noqa: E402  (stdlib only, before the venv)

if __name__ == "__main__":
    # Its own venv: Channels, uvicorn, matplotlib... never in the project's.
    ensure_venv(BENCH_DIR / ".venv", BENCH_DIR / "requirements.txt")
    from bench.suite import main

    sys.exit(main(sys.argv[1:]))
