"""Suites that score rankings: `retrieval` (library search) and `response` (reranking given replies)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from copilot.conversation.query import build_query
from copilot.conversation.turns import Turn
from copilot.errors import ValidationError
from copilot.retrieval.filters import Filters
from copilot.retrieval.lexical import BM25Index
from eval import metrics as m
from eval.baselines import Bm25Retriever, DenseRetriever, context_query
from eval.harness import Harness
from eval.records import ResponseRecord, RetrievalRecord
from eval.suites.base import RunOptions, SuiteResult

__all__ = ["RECALL_KS", "run_response", "run_retrieval"]

RECALL_KS = (1, 3, 5, 10)
NDCG_KS = (5, 10)
Search = Callable[[str, Filters, int], list[str]]


def _bare(doc_id: str) -> str:
    return doc_id.split(":", 1)[1] if doc_id.startswith(("script:", "content:")) else doc_id


def _ranking_metrics(ranked: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]]) -> dict[str, Any]:
    ranks = m.first_hit_ranks(ranked, relevant)
    return {
        "recall_at_k": m.recall_at_k(ranked, relevant, RECALL_KS),
        "mrr": m.mrr(ranks),
        "ndcg_at_k": m.ndcg_at_k(ranked, relevant, NDCG_KS),
    }


def _query(h: Harness, r: RetrievalRecord) -> str:
    if r.query:
        return r.query
    profile = h.copilot.repo.customer(h.tenant, r.customer_id) if r.customer_id else None
    return build_query(r.messages or [], profile)


def _filters(r: RetrievalRecord) -> Filters:
    f = r.filters
    return Filters(kinds=tuple(f.kinds), stage=f.stage, scenario=f.scenario, tags=tuple(f.tags), segment=f.segment)


def run_retrieval(h: Harness, records: Sequence[RetrievalRecord], opts: RunOptions) -> SuiteResult:
    """Hybrid search (`Copilot.search`) against BM25 alone, dense alone and a plain LangChain retriever."""
    docs = h.copilot.repo.knowledge_docs(h.tenant)
    known = {d.id for d in docs}
    relevant = [[_bare(x) for x in r.relevant] for r in records]
    missing = [f"{r.where}: {x}" for r, rel in zip(records, relevant, strict=True) for x in rel if x not in known]
    if missing:
        raise ValidationError(f"{len(missing)} relevant id(s) are not in the library at {h.knowledge}; fix or "
                              "remove them:\n  " + "\n  ".join(missing[:30]))
    k = max(RECALL_KS)
    queries = [(_query(h, r), _filters(r)) for r in records]

    def copilot_search(query: str, filters: Filters, k: int) -> list[str]:
        return [hit.doc.id for hit in h.copilot.search(h.tenant, query, filters=filters, k=k)]

    systems: dict[str, Search] = {
        "bm25": Bm25Retriever(docs).search,
        "dense": DenseRetriever(h.copilot, h.tenant, docs).search,
    }
    notes = []
    if opts.langchain:
        from eval.langchain_baseline import LangChainChromaRetriever

        systems["langchain_chroma"] = LangChainChromaRetriever(h.copilot.embedder, docs).search
    else:
        notes.append("langchain_chroma baseline skipped (--no-langchain)")
    ranked = [copilot_search(q, f, k) for q, f in queries]
    baselines = {name: _ranking_metrics([search(q, f, k) for q, f in queries], relevant)
                 for name, search in systems.items()}
    return SuiteResult(
        suite="retrieval", n=len(records), metrics=_ranking_metrics(ranked, relevant), baselines=baselines,
        primary="mrr", notes=notes,
        details={"misses": [
            {"where": r.where, "text": q[:120], "truth": ",".join(rel), "pred": ",".join(got[:3])}
            for r, (q, _), rel, got in zip(records, queries, relevant, ranked, strict=True)
            if not set(rel) & set(got[:3])
        ][:25]},
    )


def _rank_positions(scores: np.ndarray, label: int) -> int:
    """1-based rank of the true candidate; ties are broken against it, so constant scores earn nothing."""
    return int(np.sum(scores >= scores[label]))


def _response_metrics(ranks: Sequence[int | None]) -> dict[str, Any]:
    return {"r_at_1": m.r_at(ranks, 1), "r_at_2": m.r_at(ranks, 2), "r_at_5": m.r_at(ranks, 5), "mrr": m.mrr(ranks)}


def run_response(h: Harness, records: Sequence[ResponseRecord], opts: RunOptions) -> SuiteResult:
    """`Copilot.reranker.score(turns, candidates)` ranks the given replies; one of them is the true one."""
    ours: list[int | None] = []
    lexical: list[int | None] = []
    dense: list[int | None] = []
    embedder = h.copilot.embedder
    for r in records:
        turns = [Turn(msg.role, msg.text) for msg in r.messages]
        ours.append(_rank_positions(h.copilot.reranker.score(turns, r.candidates), r.label))
        query = context_query([(msg.role, msg.text) for msg in r.messages])
        lexical.append(_rank_positions(BM25Index(r.candidates).scores(query), r.label))
        q = np.asarray(embedder.embed_queries([query]), dtype=np.float32)[0]
        dense.append(_rank_positions(np.asarray(embedder.embed_passages(r.candidates), dtype=np.float32) @ q, r.label))
    sizes = [len(r.candidates) for r in records]
    chance = {
        "r_at_1": m.mean(min(1, n) / n for n in sizes), "r_at_2": m.mean(min(2, n) / n for n in sizes),
        "r_at_5": m.mean(min(5, n) / n for n in sizes), "mrr": m.mean(sum(1 / i for i in range(1, n + 1)) / n for n in sizes),
    }
    return SuiteResult(
        suite="response", n=len(records), metrics=_response_metrics(ours), primary="mrr",
        baselines={"bm25": _response_metrics(lexical), "dense": _response_metrics(dense), "random": chance},
        notes=["bm25 and dense rank against the last four turns joined, newest first; random is the exact "
               "expectation, not a sample. The LangChain retriever is not a reranker of given replies, so it "
               "is not run here."],
    )
