"""Conversation turns as the domain sees them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Turn", "answered_staff_text", "customer_turns", "last_customer_text"]

Role = Literal["customer", "staff"]


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str
    ts: dt.datetime | None = None


def customer_turns(turns: Sequence[Turn]) -> list[Turn]:
    return [t for t in turns if t.role == "customer"]


def last_customer_text(turns: Sequence[Turn]) -> str:
    for turn in reversed(turns):
        if turn.role == "customer":
            return turn.text
    return ""


def answered_staff_text(turns: Sequence[Turn]) -> str:
    """The staff message the customer's latest words follow ("" when staff had not spoken before them)."""
    seen_customer = False
    for turn in reversed(turns):
        if turn.role == "customer":
            seen_customer = True
        elif seen_customer:
            return turn.text
    return ""
