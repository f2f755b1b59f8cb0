"""`copilot archive …`: import decrypted chat-archive (会话存档) records into the back office."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from copilot.config import get_settings
from copilot.errors import CopilotError

__all__ = ["archive_app"]

archive_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Chat archive (会话存档) import.")
console = Console()
err = Console(stderr=True)


@archive_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="JSONL file: one decrypted archive record per line")],
    tenant: Annotated[str | None, typer.Option(help="tenant id (default: COPILOT_DEFAULT_TENANT)")] = None,
) -> None:
    """Validate every record (nothing is stored if one is bad), store new messages (a msgid imported
    before is skipped), mark recalled ones, then run the tenant's inspection rules over them."""
    from api.routes.backoffice import alert_apps
    from copilot.backoffice import BackOffice

    settings = get_settings()
    backoffice = BackOffice.from_settings(settings, alert_apps=alert_apps)
    started = time.perf_counter()
    try:
        with console.status("importing…") as status:
            result = backoffice.import_file(file, tenant=tenant or settings.default_tenant,
                                            progress=lambda n: status.update(f"importing… {n:,} records"))
    except CopilotError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    finally:
        backoffice.engine.dispose()
    report, inspection = result.archive, result.inspection
    seconds = time.perf_counter() - started
    skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(report.skipped.items())) or "none"
    console.print(f"{report.records:,} records in {seconds:.1f}s: {report.messages:,} new messages, "
                  f"{report.matched:,} already seen by webhooks or the sidebar, {report.duplicates:,} duplicates, "
                  f"{report.recalled:,} recalled; skipped: {skipped}; {report.new_customers:,} new customers")
    if report.unknown_staff:
        shown = ", ".join(sorted(report.unknown_staff)[:10])
        console.print(f"[yellow]{len(report.unknown_staff)} staff userid(s) not in staff.yaml:[/] {shown}")
    console.print(f"inspection: {inspection.conversations:,} conversations, {inspection.hits:,} new hits, "
                  f"{inspection.notified:,} staff told")
