"""
Run several server processes on one port (SO_REUSEPORT).

One asyncio process uses one core; ``runwsserver --workers N`` starts N
copies of itself that bind the same port with SO_REUSEPORT, and the kernel
spreads new connections across them. Each worker reads the whole Redis
stream, exactly like separate hosts would. The parent only supervises: it
forwards SIGINT/SIGTERM, and if one worker dies it stops the others and exits
non-zero, so the process manager restarts a whole, consistent set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from notifications.conf import settings

__all__ = ["run_workers"]

logger = logging.getLogger(__name__)

#: Seconds past a worker's own bounds before it is killed at shutdown.
STOP_MARGIN = 3.0


def stop_timeout() -> float:
    """
    Seconds a worker may take to stop once forwarded SIGTERM: a database
    lookup in flight, the drain of its connections, closing Redis, and a
    margin. A fixed figure would cut a longer configured drain short.
    """
    bounds = (settings.DB_TIMEOUT, settings.SHUTDOWN_TIMEOUT, settings.REDIS_TIMEOUT)
    return float(sum(bounds)) + STOP_MARGIN


async def run_workers(command: Sequence[str], count: int) -> int:
    """Run ``count`` copies of ``command`` until a signal; return an exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    workers = [await asyncio.create_subprocess_exec(*command) for _ in range(count)]
    logger.info("started %d workers: %s", count, ", ".join(str(w.pid) for w in workers))
    exits = [asyncio.create_task(worker.wait()) for worker in workers]
    stop_task = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([stop_task, *exits], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            return 0
        dead = next(w for w, done in zip(workers, exits, strict=True) if done.done())
        logger.error(
            "worker %d exited with %s; stopping the others", dead.pid, dead.returncode
        )
        return 1
    finally:
        stop_task.cancel()
        await _stop(workers)


async def _stop(workers: list[asyncio.subprocess.Process]) -> None:
    """SIGTERM every worker still running, then SIGKILL whoever lingers."""
    running = [worker for worker in workers if worker.returncode is None]
    for worker in running:
        with contextlib.suppress(ProcessLookupError):
            worker.terminate()
    try:
        async with asyncio.timeout(stop_timeout()):
            await asyncio.gather(*(worker.wait() for worker in running))
    except TimeoutError:
        for worker in running:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
