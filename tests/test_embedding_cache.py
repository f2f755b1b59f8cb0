"""The evaluation's vector cache: a second run reads what the first computed, never another model's vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from copilot.embedding.embedders import HashingEmbedder
from eval.embedding_cache import CachedEmbedder

TEXTS = ["宝宝红屁屁怎么办", "纸尿裤多少钱", "宝宝红屁屁怎么办", "好的"]


def test_a_second_run_reads_the_vectors_the_first_computed(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    first = CachedEmbedder(HashingEmbedder(), path)
    queries, passages = first.embed_queries(TEXTS), first.embed_passages(TEXTS)
    assert first.computed == 6  # three distinct texts on each side
    first.close()
    second = CachedEmbedder(HashingEmbedder(), path)
    assert np.array_equal(second.embed_queries(TEXTS), queries)
    assert np.array_equal(second.embed_passages(TEXTS), passages)
    assert second.computed == 0
    direct = HashingEmbedder()
    assert np.allclose(queries, direct.embed_queries(TEXTS)) and np.allclose(passages, direct.embed_passages(TEXTS))


def test_another_model_never_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    CachedEmbedder(HashingEmbedder(dim=256), path).embed_queries(TEXTS)
    other = CachedEmbedder(HashingEmbedder(dim=128), path)
    assert other.embed_queries(TEXTS).shape == (4, 128)
    assert other.computed == 3
