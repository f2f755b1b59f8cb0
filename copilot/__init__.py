"""The copilot's domain: everything that decides what to suggest, what may be sent and what to remember.

Edges sit beside this package, never inside it: `api` (HTTP), `cli` (the `copilot` command) and `eval`
(offline evaluation) import the domain; the domain imports none of them (checked by import-linter,
see `.importlinter`). Inside, packages are layered (see README.md, "Architecture"): the composition
root `copilot.service` on top, then the workflows (webhooks, WeCom automation, revisits, approvals),
then the analysis and drafting steps, then the seams to engines (persistence, embedding, llm) and
the shared kernel (`clock`, `errors`, `config`).
"""
