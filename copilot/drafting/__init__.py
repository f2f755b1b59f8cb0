"""Drafting candidate replies from retrieved evidence: the script drafter (fills the library's scripts),
the LLM drafter (any OpenAI-compatible model, falling back to scripts), and the candidate and citation
types both return.

Every candidate cites what it was built from. Must not run compliance or store anything; the
composition root does both with what the drafters return.
"""
