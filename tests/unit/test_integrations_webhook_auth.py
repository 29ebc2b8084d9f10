"""Specification of what the webhook adapters share: constant-time credential checks
(dragon.integrations.webhook_auth), payload reading (dragon.integrations.normalization), and the
one interface every vendor module offers the inbox."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta, timezone
from types import ModuleType

import pytest

from dragon.domain.errors import Unauthenticated, ValidationFailed
from dragon.integrations import alertmanager, events, github, gitlab, jenkins
from dragon.integrations.normalization import Fields, bounded_key, parse_time
from dragon.integrations.webhook_auth import (
    bearer_token,
    hmac_sha256_hex,
    signature_matches,
    token_matches,
    usable_secrets,
)

ADAPTERS = [github, gitlab, jenkins, alertmanager]


# --- the adapter interface ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "source"),
    [
        (github, "github"),
        (gitlab, "gitlab"),
        (jenkins, "jenkins"),
        (alertmanager, "alertmanager"),
        (events, "api"),
    ],
)
def test_each_module_names_its_source(module: ModuleType, source: str) -> None:
    assert source == module.SOURCE


@pytest.mark.parametrize("module", ADAPTERS, ids=lambda m: m.SOURCE)
def test_each_vendor_module_offers_the_inbox_interface_with_keyword_only_arguments(
    module: ModuleType,
) -> None:
    expected = {
        "authenticate": ["headers", "body", "secrets"],
        "delivery_key": ["headers", "payload", "body"],
        "normalize": ["headers", "payload", "options"],
    }
    for name, parameters in expected.items():
        signature = inspect.signature(getattr(module, name))
        assert list(signature.parameters) == parameters, name
        kinds = {p.kind for p in signature.parameters.values()}
        assert kinds == {inspect.Parameter.KEYWORD_ONLY}, name


def test_the_event_normalizer_takes_the_payload_then_keywords() -> None:
    parameters = inspect.signature(events.normalize_event).parameters
    assert list(parameters) == ["payload", "key", "options", "received_at"]
    assert parameters["key"].kind is inspect.Parameter.KEYWORD_ONLY


# --- secrets and tokens ---------------------------------------------------------------------


def test_empty_secrets_do_not_count_as_configured() -> None:
    assert usable_secrets(["", "b"], source="github") == [b"b"]
    with pytest.raises(Unauthenticated) as caught:
        usable_secrets(["", ""], source="github")
    assert caught.value.code == "webhook_secret_missing"


def test_a_token_matches_only_when_exactly_equal() -> None:
    keys = [b"alpha", b"beta"]
    assert token_matches("beta", secrets=keys)
    assert not token_matches("bet", secrets=keys)
    assert not token_matches("beta ", secrets=keys)
    assert not token_matches("BETA", secrets=keys)
    assert not token_matches("", secrets=keys)
    assert not token_matches(None, secrets=keys)


def test_a_non_ascii_token_is_compared_without_error() -> None:
    assert token_matches("clé", secrets=["clé".encode()])
    assert not token_matches("cle", secrets=["clé".encode()])


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("abc", None),
        ("", None),
    ],
)
def test_the_bearer_token_is_read_from_the_authorization_header(
    value: str, token: str | None
) -> None:
    assert bearer_token({"authorization": value}) == token


def test_without_an_authorization_header_there_is_no_bearer_token() -> None:
    assert bearer_token({}) is None


def test_a_signature_in_upper_case_hex_matches() -> None:
    signature = "sha256=" + hmac_sha256_hex("k", b"body").upper()
    assert signature_matches(signature, body=b"body", secrets=[b"k"])


def test_a_signature_matches_under_any_configured_secret_and_no_other() -> None:
    signature = "sha256=" + hmac_sha256_hex("second", b"body")
    assert signature_matches(signature, body=b"body", secrets=[b"first", b"second"])
    assert not signature_matches(signature, body=b"body", secrets=[b"first"])
    assert not signature_matches(None, body=b"body", secrets=[b"second"])


# --- payload reading ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-10-05T16:33:49Z", datetime(2020, 10, 5, 16, 33, 49, tzinfo=UTC)),
        (
            "2024-11-22T08:55:12.345678901Z",
            datetime(2024, 11, 22, 8, 55, 12, 345678, tzinfo=UTC),
        ),
        ("2016-08-12 15:23:28 UTC", datetime(2016, 8, 12, 15, 23, 28, tzinfo=UTC)),
        (
            "2021-04-28 21:50:00 +0200",
            datetime(2021, 4, 28, 21, 50, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2012-01-03T23:36:29+02:00", datetime(2012, 1, 3, 21, 36, 29, tzinfo=UTC)),
        ("2021-02-23T02:41:37", datetime(2021, 2, 23, 2, 41, 37, tzinfo=UTC)),
    ],
)
def test_the_timestamp_variants_vendors_send_are_read_as_aware_times(
    text: str, expected: datetime
) -> None:
    parsed = parse_time(text, field="t")
    assert parsed == expected
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", "1732262400"])
def test_a_value_that_is_not_a_timestamp_is_payload_invalid(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_time(text, field="run.updated_at")
    assert caught.value.code == "payload_invalid"
    assert caught.value.details["field"] == "run.updated_at"


def test_a_payload_invalid_error_lists_the_field_for_the_problem_document() -> None:
    with pytest.raises(ValidationFailed) as caught:
        Fields({"run": {"id": True}}).need_obj("run").ident("id")
    assert caught.value.details["errors"] == [
        {
            "location": "body",
            "field": "run.id",
            "message": "must be a number or a non-empty string",
            "type": "payload_invalid",
        }
    ]


def test_a_key_of_200_characters_is_kept_and_a_longer_one_is_bounded_stably() -> None:
    assert bounded_key("k" * 200) == "k" * 200
    long_a, long_b = "job/" + "a" * 300, "job/" + "a" * 299 + "b"
    assert len(bounded_key(long_a)) == 200
    assert bounded_key(long_a) == bounded_key(long_a)
    assert bounded_key(long_a) != bounded_key(long_b)
    assert bounded_key(long_a).startswith("job/aaa")
