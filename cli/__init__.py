"""The `copilot` command line (an edge, like `api`): one Typer root (`cli.main.app`) with the `revisits`
and `eval` sub-apps. Parses arguments, calls the domain and prints; no domain logic lives here.
"""
