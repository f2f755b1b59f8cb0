"""The import rules in pyproject.toml are real: `lint-imports` passes on the tree as it is, and fails,
naming the broken contract, when a domain module imports an edge or a lower layer imports a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("copilot", "api", "cli", "eval")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copies in `root` shadow the installed packages
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "datasets"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    text = module.read_text(encoding="utf-8")
    module.write_text(text.replace("from __future__ import annotations\n",
                                   f"from __future__ import annotations\n\n{statement}\n", 1), encoding="utf-8")


def test_the_tree_keeps_every_import_rule(tree: Path) -> None:
    result = lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_domain_module_importing_the_api_breaks_the_rules(tree: Path) -> None:
    add_import(tree / "copilot" / "conversation" / "stages.py", "import api.app  # noqa: F401")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "The domain never imports its edges (api, cli, eval) BROKEN" in result.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_rules(tree: Path) -> None:
    add_import(tree / "copilot" / "retrieval" / "hybrid.py", "import copilot.service  # noqa: F401")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "Layers of the domain only point down BROKEN" in result.stdout


def test_the_wecom_protocol_importing_automation_breaks_the_rules(tree: Path) -> None:
    add_import(tree / "copilot" / "wecom" / "protocol" / "client.py", "import copilot.wecom.automation.worker  # noqa: F401")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "The WeCom protocol layer never imports the automation built on it BROKEN" in result.stdout
