"""Talking to a chat model: the client seam (any OpenAI-compatible endpoint through langchain-openai),
versioned prompt files and token budgets.

The only package that sends requests to a model; tests switch requests off with
`copilot.llm.client.ALLOW_MODEL_REQUESTS`. Must not decide what to draft (that is `copilot.drafting`).
"""
