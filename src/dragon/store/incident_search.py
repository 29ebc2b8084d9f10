"""How the incident listing's text filter (`q`) asks PostgreSQL's trigram indexes for a rare
text made of common words: with the common words left out of the index condition.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

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
