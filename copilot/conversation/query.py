"""The retrieval query for one request: built here and nowhere else, so stage detection (the library's
vote), evidence retrieval and the top-up search all look for the same thing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from copilot.knowledge.schema import CustomerProfile

__all__ = ["build_query"]


class _Said(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def text(self) -> str: ...


def build_query(turns: Sequence[_Said], profile: CustomerProfile | None, max_turns: int = 4) -> str:
    """Retrieval query from the conversation's last turns (customer turns first) and the profile.

    `turns` are oldest first. The latest customer message leads, since it is what the reply must
    answer; earlier turns add context. With no turns at all (an opener) the profile's segment and tags
    speak, and the last order's items, so a revisit opener finds scripts about what the customer bought.
    """
    recent = list(turns)[-max_turns:]
    customer = [t.text for t in reversed(recent) if t.role == "customer"]
    staff = [t.text for t in reversed(recent) if t.role == "staff"]
    parts = customer[:2] + staff[:1]
    # The profile speaks only when nobody has said anything yet; once the customer talks, their words
    # decide, and tags would pull every query towards the same scripts.
    if profile is not None and not any(p.strip() for p in parts):
        parts.append(" ".join([profile.segment, *profile.all_tags[:6]]))
        if not recent and profile.last_order is not None:
            parts.extend(line.name for line in profile.last_order.items)
    return "\n".join(p for p in parts if p.strip())
