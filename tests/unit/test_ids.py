"""Ids sort in creation order, so newest-first listings page on the primary key alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dragon.domain.ids import new_id


def test_ids_made_in_the_same_millisecond_keep_creation_order() -> None:
    frozen = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    ids = [new_id("dec", frozen) for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_of_later_times_sort_after_earlier_ones() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    first = new_id("inc", start)
    later = new_id("inc", start + timedelta(seconds=1))
    assert first < later
    assert later.startswith("inc_")
    assert len(later) == len("inc_") + 28
