"""The demo library and the loader's error reporting."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from copilot.errors import LibraryError
from copilot.knowledge.loader import load_library
from copilot.knowledge.schema import Stage, script_variables
from tests.conftest import KNOWLEDGE


@pytest.fixture(scope="module")
def demo():
    return load_library(KNOWLEDGE)


def test_demo_library_covers_every_stage_and_enough_scenarios(demo) -> None:
    stages = Counter(s.stage for s in demo.scripts)
    assert len(demo.scripts) >= 200
    assert set(stages) == set(Stage)
    assert len({s.scenario for s in demo.scripts}) >= 12
    assert len(demo.content) >= 50
    assert len(demo.customers) >= 50


def test_demo_scripts_use_profile_variables(demo) -> None:
    with_vars = [s for s in demo.scripts if script_variables(s.text)]
    assert len(with_vars) >= len(demo.scripts) // 4


def _copy_library(tmp_path: Path) -> Path:
    target = tmp_path / "lib"
    shutil.copytree(KNOWLEDGE, target)
    return target


def _first_script_file(lib: Path) -> Path:
    return sorted((lib / "scripts").glob("*.yaml"))[0]


def test_invalid_field_is_reported_with_file_line_and_field(tmp_path: Path) -> None:
    lib = _copy_library(tmp_path)
    path = _first_script_file(lib)
    lines = path.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip().startswith("stage:"))
    lines[index] = lines[index].split("stage:")[0] + "stage: closing"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(LibraryError) as caught:
        load_library(lib)
    shown = [str(p) for p in caught.value.problems]
    assert any(s.startswith(f"scripts/{path.name}:{index + 1}:stage:") for s in shown), shown


def test_yaml_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    lib = _copy_library(tmp_path)
    path = _first_script_file(lib)
    text = path.read_text(encoding="utf-8")
    path.write_text(text + "- id: [unclosed\n", encoding="utf-8")
    with pytest.raises(LibraryError) as caught:
        load_library(lib)
    problem = caught.value.problems[0]
    assert problem.file == f"scripts/{path.name}"
    assert problem.line == len(text.splitlines()) + 1 or problem.line == len(text.splitlines()) + 2


def test_duplicate_ids_are_reported(tmp_path: Path) -> None:
    lib = _copy_library(tmp_path)
    path = _first_script_file(lib)
    text = path.read_text(encoding="utf-8")
    first = yaml.safe_load(text)[0]
    path.write_text(text.rstrip("\n") + "\n" + yaml.safe_dump([first], allow_unicode=True), encoding="utf-8")
    with pytest.raises(LibraryError) as caught:
        load_library(lib)
    assert any("duplicate script id" in p.message for p in caught.value.problems)


def test_unknown_field_names_the_field(tmp_path: Path) -> None:
    lib = tmp_path / "tiny"
    (lib / "scripts").mkdir(parents=True)
    (lib / "persona.yaml").write_text("brand: 测试\npersona_name: 小测\nrole: 顾问\n", encoding="utf-8")
    (lib / "scripts" / "a.yaml").write_text(
        "- id: S-1\n  stage: icebreak\n  scenario: 破冰\n  text: 您好呀\n  colour: red\n", encoding="utf-8"
    )
    with pytest.raises(LibraryError) as caught:
        load_library(lib)
    assert [str(p) for p in caught.value.problems] == [
        "scripts/a.yaml:5:colour: unknown field; remove it or check its spelling against knowledge/README.md"
    ]
