"""Keyword side of retrieval: jieba segmentation and a BM25 index (bm25s).

Segmentation works for Chinese and English alike: jieba passes Latin words through whole, and we
lower-case and drop punctuation, so no language-specific sentence splitting is assumed.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence

import bm25s
import jieba
import numpy as np

__all__ = ["BM25Index", "tokenize", "warm_up"]

jieba.setLogLevel(logging.WARNING)
_lock = threading.Lock()
_ready = False

_KEEP = re.compile(r"[\w\u4e00-\u9fff]", re.UNICODE)
# Function words that carry no topic in short chat messages.
_STOP = frozenset(
    (
        *"的了吗呢吧啊呀哦嗯哈是我你您他她它们这那就都也还在有和与及或很太又",
        *("a", "an", "the", "is", "are", "was", "be", "to", "of", "and", "or", "in", "on", "for", "it"),
        *("this", "that", "i", "you", "we"),
    )
)


def warm_up() -> None:
    """Load jieba's dictionary now (it takes about a second) rather than on the first request."""
    global _ready
    with _lock:
        if not _ready:
            jieba.initialize()
            _ready = True


def tokenize(text: str) -> list[str]:
    """Search-mode tokens: words plus their sub-words, lower-cased, without punctuation or stop words."""
    warm_up()
    out = []
    for token in jieba.lcut_for_search(text.lower()):
        token = token.strip()
        if token and token not in _STOP and _KEEP.search(token):
            out.append(token)
    return out


class BM25Index:
    """BM25 over a fixed list of documents; scores every document so callers can filter by mask."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.size = len(texts)
        self._model = bm25s.BM25()
        corpus = [tokenize(t) or ["∅"] for t in texts]
        if corpus:
            self._model.index(corpus, show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        if self.size == 0:
            return np.zeros(0, dtype=np.float32)
        tokens = tokenize(query)
        if not tokens:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._model.get_scores(tokens), dtype=np.float32)
