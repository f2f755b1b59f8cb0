"""Held-out figures of the whole checker on the development split, with wording it has not seen.

    python -m copilot.compliance.heldout                      # packs general + mother_baby, the demo tenant's
    python -m copilot.compliance.heldout --packs general
    python -m copilot.compliance.heldout --review vectors.npy  # with the sentence embedder's second look

The semantic layer is retrained without each fold and the checker (rules, filters and that layer) judges the held-out
lines. Folds are the layer's own blocks of neighbouring lines (`semantic.fold_of`): a batch's lines share wording,
so holding out single lines let their near-twins vouch for them and promised a third of the false alarms that blind
text then met. Clean lines are reported apart for sales chat and for dialogue and prose (the CrossWOZ turns and lines
marked `speaker: prose`), as the evaluation reports them on the test split; a line marked `speaker: staff` is judged
as sales talk, as the evaluation judges it. Prints figures only; a few minutes.

With `--review FILE` the checker also takes the second look of `review.py`, its classifier retrained without each
fold like the layer. The development lines' sentence vectors (the settings' embedder, multilingual-e5-small by
default) are read from FILE (.npy), or computed once (about two minutes) and written there.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from copilot.compliance.checker import ComplianceChecker
from copilot.compliance.review import EmbeddingReview, train_review
from copilot.compliance.semantic import SemanticLayer, fold_of, load_training, train, train_health

__all__ = ["HeldOut", "held_out"]

_PROSE_SOURCES = frozenset({"crosswoz"})


@dataclass
class HeldOut:
    found: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)
    false: Counter[str] = field(default_factory=Counter)
    clean_chat: int = 0
    clean_chat_flagged: int = 0
    clean_prose: int = 0
    clean_prose_flagged: int = 0

    def line(self) -> str:
        tp, fn, fp = sum(self.found.values()), sum(self.missed.values()), sum(self.false.values())
        return (f"micro P {tp / max(1, tp + fp):.3f} R {tp / max(1, tp + fn):.3f}; clean sales chat flagged "
                f"{self.clean_chat_flagged}/{self.clean_chat} ({self.clean_chat_flagged / max(1, self.clean_chat):.2%}), "
                f"dialogue and prose {self.clean_prose_flagged}/{self.clean_prose}")


def _rows() -> list[dict[str, object]]:
    raw = resources.files("copilot.compliance").joinpath("training", "compliance_dev.jsonl").read_text("utf-8")
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def _prose_marks() -> list[bool]:
    return [r.get("speaker") == "prose" or r.get("source") in _PROSE_SOURCES for r in _rows()]


def _staff_marks() -> list[bool]:
    """Lines a staff member sends: judged as sales talk (`check(..., sales=True)`), as the evaluation judges them."""
    return [r.get("speaker") == "staff" for r in _rows()]


class _Vectors:
    """The development lines' precomputed sentence vectors, served as an embedder serves them."""

    name = "precomputed"

    def __init__(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self._rows = {t: v for t, v in zip(texts, vectors, strict=True)}

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._rows[t] for t in texts])


def held_out(checker: ComplianceChecker, vectors: np.ndarray | None = None) -> HeldOut:
    """Judge every development line with `checker` whose semantic layer was trained without the line's fold; with
    `vectors` (one sentence vector per line), with the second look of `review.py` trained the same way."""
    examples = load_training()
    prose = _prose_marks()
    staff = _staff_marks()
    folds = fold_of(len(examples))
    lookup = _Vectors([e.text for e in examples], vectors) if vectors is not None else None
    report = HeldOut()
    for k in sorted(set(folds.tolist())):
        kept = [e for e, f in zip(examples, folds, strict=True) if f != k]
        checker.semantic = SemanticLayer(kept, train(kept), train_health(kept))
        review = None
        if vectors is not None and lookup is not None:
            review = EmbeddingReview(lookup, model=train_review(kept, vectors[folds != k], lookup.name))
        for e, f, is_prose, is_staff in zip(examples, folds, prose, staff, strict=True):
            if f != k:
                continue
            got = checker.check(e.text, review=review, sales=is_staff).categories
            for c in e.categories:
                (report.found if c in got else report.missed)[c] += 1
            for c in got - e.categories:
                report.false[c] += 1
            if not e.categories:
                if is_prose:
                    report.clean_prose += 1
                    report.clean_prose_flagged += bool(got)
                else:
                    report.clean_chat += 1
                    report.clean_chat_flagged += bool(got)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packs", default="general,mother_baby", help="comma-separated rule packs")
    parser.add_argument("--review", type=Path, metavar="FILE",
                        help="take the sentence embedder's second look; the lines' vectors are kept in FILE (.npy)")
    args = parser.parse_args()
    checker = ComplianceChecker(packs=tuple(p for p in args.packs.split(",") if p), semantic=False)
    report = held_out(checker, _vectors(args.review) if args.review else None)
    print(report.line())
    categories = set(report.found) | set(report.missed)
    for c in sorted(categories, key=lambda c: report.found[c] / (report.found[c] + report.missed[c])):
        n = report.found[c] + report.missed[c]
        print(f"  {c:22s} recall {report.found[c] / n:.3f} ({report.found[c]}/{n})  false {report.false[c]}")


def _vectors(path: Path) -> np.ndarray:
    """The development lines' sentence vectors from `path`, or computed with the settings' embedder and saved."""
    examples = load_training()
    if path.is_file():
        vectors = np.load(path)
        if len(vectors) != len(examples):
            raise SystemExit(f"{path} holds {len(vectors)} vectors for {len(examples)} development lines: delete it")
        return vectors
    from copilot.config import get_settings
    from copilot.embedding.embedders import build_embedder

    embedder = build_embedder(get_settings())
    texts = [e.text for e in examples]
    vectors = np.concatenate([embedder.embed_queries(texts[i : i + 256]) for i in range(0, len(texts), 256)])
    np.save(path, vectors)
    return vectors


if __name__ == "__main__":
    main()
