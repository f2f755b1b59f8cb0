"""The `copilot` command line: prepare, ingest, suggest, serve."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.archive import archive_app
from cli.db import db_app
from cli.eval import eval_app
from cli.provisioning import keys_app, staff_app, tenants_app
from cli.revisits import revisits_app
from copilot.config import Settings, apply_offline_defaults, get_settings
from copilot.errors import CopilotError, LibraryError

if TYPE_CHECKING:
    from copilot.service import Copilot

app = typer.Typer(add_completion=False, no_args_is_help=True, help="私域 1v1 sales copilot.")
app.add_typer(revisits_app, name="revisits")
app.add_typer(eval_app, name="eval")
app.add_typer(archive_app, name="archive")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(staff_app, name="staff")
app.add_typer(db_app, name="db")
console = Console()
err = Console(stderr=True)

STAGE_NAMES = {"icebreak": "破冰", "discovery": "挖需", "recommend": "推荐", "revisit": "回访/复购"}


def _fail(exc: CopilotError) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


def _copilot(settings: Settings) -> Copilot:
    """The Copilot the settings describe; a clean error (no traceback) when, e.g., the schema is outdated."""
    from copilot.service import Copilot

    try:
        return Copilot.from_settings(settings)
    except CopilotError as exc:
        _fail(exc)
        raise AssertionError("unreachable") from exc


def _require_schema(settings: Settings) -> None:
    """Refuse to start on a database whose schema is not this code's (`copilot db upgrade` fixes it)."""
    from copilot.persistence.engine import make_engine
    from copilot.persistence.schema import require_current

    engine = make_engine(settings.sqlalchemy_url)
    try:
        require_current(engine)
    except CopilotError as exc:
        _fail(exc)
    finally:
        engine.dispose()


@app.command()
def prepare() -> None:
    """Prepare the embedding model (converted once, offline), tiktoken's files and the compliance models."""
    from copilot.compliance import semantic
    from copilot.compliance.review import EmbeddingReview, reads_meaning
    from copilot.llm.tokens import seed_tiktoken_cache
    from copilot.service import build_embedder

    settings = get_settings()
    apply_offline_defaults(settings)
    started = time.perf_counter()
    seed_tiktoken_cache(settings.tiktoken_cache_dir)
    embedder = build_embedder(settings)
    console.print(f"embedding model ready: {embedder.name} (dim {embedder.dim}) in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    semantic.use_cache_dir(settings.models_dir / "compliance")
    layer = semantic.default_layer()
    if reads_meaning(embedder):
        review = EmbeddingReview(embedder, tuned=settings.compliance_tuned)
        review.model_for(layer)
        review.tuned_for(layer)  # only with COPILOT_COMPLIANCE_TUNED
    console.print(f"compliance models ready (version {layer.version}) in {time.perf_counter() - started:.1f}s")


@app.command()
def ingest(
    path: Annotated[Path | None, typer.Argument(help="library folder (default: COPILOT_KNOWLEDGE_DIR)")] = None,
    tenant: Annotated[str | None, typer.Option(help="tenant id (default: COPILOT_DEFAULT_TENANT)")] = None,
) -> None:
    """Validate a library and load it; unchanged items are not embedded again."""
    settings = get_settings()
    folder = path or settings.knowledge_dir
    copilot = _copilot(settings)
    with Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("embed", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = copilot.ingest(folder, tenant=tenant or settings.default_tenant, progress=progress)
        except LibraryError as exc:
            err.print(f"[bold red]{len(exc.problems)} problem(s); nothing was loaded:[/]")
            for problem in exc.problems:
                err.print(f"  {problem}")
            raise typer.Exit(code=2) from None
    console.print(report.summary())


@app.command()
def suggest(
    customer: Annotated[str, typer.Option("--customer", help="customer id")],
    message: Annotated[list[str] | None, typer.Option("--message", help="the customer's message (repeatable)")] = None,
    staff: Annotated[str | None, typer.Option(help="staff id")] = None,
    n: Annotated[int | None, typer.Option(help="number of candidates")] = None,
    tenant: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Draft replies for a customer and print them readably."""
    from copilot.suggestion import MessageIn, SuggestRequest

    settings = get_settings()
    copilot = _copilot(settings)
    request = SuggestRequest(
        customer_id=customer, staff_id=staff,
        messages=[MessageIn(role="customer", text=m) for m in message or []], n=n,
    )
    try:
        out = copilot.suggest(tenant or settings.default_tenant, request)
    except CopilotError as exc:
        _fail(exc)
        return
    stage = out.stage
    console.print(f"[bold]阶段[/] {STAGE_NAMES[stage.name]} ({stage.name}, {stage.confidence:.0%}) — "
                  + "；".join(stage.reasons))
    console.print(f"[bold]购买意向[/] {out.intent.score}/100 ({out.intent.level}) — "
                  + "；".join(f"{f.label} {f.points:+.0f}" for f in out.intent.factors[:4]))
    if out.customer_message_flags:
        console.print("[yellow]客户消息风险:[/] " + "；".join(f.message for f in out.customer_message_flags))
    for i, cand in enumerate(out.candidates, 1):
        risk = cand.compliance.risk + ("，需审批" if cand.requires_approval else "")
        console.print(f"\n[bold]候选 {i}[/] [dim]({cand.drafter}，合规：{risk})[/]")
        console.print(cand.text, markup=False)
        cites = ", ".join(f"{c.kind}:{c.id}" + (f".{c.field}" if c.field else "") for c in cand.citations)
        console.print(f"[dim]引用：{cites}[/]")
        for flag in cand.compliance.flags:
            start, end = flag.span
            console.print(f"[yellow]  ⚠ {cand.text[start:end]!r} {flag.category}: {flag.message}[/]")
    if out.drafter_note:
        console.print(f"[dim]{out.drafter_note}[/]")


@app.command()
def classify(
    text: Annotated[list[str], typer.Argument(help="customer messages to label")],
    tenant: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Label customer messages with the library's intents (intents.yaml); `oos` = out of scope."""
    settings = get_settings()
    copilot = _copilot(settings)
    try:
        predictions = copilot.classify(tenant or settings.default_tenant, text)
    except CopilotError as exc:
        _fail(exc)
        return
    for message, (label, confidence) in zip(text, predictions, strict=True):
        console.print(f"{label}\t{confidence:.2f}\t{message}", markup=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[int, typer.Option(min=1, help="API processes sharing the port (each loads the models)")] = 1,
) -> None:
    """Serve the API (and print the URL and the dev API key); refuses an outdated database schema."""
    settings = get_settings()
    _require_schema(settings)
    _serve(settings, host=host, port=port, copilot=None, workers=workers)


@app.command()
def worker() -> None:
    """Run a webhook worker: take acknowledged callbacks in, reply through the outbox (until Ctrl-C)."""
    import logging

    from copilot.wecom.automation.worker import run_standalone

    settings = get_settings()
    _require_schema(settings)
    logging.basicConfig(level=logging.INFO)
    console.print("webhook worker running; Ctrl-C stops it after the batch in hand")
    run_standalone(settings)


@app.command()
def run(
    path: Annotated[Path | None, typer.Argument(help="library folder (default: COPILOT_KNOWLEDGE_DIR)")] = None,
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Migrate the database, prepare the model, ingest the library and the extra demo libraries (changes only)
    and serve, in one process."""
    from copilot.persistence.engine import make_engine
    from copilot.persistence.schema import upgrade

    settings = get_settings()
    started = time.perf_counter()
    engine = make_engine(settings.sqlalchemy_url)
    try:
        upgrade(engine)  # the dev convenience; `serve` and `worker` only check
    finally:
        engine.dispose()
    copilot = _copilot(settings)
    libraries = {settings.default_tenant: path or settings.knowledge_dir, **settings.demo_libraries}
    for tenant, folder in libraries.items():
        try:
            report = copilot.ingest(folder, tenant=tenant)
        except LibraryError as exc:
            _fail(exc)
            return
        console.print(f"[bold]{tenant}[/] ({folder}): {report.summary()}")
    console.print(f"ready in {time.perf_counter() - started:.1f}s")
    _serve(settings, host=host, port=port, copilot=copilot)


def _serve(settings: Settings, *, host: str | None, port: int | None, copilot: Copilot | None,
           workers: int = 1) -> None:
    import uvicorn

    from api.app import create_app

    if not settings.api_keys and settings.env != "prod":
        settings = _with_dev_key(settings)
    host = host or settings.host
    port = port or settings.port
    console.print(f"copilot API on http://{host}:{port}  (docs: http://{host}:{port}/docs)"
                  + (f", {workers} processes" if workers > 1 else ""))
    if workers > 1:  # each process builds its app from the environment (`api.app.app_from_environment`)
        uvicorn.run("api.app:app_from_environment", factory=True, workers=workers, host=host, port=port,
                    log_level="info")
        return
    uvicorn.run(create_app(settings, copilot=copilot), host=host, port=port, log_level="info")


def _with_dev_key(settings: Settings) -> Settings:
    """In dev without configured keys: a key per demo tenant (admin of it), generated once and kept in the
    data dir (mode 600). A key is printed only the moment it is made; configured keys are never printed."""
    keys = [_dev_key(settings.data_dir / "dev_api_key", "dev API key")]
    # Each extra demo library is a tenant of its own, reached with a key bound to it (`tenant:key`).
    keys += [f"{tenant}:{_dev_key(settings.data_dir / f'dev_api_key.{tenant}', f'dev API key of tenant {tenant}')}"
             for tenant in settings.demo_libraries]
    return settings.model_copy(update={"api_keys": [*settings.api_keys, *(_secret(k) for k in keys)]})


def _dev_key(path: Path, label: str) -> str:
    if path.exists():
        console.print(f"{label.replace('dev API key', 'dev API key kept')} in {path}", markup=False)
        return path.read_text().strip()
    key = "dev-" + secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    console.print(f"(a new dev key, shown this once and kept in {path}; send it as the X-API-Key header)",
                  markup=False)
    console.print(f"{label}: {key}", markup=False)
    return key


def _secret(value: str) -> SecretStr:
    return SecretStr(value)


if __name__ == "__main__":
    app()
