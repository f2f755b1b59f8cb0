"""`copilot revisits …`: generate the day's revisit queue and look at a staff member's list."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from copilot.config import get_settings
from copilot.errors import CopilotError

__all__ = ["revisits_app"]

revisits_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Proactive revisit queue (主动回访).")
console = Console()
err = Console(stderr=True)

RULES_FILE = "revisit_rules.yaml"


def _rules_path(rules: Path | None) -> Path:
    return rules or get_settings().knowledge_dir / RULES_FILE


@revisits_app.command("generate")
def generate_command(
    date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today in the rules' time zone)")] = None,
    tenant: Annotated[list[str] | None, typer.Option(help="tenant id; repeat for several (default: all)")] = None,
    rules: Annotated[Path | None, typer.Option(help="rule file (default: <knowledge>/revisit_rules.yaml)")] = None,
) -> None:
    """Evaluate every customer against the rules and queue today's items (rules only; openers come later).

    Runs without loading models; the frequency guard here applies the default daily proactive cap.
    """
    from copilot.clock import utcnow
    from copilot.compliance.frequency import FrequencyGuard
    from copilot.persistence.engine import make_engine
    from copilot.persistence.repository import Repository
    from copilot.persistence.schema import require_current
    from copilot.revisits import RuleStore, generate
    from copilot.revisits.generate import local_now

    try:
        day = dt.date.fromisoformat(date) if date else None
    except ValueError:
        err.print(f"[bold red]error:[/] --date must be YYYY-MM-DD, got {date!r}")
        raise typer.Exit(code=2) from None
    settings = get_settings()
    try:
        engine = make_engine(settings.sqlalchemy_url)
        require_current(engine)
        store = RuleStore(_rules_path(rules))
        guard = FrequencyGuard(engine)
        for name in tenant or Repository(engine).tenants():
            rule_set = store.for_tenant(name)
            now = utcnow()
            run_day = day or now.astimezone(ZoneInfo(rule_set.schedule.timezone)).date()
            report = generate(engine, name, run_day, rule_set, now=local_now(run_day, rule_set, now), guard=guard)
            console.print(
                f"{name} {run_day.isoformat()}: created {report.created} of {report.customers} customers "
                f"(matched {report.matched}, already queued {report.already_queued}, contacted today "
                f"{report.contacted_today}, blocked by frequency {report.blocked_by_frequency}, snoozed "
                f"{report.snoozed}, unassigned skipped {report.unassigned_skipped}) in {report.seconds:.1f} s",
                soft_wrap=True,
            )
    except CopilotError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc


@revisits_app.command("queue")
def queue_command(
    staff: Annotated[str, typer.Argument(help="staff id")],
    date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today)")] = None,
    tenant: Annotated[str | None, typer.Option(help="tenant id (default: COPILOT_DEFAULT_TENANT)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    rules: Annotated[Path | None, typer.Option(help="rule file (default: <knowledge>/revisit_rules.yaml)")] = None,
) -> None:
    """Print a staff member's queue for the day, drafting openers for the top items."""
    from copilot.revisits import Revisits, RuleStore
    from copilot.service import Copilot

    settings = get_settings()
    try:
        day = dt.date.fromisoformat(date) if date else None
        copilot = Copilot.from_settings(settings)
        revisits = Revisits(copilot, RuleStore(_rules_path(rules)), guard=copilot.frequency)
        queue = revisits.queue(tenant or settings.default_tenant, staff, day, limit=limit)
    except (CopilotError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc
    console.print(f"[bold]{staff}[/] · {queue.day.isoformat()} · {len(queue.items)} item(s)")
    for rank, item in enumerate(queue.items, start=1):
        console.print(f"\n[bold]{rank}. {item.customer_name}[/] ({item.customer_id}) · {item.rule_id} · "
                      f"score {item.score} · intent {item.intent} · {item.status}")
        for reason in item.reasons:
            console.print(f"   · {reason}")
        if item.opener and item.opener.get("text"):
            cited = ", ".join(f"{c['kind']}:{c['id']}" + (f".{c['field']}" if c.get("field") else "")
                              for c in item.opener.get("citations", []))
            console.print(f"   [green]开场白[/] {item.opener['text']}\n   [dim]依据 {cited}[/]")
    for held in queue.held:
        console.print(f"[yellow]held[/] {held.customer_id}: {held.reason}")
