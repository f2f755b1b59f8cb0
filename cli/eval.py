"""`copilot eval …` commands: run a suite, convert a public set, run the CI gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from copilot.errors import CopilotError

__all__ = ["eval_app"]



class _SuiteShorthand(TyperGroup):
    """`copilot eval stage --data F` means `copilot eval run stage --data F`."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        from eval.records import SUITE_RECORDS

        if args and args[0] in SUITE_RECORDS:
            args = ["run", *args]
        return super().resolve_command(ctx, args)


eval_app = typer.Typer(cls=_SuiteShorthand, add_completion=False, no_args_is_help=True,
                       help="Offline evaluation: `copilot eval SUITE --data FILE.jsonl`, `convert`, `gate`, `full`.")
console = Console()
err = Console(stderr=True)


@eval_app.command("run")
def run_command(
    suite: Annotated[str, typer.Argument(help="stage | intent | compliance | retrieval | response | classify | drafts")],
    data: Annotated[list[Path] | None, typer.Option(
        "--data", help="JSONL records to score (repeat for several files); compliance defaults to the frozen test "
                       "split, chat and prose")] = None,
    train: Annotated[Path | None, typer.Option("--train", help="training JSONL (classify only)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output folder (default eval/out/SUITE)")] = None,
    embedder: Annotated[str | None, typer.Option(
        "--embedder", help="'hashing' for a fast deterministic run; default: the configured model")] = None,
    knowledge: Annotated[Path | None, typer.Option(help="library folder (default: COPILOT_KNOWLEDGE_DIR)")] = None,
    limit: Annotated[int | None, typer.Option(help="score only the first N records")] = None,
    seed: Annotated[int, typer.Option(help="seed for random baselines")] = 13,
    langchain: Annotated[bool, typer.Option(help="also run the LangChain + Chroma retrieval baseline")] = True,
) -> None:
    """Score one suite and write OUT/summary.json and OUT/report.html."""
    from eval.report import comparison, flatten
    from eval.runner import COMPLIANCE_TEST, RunConfig, run

    if not data and suite != "compliance":
        err.print(f"[bold red]error:[/] give --data FILE.jsonl with {suite} records")
        raise typer.Exit(code=2)
    files = tuple(data) if data else COMPLIANCE_TEST
    config = RunConfig(suite=suite, data=files, train=train, out=out, limit=limit, seed=seed, langchain=langchain)
    try:
        result, folder = run(config, embedder_name=embedder, knowledge=knowledge)
    except CopilotError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    table = Table(title=f"{suite} · {result.n} records")
    table.add_column("metric")
    systems = {"copilot": flatten(result.metrics), **{k: flatten(v) for k, v in result.baselines.items()}}
    for name in systems:
        table.add_column(name, justify="right")
    for metric in systems["copilot"]:
        cells = [systems[s].get(metric) for s in systems]
        table.add_row(metric, *("—" if v is None else f"{v:.4f}" for v in cells))
    console.print(table)
    if suite == "compliance":
        _print_categories(result.metrics)
    verdict = comparison(result)
    if verdict:
        ratio = f"{verdict['ratio']:.2f}×" if verdict["ratio"] else "n/a"
        console.print(f"{verdict['metric']}: copilot {verdict['copilot']:.4f} vs best baseline "
                      f"{verdict['best_baseline']} {verdict['baseline_value']:.4f} → ratio {ratio}")
    console.print(f"wrote {folder / 'summary.json'} and {folder / 'report.html'}")


def _print_categories(metrics: dict[str, Any]) -> None:
    """Recall and precision of each category, the figures the compliance targets are stated in."""
    table = Table(title="per category")
    for column in ("category", "support", "recall", "precision"):
        table.add_column(column, justify="left" if column == "category" else "right")
    for name, row in metrics.get("per_category", {}).items():
        table.add_row(name, str(row["support"]), f"{row['recall']:.3f}", f"{row['precision']:.3f}")
    console.print(table)


@eval_app.command("convert")
def convert_command(
    source: Annotated[str, typer.Argument(help="persuasion-intent | persuasion-response | banking77 | clinc150 | "
                                               "crosswoz-stage | crosswoz-response | project-response")],
    out: Annotated[Path, typer.Option("--out", help="JSONL to write")],
    source_dir: Annotated[Path | None, typer.Option(
        "--source-dir", help="public data folder, or for project-response the JSONL to read")] = None,
    train_out: Annotated[Path | None, typer.Option(help="training JSONL for classify sources")] = None,
    shots: Annotated[int, typer.Option(help="training examples per class (classify)")] = 10,
    oos_shots: Annotated[int, typer.Option(help="out-of-scope training examples (clinc150)")] = 50,
    per_class: Annotated[int, typer.Option(help="evaluation examples per class (classify)")] = 20,
    negatives: Annotated[int, typer.Option(help="sampled wrong replies per record (response)")] = 9,
    per_dialogue: Annotated[int, typer.Option(help="records per dialogue (response)")] = 2,
    max_turns: Annotated[int | None, typer.Option(help="keep only the first N turns (persuasion-intent)")] = None,
    per_stage: Annotated[int, typer.Option(help="records per stage at most (crosswoz-stage)")] = 300,
    limit: Annotated[int | None, typer.Option(help="keep a seeded sample of N records")] = None,
    split: Annotated[str, typer.Option(help="all | dev (tune on it) | test (frozen, figures only)")] = "all",
    seed: Annotated[int, typer.Option()] = 13,
) -> None:
    """Convert a public data set into a suite's JSONL format."""
    from eval.adapters import DEFAULT_SOURCE_DIR, convert

    try:
        n, n_train = convert(
            source, source_dir or DEFAULT_SOURCE_DIR, out, train_out, limit, shots=shots, oos_shots=oos_shots,
            per_class=per_class, negatives=negatives, per_dialogue=per_dialogue, max_turns=max_turns, per_stage=per_stage,
            seed=seed, split=split,
        )
    except CopilotError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    console.print(f"wrote {n} records to {out}" + (f" and {n_train} training examples" if n_train else ""))


@eval_app.command("gate")
def gate_command(
    thresholds: Annotated[Path | None, typer.Option(help="thresholds YAML (default eval/thresholds.yaml)")] = None,
) -> None:
    """Run the fast subset of every suite and fail when a metric is below its threshold."""
    from eval.gate import DEFAULT_THRESHOLDS, format_outcome, run_gate

    try:
        outcome = run_gate(thresholds or DEFAULT_THRESHOLDS)
    except CopilotError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    console.print(format_outcome(outcome))
    if outcome.failures:
        raise typer.Exit(code=1)


@eval_app.command("full")
def full_command(
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("eval/out/full"),
    source_dir: Annotated[Path | None, typer.Option("--source-dir", help="public data folder")] = None,
    embedder: Annotated[str | None, typer.Option(help="'hashing' or a model; default: the configured one")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="run only these plan entries")] = None,
) -> None:
    """Every project suite and every public proxy with the configured model (slow; `make eval-full`)."""
    import tempfile

    from copilot.compliance import ComplianceChecker
    from copilot.config import get_settings
    from eval.adapters import DEFAULT_SOURCE_DIR
    from eval.full import run_full
    from eval.harness import build_copilot, choose_embedder

    settings = get_settings()
    try:
        with tempfile.TemporaryDirectory(prefix="copilot-eval-") as scratch:
            harness = build_copilot(
                choose_embedder(embedder, settings), settings.knowledge_dir, Path(scratch),
                compliance=ComplianceChecker(packs=settings.compliance_packs, lexicon_dir=settings.lexicon_dir),
                compliance_tuned=settings.compliance_tuned,
            )
            run_full(harness, out, source_dir or DEFAULT_SOURCE_DIR, set(only) if only else None, log=console.print)
    except CopilotError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None
    console.print(f"wrote {out / 'index.html'}")
