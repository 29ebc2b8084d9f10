"""The incident listing's text filter (`q`): a case-insensitive substring of the title or the
description, and how it asks PostgreSQL's trigram indexes for a rare text made of common
words: with the common words left out of the index condition.

A GIN trigram index answers `lower(title) LIKE '%feature-424242%'` by intersecting the posting
lists of every trigram of the pattern. When most titles share a word ("feature", "failed"),
that word's trigrams each list nearly every row, and walking them costs most of the search:
35 ms of 38 at a million incidents, where the rare part alone ('%-424242%') takes 2 ms. So the
index condition keeps only the words the column's own statistics sample shows to be rare, with
the common words replaced by `%` (a pattern every match of the whole text also matches), and
the exact condition — the whole text as a substring — is checked on the few rows it returns.

The statistics are the ones ANALYZE keeps for the indexes' expressions (pg_stats of
ix_incidents_title_trgm and ix_incidents_description_trgm, 1,000 values each since migration
0011): a sample of values with the share of the table each stands for, which the store reads
once a minute per process. The narrowing applies only to a text that no sampled value
contains: a common text is answered by walking the id index newest first (the planner's
choice), whatever the index condition says. See docs/decisions/0021."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

# pg_trgm splits text into words of letters and digits; anything else separates them.
_WORD = re.compile(r"[^\W_]+")
# A word in at least this share of the sampled values is common: its trigrams list at least
# that share of the table, and the index condition leaves it out.
COMMON_SHARE = 0.5
# A narrowed condition keeps at least one rare word this long, so it still has trigrams of its
# own (a pattern without any makes the GIN index read every entry).
MIN_RARE_WORD = 3


class Shares(Protocol):
    def share(self, text: str) -> float:
        """The share of the table whose value contains `text`, as far as the sample tells."""
        ...


@dataclass(frozen=True)
class TextSample:
    """Sampled values of one indexed text expression, each with the share of the table it
    stands for (PostgreSQL's most common values with their frequencies, then the histogram's
    values sharing the rest equally)."""

    values: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(
        cls,
        *,
        common: Sequence[str] | None,
        frequencies: Sequence[float] | None,
        histogram: Sequence[str] | None,
        null_share: float = 0.0,
    ) -> TextSample:
        common_values = list(zip(common or (), frequencies or (), strict=False))
        rest = max(0.0, 1.0 - null_share - sum(f for _, f in common_values))
        spread = list(histogram or ())
        each = rest / len(spread) if spread else 0.0
        return cls(tuple(common_values) + tuple((v, each) for v in spread))

    def share(self, text: str) -> float:
        """The share of the table whose value contains `text`, as far as the sample tells."""
        total = sum(weight for _, weight in self.values)
        if not total:
            return 0.0
        return sum(weight for value, weight in self.values if text in value) / total


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def index_pattern(text: str, sample: Shares) -> str | None:
    """A LIKE pattern (backslash escapes) for the trigram index that every value containing
    `text` (already lower-cased) matches, without the words common in `sample`; None when the
    whole text is the better index condition: the text is common, no word is common, or no
    rare word of MIN_RARE_WORD characters would be left."""
    if sample.share(text) > 0:
        return None
    pieces = ["%"]  # unescaped `%` pieces are the wildcards; one stands for a run of them
    dropped = kept_rare = False
    position = 0
    for word in _WORD.finditer(text):
        if word.start() > position:
            pieces.append(_escaped(text[position : word.start()]))
        if sample.share(word.group()) >= COMMON_SHARE:
            if pieces[-1] != "%":
                pieces.append("%")
            dropped = True
        else:
            pieces.append(_escaped(word.group()))
            kept_rare = kept_rare or len(word.group()) >= MIN_RARE_WORD
        position = word.end()
    if position < len(text):
        pieces.append(_escaped(text[position:]))
    if not dropped or not kept_rare:
        return None
    if pieces[-1] != "%":
        pieces.append("%")
    return "".join(pieces)


# The sampled values ANALYZE keeps for the trigram indexes' expressions, by index.
_TEXT_SAMPLES = sa.text(
    "SELECT tablename, null_frac, most_common_vals::text::text[] AS common,"
    " most_common_freqs AS frequencies, histogram_bounds::text::text[] AS histogram"
    " FROM pg_stats WHERE schemaname = current_schema()"
    " AND tablename IN ('ix_incidents_title_trgm', 'ix_incidents_description_trgm')"
)
_SAMPLED_COLUMN = {
    "ix_incidents_title_trgm": "title",
    "ix_incidents_description_trgm": "description",
}


class IncidentTextSamples:
    """PostgreSQL's statistics sample of lower(title) and lower(description), by column name
    (none before the first ANALYZE): what index_pattern narrows a text search by.

    Read at most once every `seconds` per process: the sample changes only when ANALYZE runs,
    and reading it (1,000 values a column, migration 0011) cost the database 3-4 ms, more than
    the search it serves."""

    def __init__(self, *, seconds: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._seconds = seconds
        self._clock = clock
        self._samples: dict[str, TextSample] = {}
        self._read_at: float | None = None

    async def read(self, session: AsyncSession) -> dict[str, TextSample]:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._seconds:
            rows = (await session.execute(_TEXT_SAMPLES)).mappings()
            self._samples = {
                _SAMPLED_COLUMN[row["tablename"]]: TextSample.of(
                    common=row["common"],
                    frequencies=row["frequencies"],
                    histogram=row["histogram"],
                    null_share=row["null_frac"] or 0.0,
                )
                for row in rows
            }
            self._read_at = now
        return self._samples


def text_condition(column: Any, text: str, sample: Shares | None) -> Any:
    """`text` as a substring of lower(column), case-insensitively. On PostgreSQL, for a rare
    text of common words, the trigram index is given the text without its common words and
    the whole text is checked by strpos, which no index takes (index_pattern)."""
    lowered = sa.func.lower(column)
    narrowed = index_pattern(text.lower(), sample) if sample else None
    if narrowed is None:
        return lowered.like(f"%{_escaped(text.lower())}%", escape="\\")
    return sa.and_(lowered.like(narrowed, escape="\\"), sa.func.strpos(lowered, text.lower()) > 0)
