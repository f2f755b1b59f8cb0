"""Choose the reranker's weights once for every response set, by cross-validation across the sets.

`python -m eval.tune_rerank [--embedder NAME]` scores the dev half of every response set — both demo
brands' project sets, CrossWOZ and PersuasionForGood (converted with `--split dev`) — computes the
reranker's features per candidate once, then searches a grid of (dense, joint, lexical, recency decay).

Selection is leave-one-set-out: for each set, the weights that do best on the *other* sets (largest worst
margin of MRR over max(BM25, dense)) are scored on it, which says how well a choice made elsewhere
carries. The weights reported for `RerankWeights` are the ones with the largest worst margin over all
four dev sets together: one choice for every set, never a per-set one, scaled so the three sum to 0.55
(the share the conversation had before, beside trigger, stage and retrieval in drafting). Test halves are
never read.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from copilot.config import get_settings
from copilot.conversation.turns import Turn
from copilot.drafting.rerank import Reranker, RerankWeights, context_text
from copilot.embedding.embedders import Embedder
from eval import metrics as m
from eval.adapters import DEFAULT_SOURCE_DIR, convert
from eval.harness import choose_embedder
from eval.records import ResponseRecord, load_records
from eval.suites.ranking import _rank_positions

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
PROJECT_SETS = (("response", "eval/datasets/response_dev.jsonl"),
                ("response_skincare", "eval/datasets/response_skincare_dev.jsonl"))
PUBLIC_SETS = (("crosswoz-response", {"per_dialogue": 2}, 300), ("persuasion-response", {"per_dialogue": 2}, None))
DECAYS = (0.2, 0.5, 1.0)
STEP = 0.05


class _Remembering:
    """The embedder, remembering each text's vector so every grid point reuses one embedding pass."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.name, self.dim = embedder.name, embedder.dim
        self._seen: dict[tuple[str, str], np.ndarray] = {}

    def _embed(self, kind: str, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if (kind, t) not in self._seen))
        if missing:
            embed = self.embedder.embed_queries if kind == "q" else self.embedder.embed_passages
            for text, vector in zip(missing, np.asarray(embed(missing), dtype=np.float32), strict=True):
                self._seen[(kind, text)] = vector
        return np.stack([self._seen[(kind, t)] for t in texts])

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed("q", list(texts))

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._embed("p", list(texts))


def _warm(embedder: _Remembering, records: Sequence[ResponseRecord]) -> None:
    """Embed every text a set's features need in two large calls (batches of similar length run far
    faster than ten candidates at a time)."""
    turns = RerankWeights().turns
    queries = {msg.text for r in records for msg in r.messages[-turns:] if msg.text.strip()}
    queries |= {context_text([Turn(msg.role, msg.text) for msg in r.messages], turns) for r in records}
    embedder.embed_queries(sorted(q for q in queries if q))
    embedder.embed_passages(sorted({c for r in records for c in r.candidates}))


def _features(reranker: Reranker, records: Sequence[ResponseRecord]) -> list[dict[str, Any]]:
    _warm(reranker.embedder, records)  # type: ignore[arg-type]
    rows = []
    for r in records:
        turns = [Turn(msg.role, msg.text) for msg in r.messages]
        row: dict[str, Any] = {"label": r.label}
        for decay in DECAYS:
            reranker.weights = replace(RerankWeights(), recency_decay=decay, dense=1.0, joint=1.0, lexical=1.0)
            parts = reranker.features(turns, r.candidates)
            row[f"dense@{decay}"] = parts["dense"]
            row["joint"], row["lexical"] = parts["joint"], parts["lexical"]
        rows.append(row)
    return rows


def _mrr(rows: Sequence[dict[str, Any]], dense: float, joint: float, lexical: float, decay: float) -> float:
    ranks = [_rank_positions(dense * r[f"dense@{decay}"] + joint * r["joint"] + lexical * r["lexical"], r["label"])
             for r in rows]
    return float(m.mrr(ranks))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embedder", default=None)
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE_DIR)
    args = parser.parse_args(argv)
    embedder = choose_embedder(args.embedder, get_settings())
    reranker = Reranker(_Remembering(embedder))  # type: ignore[arg-type]
    sets: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="copilot-tune-") as scratch:
        for name, path in PROJECT_SETS:
            sets[name] = _features(reranker, load_records(REPO / path, "response"))
        for name, options, limit in PUBLIC_SETS:
            out = Path(scratch) / f"{name}.jsonl"
            convert(name, args.source_dir, out, None, limit, negatives=9, seed=13, split="dev", **options)
            sets[name] = _features(reranker, load_records(out, "response"))
    baselines = {name: max(_mrr(rows, 0, 1, 0, DECAYS[0]), _mrr(rows, 0, 0, 1, DECAYS[0])) for name, rows in sets.items()}
    grid = [(d, j, lx, dec) for d, j, lx in itertools.product(np.arange(0, 1 + 1e-9, STEP), repeat=3)
            if abs(d + j + lx - 1) < 1e-6 for dec in DECAYS]
    margins = {g: {name: _mrr(rows, *g) - baselines[name] for name, rows in sets.items()} for g in grid}
    report: dict[str, Any] = {"baseline_mrr": baselines, "held_out": {}}
    for held in sets:
        pick = max(grid, key=lambda g: (min(v for n, v in margins[g].items() if n != held), -g[3]))
        report["held_out"][held] = {"weights": pick, "margin": round(margins[pick][held], 4)}
        print(f"weights chosen without {held}: {tuple(round(float(x), 2) for x in pick)} → margin on {held} "
              f"{margins[pick][held]:+.4f}")
    best = max(grid, key=lambda g: (min(margins[g].values()), -g[3]))
    report["chosen"] = best
    print("chosen over all dev sets (dense, joint, lexical, decay):", tuple(round(float(x), 2) for x in best),
          "→ RerankWeights", {k: round(0.55 * float(v), 4) for k, v in zip(("dense", "joint", "lexical"), best,
                                                                            strict=False)}, "recency_decay", best[3])
    for name in sets:
        print(f"  {name}: MRR {_mrr(sets[name], *best):.4f} vs max(BM25, dense) {baselines[name]:.4f}")
    return report


if __name__ == "__main__":
    main()
