"""The Batcher: concurrent lookups share one blocking call, errors reach every caller."""

import asyncio
from collections.abc import Sequence

import pytest

from ws_server.batching import Batcher


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
