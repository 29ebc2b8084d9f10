"""Specification of the tamper-evident audit chain (dragon.domain.audit).

Any chain built by hashing each event over its content and the previous hash verifies; any
single edit, deletion, swap or reordering is caught at exactly the first seq it touches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dragon.domain.audit import (
    GENESIS_HASH,
    ChainReport,
    ChainWalker,
    event_hash,
    rehash,
    verify_chain,
)
from dragon.domain.entities import AuditEvent

EXAMPLES = settings(max_examples=50, deadline=None)
FIELDS = [f.name for f in dataclasses.fields(AuditEvent)]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
details_strategy = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
contents_strategy = st.fixed_dictionaries(
    {
        "occurred_at": st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        ),
        "actor_id": st.text(min_size=1, max_size=12),
        "actor_name": st.text(max_size=12),
        "action": st.sampled_from(
            ["incident.created", "decision.proposed", "approval.approved", "api_key.revoked"]
        ),
        "target_type": st.sampled_from(["incident", "decision", "api_key", "policy"]),
        "target_id": st.text(min_size=1, max_size=12),
        "details": details_strategy,
        "correlation_id": st.none() | st.text(max_size=12),
        "client_address": st.none() | st.sampled_from(["203.0.113.7", "2001:db8::1"]),
    }
)
chains = st.lists(contents_strategy, min_size=1, max_size=6)

BASE_CONTENT: dict[str, Any] = {
    "occurred_at": datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC),
    "actor_id": "prn_alice",
    "actor_name": "alice",
    "action": "decision.approved",
    "target_type": "decision",
    "target_id": "dec_1",
    "details": {"approvals": 2},
    "correlation_id": "req-1",
    "client_address": "203.0.113.7",
}


def build_chain(contents: list[dict[str, Any]]) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    prev = GENESIS_HASH
    for seq, content in enumerate(contents, start=1):
        digest = event_hash(seq=seq, prev_hash=prev, **content)
        events.append(AuditEvent(seq=seq, prev_hash=prev, hash=digest, **content))
        prev = digest
    return events


def verify(events: list[AuditEvent], *, head: AuditEvent | None) -> ChainReport:
    """Verify `events` against a chain tip kept apart from them, as the store keeps it."""
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    report = verify_chain(events, head_seq=head_seq, head_hash=head_hash)
    walker = ChainWalker()
    for event in events:
        if not walker.feed(event):
            break
    assert walker.finish(head_seq=head_seq, head_hash=head_hash) == report
    return report


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def changed(event: AuditEvent, field: str) -> Any:
    """A value for `field` that differs from the event's in the hashed form."""
    value = getattr(event, field)
    if field == "seq":
        return value + 1
    if field == "occurred_at":
        return value + timedelta(microseconds=1)
    if field == "details":
        return {**value, "tampered": [value]}
    if field in ("prev_hash", "hash"):
        return hashlib.sha256(value.encode()).hexdigest()
    if value is None:
        return ""
    return value + "x"


# Chains that were never touched


@EXAMPLES
@given(chains)
def test_any_chain_built_by_the_rules_verifies(contents: list[dict[str, Any]]) -> None:
    events = build_chain(contents)

    report = verify(events, head=events[-1])

    assert report == ChainReport(ok=True, checked=len(events))
    assert all(rehash(event) == event.hash for event in events)


def test_empty_chain_with_genesis_head_verifies() -> None:
    assert verify([], head=None) == ChainReport(ok=True, checked=0)


def test_first_event_links_to_the_genesis_hash() -> None:
    (event,) = build_chain([{**BASE_CONTENT}])

    assert event.prev_hash == GENESIS_HASH == "0" * 64


# Every single kind of tampering, caught at the exact seq


@EXAMPLES
@given(chains, st.data())
def test_editing_any_field_of_any_event_breaks_the_chain_at_that_event(
    contents: list[dict[str, Any]], data: st.DataObject
) -> None:
    events = build_chain(contents)
    head = events[-1]
    index = data.draw(st.integers(0, len(events) - 1), label="index")
    field = data.draw(st.sampled_from(FIELDS), label="field")
    tampered = list(events)
    tampered[index] = dataclasses.replace(events[index], **{field: changed(events[index], field)})

    report = verify(tampered, head=head)

    assert report.ok is False
    assert report.first_broken_seq == index + 1
    assert report.checked == index


@EXAMPLES
@given(chains, details_strategy, st.data())
def test_replacing_details_with_any_other_value_breaks_the_chain_at_that_event(
    contents: list[dict[str, Any]], details: dict[str, Any], data: st.DataObject
) -> None:
    events = build_chain(contents)
    index = data.draw(st.integers(0, len(events) - 1), label="index")
    assume(canonical(details) != canonical(events[index].details))
    tampered = list(events)
    tampered[index] = dataclasses.replace(events[index], details=details)

    report = verify(tampered, head=events[-1])

    assert (report.ok, report.first_broken_seq) == (False, index + 1)
    assert report.reason == "content does not match its hash"


@EXAMPLES
@given(st.lists(contents_strategy, min_size=2, max_size=6), st.data())
def test_deleting_an_event_before_the_newest_breaks_the_chain_at_its_seq(
    contents: list[dict[str, Any]], data: st.DataObject
) -> None:
    events = build_chain(contents)
    index = data.draw(st.integers(0, len(events) - 2), label="index")

    report = verify(events[:index] + events[index + 1 :], head=events[-1])

    assert (report.ok, report.first_broken_seq) == (False, index + 1)
    assert report.reason == "event missing"
    assert report.checked == index


@EXAMPLES
@given(chains, st.integers(1, 3))
def test_deleting_the_newest_events_is_caught_against_the_recorded_head(
    contents: list[dict[str, Any]], dropped: int
) -> None:
    events = build_chain(contents)
    dropped = min(dropped, len(events))

    report = verify(events[: len(events) - dropped], head=events[-1])

    assert report.ok is False
    assert report.first_broken_seq == len(events) - dropped + 1
    assert report.checked == len(events) - dropped
    assert report.reason == "events after this point are missing"


@EXAMPLES
@given(st.lists(contents_strategy, min_size=2, max_size=6), st.data())
def test_swapping_two_events_contents_keeping_their_seq_breaks_at_the_earlier_one(
    contents: list[dict[str, Any]], data: st.DataObject
) -> None:
    events = build_chain(contents)
    first = data.draw(st.integers(0, len(events) - 2), label="first")
    second = data.draw(st.integers(first + 1, len(events) - 1), label="second")
    tampered = list(events)
    tampered[first] = dataclasses.replace(events[second], seq=events[first].seq)
    tampered[second] = dataclasses.replace(events[first], seq=events[second].seq)

    report = verify(tampered, head=events[-1])

    assert (report.ok, report.first_broken_seq) == (False, first + 1)


@EXAMPLES
@given(st.lists(contents_strategy, min_size=2, max_size=6), st.data())
def test_swapping_two_events_actions_and_details_breaks_at_the_earlier_one(
    contents: list[dict[str, Any]], data: st.DataObject
) -> None:
    events = build_chain(contents)
    first = data.draw(st.integers(0, len(events) - 2), label="first")
    second = data.draw(st.integers(first + 1, len(events) - 1), label="second")
    a, b = events[first], events[second]
    assume((a.action, canonical(a.details)) != (b.action, canonical(b.details)))
    tampered = list(events)
    tampered[first] = dataclasses.replace(a, action=b.action, details=b.details)
    tampered[second] = dataclasses.replace(b, action=a.action, details=a.details)

    report = verify(tampered, head=events[-1])

    assert (report.ok, report.first_broken_seq) == (False, first + 1)
    assert report.reason == "content does not match its hash"


@EXAMPLES
@given(st.lists(contents_strategy, min_size=2, max_size=6), st.data())
def test_reordering_whole_events_breaks_at_the_first_out_of_place_seq(
    contents: list[dict[str, Any]], data: st.DataObject
) -> None:
    events = build_chain(contents)
    first = data.draw(st.integers(0, len(events) - 2), label="first")
    second = data.draw(st.integers(first + 1, len(events) - 1), label="second")
    reordered = list(events)
    reordered[first], reordered[second] = reordered[second], reordered[first]

    report = verify(reordered, head=events[-1])

    assert (report.ok, report.first_broken_seq) == (False, first + 1)
    assert report.reason == "event missing"


def test_a_rehashed_forgery_is_caught_at_the_next_event() -> None:
    """Editing an event and recomputing its own hash still breaks the link to its successor."""
    events = build_chain([{**BASE_CONTENT, "target_id": f"inc_{i}"} for i in range(4)])
    forged = dataclasses.replace(events[1], details={"title": "nothing happened"})
    forged.hash = rehash(forged)

    report = verify([events[0], forged, *events[2:]], head=events[-1])

    assert (report.ok, report.first_broken_seq) == (False, 3)
    assert report.reason == "previous hash does not match"


def test_a_head_pointing_past_the_events_is_reported_as_missing_events() -> None:
    events = build_chain([BASE_CONTENT, BASE_CONTENT])

    report = verify_chain(events, head_seq=3, head_hash="f" * 64)

    assert report == ChainReport(False, 2, 3, "events after this point are missing")


def test_a_head_with_the_right_seq_but_another_hash_is_not_trusted() -> None:
    events = build_chain([BASE_CONTENT, BASE_CONTENT])

    report = verify_chain(events, head_seq=2, head_hash="f" * 64)

    assert (report.ok, report.first_broken_seq) == (False, 3)


# The hash itself: canonical and stable


def test_hash_is_sha256_of_the_documented_canonical_json() -> None:
    details = {"zürich": "Grüße, 東京 🐉", "nested": {"b": [1, 2.5, None, True], "a": {}}}
    expected_body = (
        '{"action":"incident.created","actor_id":"prn_ä","actor_name":"Zoë",'
        '"client_address":null,"correlation_id":"c-1",'
        '"details":{"nested":{"a":{},"b":[1,2.5,null,true]},"zürich":"Grüße, 東京 🐉"},'
        '"occurred_at":"2026-11-22T09:30:15.000001Z",'
        f'"prev_hash":"{GENESIS_HASH}","seq":1,"target_id":"inc_1","target_type":"incident"}}'
    )

    digest = event_hash(
        seq=1,
        occurred_at=datetime(2026, 11, 22, 9, 30, 15, 1, tzinfo=UTC),
        actor_id="prn_ä",
        actor_name="Zoë",
        action="incident.created",
        target_type="incident",
        target_id="inc_1",
        details=details,
        correlation_id="c-1",
        client_address=None,
        prev_hash=GENESIS_HASH,
    )

    assert digest == hashlib.sha256(expected_body.encode("utf-8")).hexdigest()


@EXAMPLES
@given(details_strategy)
def test_details_hash_the_same_whatever_order_their_keys_were_built_in(
    details: dict[str, Any],
) -> None:
    def reversed_order(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reversed_order(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reversed_order(v) for v in value]
        return value

    original = event_hash(seq=1, prev_hash=GENESIS_HASH, **{**BASE_CONTENT, "details": details})
    rebuilt = event_hash(
        seq=1, prev_hash=GENESIS_HASH, **{**BASE_CONTENT, "details": reversed_order(details)}
    )
    through_json = event_hash(
        seq=1,
        prev_hash=GENESIS_HASH,
        **{**BASE_CONTENT, "details": json.loads(json.dumps(details))},
    )

    assert original == rebuilt == through_json


def test_unicode_normal_forms_are_different_content() -> None:
    composed = event_hash(seq=1, prev_hash=GENESIS_HASH, **{**BASE_CONTENT, "details": {"n": "é"}})
    decomposed = event_hash(
        seq=1, prev_hash=GENESIS_HASH, **{**BASE_CONTENT, "details": {"n": "e\u0301"}}
    )

    assert composed != decomposed


@pytest.mark.parametrize(
    "same_instant",
    [
        datetime(2026, 11, 22, 11, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 11, 22, 9, 30, 15, 123456),  # naive is read as UTC
    ],
)
def test_time_hashes_by_instant_not_by_how_its_zone_is_written(same_instant: datetime) -> None:
    utc = event_hash(seq=1, prev_hash=GENESIS_HASH, **BASE_CONTENT)
    other = event_hash(
        seq=1, prev_hash=GENESIS_HASH, **{**BASE_CONTENT, "occurred_at": same_instant}
    )

    assert other == utc


def test_one_microsecond_changes_the_hash() -> None:
    later = BASE_CONTENT["occurred_at"] + timedelta(microseconds=1)

    assert event_hash(seq=1, prev_hash=GENESIS_HASH, **BASE_CONTENT) != event_hash(
        seq=1, prev_hash=GENESIS_HASH, **{**BASE_CONTENT, "occurred_at": later}
    )
