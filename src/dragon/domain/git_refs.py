"""Git branch names Dragon accepts: git's own rules (`git check-ref-format --branch`), checked
before a name reaches an API record or a git command line, where a leading `-` would read as an
option and `..`, `@{`, `~`, `^`, `:` as revision syntax."""

from __future__ import annotations

import re
from collections.abc import Callable

MAX_BRANCH = 255
# git refuses these anywhere in a ref name; a space, too.
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
EXAMPLE = "main, release/2.4 or dragon/fix-inc_123"


def _forbidden(name: str) -> str | None:
    found = _FORBIDDEN.search(name)
    if found is None:
        return None
    char = found[0]
    shown = repr(char) if char.isprintable() and char != " " else f"U+{ord(char):04X}"
    return f"contains {shown}; control characters, spaces and ~^:?*[\\ are not allowed"


def _parts(name: str) -> str | None:
    for part in name.split("/"):
        if part.startswith("."):
            return f"has a part beginning with '.' ({part!r})"
        if part.endswith(".lock"):
            return f"has a part ending with '.lock' ({part!r})"
    return None


# In git's order of `check-ref-format`; the first that applies is the one reported.
_RULES: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda n: not n, "is empty"),
    (lambda n: len(n) > MAX_BRANCH, f"is longer than {MAX_BRANCH} characters"),
    (lambda n: n.startswith("-"), "begins with '-', which git would read as an option"),
    (lambda n: ".." in n, "contains '..'"),
    (lambda n: "@{" in n, "contains '@{'"),
    (lambda n: n == "@", "is '@', which git reads as HEAD"),
    (
        lambda n: n.startswith("/") or n.endswith("/") or "//" in n,
        "has an empty /-separated part",
    ),
    (lambda n: n.endswith("."), "ends with '.'"),
)


def branch_problem(name: str) -> str | None:
    """Why `name` is not a branch name git accepts, or None when it is one."""
    for applies, problem in _RULES:
        if applies(name):
            return problem
    return _forbidden(name) or _parts(name)
