"""Literal "trigger" strings that every match of a regex must contain, so patterns run only when needed.

Running forty-odd regexes over every message costs more than everything else in a check put together, and
one joined alternation is slower still (the regex engine retries each branch at each position). Instead
each pattern contributes a small set of literals to the shared Aho-Corasick automaton: a pattern is only
searched when one of its literals occurred. The set is derived from the parsed regex: for a sequence the
required piece with the longest shortest literal, for an alternation the union over its branches, nothing
for optional pieces and look-arounds. When no safe set exists the rule simply always runs.

A pattern that is an alternation at its top level is searched branch by branch (`top_level_branches`), each with
its own literals: a common literal of one cheap branch (我, 比) then no longer runs the whole alternation, whose
branches with word lists and lazy gaps cost tens of microseconds a text.
"""

from __future__ import annotations

import re
import re._constants as sre_constants
import re._parser as sre_parse
from typing import Any

__all__ = ["required_literals", "top_level_branches"]

_MAX_CLASS = 16
_MAX_LITERALS = 400


def required_literals(pattern: str) -> frozenset[str] | None:
    """Strings of which every match of `pattern` contains at least one, or None if none can be promised."""
    try:
        parsed = sre_parse.parse(pattern)
    except re.error:
        return None
    found = _sequence(list(parsed))
    if not found or "" in found or len(found) > _MAX_LITERALS:
        return None
    return frozenset(found)


def _score(options: set[str]) -> tuple[int, int]:
    return min(len(s) for s in options), -len(options)


def _sequence(items: list[tuple[Any, Any]]) -> set[str] | None:
    """Best required literal set of a concatenation; runs of plain characters count as one literal."""
    candidates: list[set[str]] = []
    run: list[str] = []
    for op, av in items:
        if op is sre_constants.LITERAL:
            run.append(chr(av))
            continue
        if run:
            candidates.append({"".join(run)})
            run = []
        part = _item(op, av)
        if part:
            candidates.append(part)
    if run:
        candidates.append({"".join(run)})
    if not candidates:
        return None
    return max(candidates, key=_score)


def _item(op: Any, av: Any) -> set[str] | None:
    if op is sre_constants.SUBPATTERN:
        return _sequence(list(av[-1]))
    if op is sre_constants.BRANCH:
        union: set[str] = set()
        for branch in av[1]:
            part = _sequence(list(branch))
            if not part:
                return None
            union |= part
        return union
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
        low, _high, body = av
        return _sequence(list(body)) if low >= 1 else None
    if op is sre_constants.IN:
        return _char_class(av)
    return None


def _char_class(members: list[tuple[Any, Any]]) -> set[str] | None:
    chars: set[str] = set()
    for op, av in members:
        if op is sre_constants.LITERAL:
            chars.add(chr(av))
        elif op is sre_constants.RANGE and av[1] - av[0] < _MAX_CLASS:
            chars.update(chr(c) for c in range(av[0], av[1] + 1))
        else:
            return None
    return chars if 0 < len(chars) <= _MAX_CLASS else None


def top_level_branches(pattern: str) -> list[str]:
    """The branches of `pattern`'s top-level alternation (`a|b(c|d)` → `a`, `b(c|d)`), or `[pattern]` if it has none.
    Escapes, groups and character classes are skipped; a piece that does not compile alone returns `[pattern]`."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = _class_end(pattern, i)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    if len(parts) < 2 or depth != 0:
        return [pattern]
    for part in parts:
        try:
            re.compile(part)
        except re.error:
            return [pattern]
    return parts


def _class_end(pattern: str, i: int) -> int:
    """The index after the character class opened at `pattern[i]` (`[]a]` and `[^]a]` hold a literal `]`)."""
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1
