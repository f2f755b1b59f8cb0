"""Is the customer's latest message about the shop at all? Out-of-scope turns get no sales reply.

A customer who asks a brand's advisor for tomorrow's weather, a recipe or a flight should not get a
script about diapers back. Two independent readings must agree before a turn counts as out of scope:

- the tenant's message-intent classifier (`message_intents.MessageClassifier`, trained on its
  `intents.yaml`) labels the message `oos`: it resembles none of the brand's intents;
- nothing in the message speaks for the sale: no dialogue act of the cue lexicon (greeting, need, price,
  size, objection, after-sales …, or a bare acknowledgement, which continues the exchange it answers), no
  trigger phrase of the tenant's own scripts, no order number, not two characters or fewer, and it does
  not answer a question staff just asked.

Either reading alone would cost real customers their drafts: the classifier knows only a few examples
per intent, and the cue lexicon is silent on many in-scope sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from copilot.conversation.cues import ACK, Cue, find_cue
from copilot.conversation.message_intents import OOS_LABEL, Prediction
from copilot.conversation.stage_library import LibraryStages
from copilot.conversation.stages import STAGE_CUES
from copilot.conversation.turns import Turn, answered_staff_text

__all__ = ["MessageScope", "answers_staff_question", "judge_scope", "sales_signals"]

_CUES: tuple[Cue, ...] = tuple(cue for cues in STAGE_CUES.values() for cue in cues)
_SHORT = re.compile(r"[\s\W_]+", re.UNICODE)
_CODE = re.compile(r"[A-Za-z]{0,4}\d{8,}")
_QUESTION_ENDS = ("?", "？", "吗", "呢")


@dataclass(frozen=True)
class MessageScope:
    """The latest customer message's intent label and whether the suggestion should stay out of it."""

    text: str
    label: str  # an intent of the tenant's catalogue, or `oos`
    confidence: float
    out_of_scope: bool
    reason: str


def sales_signals(text: str, library: LibraryStages | None) -> list[str]:
    """What in `text` speaks for the sale: cue phrases found and the tenant's trigger phrases."""
    found = [hit for cue in _CUES if (hit := find_cue(cue, text))]
    bare = _SHORT.sub("", text)
    if len(bare) <= 4 and (hit := find_cue(ACK, text)):
        found.append(hit)  # a bare 好的/嗯/谢谢 continues the exchange it answers
    elif len(bare) <= 2:
        found.append(text.strip()[:4] or "…")  # 早, 👋, ？？？, 男孩: too short to be about something else
    if code := _CODE.search(text):
        found.append(code.group(0))  # an order or tracking number
    if library is not None:
        found += list(library.vote(text).phrases)
    return found


def answers_staff_question(turns: Sequence[Turn]) -> bool:
    """Whether the customer's latest words follow a question staff asked (they are answering it)."""
    return answered_staff_text(turns).rstrip().endswith(_QUESTION_ENDS)


def judge_scope(text: str, prediction: Prediction, library: LibraryStages | None, *,
                answering: bool = False) -> MessageScope:
    """Combine the classifier's label for `text` with the sales signals in it; an answer to a question
    staff asked is never out of scope, whatever its words."""
    label, confidence = prediction
    if label != OOS_LABEL:
        return MessageScope(text, label, confidence, False, f"客户消息属于意图“{label}”")
    if answering:
        return MessageScope(text, label, confidence, False, "客户在回答顾问的提问，按正常咨询处理")
    signals = sales_signals(text, library)
    if signals:
        return MessageScope(text, label, confidence, False,
                            f"与店铺的意图例句都不像，但提到了“{'、'.join(signals[:3])}”，按正常咨询处理")
    return MessageScope(text, label, confidence, True,
                        "客户这条消息与店铺的业务无关（不像任何意图例句，也没有咨询、购买或售后的说法）")
