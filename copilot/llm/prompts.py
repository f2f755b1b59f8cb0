"""Prompts as versioned YAML files, rendered strictly.

Prompts live in files rather than code so they can be reviewed, diffed and versioned on their own,
and every draft records which prompt name and version produced it. Templates use `{variable}`
fields (literal braces are written `{{` and `}}`). A file must declare exactly the variables its
templates use, and rendering refuses a missing or an undeclared value, so a prompt and the code
that fills it cannot drift apart silently.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from copilot.errors import ConfigurationError, ValidationError

__all__ = ["DEFAULT_PROMPTS_DIR", "Prompt", "RenderedPrompt", "escape_data", "load_prompt", "template_fields"]

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


# Data blocks are fenced with <tag>…</tag>; in the data itself the angle brackets become their full-width
# forms, so no customer, profile or library text can close a block or open one of its own.
_FENCE_ESCAPES = str.maketrans({"<": "＜", ">": "＞"})


def escape_data(text: str) -> str:
    """`text` made safe to place inside a tagged data block of a prompt."""
    return text.translate(_FENCE_ESCAPES)


@dataclass(frozen=True)
class RenderedPrompt:
    system: str
    user: str


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    description: str
    variables: tuple[str, ...]
    system: str
    user: str

    def render(self, values: Mapping[str, str]) -> RenderedPrompt:
        """Fill both templates; every declared variable must be given and nothing else."""
        declared = set(self.variables)
        missing = sorted(declared - values.keys())
        extra = sorted(values.keys() - declared)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if extra:
                parts.append(f"undeclared {', '.join(extra)}")
            raise ValidationError(f"prompt {self.name!r} v{self.version}: {'; '.join(parts)}")
        bad = sorted(k for k, v in values.items() if not isinstance(v, str))
        if bad:
            raise ValidationError(f"prompt {self.name!r}: values must be text: {', '.join(bad)}")
        # format_map does not re-parse substituted values, so braces in a customer's words stay literal.
        return RenderedPrompt(self.system.format_map(values), self.user.format_map(values))


class _PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME.pattern)
    version: str = Field(min_length=1)
    description: str = Field(min_length=1)
    variables: list[str] = Field(default_factory=list)
    system: str = Field(min_length=1)
    user: str = Field(min_length=1)


def template_fields(template: str) -> list[str]:
    """The `{field}` names a template uses, in order; only plain identifiers are allowed."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValidationError(f"bad template braces: {exc}") from exc
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            shown = (
                "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            )
            raise ValidationError(f"template field {shown} is not a plain {{name}}")
        if field not in names:
            names.append(field)
    return names


def load_prompt(name: str, directory: Path | None = None) -> Prompt:
    """Load `<directory>/<name>.yaml` (default: the repository's `prompts/` folder) and check it."""
    if not _NAME.match(name):
        raise ValidationError(f"prompt name {name!r} must be lowercase letters, digits, '_' or '-'")
    folder = directory or DEFAULT_PROMPTS_DIR
    if not folder.is_dir():
        raise ConfigurationError(f"prompt directory {folder} does not exist; pass the folder holding *.yaml")
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise ConfigurationError(f"prompt {name!r} not found: {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"prompt file {path.name} is not valid YAML: {exc}") from exc
    try:
        parsed = _PromptFile.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"prompt file {path.name} is invalid: {problems}") from exc
    if parsed.name != name:
        raise ConfigurationError(f"prompt file {path.name} declares name {parsed.name!r}, expected {name!r}")
    try:
        used = template_fields(parsed.system) + template_fields(parsed.user)
    except ValidationError as exc:
        raise ConfigurationError(f"prompt file {path.name}: {exc}") from exc
    declared = parsed.variables
    if len(set(declared)) != len(declared):
        raise ConfigurationError(f"prompt file {path.name} declares a variable twice")
    undeclared = sorted(set(used) - set(declared))
    unused = sorted(set(declared) - set(used))
    if undeclared or unused:
        detail = [f"undeclared: {', '.join(undeclared)}"] if undeclared else []
        detail += [f"declared but unused: {', '.join(unused)}"] if unused else []
        raise ConfigurationError(f"prompt file {path.name}: {'; '.join(detail)}")
    return Prompt(
        name=parsed.name,
        version=parsed.version,
        description=parsed.description.strip(),
        variables=tuple(declared),
        system=parsed.system,
        user=parsed.user,
    )
