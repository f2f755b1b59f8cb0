"""Offline evaluation of the copilot: suites, baselines, reports, public-set adapters and the CI gate.

Every suite drives the same `copilot.service.Copilot` that serves requests; see `eval/README.md`.
"""
