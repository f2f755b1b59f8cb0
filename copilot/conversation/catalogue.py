"""What a tenant sells, as customers name it: products set against the customer's own orders.

A customer asking about a product they have never ordered (护臀膏怎么样 from someone who only bought diapers)
is shopping; the same words about what they did order are most often about using it. No dialogue act tells
the two apart, but the tenant's library and the profile do. `LibraryCatalogue` reads the library's content
items once per tenant: a product card's tags that its title also carries are the names customers use for it
(纸尿裤, 护臀膏, M码, 2段; a longer Chinese name also answers to its endings, 纸尿裤 to 尿裤), and the tags
in the titles of events and mini-programs name the services the brand offers, with the stages the library
files them under. One automaton finds them all in a message; the customer's order lines are read through
the same automaton, so "bought" means the order lines carry the same name, whatever the sku spelling.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from copilot.conversation.stage_library import share
from copilot.knowledge.schema import CustomerProfile, Stage
from copilot.wordsearch import WordSearch

__all__ = ["LibraryCatalogue", "Named", "catalogue_features"]

_STAGES = frozenset(s.value for s in Stage)
_SERVICE_KINDS = ("event", "miniprogram")
_SHORTEST = 2  # one character matches inside too many words


@dataclass(frozen=True)
class Named:
    """What one message names: product names (each with the tags it stands for) and services' stage shares."""

    products: tuple[tuple[str, frozenset[str]], ...] = ()
    services: Mapping[str, float] = field(default_factory=dict)

    @property
    def product_names(self) -> frozenset[str]:
        return frozenset().union(*(tags for _, tags in self.products)) if self.products else frozenset()


@dataclass
class LibraryCatalogue:
    """Phrase → the product tags it names and the stages of the services it names."""

    products_of: dict[str, frozenset[str]] = field(default_factory=dict)
    services_of: dict[str, dict[str, float]] = field(default_factory=dict)
    _automaton: WordSearch[str] | None = None

    @classmethod
    def from_content(cls, items: Iterable[tuple[str, str, Iterable[str], Iterable[str]]]) -> LibraryCatalogue:
        """`items`: (kind, title, tags, stages) of each content item; products and services are read."""
        products: dict[str, set[str]] = defaultdict(set)
        services: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for kind, title, tags, stages in items:
            lowered = title.lower()
            named = [t.strip().lower() for t in tags if len(t.strip()) >= _SHORTEST and t.strip().lower() in lowered]
            if kind == "product":
                for tag in named:
                    products[tag].add(tag)
                    if _chinese(tag):
                        for start in range(1, len(tag) - _SHORTEST + 1):
                            products[tag[start:]].add(tag)  # 纸尿裤 is asked for as 尿裤
            elif kind in _SERVICE_KINDS:
                filed = [s for s in stages if s in _STAGES] or sorted(_STAGES)
                for tag in named:
                    for stage in filed:
                        services[tag][stage] += 1.0 / len(filed)
        # A product's name speaks as a product even where an event's title carries it (润肤霜买二送一).
        catalogue = cls({p: frozenset(t) for p, t in products.items()},
                        {p: dict(s) for p, s in services.items() if p not in products})
        phrases = set(catalogue.products_of) | set(catalogue.services_of)
        if phrases:
            catalogue._automaton = WordSearch((phrase, phrase) for phrase in sorted(phrases))
        return catalogue

    def named(self, text: str) -> Named:
        """The products and services `text` names (a phrase inside a longer one found does not count again)."""
        if self._automaton is None or not text.strip():
            return Named()
        found = sorted(((start, stop - 1, p) for start, stop, p in self._automaton.find(text.lower())),
                       key=lambda f: (-(f[1] - f[0]), f[0]))
        taken: list[tuple[int, int]] = []
        products: list[tuple[str, frozenset[str]]] = []
        services: dict[str, float] = defaultdict(float)
        for start, end, phrase in found:
            if any(start >= a and end <= b for a, b in taken):
                continue
            taken.append((start, end))
            if phrase in self.products_of:
                products.append((phrase, self.products_of[phrase]))
            for stage, weight in self.services_of.get(phrase, {}).items():
                services[stage] += weight
        return Named(tuple(products), share(services) if services else {})

    def bought(self, profile: CustomerProfile | None) -> frozenset[str]:
        """The product tags the customer's order lines carry (cancelled orders were never received)."""
        if profile is None:
            return frozenset()
        lines = " ".join(line.name for order in profile.orders if order.status != "cancelled" for line in order.items)
        return self.named(lines).product_names


def _chinese(text: str) -> bool:
    return all("\u4e00" <= ch <= "\u9fff" for ch in text)


def catalogue_features(catalogue: LibraryCatalogue, latest: str, answered: str, profile: CustomerProfile | None,
                       labels: dict[str, str]) -> dict[str, float]:
    """Products and services named in the customer's latest words and in the staff message they answer, each
    product set against the customer's orders (a profile with orders only: with none, or no profile, nothing
    tells a product bought from one not bought)."""
    out: dict[str, float] = {}
    orders = bool(profile and any(o.status != "cancelled" for o in profile.orders))
    bought = catalogue.bought(profile) if orders else frozenset()
    for prefix, text, who in (("names", latest, "客户"), ("staff_names", answered, "顾问上一句")):
        named = catalogue.named(text)
        if named.products and orders:
            new = [p for p, tags in named.products if not tags & bought]
            old = [p for p, tags in named.products if tags & bought]
            if new:
                out[f"{prefix}_unbought"] = 1.0
                labels[f"{prefix}_unbought"] = f"{who}提到客户没买过的“{'、'.join(new[:3])}”"
            if old:
                out[f"{prefix}_bought"] = 1.0
                labels[f"{prefix}_bought"] = f"{who}提到客户买过的“{'、'.join(old[:3])}”"
        if prefix == "names":
            for stage, value in named.services.items():
                if value > 0:
                    out[f"names_service_{stage}"] = value
                    labels[f"names_service_{stage}"] = "客户问到的活动/服务多属于该阶段"
    return out
