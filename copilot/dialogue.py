"""Conversation turns as the domain sees them, and cue matching shared by stages and intent."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Cue", "Turn", "customer_turns", "find_cue", "last_customer_text"]

Role = Literal["customer", "staff"]


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str
    ts: dt.datetime | None = None


@dataclass(frozen=True)
class Cue:
    """A named group of phrases (or a regex) that signals something in a customer's words."""

    name: str
    label: str  # human-readable, Chinese, for reasons and factors
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, name: str, label: str, phrases: Iterable[str]) -> Cue:
        alternation = "|".join(sorted((re.escape(p) for p in phrases), key=len, reverse=True))
        return cls(name, label, re.compile(alternation, re.IGNORECASE))


def find_cue(cue: Cue, text: str) -> str | None:
    match = cue.pattern.search(text)
    return match.group(0) if match else None


def customer_turns(turns: Sequence[Turn]) -> list[Turn]:
    return [t for t in turns if t.role == "customer"]


def last_customer_text(turns: Sequence[Turn]) -> str:
    for turn in reversed(turns):
        if turn.role == "customer":
            return turn.text
    return ""
