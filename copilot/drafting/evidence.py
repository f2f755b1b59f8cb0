"""What an LLM draft may rely on, as text: the items it cites, the conversation and the persona.

The fact check reads facts only from here, so a citation has to resolve to something real for the
claims beside it to count as supported. Profile fields are rendered with every spelling a draft
might use for them (an order's date as 2026-11-17 and 11月17日, a birthday's derived 6个月).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterable

from copilot.conversation.turns import Turn
from copilot.drafting.factcheck import Evidence
from copilot.drafting.types import Citation
from copilot.drafting.variables import fill_variables
from copilot.knowledge.schema import CustomerProfile, Persona
from copilot.retrieval.documents import KnowledgeDoc

__all__ = ["DocLookup", "ExtraLookup", "evidence_for", "profile_field_text"]

DocLookup = Callable[[str, str], KnowledgeDoc | None]  # (kind, id) → the indexed item
ExtraLookup = Callable[[str], str]  # content id → its price and dates as text, "" when none


def evidence_for(
    citations: Iterable[Citation],
    *,
    turns: Iterable[Turn],
    profile: CustomerProfile | None,
    persona: Persona,
    today: dt.date,
    doc: DocLookup,
    content_extra: ExtraLookup,
) -> Evidence:
    sources: list[tuple[str, str]] = []
    for cite in citations:
        if cite.kind in ("script", "content"):
            item = doc(cite.kind, cite.id)
            if item is None:
                continue
            label = f"{'话术' if cite.kind == 'script' else '内容'} {cite.id}"
            text = f"{item.title}\n{item.body}"
            if cite.kind == "script":
                filled = fill_variables(item.body, profile, persona, today)
                text += f"\n{filled.text}" if filled is not None else ""
            else:
                text += f"\n{content_extra(cite.id)}"
            sources.append((label, text))
        elif profile is not None and cite.id == profile.id and cite.field:
            value = profile_field_text(profile, cite.field, persona, today)
            if value:
                sources.append((f"画像 {cite.field}", value))
    chat = "\n".join(t.text for t in turns)
    if chat:
        sources.append(("对话", chat))
    sources.append(("人设", " ".join(p for p in (persona.brand, persona.persona_name, persona.signature) if p)))
    return Evidence(tuple(sources))


def _date(day: dt.date) -> str:
    return f"{day.isoformat()} {day.month}月{day.day}日"


def profile_field_text(profile: CustomerProfile, field: str, persona: Persona, today: dt.date) -> str:
    """The cited field's value as text, with the derived values (月龄, 天数) a script could fill from it."""
    head, _, rest = field.partition(".")
    if head == "attributes" and rest in profile.attributes:
        value = profile.attributes[rest]
        text = "、".join(map(str, value)) if isinstance(value, list) else str(value)
        if isinstance(value, dt.date):
            text += f" {_date(value)}"
        else:
            with contextlib.suppress(ValueError):
                text += f" {_date(dt.date.fromisoformat(str(value)))}"
        for rule in persona.derived_variables:
            if rule.attribute == rest:
                derived = fill_variables("{" + rule.name + "}", profile, persona, today)
                if derived is not None:
                    text += f" {derived.text}"
        return text
    if head == "tags":
        groups = {rest: profile.tags.get(rest, ())} if rest else profile.tags
        return " ".join(f"{group} {' '.join(tags)}" for group, tags in groups.items())
    if head == "orders":
        orders = [o for o in profile.orders if not rest or o.id == rest]
        return "\n".join(
            f"{_date(o.date)} " + " ".join(f"{line.name} ×{line.qty} {line.qty}件 {line.price:g}元" for line in o.items)
            + f" 共{o.amount:g}元 {o.status}"
            for o in orders
        )
    if head == "coupons":
        return "\n".join(
            " ".join(str(v) + ("元" if k == "amount" else "") for k, v in coupon.items())
            + (f" {_date(dt.date.fromisoformat(str(coupon['expires_on'])))}" if coupon.get("expires_on") else "")
            for coupon in profile.coupons
        )
    if head == "behaviours":
        return "\n".join(" ".join(p for p in (b.type, b.target, b.detail) if p) for b in profile.behaviours)
    if head == "points":
        return f"{profile.points}积分" if profile.points is not None else ""
    if head == "rfm":
        rfm = profile.rfm
        return f"{rfm.recency_days}天 {rfm.frequency}次 {rfm.monetary:g}元"
    if head in ("birthday", "added_on"):
        day = getattr(profile, head)
        return _date(day) if day else ""
    value = getattr(profile, head, None) if head in ("name", "salutation", "segment") else None
    return str(value) if value else ""
