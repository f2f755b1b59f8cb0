"""An optional second, semantic compliance pass by a chat model, run after the rules.

Keyword rules catch "保证治好" but not "用完这一罐，湿疹基本就不会再反复了"; a model reads the paraphrase. The
model is an addition, never a replacement: its findings are `review` at most (a manager looks), the rule
result stays, and when the model cannot answer (timeout, HTTP error, malformed JSON) the draft gets an
`llm.unavailable` flag so it needs approval instead of going out unchecked. Personal data is masked before
the text leaves the process; the model's quote is mapped back onto the original text to place the span.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, field_validator

from copilot.compliance.pii import mask_pii
from copilot.compliance.result import CATEGORIES, PII_CATEGORIES, ComplianceResult, Flag, Severity, combine
from copilot.errors import UpstreamError
from copilot.llm.client import invoke_structured
from copilot.llm.prompts import Prompt

__all__ = ["LLM_CATEGORIES", "UNAVAILABLE_MESSAGE", "LLMComplianceCheck", "combine"]

# What the model may report: personal data is masked away before it sees the text, and frequency is counted.
LLM_CATEGORIES: tuple[str, ...] = tuple(c for c in CATEGORIES if c not in PII_CATEGORIES and c != "frequency")
UNAVAILABLE_MESSAGE = "自动语义检查暂不可用，需人工审核"
_MAX_REASON = 200


class _Finding(BaseModel):
    model_config = ConfigDict(extra="ignore")

    category: str
    quote: str = ""
    reason: str = ""

    @field_validator("category")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in LLM_CATEGORIES:
            raise ValueError(f"unknown category {value[:40]!r}")
        return value


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    flags: list[_Finding] = Field(max_length=20)


class LLMComplianceCheck:
    """Asks `model` (built by `copilot.llm.client.build_chat_model`) to review one outgoing text with `prompt`.

    `prompt` is `load_prompt("compliance_check")` or a tenant's variant declaring the single variable `text`.
    """

    def __init__(self, model: BaseChatModel, prompt: Prompt) -> None:
        self.model = model
        self.prompt = prompt

    def flags(self, text: str) -> tuple[Flag, ...]:
        """The model's findings as `review` flags, or one `llm.unavailable` flag when it could not answer.

        ModelRequestsBlocked (model calls switched off) propagates: that is a programming error in a test,
        not an outage to paper over.
        """
        if not text.strip():
            return ()
        masked = mask_pii(text)
        rendered = self.prompt.render({"text": masked.text})
        messages = [SystemMessage(content=rendered.system), HumanMessage(content=rendered.user)]
        try:
            answer = invoke_structured(self.model, messages, _Answer)
        except UpstreamError as exc:
            return (_unavailable(text, type(exc).__name__),)
        found = []
        for finding in answer.flags:
            lo, hi = _locate(text, masked.restore(finding.quote.strip()))
            reason = finding.reason.strip()[:_MAX_REASON] or "可能存在合规风险"
            found.append(
                Flag(
                    category=finding.category,
                    rule_id=f"llm.{finding.category}",
                    severity=Severity.review,
                    span=(lo, hi),
                    message=f"语义检查：{reason}",
                    suggestion="请人工确认后再发送，或改为不带承诺的客观说法",
                    matched=text[lo:hi],
                )
            )
        return tuple(found)

    def review(self, text: str, rule_result: ComplianceResult) -> ComplianceResult:
        """The rules' verdict plus the model's; a text the rules already block is not sent to the model."""
        if rule_result.risk == "block":
            return rule_result
        return combine(rule_result, self.flags(text))


def _locate(text: str, quote: str) -> tuple[int, int]:
    """Where the quoted phrase is in `text`; the whole text when the model paraphrased instead of quoting."""
    if quote:
        start = text.find(quote)
        if start >= 0:
            return start, start + len(quote)
    return 0, len(text)


def _unavailable(text: str, reason: str) -> Flag:
    return Flag(
        category="false_promise",
        rule_id="llm.unavailable",
        severity=Severity.review,
        span=(0, len(text)),
        message=UNAVAILABLE_MESSAGE,
        suggestion=f"语义检查未完成（{reason}），请人工审核后再发送",
    )
