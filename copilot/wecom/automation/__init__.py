"""WeCom automation: per-tenant apps and API clients, the auto-reply policy, event handlers, the outbox
sender and the worker that runs them.

Built on the protocol layer (`copilot.wecom`); the protocol layer never imports this package.
"""
