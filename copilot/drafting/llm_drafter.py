"""The LLM drafter: grounded replies from a chat model, checked, with the script drafter behind it.

The model sees the persona, the stage, a profile summary, the recent conversation and the retrieved
scripts and content, each under a token budget and each in a tagged block whose delimiters are
escaped (text from customers, profiles and the library is data, never an instruction), and answers
candidates that cite what they used. `stream` reads the answer as it is written and hands over each
candidate the moment it is complete. Nothing the model says is trusted: citations are kept only
when they name a script or content item the prompt actually showed or a field the profile really
has, and a candidate that cites nothing real is dropped. `draft` (the whole answer at once) tops
missing candidates up from the fallback drafter, and when the model times out, fails or answers
garbage the fallback's drafts are returned with the reason, so a draft request never fails because
a model did.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
from collections.abc import Callable, Collection, Generator, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Protocol

import pydantic
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from copilot.conversation.turns import Turn
from copilot.drafting.types import Citation, DraftCandidate, DraftContext, Drafter, DraftOutcome
from copilot.drafting.variables import fill_variables
from copilot.errors import ConfigurationError, UpstreamError
from copilot.knowledge.schema import CustomerProfile, Stage, script_variables
from copilot.llm.client import MalformedAnswerError, parse_json_answer, stream_text
from copilot.llm.prompts import Prompt, escape_data
from copilot.llm.streaming import ObjectScanner
from copilot.llm.tokens import TokenBudget
from copilot.retrieval.hybrid import Hit

__all__ = [
    "ANSWER_SCHEMA",
    "STAGE_GUIDE",
    "DraftStream",
    "LLMDrafter",
    "MaskedText",
    "Masker",
    "profile_field_exists",
    "profile_summary",
]

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


# What `json_schema` output mode sends: the answer's shape, every key required (strict mode wants that).
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "candidates": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "script_ids": {"type": "array", "items": {"type": "string"}},
                    "content_ids": {"type": "array", "items": {"type": "string"}},
                    "profile_fields": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["text", "script_ids", "content_ids", "profile_fields"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["candidates"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class _Shown:
    """The ids the prompt actually showed the model: the only ones it may cite."""

    scripts: frozenset[str]
    content: frozenset[str]


@dataclass
class DraftStream:
    """LLM candidates in the order the model completes them; `outcome` is final once iteration ends.

    Iterating it sends the request; stopping early (or setting `cancelled`) closes the model stream.
    """

    _run: Callable[[DraftStream], Iterator[DraftCandidate]]
    outcome: DraftOutcome = dataclass_field(default_factory=lambda: DraftOutcome(candidates=(), drafter="llm"))

    def __iter__(self) -> Iterator[DraftCandidate]:
        return self._run(self)


class LLMDrafter:
    def __init__(
        self,
        *,
        model: BaseChatModel,
        prompt: Prompt,
        fallback: Drafter,
        token_counter: TokenBudget,
        mask_pii: bool,
        masker: Masker | None = None,
        deadline_s: float = 60.0,
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.fallback = fallback
        self.tokens = token_counter
        self.mask_pii = mask_pii
        self.deadline_s = deadline_s
        # Fail closed: with masking on and no masker, refuse to build rather than send PII.
        self.masker: Masker | None = (masker or _default_masker()) if mask_pii else masker

    def draft(self, context: DraftContext) -> DraftOutcome:
        """The whole answer at once, topped up (or, on any model failure, replaced) by the fallback.

        ModelRequestsBlocked is not a model failure but a guard, so it propagates.
        """
        stream = self.stream(context)
        chosen = list(stream)
        outcome = stream.outcome
        if not chosen:
            return self._fall_back(context, outcome.fallback_reason or "llm answered no usable candidate",
                                   outcome.notes)
        notes = list(outcome.notes)
        if len(chosen) < context.n:
            chosen, notes = self._top_up(chosen, notes, context)
        return dataclasses.replace(outcome, candidates=tuple(chosen), notes=tuple(notes))

    def stream(
        self,
        context: DraftContext,
        *,
        exclude: Collection[str] = (),
        cancelled: threading.Event | None = None,
    ) -> DraftStream:
        """Up to `context.n` checked candidates, each as soon as the model has written it.

        Texts in `exclude` (drafts already shown) are skipped. A model failure ends the stream and is
        recorded in `outcome.fallback_reason`, keeping the candidates that arrived before it.
        """
        return DraftStream(lambda stream: self._run(stream, context, exclude, cancelled))

    def _run(
        self,
        stream: DraftStream,
        context: DraftContext,
        exclude: Collection[str],
        cancelled: threading.Event | None,
    ) -> Iterator[DraftCandidate]:
        system, user, shown = self._render(context)
        restore: Callable[[str], str] = _unchanged
        if self.mask_pii and self.masker is not None:
            masked = self.masker(user)
            user, restore = masked.text, masked.restore
        messages = [SystemMessage(content=system), HumanMessage(content=user)]
        chosen: list[DraftCandidate] = []
        notes: list[str] = []
        seen = set(exclude)
        scanner = ObjectScanner("text")
        answer: list[str] = []
        reason: str | None = None
        chunks: Generator[str, None, None] = stream_text(self.model, messages, deadline_s=self.deadline_s, cancelled=cancelled)
        try:
            for chunk in chunks:
                answer.append(chunk)
                found = scanner.feed(chunk)
                for number, raw in enumerate(found, start=scanner.complete - len(found) + 1):
                    candidate = self._check(raw, number, context, shown, restore, seen, notes)
                    if candidate is None:
                        continue
                    seen.add(candidate.text)
                    chosen.append(candidate)
                    stream.outcome = self._outcome(chosen, notes, None)
                    yield candidate
                    if len(chosen) >= context.n:
                        return
        except UpstreamError as exc:
            reason = str(exc)
        finally:
            chunks.close()
            if cancelled is not None and cancelled.is_set() and reason is None:
                reason = f"cancelled after {len(chosen)} llm candidate(s)"
            if not chosen and reason is None:
                reason = _why_nothing("".join(answer), scanner.complete)
            stream.outcome = self._outcome(chosen, notes, reason)

    def _outcome(self, chosen: list[DraftCandidate], notes: list[str], reason: str | None) -> DraftOutcome:
        return DraftOutcome(
            candidates=tuple(chosen), drafter="llm", prompt_name=self.prompt.name,
            prompt_version=self.prompt.version, fallback_reason=reason, notes=tuple(notes),
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
                "profile": escape_data(self.tokens.trim(profile_summary(context.profile), _PROFILE_TOKENS)),
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
                pieces.append((escape_data(self.tokens.trim(line, _ITEM_TOKENS)), content[i]))
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
        return escape_data(self.tokens.trim(f"- [{hit.doc.id}] {' '.join(text.split())}", _ITEM_TOKENS))

    def _conversation(self, turns: tuple[Turn, ...]) -> str:
        """The latest turns that fit the budget, oldest first."""
        lines: list[str] = []
        for turn in reversed(turns[-_MAX_TURNS:]):
            who = "客户" if turn.role == "customer" else "顾问"
            when = f"[{turn.ts:%m-%d %H:%M}] " if turn.ts else ""
            line = self.tokens.trim(f"{when}{who}：{' '.join(turn.text.split())}", _TURN_TOKENS)
            lines.append(escape_data(line))
        kept = self.tokens.fit(lines, _CONVERSATION_TOKENS)
        return "\n".join(reversed(kept)) or "（还没有对话）"

    def _check(
        self,
        raw_object: dict[str, Any],
        number: int,
        context: DraftContext,
        shown: _Shown,
        restore: Callable[[str], str],
        seen: set[str],
        notes: list[str],
    ) -> DraftCandidate | None:
        try:
            raw = _Candidate.model_validate(raw_object)
        except pydantic.ValidationError:
            notes.append(f"dropped candidate {number}: not of the candidate shape")
            return None
        text = restore(raw.text).strip()
        limit = context.persona.max_reply_chars
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
            return None
        citations = self._citations(raw, number, context.profile, shown, restore, notes)
        if not citations:
            notes.append(f"dropped candidate {number}: cites nothing from the context")
            return None
        return DraftCandidate(text=text, stage=context.stage, citations=citations, drafter="llm")

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


def _why_nothing(answer: str, objects: int) -> str:
    """Why an answer gave no candidate: the parser's precise complaint, or that none was usable."""
    if objects:
        return "llm answered no usable candidate"
    try:
        parse_json_answer(answer, _Answer)
    except MalformedAnswerError as exc:
        return str(exc)
    return "llm answered no usable candidate"


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
