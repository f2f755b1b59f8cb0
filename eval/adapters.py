"""Convert public data sets into this project's suite formats (`copilot eval convert SOURCE --out FILE`).

Sources (read from `--source-dir`, by default `../shared/data` beside the repository):

- `persuasion-intent`: PersuasionForGood dialogues → `intent`; persuader = staff, persuadee =
  customer, outcome = the persuadee's actual donation (B6 in annotated_info.csv) > 0.
- `persuasion-response`: for a persuader turn, its true text against persuader turns sampled from
  other dialogues → `response`.
- `banking77`, `clinc150`: few-shot `classify` (k examples per class as --train, the rest as data;
  CLINC's out-of-scope queries become label `oos`).
- `crosswoz-stage`: CrossWOZ validation dialogues → a `stage` proxy from the user turn's dialogue acts
  (mapping in `crosswoz_stage`); `crosswoz-response`: the true system reply against other dialogues'.
- `project-response`: any of our conversation files (`messages` per line) → `response`.

Sampling is seeded, so a conversion is reproducible byte for byte. `split` keeps one half of the source
(`dev` for tuning, `test` frozen for figures; `all` by default): a dialogue, or for the classification sets an
evaluation text, belongs to a half by a CRC-32 of its id or text, so the halves never change and never
share a dialogue. Training shots (classify) come from the source's training part either way.
"""

from __future__ import annotations

import csv
import json
import random
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from copilot.errors import ValidationError

__all__ = ["CONVERTERS", "DEFAULT_SOURCE_DIR", "SPLITS", "crosswoz_stage", "in_split", "next_turn_records",
           "write_jsonl"]

DEFAULT_SOURCE_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
Dialogue = list[tuple[str, str]]  # (role, text), oldest first; role is "customer" or "staff"
Records = list[dict[str, Any]]
SPLITS = ("all", "dev", "test")


def in_split(key: str, split: str) -> bool:
    """Whether a dialogue (or text) with this key belongs to `split`: CRC-32 even → dev, odd → test."""
    if split not in SPLITS:
        raise ValidationError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return split == "all" or (zlib.crc32(key.encode("utf-8")) % 2 == 1) == (split == "test")


def write_jsonl(records: Iterable[dict[str, Any]], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def _need(path: Path) -> Path:
    if not path.exists():
        raise ValidationError(f"{path}: not found; pass --source-dir pointing at the public data folder")
    return path


def _messages(turns: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"role": role, "text": text[:4000]} for role, text in turns]


def next_turn_records(
    dialogues: Sequence[Dialogue], *, target: str, negatives: int, per_dialogue: int, seed: int,
    max_context: int = 8,
) -> Records:
    """For turns by `target` that answer the other side, the true turn among `negatives` turns by the
    same role drawn from other dialogues; the true turn's position is random."""
    rng = random.Random(seed)
    pool = [(i, text) for i, d in enumerate(dialogues) for role, text in d if role == target]
    out: Records = []
    for i, dialogue in enumerate(dialogues):
        spots = [t for t in range(1, len(dialogue)) if dialogue[t][0] == target and dialogue[t - 1][0] != target]
        for t in sorted(rng.sample(spots, min(per_dialogue, len(spots)))):
            others: list[str] = []
            while len(others) < negatives:
                j, text = rng.choice(pool)
                if j != i and text not in others and text != dialogue[t][1]:
                    others.append(text)
            label = rng.randrange(negatives + 1)
            candidates = [*others[:label], dialogue[t][1], *others[label:]]
            out.append({"messages": _messages(dialogue[max(0, t - max_context) : t]),
                        "candidates": candidates, "label": label})
    return out


# ---- PersuasionForGood ---------------------------------------------------------------------------
def _persuasion(source: Path) -> tuple[dict[str, Dialogue], dict[str, float]]:
    rows: dict[str, dict[tuple[int, int], list[str]]] = defaultdict(lambda: defaultdict(list))
    with _need(source / "persuasionforgood" / "annotated_dialog.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows[row["B2"]][(int(row["Turn"]), int(row["B4"]))].append(row["Unit"].strip())
    dialogues = {
        key: [("staff" if role == 0 else "customer", " ".join(units)) for (_, role), units in sorted(turns.items())]
        for key, turns in rows.items()
    }
    donations: dict[str, float] = {}
    with _need(source / "persuasionforgood" / "annotated_info.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["B4"] == "1" and row["B6"].strip():
                donations[row["B2"]] = float(row["B6"])
    return dialogues, donations


def persuasion_intent(source: Path, args: dict[str, Any]) -> tuple[Records, Records]:
    dialogues, donations = _persuasion(source)
    max_turns = args.get("max_turns")
    out = [
        {"id": key, "messages": _messages(d[:max_turns] if max_turns else d), "outcome": int(donations[key] > 0)}
        for key, d in sorted(dialogues.items()) if key in donations and d and in_split(key, args.get("split", "all"))
    ]
    return out, []


def persuasion_response(source: Path, args: dict[str, Any]) -> tuple[Records, Records]:
    dialogues, _ = _persuasion(source)
    ordered = [d for key, d in sorted(dialogues.items()) if in_split(key, args.get("split", "all"))]
    return next_turn_records(ordered, target="staff", negatives=args["negatives"], per_dialogue=args["per_dialogue"],
                             seed=args["seed"]), []


# ---- intent classification -----------------------------------------------------------------------
def _few_shot(by_label: dict[str, list[str]], shots: int, per_class: int, seed: int,
              split: str = "all") -> tuple[Records, Records]:
    rng = random.Random(seed)
    train: Records = []
    data: Records = []
    for label in sorted(by_label):
        texts = sorted(set(by_label[label]))
        rng.shuffle(texts)
        train.extend({"text": t, "label": label} for t in texts[:shots])
        data.extend({"text": t, "label": label} for t in [t for t in texts[shots:] if in_split(t, split)][:per_class])
    return data, train


def banking77(source: Path, args: dict[str, Any]) -> tuple[Records, Records]:
    by_label: dict[str, list[str]] = defaultdict(list)
    with _need(source / "intents" / "banking77" / "train.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            by_label[row["category"]].append(row["text"].strip())
    return _few_shot(by_label, args["shots"], args["per_class"], args["seed"], args.get("split", "all"))


def clinc150(source: Path, args: dict[str, Any]) -> tuple[Records, Records]:
    raw = json.loads(_need(source / "intents" / "clinc150" / "train_val.json").read_text(encoding="utf-8"))
    rng = random.Random(args["seed"])
    train_by: dict[str, list[str]] = defaultdict(list)
    for text, label in raw["train"]:
        train_by[label].append(text)
    train: Records = []
    for label in sorted(train_by):
        texts = sorted(train_by[label])
        rng.shuffle(texts)
        train.extend({"text": t, "label": label} for t in texts[: args["shots"]])
    oos_train = sorted(t for t, _ in raw["oos_train"])
    rng.shuffle(oos_train)
    train.extend({"text": t, "label": "oos"} for t in oos_train[: args["oos_shots"]])
    val_by: dict[str, list[str]] = defaultdict(list)
    for text, label in raw["val"]:
        val_by[label].append(text)
    data: Records = []
    for label in sorted(val_by):
        kept = [t for t in sorted(val_by[label]) if in_split(t, args.get("split", "all"))]
        data.extend({"text": t, "label": label} for t in kept[: args["per_class"]])
    data.extend({"text": t, "label": "oos"} for t, _ in raw["oos_val"] if in_split(t, args.get("split", "all")))
    return data, train


# ---- CrossWOZ ------------------------------------------------------------------------------------
_PRICE_SLOTS = {"价格", "人均消费", "门票", "酒店类型"}


def crosswoz_stage(acts: Sequence[Sequence[str]]) -> str | None:
    """Stage proxy for a CrossWOZ user turn from its dialogue acts, or None (turn left out).

    - only General-greet → icebreak (a hello with no request yet);
    - Select, Request of a name (asking the system to suggest a place) or of a price → recommend;
    - Inform with no Request or Select (the user states needs and constraints) → discovery;
    - everything else (attribute questions, thanks, bye) is left out: it has no clean sales analogue,
      and CrossWOZ has nothing like after-sales, so `revisit` never appears.
    """
    kinds = {a[0] for a in acts}
    generals = {a[1] for a in acts if a[0] == "General"}
    if kinds == {"General"} and generals == {"greet"}:
        return "icebreak"
    if "Select" in kinds or any(a[0] == "Request" and (a[2] == "名称" or a[2] in _PRICE_SLOTS) for a in acts):
        return "recommend"
    if "Inform" in kinds and "Request" not in kinds:
        return "discovery"
    return None


def _crosswoz(source: Path, split: str = "all") -> list[list[tuple[str, str, list[list[str]]]]]:
    with zipfile.ZipFile(_need(source / "crosswoz" / "val.json.zip")) as archive:
        raw = json.loads(archive.read("val.json"))
    return [
        [("customer" if m["role"] == "usr" else "staff", m["content"], m["dialog_act"]) for m in d["messages"]]
        for key, d in sorted(raw.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else kv[0])
        if in_split(key, split)
    ]


def crosswoz_stage_records(source: Path, args: dict[str, Any]) -> tuple[Records, Records]:
    """Labelled user turns, at most `per_stage` per stage (seeded sample, dialogue order kept)."""
    by_stage: dict[str, Records] = defaultdict(list)
    for d in _crosswoz(source, args.get("split", "all")):
        for t, (role, _, acts) in enumerate(d):
            stage = crosswoz_stage(acts) if role == "customer" else None
            if stage:
                turns = [(r, text) for r, text, _ in d[max(0, t - 7) : t + 1]]
                by_stage[stage].append({"messages": _messages(turns), "stage": stage})
    rng = random.Random(args["seed"])
    out: Records = []
    for stage in sorted(by_stage):
        rows = by_stage[stage]
        keep = sorted(rng.sample(range(len(rows)), min(args["per_stage"], len(rows))))
        out.extend(rows[i] for i in keep)
    return out, []


def crosswoz_response(source: Path, args: dict[str, Any]) -> tuple[Records, Records]:
    dialogues = [[(role, text) for role, text, _ in d] for d in _crosswoz(source, args.get("split", "all"))]
    return next_turn_records(dialogues, target="staff", negatives=args["negatives"],
                             per_dialogue=args["per_dialogue"], seed=args["seed"]), []


def project_response(source: Path, args: dict[str, Any]) -> tuple[Records, Records]:
    """`source` is a JSONL file of ours with `messages`; staff turns become the true replies."""
    dialogues: list[Dialogue] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for line in _need(source).read_text(encoding="utf-8").splitlines():
        if line.strip():
            turns = tuple((m["role"], m["text"]) for m in json.loads(line).get("messages", []))
            if turns and turns not in seen:
                seen.add(turns)
                dialogues.append(list(turns))
    return next_turn_records(dialogues, target="staff", negatives=args["negatives"],
                             per_dialogue=args["per_dialogue"], seed=args["seed"]), []


Converter = Callable[[Path, dict[str, Any]], tuple[Records, Records]]
CONVERTERS: dict[str, Converter] = {
    "persuasion-intent": persuasion_intent,
    "persuasion-response": persuasion_response,
    "banking77": banking77,
    "clinc150": clinc150,
    "crosswoz-stage": crosswoz_stage_records,
    "crosswoz-response": crosswoz_response,
    "project-response": project_response,
}


def convert(name: str, source: Path, out: Path, train_out: Path | None = None, limit: int | None = None,
            **args: Any) -> tuple[int, int]:
    """Write the converted data (and, for classify sources, the training file); returns both counts."""
    if name not in CONVERTERS:
        raise ValidationError(f"unknown source {name!r}; choose one of {', '.join(CONVERTERS)}")
    in_split("", args.get("split", "all"))  # an unknown split fails before anything is read
    data, train = CONVERTERS[name](source, args)
    if limit is not None and len(data) > limit:
        data = random.Random(args.get("seed", 13)).sample(data, limit)
    n_train = 0
    if train:
        n_train = write_jsonl(train, train_out or out.with_name(out.stem + ".train.jsonl"))
    return write_jsonl(data, out), n_train

