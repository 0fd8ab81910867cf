"""The Batcher: concurrent lookups share one blocking call, errors reach every caller."""

import asyncio
from collections.abc import Sequence

import pytest

from ws_server.batching import Batcher, Gone, QueueFull


class Squares:
    """A blocking bulk lookup that records the batches it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail

    def __call__(self, keys: Sequence[int]) -> dict[int, int]:
        self.batches.append(list(keys))
        if self.fail:
            raise ValueError("the database is gone")
        return {key: key * key for key in keys}


def test_concurrent_loads_share_one_call_with_distinct_keys():
    """Forty handshakes asking at once cost one lookup, each key asked once."""
    squares = Squares()

    async def main() -> list[int]:
        batcher = Batcher(squares)
        keys = [n % 30 for n in range(40)]
        return await asyncio.gather(*(batcher.load(key) for key in keys))

    assert asyncio.run(main()) == [(n % 30) ** 2 for n in range(40)]
    assert squares.batches == [list(range(30))]


def test_batches_are_bounded():
    """Past max_batch, the keys wait for the next call."""
    squares = Squares()

    async def main() -> None:
        batcher = Batcher(squares, max_batch=16)
        await asyncio.gather(*(batcher.load(key) for key in range(40)))

    asyncio.run(main())
    assert [len(batch) for batch in squares.batches] == [16, 16, 8]


def test_a_load_alone_is_answered_at_once():
    """On an idle server a key is looked up by itself, without waiting for others."""
    squares = Squares()

    async def main() -> list[int]:
        batcher = Batcher(squares)
        return [await batcher.load(key) for key in (2, 3)]

    assert asyncio.run(main()) == [4, 9]
    assert squares.batches == [[2], [3]]


def test_a_failed_lookup_reaches_every_caller_and_the_next_one_works():
    squares = Squares(fail=True)

    async def main() -> None:
        batcher = Batcher(squares)
        results = await asyncio.gather(
            batcher.load(1), batcher.load(2), return_exceptions=True
        )
        assert [type(result) for result in results] == [ValueError, ValueError]
        squares.fail = False
        assert await batcher.load(3) == 9

    asyncio.run(main())


def test_a_caller_that_gives_up_does_not_disturb_the_others():
    """A connection closed mid-handshake cancels its wait; its batch still answers the rest."""
    squares = Squares()

    async def main() -> int:
        batcher = Batcher(squares)
        impatient = asyncio.create_task(batcher.load(1))
        patient = asyncio.create_task(batcher.load(2))
        await asyncio.sleep(0)
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        return await patient

    assert asyncio.run(main()) == 4


def test_a_full_queue_refuses_at_once():
    """Past max_queue waiting keys, a new one is refused without waiting."""
    squares = Squares()

    async def main() -> None:
        batcher = Batcher(squares, max_batch=2, max_queue=3)
        first = asyncio.create_task(batcher.load(0))
        await asyncio.sleep(0)  # the worker took key 0; its lookup runs
        waiting = [asyncio.create_task(batcher.load(key)) for key in (1, 2, 3)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await batcher.load(4)
        assert await asyncio.gather(first, *waiting) == [0, 1, 4, 9]

    asyncio.run(main())
    assert 4 not in [key for batch in squares.batches for key in batch]


def test_a_caller_that_gave_up_while_queued_is_not_looked_up():
    """A wait cancelled (a handshake past its deadline) before its batch runs
    costs no lookup."""
    squares = Squares()

    async def main() -> int:
        batcher = Batcher(squares)
        first = asyncio.create_task(batcher.load(1))
        await asyncio.sleep(0)  # key 1's lookup runs; the next keys queue
        impatient = asyncio.create_task(batcher.load(2))
        patient = asyncio.create_task(batcher.load(3))
        await asyncio.sleep(0)
        impatient.cancel()
        await first
        return await patient

    assert asyncio.run(main()) == 9
    assert squares.batches == [[1], [3]]


def test_a_caller_whose_connection_left_is_not_looked_up():
    """A key no longer wanted when its batch is taken (its connection closed)
    costs no lookup; its caller hears Gone."""
    squares = Squares()

    async def main() -> None:
        batcher = Batcher(squares)
        first = asyncio.create_task(batcher.load(1))
        await asyncio.sleep(0)
        gone = asyncio.create_task(batcher.load(2, wanted=lambda: False))
        kept = asyncio.create_task(batcher.load(3, wanted=lambda: True))
        assert await first == 1
        with pytest.raises(Gone):
            await gone
        assert await kept == 9

    asyncio.run(main())
    assert squares.batches == [[1], [3]]


def test_queued_keys_nobody_wants_do_not_fill_the_queue():
    """Keys whose connections left make room for new ones."""
    squares = Squares()

    async def main() -> None:
        batcher = Batcher(squares, max_batch=1, max_queue=2)
        first = asyncio.create_task(batcher.load(0))
        await asyncio.sleep(0)
        left = [
            asyncio.create_task(batcher.load(key, wanted=lambda: False))
            for key in (1, 2)
        ]
        await asyncio.sleep(0)
        assert await batcher.load(3) == 9
        await first
        for task in left:
            with pytest.raises(Gone):
                await task

    asyncio.run(main())
    assert squares.batches == [[0], [3]]
