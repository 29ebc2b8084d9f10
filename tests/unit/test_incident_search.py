"""The text search's narrowed trigram condition (store.incident_search): common words leave
the index condition, and whatever it keeps, every value containing the text still matches."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from dragon.store.incident_search import TextSample, index_pattern

TITLES = TextSample.of(
    common=None,
    frequencies=None,
    histogram=[f"build failed on org/repo-{n % 100} branch feature-{n * 9973}" for n in range(100)],
)


def like(pattern: str, value: str) -> bool:
    """SQL LIKE with backslash escapes, as PostgreSQL evaluates it."""
    regex = ""
    escaped = False
    for char in pattern:
        if escaped:
            regex += re.escape(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            regex += ".*"
        elif char == "_":
            regex += "."
        else:
            regex += re.escape(char)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def test_a_rare_text_leaves_its_common_words_out_of_the_index_condition() -> None:
    assert index_pattern("feature-424242", TITLES) == "%-424242%"
    assert (
        index_pattern("org/repo-7 branch feature-314159", TITLES) == "%/%-% % %-314159%"
    )  # "7" is in most numbers
    assert index_pattern("feature-42x", TITLES) == "%-42x%"


def test_a_text_the_sample_already_contains_keeps_the_whole_text() -> None:
    assert index_pattern("repo-42 ", TITLES) is None  # the planner walks the id index for it
    assert index_pattern("feature", TITLES) is None


def test_without_a_common_word_or_a_rare_word_of_three_letters_nothing_is_narrowed() -> None:
    assert index_pattern("checkout-424242", TITLES) is None  # no word is common
    assert index_pattern("feature-42", TITLES) is None  # "42" alone has no trigram of its own
    assert index_pattern("feature-424242", TextSample()) is None  # no statistics yet


def test_literal_percent_and_underscore_stay_escaped_beside_a_dropped_word() -> None:
    pattern = index_pattern("100%feature_x99", TITLES)
    assert pattern == "%100\\%%\\_x99%"
    assert like(pattern, "disk 100%feature_x99 full")
    assert not like(pattern, "disk 1000feature-x99 full")


def test_most_common_values_weigh_by_their_frequency() -> None:
    sample = TextSample.of(
        common=["deploy failed"], frequencies=[0.6], histogram=["lint ok", "test ok"]
    )
    assert sample.share("failed") == 0.6
    assert index_pattern("failed-checkout", sample) == "%-checkout%"


@given(
    prefix=st.text(alphabet="ab -/%_\\9", max_size=6),
    text=st.text(alphabet="featurbnch -/%_\\0123456789", min_size=1, max_size=24),
    suffix=st.text(alphabet="ab -/%_\\9", max_size=6),
)
def test_every_value_containing_the_text_matches_the_narrowed_pattern(
    prefix: str, text: str, suffix: str
) -> None:
    pattern = index_pattern(text, TITLES)
    if pattern is not None:
        assert like(pattern, prefix + text + suffix), pattern
