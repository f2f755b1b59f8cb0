"""Term lists: the built-in categorised lexicons shipped in this folder, and optional public lists from a directory.

Built-in (`builtin_lexicons`, always loaded): `index.yaml` names one term file per rule — 广告法 极限词, cure
and function claims, exam and return guarantees, superstition, prize lures, state endorsement, cash for
reviews, off-platform hooks, spam ads, fraud — and the houbb sensitive lists filtered as described below
(`houbb/*.txt`, produced once with `load_lexicons` and committed). Each file has one category, legal basis,
message and suggested rewrite, so every hit stays explainable. Sources, versions and licences: SOURCES.md.

Optional (`load_lexicons(lexicon_dir)`): a deployment may point `COPILOT_LEXICON_DIR` at further public lists
(houbb `sensitive_word_tags.txt`: one `word tag[,tag…]` per line with 0 politics, 1 drugs, 2 porn, 3 gambling,
4 crime; jionlp `politics.txt` / `pornography.txt`: one word per line).

Those lists are noisy: they contain 北京, 妈妈, 国家, 小时 and cross-word fragments like 找女. Measured on
8,458 ordinary Chinese dialogue turns (CrossWOZ) plus the 239 clean lines of our labelled set, entries of
one or two characters flagged 40% of turns (jionlp) and 2.3% (houbb). Kept entries therefore must

* be at least three characters long and contain a CJK character (drops 北京, jb, space);
* not be a word jieba's dictionary counts 30 times or more (drops 天安门, 出租车, 钓鱼台, 毛主席);
* not split, under jieba, into pieces that are all very common words (each counted 5,000+ times), which
  drops compositional phrases such as 中国人, 好朋友, 我和姐姐.

With these filters 5 of the 8,697 texts raise a lexicon flag (一起玩, 体育总局, 妈妈的…), against 34 with the
frequency filter alone; 369 of ~46,500 longer entries are lost to the phrase test, mostly profanity the
core harassment list covers. Words the packs already list keep the packs' category, and the general pack
allows the few everyday words still mis-tagged (妈妈的, 会计证). Reproduce with `bench/compliance_throughput.py --lexicon-dir DIR --corpus F`.
jionlp `qita.txt` and `advertisement.txt` are mixed or everyday vocabulary (兼职, 淘宝, 客服): not loaded.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError

from copilot.compliance.normalize import normalize_term
from copilot.compliance.packs import Rule, RuleSpec, compile_rule
from copilot.compliance.result import Severity
from copilot.errors import ConfigurationError, LibraryError, LibraryProblem

__all__ = ["LexiconRules", "builtin_lexicons", "load_lexicons"]

# houbb tag → category; when a word carries several tags the most specific wins (porn, gambling, then the
# crime/drug tags, politics last, because weapon-sale entries are often also tagged 0).
_HOUBB_TAGS = {"2": "sensitive_porn", "3": "sensitive_gambling", "1": "sensitive_violence",
               "4": "sensitive_violence", "0": "sensitive_political"}  # fmt: skip
_TAG_PRIORITY = ("2", "3", "1", "4", "0")
_JIONLP_FILES = {"politics.txt": "sensitive_political", "pornography.txt": "sensitive_porn"}
_MIN_CHARS = 3
_COMMON_WORD = 30
_COMMON_PIECE = 5000
_CJK = re.compile(r"[\u4e00-\u9fff]")

_META = {
    "sensitive_political": ("涉及政治敏感内容，销售沟通中不得发送", "《网络信息内容生态治理规定》第六条"),
    "sensitive_porn": ("涉及色情低俗内容，不得发送", "《网络信息内容生态治理规定》第六条、第七条"),
    "sensitive_gambling": (
        "涉及赌博内容，不得发送",
        "《网络信息内容生态治理规定》第六条；《治安管理处罚法》",
    ),
    "sensitive_violence": ("涉及暴力、违禁品或违法犯罪内容，不得发送", "《网络信息内容生态治理规定》第六条"),
}


@dataclass(frozen=True)
class LexiconRules:
    """One synthetic rule per sensitive category, the public allow-list, and a digest of the files read."""

    rules: tuple[Rule, ...]
    allow: tuple[str, ...]
    digest: str
    dropped: int


def _find(root: Path, name: str) -> Path | None:
    for candidate in (root / name, *sorted(root.glob(f"*/{name}"))):
        if candidate.is_file():
            return candidate
    return None


def _ordinary(words: set[str]) -> set[str]:
    """The subset of `words` that is everyday vocabulary or a phrase built only from everyday words."""
    import jieba  # loading its dictionary takes a second; only lexicon users pay for it

    logging.getLogger("jieba").setLevel(logging.WARNING)
    jieba.initialize()
    freq = jieba.dt.FREQ
    ordinary = set()
    for word in words:
        if freq.get(word, 0) >= _COMMON_WORD:
            ordinary.add(word)
            continue
        pieces = jieba.lcut(word, HMM=False)
        if len(pieces) > 1 and all(freq.get(p, 0) >= _COMMON_PIECE for p in pieces):
            ordinary.add(word)
    return ordinary


def load_lexicons(lexicon_dir: Path) -> LexiconRules:
    """Read whichever known lexicon files exist under `lexicon_dir` (directly or one folder down)."""
    if not lexicon_dir.is_dir():
        raise ConfigurationError(f"compliance lexicon_dir {lexicon_dir} is not a directory")
    digest = hashlib.sha256()
    raw: dict[str, str] = {}
    allow: list[str] = []
    houbb = _find(lexicon_dir, "sensitive_word_tags.txt")
    if houbb is not None:
        content = houbb.read_text(encoding="utf-8")
        digest.update(content.encode())
        for line in content.splitlines():
            word, _, tags = line.strip().rpartition(" ")
            tag_set = set(tags.split(","))
            tag = next((t for t in _TAG_PRIORITY if t in tag_set), None)
            if word and tag is not None:
                raw.setdefault(word, _HOUBB_TAGS[tag])
        allow_file = _find(lexicon_dir, "sensitive_word_allow.txt")
        if allow_file is not None:
            allow_text = allow_file.read_text(encoding="utf-8")
            digest.update(allow_text.encode())
            allow.extend(w for w in (normalize_term(x) for x in allow_text.splitlines()) if w)
    for name, category in _JIONLP_FILES.items():
        path = _find(lexicon_dir, name)
        if path is not None:
            content = path.read_text(encoding="utf-8")
            digest.update(content.encode())
            for word in content.splitlines():
                if word.strip():
                    raw.setdefault(word.strip(), category)
    if houbb is None and not any(_find(lexicon_dir, n) for n in _JIONLP_FILES):
        raise ConfigurationError(
            f"no known lexicon file under {lexicon_dir}; expected sensitive_word_tags.txt, politics.txt "
            "or pornography.txt"
        )
    by_norm: dict[str, str] = {}
    for word, category in raw.items():
        norm = normalize_term(word)
        if len(norm) >= _MIN_CHARS and _CJK.search(norm):
            by_norm.setdefault(norm, category)
    common = _ordinary(set(by_norm))
    terms: dict[str, list[str]] = {}
    for norm, category in by_norm.items():
        if norm not in common:
            terms.setdefault(category, []).append(norm)
    rules = tuple(
        Rule(
            id=f"lexicon.{category}",
            category=category,
            severity=Severity.block,
            basis=_META[category][1],
            message=_META[category][0],
            suggestion=None,
            source=str(lexicon_dir),
            terms=tuple(sorted(words)),
        )
        for category, words in sorted(terms.items())
    )
    kept = sum(len(r.terms) for r in rules)
    return LexiconRules(rules, tuple(allow), digest.hexdigest(), len(raw) - kept)


def _terms(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@cache
def builtin_lexicons() -> LexiconRules:
    """The shipped term lists as rules (read once per process); bad data raises `LibraryError`."""
    root = resources.files("copilot.compliance").joinpath("lexicons")
    index_text = root.joinpath("index.yaml").read_text(encoding="utf-8")
    index: dict[str, Any] = yaml.safe_load(index_text)
    digest = hashlib.sha256(index_text.encode())
    problems: list[LibraryProblem] = []
    rules: list[Rule] = []
    for entry in index["lists"]:
        label = f"lexicons/{entry['file']}"
        text = root.joinpath(entry["file"]).read_text(encoding="utf-8")
        digest.update(label.encode() + b"\0" + text.encode())
        raw = {k: v for k, v in entry.items() if k != "file"} | {"terms": _terms(text)}
        try:
            spec = RuleSpec.model_validate(raw)
        except PydanticValidationError as exc:
            problems.extend(LibraryProblem(label, 0, ".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors())
            continue
        rule = compile_rule(spec, label, 0, {}, problems)
        if rule is not None:
            rules.append(rule)
    allow: list[str] = []
    for name in index.get("allow_files", []):
        text = root.joinpath(name).read_text(encoding="utf-8")
        digest.update(text.encode())
        allow.extend(w for w in (normalize_term(x) for x in _terms(text)) if w)
    if problems:
        raise LibraryError(problems)
    return LexiconRules(tuple(rules), tuple(dict.fromkeys(allow)), digest.hexdigest(), 0)
