"""The ORM doorway's account of calls that outlive their timeout."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import override_settings

from ws_server import db

TIMEOUT = 0.2


@override_settings(NOTIFICATIONS_DB_TIMEOUT=TIMEOUT)
def test_calls_stuck_past_their_timeout_are_counted_until_they_return():
    """Each call gives up after the timeout while its thread stays in the
    driver (here: a wait the test releases): stuck_calls() counts them, and
    wedged() holds once every ORM thread has been stuck for WEDGED_FACTOR
    timeouts; both clear when the calls return."""
    release = threading.Event()

    async def scenario() -> tuple[int, bool, bool, int, bool]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(db.ORM_THREADS))
        for _ in range(db.ORM_THREADS):
            with pytest.raises(db.DatabaseUnavailable):
                await db.run_orm(release.wait, 10)
        # The last call's thread may have started it a moment after its
        # caller's clock did.
        await asyncio.sleep(TIMEOUT / 2)
        stuck, early = db.stuck_calls(), db.wedged()
        await asyncio.sleep(db.WEDGED_FACTOR * TIMEOUT)
        wedged = db.wedged()
        release.set()
        await loop.shutdown_default_executor()
        return stuck, early, wedged, db.stuck_calls(), db.wedged()

    stuck, early, wedged, stuck_after, wedged_after = asyncio.run(scenario())
    assert (stuck, early, wedged) == (db.ORM_THREADS, False, True)
    assert (stuck_after, wedged_after) == (0, False)
