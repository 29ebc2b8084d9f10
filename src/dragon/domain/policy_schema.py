"""Reads a policy's YAML node tree through typed accessors that record each problem with its line.

Accessors never raise: a rejected value comes back as None and its problem joins `problems`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection, Mapping
from datetime import timedelta
from typing import Protocol, TypeVar

import yaml
from yaml.constructor import SafeConstructor

from dragon.domain.errors import PolicyProblem

_T = TypeVar("_T")

_DURATION = re.compile(r"(\d+)([smhd])")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_KINDS = {
    "tag:yaml.org,2002:null": "nothing",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:str": "text",
    "tag:yaml.org,2002:timestamp": "a date",
}


def compose_document(text: str, *, max_bytes: int) -> tuple[yaml.Node | None, list[PolicyProblem]]:
    """Compose the node tree, or say why the text cannot be read as a policy at all."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        return None, [PolicyProblem(f"policy is {size} bytes; the limit is {max_bytes} bytes")]
    try:
        # Aliases can repeat one subtree many times over (the "billion laughs" document), and a
        # policy an auditor reads should say each thing where it applies, so they are refused.
        aliases = [
            e for e in yaml.parse(text, Loader=yaml.SafeLoader) if isinstance(e, yaml.AliasEvent)
        ]
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = ", ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
        return None, [PolicyProblem(f"not valid YAML: {detail}", line=_line(mark))]
    except yaml.YAMLError as exc:
        return None, [PolicyProblem(f"not valid YAML: {exc}")]
    if aliases:
        return None, [
            PolicyProblem(
                "aliases (*name) are not allowed; write the value out", line=_line(a.start_mark)
            )
            for a in aliases
        ]
    return root, []


def parse_duration(word: str) -> timedelta | None:
    found = _DURATION.fullmatch(word)
    if found is None:
        return None
    return timedelta(**{_DURATION_UNITS[found[2]]: int(found[1])})


def did_you_mean(word: str, choices: Collection[str]) -> str:
    # str() so enum members are suggested by their value, not their repr.
    close = difflib.get_close_matches(word, [str(choice) for choice in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def describe(node: yaml.Node | None) -> str:
    if node is None:
        return "an empty document"
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "nothing"
    if node.value == "":
        return "empty text"
    return f"{_KINDS.get(node.tag, f'a value tagged {node.tag}')} ({node.value})"


def _bound(word: str) -> timedelta:
    span = parse_duration(word)
    if span is None:
        raise ValueError(f"not a duration: {word!r}")
    return span


class _Located(Protocol):
    line: int


def _line(mark: _Located | None) -> int | None:
    return None if mark is None else mark.line + 1


class NodeReader:
    def __init__(self) -> None:
        self.problems: list[PolicyProblem] = []
        self._constructor = SafeConstructor()

    def report(self, message: str, *, node: yaml.Node | None, path: str) -> None:
        line = None if node is None else _line(node.start_mark)
        self.problems.append(PolicyProblem(message, line=line, path=path))

    def mapping(
        self,
        node: yaml.Node | None,
        path: str,
        *,
        keys: Collection[str],
        required: Collection[str] = (),
        refused: Mapping[str, str] | None = None,
    ) -> dict[str, yaml.Node] | None:
        """The mapping's known keys and their value nodes; `refused` keys get a tailored problem."""
        if not isinstance(node, yaml.MappingNode):
            self.report(f"expected a mapping, got {describe(node)}", node=node, path=path)
            return None
        refused = refused or {}
        fields: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
            at = join(path, key)
            if not isinstance(key_node, yaml.ScalarNode):
                self.report(
                    f"a key must be a word, got {describe(key_node)}", node=key_node, path=path
                )
            elif key in refused:
                self.report(refused[key], node=key_node, path=at)
            elif key not in keys:
                hint = did_you_mean(key, keys)
                self.report(f"unknown key {key!r}{hint}", node=key_node, path=at)
            elif key in fields:
                self.report(f"duplicate key {key!r}", node=key_node, path=at)
            else:
                fields[key] = value_node
        for key in required:
            if key not in fields:
                self.report(f"missing required key {key!r}", node=node, path=path)
        return fields

    def optional(
        self,
        fields: Mapping[str, yaml.Node],
        key: str,
        *,
        path: str,
        default: _T,
        read: Callable[[yaml.Node, str], _T | None],
    ) -> _T:
        """The key's value; `default` when the key is absent, or rejected (and so reported)."""
        if key not in fields:
            return default
        value = read(fields[key], join(path, key))
        return default if value is None else value

    def sequence(self, node: yaml.Node, path: str) -> list[yaml.Node] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.report(f"expected a list, got {describe(node)}", node=node, path=path)
            return None
        return list(node.value)

    def text(self, node: yaml.Node, path: str) -> str | None:
        value = self.value(node)
        if isinstance(value, str) and value.strip():
            return value
        quote = "; put it in quotes" if isinstance(node, yaml.ScalarNode) and node.value else ""
        self.report(f"expected non-empty text, got {describe(node)}{quote}", node=node, path=path)
        return None

    def flag(self, node: yaml.Node, path: str) -> bool | None:
        value = self.value(node)
        if isinstance(value, bool):
            return value
        self.report(f"expected true or false, got {describe(node)}", node=node, path=path)
        return None

    def integer(self, node: yaml.Node, path: str, *, low: int, high: int) -> int | None:
        value = self.value(node)
        # bool is an int in Python; `approvals: true` is a mistake, not the number 1.
        if not isinstance(value, int) or isinstance(value, bool):
            self.report(f"expected an integer, got {describe(node)}", node=node, path=path)
            return None
        if not low <= value <= high:
            self.report(f"must be between {low} and {high}, got {value}", node=node, path=path)
            return None
        return value

    def choice(
        self, node: yaml.Node, path: str, *, choices: Collection[str], what: str
    ) -> str | None:
        word = self.text(node, path)
        if word is None or word in choices:
            return word
        known = ", ".join(sorted(str(choice) for choice in choices))
        hint = did_you_mean(word, choices)
        self.report(f"unknown {what} {word!r}{hint} (known: {known})", node=node, path=path)
        return None

    def one_or_many(
        self, node: yaml.Node, path: str, read: Callable[[yaml.Node, str], str | None]
    ) -> tuple[str, ...] | None:
        """A single word or a non-empty list of them, each checked by `read`."""
        if not isinstance(node, yaml.SequenceNode):
            word = read(node, path)
            return None if word is None else (word,)
        if not node.value:
            self.report("an empty list matches nothing; leave the key out", node=node, path=path)
            return None
        words = [read(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        if any(word is None for word in words):
            return None
        return tuple(word for word in words if word is not None)

    def duration(self, node: yaml.Node, path: str, *, low: str, high: str) -> timedelta | None:
        value = self.value(node)
        span = parse_duration(value) if isinstance(value, str) else None
        if span is None:
            self.report(
                f"expected a duration such as 30m, 4h or 7d (s, m, h or d), got {describe(node)}",
                node=node,
                path=path,
            )
            return None
        if not _bound(low) <= span <= _bound(high):
            self.report(f"must be between {low} and {high}, got {value}", node=node, path=path)
            return None
        return span

    def value(self, node: yaml.Node) -> object:
        """The scalar's Python value; containers and unknown tags come back as None."""
        if not isinstance(node, yaml.ScalarNode):
            return None
        try:
            return self._constructor.construct_object(node)
        except yaml.YAMLError:
            return None


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
