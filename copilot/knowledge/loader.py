"""Load a library directory, reporting every problem as file:line:field.

Layout of a library (see knowledge/README.md):
    persona.yaml          one mapping (Persona)
    staff.yaml            list of StaffMember
    intents.yaml          optional IntentCatalogue (customer-message intents with examples)
    inspection.yaml       optional InspectionRules (质检: reply timeouts, words, behaviours, calendar)
    scripts/*.yaml        lists of Script
    content/*.yaml        lists of ContentItem
    customers/*.yaml      lists of CustomerProfile

Loading is all-or-nothing: any problem raises `LibraryError` listing every problem found, and the
caller changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from copilot.errors import LibraryError, LibraryProblem
from copilot.knowledge.inspection import InspectionRules
from copilot.knowledge.schema import (
    ContentItem,
    CustomerProfile,
    IntentCatalogue,
    Persona,
    Script,
    StaffMember,
)

__all__ = ["INSPECTION_FILE", "Library", "Located", "load_inspection", "load_library"]

INSPECTION_FILE = "inspection.yaml"

M = TypeVar("M", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class Located:
    """Where an item came from, so rows and errors can point back at the file."""

    file: str
    line: int


@dataclass
class Library:
    persona: Persona
    staff: list[StaffMember] = field(default_factory=list)
    scripts: list[Script] = field(default_factory=list)
    content: list[ContentItem] = field(default_factory=list)
    customers: list[CustomerProfile] = field(default_factory=list)
    intents: IntentCatalogue | None = None
    inspection: InspectionRules | None = None
    origins: dict[tuple[str, str], Located] = field(default_factory=dict)  # (kind, id) → origin

    def origin(self, kind: str, item_id: str) -> Located:
        return self.origins.get((kind, item_id), Located("", 0))


class _Problems:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: list[LibraryProblem] = []

    def add(self, path: Path, line: int, fld: str, message: str) -> None:
        try:
            shown = str(path.relative_to(self.root))
        except ValueError:
            shown = str(path)
        self.items.append(LibraryProblem(shown, line, fld, message))


def load_library(root: Path) -> Library:
    """Read and validate every file under `root`; raise LibraryError if anything is wrong."""
    root = root.resolve()
    problems = _Problems(root)
    if not root.is_dir():
        raise LibraryError([LibraryProblem(str(root), 0, "-", "library directory does not exist")])

    persona_path = root / "persona.yaml"
    personas = _load_file(persona_path, Persona, problems, single=True) if persona_path.exists() else []
    if not persona_path.exists():
        problems.add(persona_path, 0, "-", "missing: every library needs a persona.yaml (brand, persona_name, role)")

    staff = _load_file(root / "staff.yaml", StaffMember, problems) if (root / "staff.yaml").exists() else []
    intents_path = root / "intents.yaml"
    intents = _load_file(intents_path, IntentCatalogue, problems, single=True) if intents_path.exists() else []
    inspection_path = root / INSPECTION_FILE
    inspection = (_load_file(inspection_path, InspectionRules, problems, single=True)
                  if inspection_path.exists() else [])
    scripts = list(_load_dir(root / "scripts", Script, problems))
    content = list(_load_dir(root / "content", ContentItem, problems))
    customers = list(_load_dir(root / "customers", CustomerProfile, problems))

    library = Library(
        persona=personas[0][0] if personas else Persona(brand="-", persona_name="-", role="-"),
        staff=[s for s, _ in staff],
        scripts=[s for s, _ in scripts],
        content=[c for c, _ in content],
        customers=[c for c, _ in customers],
        intents=intents[0][0] if intents else None,
        inspection=inspection[0][0] if inspection else None,
    )
    for kind, located in (("staff", staff), ("script", scripts), ("content", content), ("customer", customers)):
        seen: dict[str, Located] = {}
        for item, where in located:
            item_id = item.id
            if item_id in seen:
                first = seen[item_id]
                problems.add(root / where.file, where.line, "id",
                             f"duplicate {kind} id {item_id!r} (first defined at {first.file}:{first.line}); "
                             "give each item its own id")
            seen[item_id] = where
            library.origins[(kind, item_id)] = where
    _check_references(library, root, problems)
    if problems.items:
        raise LibraryError(problems.items)
    return library


def load_inspection(path: Path) -> InspectionRules:
    """One tenant's `inspection.yaml`, validated like the rest of the library: every problem is raised
    as file:line:field in one LibraryError. An empty file means no rules."""
    problems = _Problems(path.parent.resolve())
    if not path.is_file():
        raise LibraryError([LibraryProblem(str(path), 0, "-", "inspection rules file does not exist")])
    loaded = _load_file(path.resolve(), InspectionRules, problems, single=True)
    if problems.items:
        raise LibraryError(problems.items)
    return loaded[0][0] if loaded else InspectionRules()


def _check_references(library: Library, root: Path, problems: _Problems) -> None:
    staff_ids = {s.id for s in library.staff}
    userids: dict[str, str] = {}
    for member in library.staff:
        if not member.wecom_userid:
            continue
        where = library.origin("staff", member.id)
        first = userids.setdefault(member.wecom_userid, member.id)
        if first != member.id:
            problems.add(root / where.file, where.line, "wecom_userid",
                         f"wecom_userid {member.wecom_userid!r} is already {first!r}'s; one WeCom account "
                         "signs in as one staff member")
    content_ids = {c.id for c in library.content}
    for customer in library.customers:
        where = library.origin("customer", customer.id)
        if customer.staff_id and staff_ids and customer.staff_id not in staff_ids:
            problems.add(root / where.file, where.line, "staff_id",
                         f"unknown staff {customer.staff_id!r}; add it to staff.yaml or fix the id")
        for event in customer.behaviours:
            if event.type == "viewed" and event.target.startswith("C-") and event.target not in content_ids:
                problems.add(root / where.file, where.line, "behaviours.target",
                             f"viewed content {event.target!r} does not exist in content/")


def _load_dir(folder: Path, model: type[M], problems: _Problems) -> Iterator[tuple[M, Located]]:
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.y*ml")):
        yield from _load_file(path, model, problems)


def _load_file(
    path: Path, model: type[M], problems: _Problems, *, single: bool = False
) -> list[tuple[M, Located]]:
    rel = str(path.relative_to(problems.root)) if path.is_relative_to(problems.root) else str(path)
    try:
        text = path.read_text(encoding="utf-8")
        node, data = _parse(text)
    except UnicodeDecodeError as exc:
        problems.add(path, 0, "-", f"not UTF-8 text ({exc.reason}); save the file as UTF-8")
        return []
    except yaml.MarkedYAMLError as exc:
        line = (exc.problem_mark.line + 1) if exc.problem_mark else 0
        problems.add(path, line, "-", f"YAML syntax: {exc.problem}; check indentation and quotes")
        return []
    if data is None:
        return []
    if single:
        entries: Iterable[tuple[Any, Node | None]] = [(data, node)]
        if not isinstance(data, dict):
            problems.add(path, 1, "-", "expected one mapping of fields (key: value)")
            return []
    else:
        if not isinstance(data, list) or not isinstance(node, SequenceNode):
            problems.add(path, 1, "-", "expected a list of items, each starting with '- '")
            return []
        entries = zip(data, node.value, strict=True)
    loaded: list[tuple[M, Located]] = []
    for raw, item_node in entries:
        line = item_node.start_mark.line + 1 if item_node is not None else 0
        if not isinstance(raw, dict):
            problems.add(path, line, "-", "expected a mapping of fields for this item")
            continue
        try:
            loaded.append((model.model_validate(raw), Located(rel, line)))
        except pydantic.ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                problems.add(path, _line_of(item_node, loc) or line, ".".join(map(str, loc)) or "-",
                             _explain(err))
    return loaded


def _parse(text: str) -> tuple[Node | None, Any]:
    """One parse giving both the node tree (for line numbers) and the data; libyaml when present."""
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def _line_of(node: Node | None, loc: tuple[Any, ...]) -> int:
    """The line of the deepest YAML node along `loc` (a pydantic error location)."""
    best = node.start_mark.line + 1 if node is not None else 0
    for key in loc:
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == str(key):
                    node = value_node
                    best = key_node.start_mark.line + 1
                    break
            else:
                continue  # not a key of the file: a tagged union's tag (e.g. a rule's kind), look past it
        elif isinstance(node, SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            best = node.start_mark.line + 1
        else:
            return best
    return best


def _explain(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "required field is missing; add it"
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling against knowledge/README.md"
    message = str(err.get("msg", "invalid value"))
    if "input" in err and kind not in ("dict_type", "list_type"):
        shown = repr(err["input"])
        message += f" (got {shown[:60]})"
    return message
