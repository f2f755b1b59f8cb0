"""Reading a model's answer while it is still being written.

Drafts are asked for as one JSON object holding an array of candidates; `ObjectScanner` takes the
answer a chunk at a time and hands back each JSON object *inside* that array (or any object that
stands on its own, as in JSON Lines) the moment its closing brace arrives, so the first candidate
can be shown while the model still writes the second. It is a brace-and-string state machine rather
than a streaming JSON parser because small local models wrap their JSON in prose, code fences and
`<think>` preambles, which a strict parser rejects; every object it hands back is still parsed by
`json.loads` and validated by the caller.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ObjectScanner"]


class ObjectScanner:
    """Feed text chunks; get back every complete JSON object that has `key`, innermost first."""

    def __init__(self, key: str = "text") -> None:
        self.key = key
        self._starts: list[int] = []  # buffer offsets of the open objects' braces
        self._buffer: list[str] = []
        self._length = 0
        self._in_string = False
        self._escaped = False
        self._thinking = False
        self._tail = ""  # the last few characters, to spot <think> and </think> across chunks
        self.complete: int = 0  # objects handed back so far

    def feed(self, chunk: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for char in chunk:
            self._buffer.append(char)
            self._length += 1
            self._tail = (self._tail + char)[-8:]
            if self._thinking:
                if self._tail.endswith("</think>"):
                    self._thinking = False
                continue
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
                continue
            if char == '"' and self._starts:
                self._in_string = True
            elif char == "{":
                self._starts.append(self._length - 1)
            elif char == "}" and self._starts:
                start = self._starts.pop()
                obj = self._parse("".join(self._buffer[start:]))
                if obj is not None and isinstance(obj.get(self.key), str):
                    found.append(obj)
            elif not self._starts and self._tail.endswith("<think>"):
                self._thinking = True
        self.complete += len(found)
        return found

    @staticmethod
    def _parse(text: str) -> dict[str, Any] | None:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None
