"""Rule packs: YAML files that say what to flag, validated and compiled into `Rule` objects.

Compliance teams change wording far more often than engineers change code, so every rule lives in data:
the shipped packs under `packs/` plus any tenant files. A pack is

    pack: general                       # optional name
    lists: {competitors: [飞鹤, ...]}    # named term lists, referenced in patterns as ${competitors}
    allow: [最好的朋友, 第一次]           # phrases whose occurrences never raise a lexicon/pattern flag
    rules:
      - id: abs.zuihao                  # unique across everything loaded
        category: ad_absolute           # one of result.CATEGORIES
        severity: review                # warn | review | block
        basis: 《广告法》第九条
        message: 使用了绝对化用语……        # tells staff what is wrong
        suggestion: 改为“口碑很好的”……     # a compliant rewrite, when one exists
        terms: [最好, 最佳]               # lexicon, matched by one Aho-Corasick pass ...
        pattern: '(销量|全网)第一'         # ... or a regex over the normalised text (never both)
        unless_followed_by: [的朋友]      # exceptions, checked on the normalised text
        unless_preceded_by: [不]
        only_followed_by: [的, $]       # keep a hit only if one of these follows ($ = end of clause) ...
        only_preceded_by: [效果, ^]     # ... or one of these precedes (^ = start of clause)
        context: {window: 8, unless_near: [医院], only_near: []}

Terms, exceptions and list entries are normalised exactly like the checked text; patterns are written against
the normalised form (lower case, simplified, no spaces or punctuation, Chinese percentages as `100%`).
Bad data raises `LibraryError` naming the file, line and rule id; nothing half-loaded is ever used.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from retrie.trie import Trie

from copilot.compliance.normalize import normalize_term
from copilot.compliance.result import CATEGORIES, Severity
from copilot.errors import ConfigurationError, LibraryError, LibraryProblem

__all__ = [
    "PackSource",
    "Rule",
    "RuleSet",
    "RuleSpec",
    "available_packs",
    "compile_rule",
    "compile_rules",
    "pack_source",
    "read_rule_file",
]

_LIST_REF = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")


class ContextSpec(BaseModel):
    """Words near a hit that cancel it (`unless_near`) or that it needs (`only_near`)."""

    model_config = ConfigDict(extra="forbid")

    window: int = Field(10, ge=1, le=80)
    unless_near: list[str] = Field(default_factory=list)
    only_near: list[str] = Field(default_factory=list)


class RuleSpec(BaseModel):
    """One rule as written in a pack."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", max_length=80)
    category: str
    severity: Severity
    basis: str = Field(min_length=2)
    message: str = Field(min_length=4)
    suggestion: str | None = None
    terms: list[str] = Field(default_factory=list)
    pattern: str | None = None
    unless_followed_by: list[str] = Field(default_factory=list)
    unless_preceded_by: list[str] = Field(default_factory=list)
    only_followed_by: list[str] = Field(default_factory=list)
    only_preceded_by: list[str] = Field(default_factory=list)
    context: ContextSpec | None = None

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        if value not in CATEGORIES:
            raise ValueError(f"unknown category {value!r}; use one of: {', '.join(CATEGORIES)}")
        return value

    @model_validator(mode="after")
    def _terms_or_pattern(self) -> RuleSpec:
        if bool(self.terms) == (self.pattern is not None):
            raise ValueError("give exactly one of `terms` (a non-empty list) or `pattern`")
        return self


class PackSpec(BaseModel):
    """The top level of a pack file; rules are validated one by one so errors can name the rule."""

    model_config = ConfigDict(extra="forbid")

    pack: str | None = None
    description: str = ""
    lists: dict[str, list[str]] = Field(default_factory=dict)
    allow: list[str] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class Rule:
    """A compiled rule; every string in it is already normalised."""

    id: str
    category: str
    severity: Severity
    basis: str
    message: str
    suggestion: str | None
    source: str
    terms: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    unless_followed_by: tuple[str, ...] = ()
    unless_preceded_by: tuple[str, ...] = ()
    only_followed_by: tuple[str, ...] = ()
    only_preceded_by: tuple[str, ...] = ()
    clause_end: bool = False
    clause_start: bool = False
    window: int = 10
    unless_near: tuple[str, ...] = ()
    only_near: tuple[str, ...] = ()
    # The pattern with its word lists as plain alternations, which is what the trigger literals are read from: the
    # trie form compiled for speed (`(?:湿疹?|感冒)`) would yield shorter, noisier ones.
    literal_source: str | None = None

    @property
    def has_exceptions(self) -> bool:
        return bool(
            self.unless_followed_by
            or self.unless_preceded_by
            or self.unless_near
            or self.only_near
            or self.has_only_neighbours
        )

    @property
    def has_only_neighbours(self) -> bool:
        return bool(self.only_followed_by or self.only_preceded_by or self.clause_end or self.clause_start)


@dataclass(frozen=True)
class RuleSet:
    """Everything the checker needs from the packs, plus a digest of the bytes it came from."""

    rules: tuple[Rule, ...]
    allow: tuple[str, ...]
    digest: str


@dataclass(frozen=True)
class PackSource:
    """The raw text of one rule file and the name to report problems under."""

    label: str
    text: str


def available_packs() -> list[str]:
    """Names of the packs shipped with the package."""
    root = resources.files("copilot.compliance").joinpath("packs")
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def pack_source(name: str) -> PackSource:
    """The shipped pack called `name`."""
    if not re.fullmatch(r"[a-z0-9_]+", name) or name not in available_packs():
        raise ConfigurationError(
            f"unknown compliance pack {name!r}; choose from: {', '.join(available_packs())}"
        )
    resource = resources.files("copilot.compliance").joinpath("packs", f"{name}.yaml")
    return PackSource(f"packs/{name}.yaml", resource.read_text(encoding="utf-8"))


def read_rule_file(path: Path) -> PackSource:
    """A tenant's extra rule file."""
    try:
        return PackSource(str(path), path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read compliance rule file {path}: {exc.strerror}") from exc


def _rule_lines(text: str) -> list[int]:
    """1-based line of each item under `rules:`, so problems point at the rule in the file."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "rules" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _parse(source: PackSource, problems: list[LibraryProblem]) -> tuple[PackSpec, list[RuleSpec], list[int]]:
    empty = PackSpec()
    try:
        data = yaml.safe_load(source.text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problems.append(LibraryProblem(source.label, line, "yaml", f"not valid YAML: {exc}"))
        return empty, [], []
    if data is None:
        data = {}
    try:
        spec = PackSpec.model_validate(data)
    except PydanticValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "pack"
            problems.append(LibraryProblem(source.label, 1, loc, err["msg"]))
        return empty, [], []
    lines = _rule_lines(source.text)
    rules: list[RuleSpec] = []
    kept_lines: list[int] = []
    for i, raw in enumerate(spec.rules):
        line = lines[i] if i < len(lines) else 0
        rule_id = raw.get("id", f"#{i + 1}") if isinstance(raw, dict) else f"#{i + 1}"
        try:
            rules.append(RuleSpec.model_validate(raw))
            kept_lines.append(line)
        except PydanticValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                field = f"rule {rule_id}" + (f".{where}" if where else "")
                problems.append(LibraryProblem(source.label, line, field, err["msg"]))
    return spec, rules, kept_lines


def _normalised(
    values: list[str], where: str, label: str, line: int, problems: list[LibraryProblem]
) -> list[str]:
    out = []
    for value in values:
        norm = normalize_term(value)
        if not norm:
            problems.append(LibraryProblem(label, line, where, f"{value!r} is empty once normalised"))
        else:
            out.append(norm)
    return out


def _plain_alternation(terms: list[str]) -> str:
    return "(?:" + "|".join(re.escape(t) for t in sorted(set(terms), key=len, reverse=True)) + ")"


def _alternation(terms: list[str]) -> str:
    """One group matching any of `terms`, built as a trie (`(?:湿疹?|感冒)`): Python's `re` tries a plain alternation
    word by word, which costs tens of microseconds per text for the few-hundred-word lists (illnesses, rivals)."""
    trie = Trie()
    trie.add(*set(terms))
    return "(?:" + trie.pattern() + ")"


def compile_rules(sources: list[PackSource], extra_allow: tuple[str, ...] = ()) -> RuleSet:
    """Validate and compile `sources` in order; raise `LibraryError` listing every problem found."""
    problems: list[LibraryProblem] = []
    parsed = [(source, *_parse(source, problems)) for source in sources]
    lists: dict[str, list[str]] = {}
    allow: list[str] = []
    for source, spec, _, _ in parsed:
        for name, values in spec.lists.items():
            lists.setdefault(name, []).extend(_normalised(values, f"lists.{name}", source.label, 1, problems))
        allow.extend(_normalised(spec.allow, "allow", source.label, 1, problems))
    allow.extend(_normalised(list(extra_allow), "allow_phrases", "allow_phrases", 0, problems))
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for source, _, specs, lines in parsed:
        for spec_rule, line in zip(specs, lines, strict=True):
            field = f"rule {spec_rule.id}"
            if spec_rule.id in seen:
                problems.append(
                    LibraryProblem(
                        source.label, line, field, f"duplicate rule id (first in {seen[spec_rule.id]})"
                    )
                )
                continue
            seen[spec_rule.id] = source.label
            rule = compile_rule(spec_rule, source.label, line, lists, problems)
            if rule is not None:
                rules.append(rule)
    if problems:
        raise LibraryError(problems)
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.label.encode() + b"\0" + source.text.encode() + b"\0")
    digest.update("\0".join(extra_allow).encode())
    return RuleSet(tuple(rules), tuple(dict.fromkeys(allow)), digest.hexdigest())


def compile_rule(
    spec: RuleSpec, label: str, line: int, lists: dict[str, list[str]], problems: list[LibraryProblem]
) -> Rule | None:
    field = f"rule {spec.id}"
    before = len(problems)
    terms = _normalised(spec.terms, f"{field}.terms", label, line, problems)
    pattern = None
    literal_source: str | None = None
    if spec.pattern is not None:
        missing = [name for name in _LIST_REF.findall(spec.pattern) if name not in lists]
        if missing:
            problems.append(LibraryProblem(label, line, f"{field}.pattern", f"unknown list(s): {missing}"))
        else:
            source = _LIST_REF.sub(lambda m: _alternation(lists[m.group(1)]), spec.pattern)
            literal_source = _LIST_REF.sub(lambda m: _plain_alternation(lists[m.group(1)]), spec.pattern)
            try:
                pattern = re.compile(source)
            except re.error as exc:
                problems.append(LibraryProblem(label, line, f"{field}.pattern", f"invalid regex: {exc}"))
            else:
                if pattern.search("") is not None:
                    problems.append(
                        LibraryProblem(label, line, f"{field}.pattern", "matches the empty string")
                    )
    context = spec.context or ContextSpec(window=10)
    rule = Rule(
        id=spec.id,
        category=spec.category,
        severity=spec.severity,
        basis=spec.basis,
        message=spec.message,
        suggestion=spec.suggestion,
        source=label,
        terms=tuple(terms),
        pattern=pattern,
        literal_source=literal_source if pattern is not None else None,
        unless_followed_by=tuple(
            _normalised(spec.unless_followed_by, f"{field}.unless_followed_by", label, line, problems)
        ),
        unless_preceded_by=tuple(
            _normalised(spec.unless_preceded_by, f"{field}.unless_preceded_by", label, line, problems)
        ),
        only_followed_by=tuple(
            _normalised(
                [w for w in spec.only_followed_by if w != "$"],
                f"{field}.only_followed_by",
                label,
                line,
                problems,
            )
        ),
        only_preceded_by=tuple(
            _normalised(
                [w for w in spec.only_preceded_by if w != "^"],
                f"{field}.only_preceded_by",
                label,
                line,
                problems,
            )
        ),
        clause_end="$" in spec.only_followed_by,
        clause_start="^" in spec.only_preceded_by,
        window=context.window,
        unless_near=tuple(_normalised(context.unless_near, f"{field}.context", label, line, problems)),
        only_near=tuple(_normalised(context.only_near, f"{field}.context", label, line, problems)),
    )
    return rule if len(problems) == before else None
