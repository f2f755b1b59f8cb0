"""`python -m eval SUITE --data FILE.jsonl …` (and `python -m eval convert|gate …`)."""

from __future__ import annotations

import sys

from eval.cli import eval_app
from eval.records import SUITE_RECORDS

args = sys.argv[1:]
if args and args[0] in SUITE_RECORDS:
    args = ["run", *args]
eval_app(args, prog_name="python -m eval")
