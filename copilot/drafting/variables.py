"""Fill a script's `{变量}` placeholders from the profile and persona, recording what was used."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from copilot.drafting.types import Citation
from copilot.knowledge.schema import CustomerProfile, DerivedVariable, Persona, script_variables

__all__ = ["Filled", "fill_variables"]


@dataclass(frozen=True)
class Filled:
    text: str
    citations: tuple[Citation, ...]


def fill_variables(
    text: str, profile: CustomerProfile | None, persona: Persona, today: dt.date
) -> Filled | None:
    """The script with every variable filled, or None when a variable has no value and no default."""
    values: dict[str, str] = {}
    cites: list[Citation] = []
    for name in script_variables(text):
        found = _resolve(name, profile, persona, today)
        if found is None:
            default = persona.variable_defaults.get(name)
            if default is None:
                return None
            values[name] = default
            continue
        value, field = found
        values[name] = value
        if field and profile is not None:
            cites.append(Citation("profile", profile.id, field))
    filled = text
    for name, value in values.items():
        filled = filled.replace("{" + name + "}", value)
    return Filled(filled, tuple(cites))


def _resolve(
    name: str, profile: CustomerProfile | None, persona: Persona, today: dt.date
) -> tuple[str, str | None] | None:
    if name == "顾问":
        return persona.persona_name, None
    if name == "品牌":
        return persona.brand, None
    if profile is None:
        return None
    if name == "称呼":
        return (profile.salutation, "salutation") if profile.salutation else (profile.name, "name")
    if name == "上次购买":
        last = profile.last_order
        return (last.items[0].name, f"orders.{last.id}") if last else None
    if name == "距上次购买天数":
        last = profile.last_order
        return (str((today - last.date).days), f"orders.{last.id}") if last else None
    for derived in persona.derived_variables:
        if derived.name == name:
            return _derive(derived, profile, today)
    value = profile.attributes.get(name)
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value), f"attributes.{name}"


def _derive(rule: DerivedVariable, profile: CustomerProfile, today: dt.date) -> tuple[str, str] | None:
    raw = profile.attributes.get(rule.attribute)
    if raw is None:
        return None
    try:
        start = raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw))
    except ValueError:
        return None
    if start > today:
        return None
    if rule.kind == "days_since":
        n = (today - start).days
    elif rule.kind == "years_since":
        n = today.year - start.year - ((today.month, today.day) < (start.month, start.day))
    else:
        n = (today.year - start.year) * 12 + today.month - start.month - (today.day < start.day)
    return rule.format.replace("{n}", str(n)), f"attributes.{rule.attribute}"
