"""Baselines run on the same records as the copilot, so every report says what the copilot adds.

They share the copilot's tokenizer, embedder and documents on purpose: a baseline that wins then
points at the part of the pipeline (fusion, reranking weights, stage cues) that loses information.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from copilot.retrieval.documents import KnowledgeDoc
from copilot.retrieval.filters import Filters
from copilot.retrieval.lexical import BM25Index, tokenize
from copilot.service import Copilot

__all__ = [
    "Bm25Retriever",
    "DenseRetriever",
    "KeywordClassifier",
    "keyword_intent",
    "majority",
    "stratified_random",
]

# Words that say "I want it" / "not now" in customer chat, Chinese and English (donations included,
# for the public persuasion set). Deliberately a short, obvious list: this is the naive baseline.
_POSITIVE = ("买", "下单", "链接", "多少钱", "价格", "要了", "拍了", "付款", "发货", "地址", "包邮", "怎么卖",
             "buy", "order", "donate", "price", "sure", "yes", "how much", "i will", "i'll")
_NEGATIVE = ("不用", "不要", "算了", "太贵", "再看看", "考虑", "没钱", "以后再说", "不需要",
             "no", "not", "don't", "can't", "maybe later", "expensive")


def majority(truth: Sequence[str]) -> list[str]:
    label = Counter(truth).most_common(1)[0][0]
    return [label] * len(truth)


def stratified_random(truth: Sequence[str], seed: int) -> list[str]:
    """Random labels drawn with the evaluated set's own label frequencies."""
    rng = random.Random(seed)
    pool = list(truth)
    return [rng.choice(pool) for _ in truth]


def keyword_intent(customer_texts: Sequence[str]) -> float:
    """Probability from counting buy-words and no-words in what the customer said."""
    text = " ".join(customer_texts).lower()
    pos = sum(text.count(w) for w in _POSITIVE)
    neg = sum(text.count(w) for w in _NEGATIVE)
    return 1 / (1 + math.exp(-(-1.0 + 0.6 * pos - 0.6 * neg)))


class KeywordClassifier:
    """Each class is the set of words its training examples use; a text goes to the class sharing the
    most IDF-weighted words with it, or `oos` when it shares none."""

    def __init__(self, oos: str = "oos") -> None:
        self.oos = oos
        self._words: dict[str, Counter[str]] = {}
        self._idf: dict[str, float] = {}

    def fit(self, examples: Sequence[tuple[str, str]]) -> KeywordClassifier:
        words: dict[str, Counter[str]] = defaultdict(Counter)
        df: Counter[str] = Counter()
        for text, label in examples:
            tokens = set(tokenize(text))
            df.update(tokens)
            if label != self.oos:
                words[label].update(tokens)
        self._words = dict(words)
        self._idf = {w: math.log((1 + len(examples)) / (1 + c)) + 1 for w, c in df.items()}
        return self

    def predict(self, texts: Sequence[str]) -> list[str]:
        out = []
        for text in texts:
            tokens = set(tokenize(text))
            scores = {
                label: sum(self._idf.get(t, 0.0) * math.log1p(bag[t]) for t in tokens if t in bag)
                for label, bag in self._words.items()
            }
            best = max(sorted(scores), key=lambda lab: scores[lab]) if scores else self.oos
            out.append(best if scores.get(best, 0.0) > 0 else self.oos)
        return out


class Bm25Retriever:
    """The keyword half of hybrid retrieval alone: BM25 over the same documents, same filters."""

    def __init__(self, docs: Sequence[KnowledgeDoc]) -> None:
        self.docs = list(docs)
        self.index = BM25Index([d.text for d in self.docs])

    def search(self, query: str, filters: Filters, k: int) -> list[str]:
        scores = self.index.scores(query)
        order = np.argsort(-scores, kind="stable")
        return [self.docs[i].id for i in order if scores[i] > 0 and filters.admits(self.docs[i])][:k]


class DenseRetriever:
    """The vector half of hybrid retrieval alone: the copilot's Chroma store, same filters."""

    def __init__(self, copilot: Copilot, tenant: str, docs: Sequence[KnowledgeDoc]) -> None:
        self.copilot = copilot
        self.tenant = tenant
        self.by_key = {d.key: d for d in docs}

    def search(self, query: str, filters: Filters, k: int) -> list[str]:
        vector = self.copilot.retriever.query_vector(query)
        hits = self.copilot.store.query(self.tenant, vector, k=len(self.by_key), where=filters.chroma_where())
        out = []
        for hit in hits:
            doc = self.by_key.get(hit.key)
            if doc is not None and filters.admits(doc):
                out.append(doc.id)
        return out[:k]


def context_query(turns: Sequence[tuple[str, str]], max_turns: int = 4) -> str:
    """The last turns, newest first: the plain query a baseline ranks replies against."""
    return "\n".join(text for _, text in reversed(list(turns)[-max_turns:]))
