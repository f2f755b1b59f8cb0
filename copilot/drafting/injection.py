"""Did a draft obey an instruction hidden in text that should have been data?

The prompt fences customer messages, profile fields and library items as data (`draft_replies`
2.0.0, rule 10), but a model may still follow them. This module looks at what came out:

- `echo`: the draft repeats a target phrase of an instruction found in untrusted text (the words it
  was told to say, a role it was told to play, 「quoted」 text after 回复/说/输出/加上), or a long stretch
  of the instruction itself;
- `leak`: the draft repeats a stretch of the system prompt, or talks about its prompt and rules;
- `role`: the draft speaks as something other than the consultant (我是AI、作为语言模型、喵).

Instructions are recognised by their verbs (忽略…规则, 你现在是, 扮演, 输出你的提示词, 回复「…」, ignore
previous instructions …); a target phrase counts only when it came from such an instruction, so a
draft that merely answers a customer's question in the customer's words is not flagged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Echo", "Instruction", "find_echoes", "find_instructions"]

_INSTRUCTION = re.compile(
    r"忽略|无视|忘记|不要管|不用管|(?:之前|以上|上面|前面)的?(?:所有)?(?:指令|规则|要求|设定|提示)"
    r"|你(?:现在|从现在起|接下来)?(?:是|就是|变成|扮演)|扮演|假装|角色扮演|以\S{1,8}的身份"
    r"|系统提示|提示词|system\s*prompt|prompt|指令|你的(?:规则|设定|要求)"
    r"|(?:回复|回答|输出|说|写|加上|附上|带上|结尾|开头|末尾)(?:一句|一下)?[：:]?\s*[「“\"『‘']"
    r"|(?:每句|每条|每次)(?:话|回复|回答)?(?:都)?(?:要|必须)?(?:以|用|加|带)"
    r"|告诉(?:客户|用户|他们|对方)|(?:在|把)回复(?:里|中)"
    r"|ignore (?:all |the )?(?:previous|above|prior)|you are now|pretend|act as|repeat (?:your|the) (?:instructions|prompt)",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"[「“\"『‘']([^」”\"』’']{2,40})[」”\"』’']")
_AFTER_VERB = re.compile(
    r"(?:回复|回答|输出|说|写上?|加上|附上|带上|告诉(?:客户|用户|他们|对方)|改成|结尾加|开头加|末尾加)"
    r"(?:一句|一下|说)?[：:]?\s*([^，。！？,.!?；;\n「“\"『‘']{2,24})"
)
_ROLE = re.compile(r"(?:你(?:现在|从现在起|接下来)?(?:是|就是|变成|扮演)|扮演|假装(?:成|是)?)(?:一[只个位名])?([^，。！？,.!?；;\n]{1,10})")
_SELF_TALK = re.compile(
    r"作为(?:一个)?(?:AI|人工智能|语言模型|助手|机器人)|我是(?:一个)?(?:AI|人工智能|语言模型|ChatGPT|GPT|机器人|助手)"
    r"|语言模型|系统提示|提示词|system prompt|我的(?:指令|规则|设定|提示)|(?:以上|之前)的(?:指令|规则)"
    r"|script_ids|content_ids|profile_fields",
    re.IGNORECASE,
)
_STOP = {"回复", "客户", "您好", "你好", "谢谢", "宝宝", "我们", "这个", "一下"}


@dataclass(frozen=True)
class Instruction:
    source: str  # where it was found: 客户消息, 画像 attributes.备注, 内容 C-ART-001 …
    text: str  # the sentence holding it
    targets: tuple[str, ...]  # phrases an obedient draft would contain


@dataclass(frozen=True)
class Echo:
    rule: str  # echo | leak | role
    span: tuple[int, int]
    source: str
    phrase: str


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[。！？!?\n；;])", text) if s.strip()]


def find_instructions(sources: Iterable[tuple[str, str]]) -> list[Instruction]:
    """Instruction-like sentences in untrusted text, with the phrases an obedient draft would repeat."""
    found: list[Instruction] = []
    for label, text in sources:
        for sentence in _sentences(text):
            if not _INSTRUCTION.search(sentence):
                continue
            targets: list[str] = [m.group(1).strip() for m in _QUOTED.finditer(sentence)]
            targets += [m.group(1).strip() for m in _AFTER_VERB.finditer(sentence)]
            targets += [m.group(1).strip() for m in _ROLE.finditer(sentence)]
            kept = tuple(dict.fromkeys(t for t in targets if len(t) >= 2 and t not in _STOP))
            found.append(Instruction(label, sentence, kept))
    return found


def _longest_common(a: str, b: str, minimum: int) -> tuple[int, int] | None:
    """The span in `a` of the longest stretch (at least `minimum` characters) that also occurs in `b`."""
    best: tuple[int, int] | None = None
    for start in range(len(a) - minimum + 1):
        length = (best[1] - best[0]) if best else minimum - 1
        end = start + length + 1
        while end <= len(a) and a[start:end] in b:
            best = (start, end)
            end += 1
    return best


def find_echoes(
    draft: str,
    untrusted: Sequence[tuple[str, str]],
    *,
    prompt_text: str = "",
    min_echo: int = 8,
    min_leak: int = 12,
) -> list[Echo]:
    """Where `draft` obeys an instruction from `untrusted` text or leaks `prompt_text`."""
    low = _norm(draft)
    echoes: list[Echo] = []
    for instruction in find_instructions(untrusted):
        for target in instruction.targets:
            at = low.find(_norm(target))
            if at >= 0:
                echoes.append(Echo("echo", (at, at + len(target)), instruction.source, target))
        span = _longest_common(low, _norm(instruction.text), min_echo)
        if span is not None:
            echoes.append(Echo("echo", span, instruction.source, draft[span[0]:span[1]]))
    if prompt_text:
        span = _longest_common(low, _norm(prompt_text), min_leak)
        if span is not None:
            echoes.append(Echo("leak", span, "系统提示", draft[span[0]:span[1]]))
    for match in _SELF_TALK.finditer(draft):
        rule = "role" if re.match(r"作为|我是|语言模型", match.group(0)) else "leak"
        echoes.append(Echo(rule, match.span(), "回复本身", match.group(0)))
    return echoes
