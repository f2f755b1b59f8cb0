"""Per-tenant compliance settings: one YAML file in each tenant's library, one checker per tenant.

A baby-care brand needs the mother_baby pack, a tutoring company the education one, and each has its own
hotline and product names that must not be flagged, so the choice lives with the tenant's library (see
`knowledge/compliance.yaml` and this package's README) rather than in a deploy-wide setting. Editing the
file and calling `reload(tenant)` (the admin route `POST /v1/compliance/reload`) applies it without a
restart; a broken file is reported and the tenant's previous rules stay in force.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from copilot.compliance.checker import ComplianceChecker
from copilot.compliance.packs import available_packs
from copilot.errors import ValidationError

__all__ = ["CONFIG_FILENAME", "TenantCompliance", "TenantComplianceConfig", "build_checker", "load_config"]

CONFIG_FILENAME = "compliance.yaml"


class TenantComplianceConfig(BaseModel):
    """What one `compliance.yaml` may say; unknown keys are refused so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    packs: tuple[str, ...] = ("general",)
    allow_phrases: tuple[str, ...] = ()
    extra_rule_files: tuple[str, ...] = ()
    mask_pii: bool = True
    proactive_daily_cap: int = Field(default=3, ge=0)
    llm_check: bool = False

    @field_validator("packs")
    @classmethod
    def _known_packs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = available_packs()
        unknown = [p for p in value if p not in known]
        if unknown:
            raise ValueError(f"unknown pack(s) {', '.join(unknown)}; available: {', '.join(known)}")
        if not value:
            raise ValueError("list at least one pack (general is the usual base)")
        return value

    @field_validator("allow_phrases")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not p.strip() for p in value):
            raise ValueError("allow_phrases must not contain empty strings")
        return value


@dataclass(frozen=True)
class _Entry:
    library: Path
    config: TenantComplianceConfig
    checker: ComplianceChecker


def load_config(path: Path) -> TenantComplianceConfig:
    """Parse and validate one tenant file; every problem is named in the ValidationError."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError(f"cannot read compliance settings {path.name}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ValidationError(f"compliance settings {path.name} are not valid YAML: {exc}") from exc
    try:
        return TenantComplianceConfig.model_validate(data or {})
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValidationError(f"compliance settings {path.name} are invalid: {problems}") from exc


def build_checker(
    config: TenantComplianceConfig, library: Path, *, lexicon_dir: Path | None = None
) -> ComplianceChecker:
    """A checker for `config`; extra rule files are resolved inside `library` and may not leave it."""
    root = library.resolve()
    files = []
    for name in config.extra_rule_files:
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            raise ValidationError(f"extra rule file {name!r} lies outside the library folder")
        if not path.is_file():
            raise ValidationError(f"extra rule file {name!r} does not exist in the library folder")
        files.append(path)
    return ComplianceChecker(
        packs=config.packs,
        extra_rule_files=files,
        allow_phrases=config.allow_phrases,
        mask_pii=config.mask_pii,
        lexicon_dir=lexicon_dir,
    )


class TenantCompliance:
    """Which checker judges which tenant's texts.

    A tenant registered with a library that holds `compliance.yaml` gets a checker built from it; every
    other tenant gets `default` (built from the deploy-wide settings).
    """

    def __init__(
        self,
        default: ComplianceChecker,
        *,
        libraries: Mapping[str, Path] | None = None,
        lexicon_dir: Path | None = None,
    ) -> None:
        self.default = default
        self._lexicon_dir = lexicon_dir
        self._entries: dict[str, _Entry] = {}
        self._libraries: dict[str, Path] = {}
        self._lock = threading.Lock()
        for tenant, library in (libraries or {}).items():
            self.register(tenant, library)

    def register(self, tenant: str, library: Path) -> ComplianceChecker:
        """Remember `library` as the tenant's folder and load its settings (if it has a file)."""
        with self._lock:
            self._libraries[tenant] = Path(library)
            return self._load(tenant)

    def reload(self, tenant: str) -> ComplianceChecker:
        """Re-read the tenant's file, rule files and packs; on any error the previous checker stays."""
        with self._lock:
            return self._load(tenant)

    def for_tenant(self, tenant: str) -> ComplianceChecker:
        entry = self._entries.get(tenant)
        return entry.checker if entry is not None else self.default

    def config(self, tenant: str) -> TenantComplianceConfig | None:
        """The tenant's parsed file, or None when it uses the default checker."""
        entry = self._entries.get(tenant)
        return entry.config if entry is not None else None

    def proactive_daily_cap(self, tenant: str) -> int | None:
        """The tenant's own cap, for `FrequencyGuard(cap_for=...)`; None means the guard's default."""
        config = self.config(tenant)
        return config.proactive_daily_cap if config is not None else None

    def tenants(self) -> list[str]:
        """Tenants with a settings file of their own."""
        return sorted(self._entries)

    def _load(self, tenant: str) -> ComplianceChecker:
        library = self._libraries.get(tenant)
        if library is None:
            # Nothing registered: the default checker is re-read so an edited pack still applies.
            self.default.reload()
            return self.default
        path = library / CONFIG_FILENAME
        if not path.is_file():
            self._entries.pop(tenant, None)
            return self.default
        config = load_config(path)
        checker = build_checker(config, library, lexicon_dir=self._lexicon_dir)
        self._entries[tenant] = _Entry(library, config, checker)
        return checker
