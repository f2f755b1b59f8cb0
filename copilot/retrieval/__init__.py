"""Finding library items for a query: documents built from scripts and content, filters, the BM25
index, the vector store (Chroma, with our embedder only), hybrid search fused by RRF, and the reranker.

Owns in-memory catalogues and the vector collections. Must not read library files (that is
`copilot.knowledge`) or know about stages beyond filtering by them.
"""
