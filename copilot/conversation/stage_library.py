"""What a tenant's own library says about stages: the brand's words, not the lexicon's.

Every script is filed under a stage and lists trigger phrases, the customer words that make it relevant.
`LibraryStages` indexes those triggers per tenant, so "换码" or "空瓶回收" speaks for the stage the brand
filed it under, with no phrase of any evaluation set in the code. The retrieval votes (which stage the
scripts closest to the customer's words, or to the staff's last message, belong to) are computed by the
caller, which owns the retriever, and handed to `stages.detect_stage` beside this.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from copilot.knowledge.schema import Stage
from copilot.wordsearch import WordSearch

__all__ = ["LibraryStages", "TriggerVote", "share"]

_STAGES = tuple(s.value for s in Stage)


@dataclass(frozen=True)
class TriggerVote:
    shares: Mapping[str, float]  # stage → share of the matched triggers' weight, summing to 1 (empty: none)
    phrases: tuple[str, ...]  # the triggers found, longest first


def share(vote: Mapping[str, float] | None) -> dict[str, float]:
    """A vote as shares of its positive total, one per stage (all zero when there is no vote)."""
    positive = {s: max(0.0, float((vote or {}).get(s, 0.0))) for s in _STAGES}
    total = sum(positive.values())
    return {s: v / total for s, v in positive.items()} if total > 0 else dict.fromkeys(_STAGES, 0.0)


@dataclass
class LibraryStages:
    """Trigger phrase → how the tenant's scripts that list it spread over the stages."""

    stages_of: dict[str, dict[str, float]] = field(default_factory=dict)
    _automaton: WordSearch[str] | None = None

    @classmethod
    def from_scripts(cls, scripts: Iterable[tuple[Iterable[str], Iterable[str]]]) -> LibraryStages:
        """`scripts`: (stages, triggers) of each script."""
        counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for stages, triggers in scripts:
            stages = [s for s in stages if s in _STAGES]
            for trigger in triggers:
                phrase = trigger.strip().lower()
                if len(phrase) < 2:  # one character matches inside too many words
                    continue
                for stage in stages:
                    counts[phrase][stage] += 1.0 / len(stages)
        library = cls({p: dict(c) for p, c in counts.items()})
        if library.stages_of:
            library._automaton = WordSearch((phrase, phrase) for phrase in library.stages_of)
        return library

    def vote(self, text: str) -> TriggerVote:
        """Triggers found in `text` (a phrase inside a longer found one does not count again)."""
        if self._automaton is None or not text.strip():
            return TriggerVote({}, ())
        found: list[tuple[int, int, str]] = []
        for start, stop, phrase in self._automaton.find(text.lower()):
            found.append((start, stop - 1, phrase))
        found.sort(key=lambda f: (-(f[1] - f[0]), f[0]))
        taken: list[tuple[int, int]] = []
        phrases: list[str] = []
        weights: dict[str, float] = defaultdict(float)
        for start, end, phrase in found:
            if any(start >= a and end <= b for a, b in taken):
                continue
            taken.append((start, end))
            phrases.append(phrase)
            spread = self.stages_of[phrase]
            total = sum(spread.values())
            for stage, count in spread.items():
                # Longer phrases say more; a phrase the library files under several stages says less of each.
                weights[stage] += len(phrase) ** 0.5 * count / total
        return TriggerVote(share(weights) if weights else {}, tuple(phrases))
