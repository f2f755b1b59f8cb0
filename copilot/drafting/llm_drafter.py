"""The LLM drafter: grounded replies from a chat model, checked, with the script drafter behind it.

The model sees the persona, the stage, a profile summary, the recent conversation and the retrieved
scripts and content, each under a token budget, and answers candidates that cite what they used.
Nothing the model says is trusted: citations are kept only when they name a script or content item
the prompt actually showed or a field the profile really has, and a candidate that cites nothing
real is dropped. Missing candidates are topped up from the fallback drafter, and when the model
times out, fails or answers garbage the fallback's drafts are returned with the reason, so a draft
request never fails because a model did.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from copilot.conversation.turns import Turn
from copilot.drafting.types import Citation, DraftCandidate, DraftContext, Drafter, DraftOutcome
from copilot.drafting.variables import fill_variables
from copilot.errors import ConfigurationError, UpstreamError
from copilot.knowledge.schema import CustomerProfile, Stage, script_variables
from copilot.llm.client import invoke_structured
from copilot.llm.prompts import Prompt
from copilot.llm.tokens import TokenCounter
from copilot.retrieval.hybrid import Hit

__all__ = ["STAGE_GUIDE", "LLMDrafter", "MaskedText", "Masker", "profile_field_exists", "profile_summary"]

# The stage's name as staff know it and what a reply in that stage is for.
STAGE_GUIDE: dict[Stage, tuple[str, str]] = {
    Stage.icebreak: ("破冰", "建立信任、让客户愿意回复：自然地打招呼、表达关心，不急于推销。"),
    Stage.discovery: ("挖需", "用开放式问题了解客户的需求、顾虑和使用场景，一次只问一两个问题。"),
    Stage.recommend: ("推荐", "结合已了解的需求推荐合适的产品或内容，说清楚为什么适合，并给出轻松的下一步。"),
    Stage.revisit: ("回访复购", "回访使用体验、解答售后疑问，在合适的时机提醒复购或介绍相关新品。"),
}

_KNOWLEDGE_TOKENS = 1500  # scripts and content together
_ITEM_TOKENS = 300
_CONVERSATION_TOKENS = 900
_TURN_TOKENS = 250
_MAX_TURNS = 20
_PROFILE_TOKENS = 500
_SHOWN_ORDERS = 3
_SHOWN_BEHAVIOURS = 5
_SHOWN_ATTRIBUTES = 20


class MaskedText(Protocol):
    """What a PII masker returns (the shape of `copilot.compliance.mask_pii`'s result)."""

    @property
    def text(self) -> str: ...

    @property
    def placeholders(self) -> Mapping[str, str]: ...

    def restore(self, text: str) -> str: ...


Masker = Callable[[str], MaskedText]


class _Candidate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str
    script_ids: list[str] = Field(default_factory=list)
    content_ids: list[str] = Field(default_factory=list)
    profile_fields: list[str] = Field(default_factory=list)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    candidates: list[_Candidate] = Field(min_length=1)


@dataclass(frozen=True)
class _Shown:
    """The ids the prompt actually showed the model: the only ones it may cite."""

    scripts: frozenset[str]
    content: frozenset[str]


class LLMDrafter:
    def __init__(
        self,
        *,
        model: BaseChatModel,
        prompt: Prompt,
        fallback: Drafter,
        token_counter: TokenCounter,
        mask_pii: bool,
        masker: Masker | None = None,
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.fallback = fallback
        self.tokens = token_counter
        self.mask_pii = mask_pii
        # Fail closed: with masking on and no masker, refuse to build rather than send PII.
        self.masker: Masker | None = (masker or _default_masker()) if mask_pii else masker

    def draft(self, context: DraftContext) -> DraftOutcome:
        """Draft with the model; fall back to the script drafter on any model failure.

        ModelRequestsBlocked is not a model failure but a guard, so it propagates.
        """
        system, user, shown = self._render(context)
        restore: Callable[[str], str] = _unchanged
        if self.mask_pii and self.masker is not None:
            masked = self.masker(user)
            user, restore = masked.text, masked.restore
        messages = [SystemMessage(content=system), HumanMessage(content=user)]
        try:
            answer = invoke_structured(self.model, messages, _Answer)
        except UpstreamError as exc:
            return self._fall_back(context, str(exc), ())
        chosen, notes = self._validate(answer, context, shown, restore)
        if not chosen:
            return self._fall_back(context, "llm answered no usable candidate", notes)
        if len(chosen) < context.n:
            chosen, notes = self._top_up(chosen, notes, context)
        return DraftOutcome(
            candidates=tuple(chosen),
            drafter="llm",
            prompt_name=self.prompt.name,
            prompt_version=self.prompt.version,
            notes=tuple(notes),
        )

    def _render(self, context: DraftContext) -> tuple[str, str, _Shown]:
        persona = context.persona
        label, goal = STAGE_GUIDE[context.stage]
        scripts, content, shown = self._knowledge(context)
        rendered = self.prompt.render(
            {
                "brand": persona.brand,
                "persona_name": persona.persona_name,
                "role": persona.role,
                "tone": "、".join(persona.tone) or "自然、真诚",
                "polite_forms": "、".join(persona.polite_forms) or "无特别要求",
                "banned_topics": "、".join(persona.banned_topics) or "无",
                "max_reply_chars": str(persona.max_reply_chars),
                "stage": context.stage.value,
                "stage_label": label,
                "stage_goal": goal,
                "profile": self.tokens.trim(profile_summary(context.profile), _PROFILE_TOKENS),
                "conversation": self._conversation(context.turns),
                "scripts": scripts,
                "content": content,
                "n": str(context.n),
            }
        )
        return rendered.system, rendered.user, shown

    def _knowledge(self, context: DraftContext) -> tuple[str, str, _Shown]:
        """Scripts and content, best first and interleaved, within one token budget."""
        scripts = [h for h in context.scripts if h.doc.kind == "script"]
        content = [h for h in context.content if h.doc.kind == "content"]
        pieces: list[tuple[str, Hit]] = []
        for i in range(max(len(scripts), len(content))):
            if i < len(scripts):
                pieces.append((self._script_line(scripts[i], context), scripts[i]))
            if i < len(content):
                doc = content[i].doc
                line = f"- [{doc.id}] 《{doc.title}》：{' '.join(doc.body.split())}"
                pieces.append((self.tokens.trim(line, _ITEM_TOKENS), content[i]))
        kept = self.tokens.fit([line for line, _ in pieces], _KNOWLEDGE_TOKENS)
        used = pieces[: len(kept)]
        script_lines = [line for line, hit in used if hit.doc.kind == "script"]
        content_lines = [line for line, hit in used if hit.doc.kind == "content"]
        shown = _Shown(
            scripts=frozenset(hit.doc.id for _, hit in used if hit.doc.kind == "script"),
            content=frozenset(hit.doc.id for _, hit in used if hit.doc.kind == "content"),
        )
        return "\n".join(script_lines) or "（无）", "\n".join(content_lines) or "（无）", shown

    def _script_line(self, hit: Hit, context: DraftContext) -> str:
        filled = fill_variables(hit.doc.body, context.profile, context.persona, context.now.date())
        text = filled.text if filled is not None else hit.doc.body
        return self.tokens.trim(f"- [{hit.doc.id}] {' '.join(text.split())}", _ITEM_TOKENS)

    def _conversation(self, turns: tuple[Turn, ...]) -> str:
        """The latest turns that fit the budget, oldest first."""
        lines: list[str] = []
        for turn in reversed(turns[-_MAX_TURNS:]):
            who = "客户" if turn.role == "customer" else "顾问"
            when = f"[{turn.ts:%m-%d %H:%M}] " if turn.ts else ""
            lines.append(self.tokens.trim(f"{when}{who}：{' '.join(turn.text.split())}", _TURN_TOKENS))
        kept = self.tokens.fit(lines, _CONVERSATION_TOKENS)
        return "\n".join(reversed(kept)) or "（还没有对话）"

    def _validate(
        self, answer: _Answer, context: DraftContext, shown: _Shown, restore: Callable[[str], str]
    ) -> tuple[list[DraftCandidate], list[str]]:
        chosen: list[DraftCandidate] = []
        notes: list[str] = []
        seen: set[str] = set()
        limit = context.persona.max_reply_chars
        for number, raw in enumerate(answer.candidates, start=1):
            if len(chosen) >= context.n:
                notes.append(f"ignored {len(answer.candidates) - number + 1} extra candidate(s)")
                break
            text = restore(raw.text).strip()
            problem = None
            if not text:
                problem = "empty"
            elif text in seen:
                problem = "duplicate"
            elif len(text) > limit:
                problem = f"{len(text)} characters, over {limit}"
            elif script_variables(text):
                problem = "left a {variable} unfilled"
            if problem:
                notes.append(f"dropped candidate {number}: {problem}")
                continue
            citations = self._citations(raw, number, context.profile, shown, restore, notes)
            if not citations:
                notes.append(f"dropped candidate {number}: cites nothing from the context")
                continue
            seen.add(text)
            chosen.append(DraftCandidate(text=text, stage=context.stage, citations=citations, drafter="llm"))
        return chosen, notes

    @staticmethod
    def _citations(
        raw: _Candidate,
        number: int,
        profile: CustomerProfile | None,
        shown: _Shown,
        restore: Callable[[str], str],
        notes: list[str],
    ) -> tuple[Citation, ...]:
        out: list[Citation] = []
        # Ids are restored before checking (a masker may have touched them); notes keep the masked form.
        for ident in dict.fromkeys(raw.script_ids):
            if restore(ident) in shown.scripts:
                out.append(Citation("script", restore(ident)))
            else:
                notes.append(f"candidate {number}: ignored unknown script id {ident[:40]!r}")
        for ident in dict.fromkeys(raw.content_ids):
            if restore(ident) in shown.content:
                out.append(Citation("content", restore(ident)))
            else:
                notes.append(f"candidate {number}: ignored unknown content id {ident[:40]!r}")
        for field in dict.fromkeys(raw.profile_fields):
            if profile is not None and profile_field_exists(profile, restore(field)):
                out.append(Citation("profile", profile.id, restore(field)))
            else:
                notes.append(f"candidate {number}: ignored unknown profile field {field[:40]!r}")
        return tuple(out)

    def _top_up(
        self, chosen: list[DraftCandidate], notes: list[str], context: DraftContext
    ) -> tuple[list[DraftCandidate], list[str]]:
        seen = {c.text for c in chosen}
        out = list(chosen)
        added = 0
        for candidate in self.fallback.draft(context).candidates:
            if len(out) >= context.n:
                break
            if candidate.text not in seen:
                seen.add(candidate.text)
                out.append(candidate)
                added += 1
        if added:
            notes = [*notes, f"topped up {added} candidate(s) from the script drafter"]
        return out, notes

    def _fall_back(
        self, context: DraftContext, reason: str, notes: tuple[str, ...] | list[str]
    ) -> DraftOutcome:
        outcome = self.fallback.draft(context)
        return dataclasses.replace(
            outcome,
            fallback_reason=reason,
            prompt_name=self.prompt.name,
            prompt_version=self.prompt.version,
            notes=(*outcome.notes, *notes),
        )


_TOP_LEVEL_FIELDS = (
    "name",
    "salutation",
    "segment",
    "tags",
    "rfm",
    "birthday",
    "points",
    "coupons",
    "behaviours",
    "orders",
    "added_on",
)


def profile_field_exists(profile: CustomerProfile, field: str) -> bool:
    """Whether `field` names something the profile has: a filled top-level field, an attribute,
    a tag group or an order (`attributes.<name>`, `tags.<group>`, `orders.<order id>`)."""
    head, _, rest = field.partition(".")
    if not rest:
        if field not in _TOP_LEVEL_FIELDS:
            return False
        value: Any = getattr(profile, field)
        return value is not None and value != () and value != {} and value != ""
    if head == "attributes":
        return rest in profile.attributes
    if head == "tags":
        return rest in profile.tags
    if head == "orders":
        return any(order.id == rest for order in profile.orders)
    return False


def profile_summary(profile: CustomerProfile | None) -> str:
    """The profile as `[field] label：value` lines; the bracketed keys are what drafts may cite."""
    if profile is None:
        return "（没有客户画像）"
    lines: list[str] = []
    if profile.salutation:
        lines.append(f"[salutation] 称呼：{profile.salutation}")
    else:
        lines.append(f"[name] 姓名：{profile.name}")
    lines.append(f"[segment] 客群：{profile.segment}")
    if profile.tags:
        groups = "；".join(f"{group}：{'、'.join(tags)}" for group, tags in profile.tags.items() if tags)
        lines.append(f"[tags] 标签：{groups}")
    rfm = profile.rfm
    if rfm.frequency or rfm.recency_days is not None:
        recency = f"最近一次购买在 {rfm.recency_days} 天前，" if rfm.recency_days is not None else ""
        lines.append(f"[rfm] {recency}共购买 {rfm.frequency} 次，累计 {rfm.monetary:g} 元")
    if profile.birthday:
        lines.append(f"[birthday] 生日：{profile.birthday:%m-%d}")
    if profile.points is not None:
        lines.append(f"[points] 积分：{profile.points}")
    if profile.coupons:
        names = [str(c.get("name") or c.get("title") or c.get("id") or "优惠券") for c in profile.coupons]
        lines.append(f"[coupons] 可用优惠券：{'、'.join(names[:5])}")
    for key, value in list(profile.attributes.items())[:_SHOWN_ATTRIBUTES]:
        shown = "、".join(map(str, value)) if isinstance(value, list) else str(value)
        lines.append(f"[attributes.{key}] {key}：{shown}")
    for order in sorted(profile.orders, key=lambda o: o.date, reverse=True)[:_SHOWN_ORDERS]:
        items = "、".join(f"{line.name}×{line.qty}" for line in order.items)
        lines.append(
            f"[orders.{order.id}] {order.date:%Y-%m-%d} 购买 {items}，{order.amount:g} 元，{order.status}"
        )
    recent = sorted(profile.behaviours, key=lambda b: b.ts, reverse=True)[:_SHOWN_BEHAVIOURS]
    if recent:
        events = "；".join(
            " ".join(p for p in (f"{b.ts:%m-%d}", b.type, b.target, b.detail) if p) for b in recent
        )
        lines.append(f"[behaviours] 最近行为：{events}")
    return "\n".join(lines)


def _unchanged(text: str) -> str:
    return text


def _default_masker() -> Masker:
    """The compliance engine's masker, looked up at run time so this module does not depend on it."""
    try:
        module = importlib.import_module("copilot.compliance")
        masker: Masker = module.mask_pii
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            "PII masking is on but copilot.compliance.mask_pii is unavailable; pass a masker or turn masking off"
        ) from exc
    return masker
