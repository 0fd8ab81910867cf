"""The ledger: each event id through once, gaps below the newest, the resume cursor."""

from ws_server.ledger import MAX_GAPS, Ledger


def test_each_id_is_accepted_once():
    """An id is let through the first time only, whichever path brings it."""
    ledger = Ledger(high=10)
    assert ledger.accept(11, now=0)
    assert not ledger.accept(11, now=0)
    assert not ledger.accept(9, now=0)  # delivered before this process started


def test_ids_skipped_become_gaps_that_hold_the_cursor_back():
    """A newer id first leaves gaps; the cursor stays below them until they fill."""
    ledger = Ledger(high=10)
    ledger.accept(13, now=0)
    assert ledger.gaps == [11, 12]
    assert ledger.cursor == 10
    assert ledger.is_new(12)
    assert ledger.accept(12, now=1)
    assert ledger.cursor == 10
    assert ledger.accept(11, now=1)
    assert (ledger.cursor, ledger.gaps) == (13, [])


def test_old_gaps_are_given_up():
    """A gap older than the timeout (a rollback) stops holding the cursor back."""
    ledger = Ledger(high=10)
    ledger.accept(12, now=0)
    ledger.accept(14, now=5)
    assert ledger.expire(now=8, timeout=6) == [11]
    assert (ledger.cursor, ledger.gaps) == (12, [13])


def test_a_new_process_starts_with_the_gaps_it_was_given():
    """Ids missing just below the newest at start are awaited, not assumed delivered."""
    ledger = Ledger(high=20, gaps=[18, 19, 25], now=0)
    assert ledger.gaps == [18, 19]
    assert ledger.cursor == 17
    assert ledger.accept(19, now=0)


def test_a_jump_waits_only_for_the_ids_just_below_it():
    """An id far above the rest tracks at most MAX_GAPS gaps, the nearest ones."""
    ledger = Ledger(high=0)
    ledger.accept(MAX_GAPS * 3, now=0)
    assert len(ledger.gaps) == MAX_GAPS
    assert ledger.gaps[-1] == MAX_GAPS * 3 - 1
    assert not ledger.is_new(1)


def test_the_cursor_follows_the_lowest_gap_as_gaps_fill_and_expire():
    """The cursor is below the lowest open gap, whichever gap fills or expires first."""
    ledger = Ledger(high=10)
    ledger.accept(12, now=0)  # gap 11
    ledger.accept(14, now=1)  # gap 13
    assert ledger.cursor == 10
    ledger.accept(13, now=2)  # not the lowest
    assert ledger.cursor == 10
    ledger.accept(16, now=3)  # gap 15
    ledger.accept(11, now=4)  # the lowest fills
    assert ledger.cursor == 14
    assert ledger.expire(now=10, timeout=5) == [15]
    assert ledger.cursor == 16
