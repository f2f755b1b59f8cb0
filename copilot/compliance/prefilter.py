"""Literal "trigger" strings that every match of a regex must contain, so patterns run only when needed.

Running forty-odd regexes over every message costs more than everything else in a check put together, and
one joined alternation is slower still (the regex engine retries each branch at each position). Instead
each pattern contributes a small set of literals to the shared Aho-Corasick automaton: a pattern is only
searched when one of its literals occurred. The set is derived from the parsed regex: for a sequence the
required piece with the longest shortest literal, for an alternation the union over its branches, nothing
for optional pieces and look-arounds. When no safe set exists the rule simply always runs.
"""

from __future__ import annotations

import re
import re._constants as sre_constants
import re._parser as sre_parse
from typing import Any

__all__ = ["required_literals"]

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
