"""The storm scenario's accounting of what each reconnecting stream got."""

from __future__ import annotations

from bench.scenarios.storm import live, losses


def stream(*events, opens=(0.0,), ends=()):
    """A stream as ``bench.clients`` reports it: events as (id, n, created_at, arrival)."""
    return {"opens": list(opens), "ends": list(ends), "events": [list(e) for e in events]}


def test_a_complete_stream_lost_and_repeated_nothing():
    ticks = [(10 + n, n, 0.0, 0.0) for n in range(1, 6)]
    assert losses([stream(*ticks)]) == (0, 0, 5)


def test_a_gap_in_the_ticks_is_lost_and_a_second_copy_repeated():
    gap = stream((11, 1, 0, 0), (12, 2, 0, 0), (15, 5, 0, 0), (15, 5, 0, 0), (16, 6, 0, 0))
    assert losses([gap]) == (2, 1, 5)


def test_events_without_a_tick_number_are_not_counted():
    assert losses([stream((1, None, 0, 0), (2, 1, 0, 0), (3, None, 0, 0), (4, 2, 0, 0))]) \
        == (0, 0, 2)


def test_streams_are_counted_each_on_its_own():
    first = stream((1, 1, 0, 0), (3, 3, 0, 0))
    second = stream((2, 7, 0, 0), (4, 8, 0, 0))
    assert losses([first, second]) == (1, 0, 4)


def test_a_replayed_event_is_not_live_where_the_server_replays():
    reopened = stream(opens=(1.0, 5.0))
    assert live(reopened, created=6.0, after=4.0, replays=True)
    assert not live(reopened, created=4.5, after=4.0, replays=True)  # sent on reopening
    assert not live(reopened, created=2.0, after=4.0, replays=True)
    assert live(reopened, created=4.5, after=4.0, replays=False)  # nothing else gets there


def test_an_event_created_while_the_stream_was_away_again_is_not_live():
    twice = stream(opens=(1.0, 5.0, 8.0), ends=(4.0, 7.0))
    assert live(twice, created=6.0, after=4.5, replays=True)
    assert not live(twice, created=7.5, after=4.5, replays=True)  # lost at 7, back at 8
    assert live(twice, created=9.0, after=4.5, replays=True)
