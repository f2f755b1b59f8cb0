"""Prompt files: loading checks the declared variables, rendering is strict and never re-parses values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copilot.errors import ConfigurationError, ValidationError
from copilot.llm.prompts import load_prompt, template_fields

DRAFT_VARIABLES = {
    "brand", "persona_name", "role", "tone", "polite_forms", "banned_topics", "max_reply_chars",
    "stage", "stage_label", "stage_goal", "profile", "conversation", "scripts", "content", "n",
}  # fmt: skip


def write_prompt(folder: Path, file: str = "greet", **overrides: object) -> Path:
    fields: dict[str, object] = {
        "name": file,
        "version": "1",
        "description": "a test prompt",
        "variables": ["who"],
        "system": 'You greet people. Answer {{"ok": true}}.',
        "user": "Greet {who}.",
    }
    fields.update(overrides)
    lines = [f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in fields.items()]
    path = folder / f"{file}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_drafting_prompt_loads_from_the_repository_with_its_declared_variables() -> None:
    prompt = load_prompt("draft_replies")
    assert prompt.name == "draft_replies"
    assert prompt.version
    assert set(prompt.variables) == DRAFT_VARIABLES


def test_drafting_prompt_renders_its_json_example_as_valid_json() -> None:
    prompt = load_prompt("draft_replies")
    rendered = prompt.render({name: f"<{name}>" for name in prompt.variables})
    example = next(line for line in rendered.system.splitlines() if line.startswith('{"candidates"'))
    parsed = json.loads(example)
    assert set(parsed["candidates"][0]) == {"text", "script_ids", "content_ids", "profile_fields"}
    assert "<max_reply_chars>" in rendered.system and "<scripts>" in rendered.user


def test_render_with_a_missing_variable_is_a_validation_error(tmp_path: Path) -> None:
    write_prompt(tmp_path)
    prompt = load_prompt("greet", tmp_path)
    with pytest.raises(ValidationError, match="missing who"):
        prompt.render({})


def test_render_with_an_undeclared_variable_is_a_validation_error(tmp_path: Path) -> None:
    write_prompt(tmp_path)
    prompt = load_prompt("greet", tmp_path)
    with pytest.raises(ValidationError, match="undeclared extra"):
        prompt.render({"who": "王姐", "extra": "x"})


def test_braces_in_values_are_inserted_verbatim(tmp_path: Path) -> None:
    write_prompt(tmp_path)
    rendered = load_prompt("greet", tmp_path).render({"who": "{称呼} and {who}"})
    assert rendered.user == "Greet {称呼} and {who}."
    assert rendered.system == 'You greet people. Answer {"ok": true}.'


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"user": "Greet {who} in {language}."}, "undeclared: language"),
        ({"variables": ["who", "unused"]}, "declared but unused: unused"),
        ({"user": "Greet {who.name}."}, "not a plain"),
        ({"user": "Greet {who:>10}."}, "not a plain"),
        ({"user": "Greet {who"}, "braces"),
        ({"name": "other"}, "declares name 'other'"),
        ({"version": 1}, "version"),
        ({"surprise": "x"}, "surprise"),
    ],
)
def test_invalid_prompt_files_are_configuration_errors(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    write_prompt(tmp_path, **overrides)
    with pytest.raises(ConfigurationError, match=message):
        load_prompt("greet", tmp_path)


def test_missing_directory_or_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_prompt("greet", tmp_path / "nowhere")
    with pytest.raises(ConfigurationError, match="not found"):
        load_prompt("greet", tmp_path)


def test_prompt_names_cannot_reach_outside_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        load_prompt("../secrets", tmp_path)


def test_template_fields_lists_each_name_once_in_order() -> None:
    assert template_fields("{a} {{literal}} {b} {a}") == ["a", "b"]
