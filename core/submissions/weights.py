"""Model weights sent with a submission: safetensors files only, checked before anything is stored.

A safetensors file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping each
tensor name to its dtype, shape and `data_offsets` [begin, end) into the data that follows (plus an
optional `__metadata__` map of strings), then the data: the tensors' bytes, back to back. It holds
no code, unlike a pickle (`torch.save`'s format), which can run anything when it is loaded; so
weights are accepted in this format only.

The header is read here, by hand, only to say precisely what is wrong with a file (every problem,
with the tensor concerned); a file that passes is then opened with the `safetensors` library
itself, which lists what the runner will load. The data is never read whole: the header is at
most `MAX_HEADER_BYTES` and the library maps the file.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import Problem

# Real headers are a few KiB to a few MiB (the safetensors library's own cap is 100 MB); the
# manifest is stored in the database, so it is kept small.
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_METADATA_BYTES = 64 * 1024
MAX_NAME_CHARS = 1000
METADATA_KEY = "__metadata__"

# safetensors dtype -> (the name the manifest stores, as torch spells it; bytes per element).
# Sub-byte formats (F4, F6_*) and F8_E8M0 are left out: the runner could not load them as tensors.
DTYPES: dict[str, tuple[str, int]] = {
    "BOOL": ("bool", 1),
    "U8": ("uint8", 1),
    "I8": ("int8", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "I16": ("int16", 2),
    "U16": ("uint16", 2),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I32": ("int32", 4),
    "U32": ("uint32", 4),
    "F32": ("float32", 4),
    "F64": ("float64", 8),
    "I64": ("int64", 8),
    "U64": ("uint64", 8),
}
_ALIASES = {
    "half": "float16",
    "float": "float32",
    "double": "float64",
    "short": "int16",
    "int": "int32",
    "long": "int64",
    "float8_e4m3": "float8_e4m3fn",
    **{code.lower(): name for code, (name, _) in DTYPES.items()},
}
HOW_TO_SAVE = (
    "save the weights with safetensors.torch.save_file(model.state_dict(), 'model.safetensors') "
    "(or model.save_pretrained(..., safe_serialization=True) for a transformers model)"
)

# name -> (shape, dtype): what `match_weights` compares.
TensorSpecs = dict[str, tuple[tuple[int, ...], str]]


@dataclass(frozen=True, slots=True)
class WeightsManifest:
    """What a checked weights file holds: each tensor's shape and dtype (torch's names)."""

    size: int  # bytes, the whole file
    tensors: TensorSpecs
    metadata: dict[str, str]

    @property
    def tensor_count(self) -> int:
        return len(self.tensors)

    @property
    def element_count(self) -> int:
        return sum(math.prod(shape) for shape, _ in self.tensors.values())

    def to_json(self) -> dict[str, Any]:
        """The stored form: {name: {"dtype": "float32", "shape": [768, 768]}}, names sorted."""
        return {
            name: {"dtype": dtype, "shape": list(shape)}
            for name, (shape, dtype) in sorted(self.tensors.items())
        }


def manifest_from_json(stored: Mapping[str, Any]) -> TensorSpecs:
    """The stored manifest (`WeightsManifest.to_json`) back as name -> (shape, dtype)."""
    return {
        name: (tuple(int(d) for d in spec["shape"]), str(spec["dtype"]))
        for name, spec in stored.items()
    }


def _not_safetensors(head: bytes) -> str | None:
    """Name the format of a file that is plainly something else, from its first bytes."""
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return (
            f"this is a Python pickle (it starts with byte 0x80, pickle protocol {head[1]}), "
            "not safetensors: pickles can run code when loaded, so they are refused"
        )
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return (
            "this is a zip archive (what torch.save writes), not safetensors: torch.save files "
            "hold pickles, which can run code when loaded, so they are refused"
        )
    if head[:6] == b"\x93NUMPY":
        return "this is a numpy .npy file, not safetensors"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "this is an HDF5 file (Keras .h5), not safetensors"
    if head[:4] == b"GGUF":
        return "this is a GGUF file, not safetensors"
    return None


def _shape(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list):
        return None
    if not all(type(d) is int and d >= 0 for d in value):
        return None
    return tuple(value)


def _offsets(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, list) or len(value) != 2:
        return None
    begin, end = value
    if type(begin) is not int or type(end) is not int or not 0 <= begin <= end:
        return None
    return begin, end


class _Duplicates:
    """The key under which a JSON object lists its keys given twice (no JSON text can make it)."""


DUPLICATES: Any = _Duplicates()


def _pairs(pairs: list[tuple[str, Any]]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    twice: set[str] = set()
    for key, value in pairs:
        if key in out:
            twice.add(key)
        out[key] = value
    if twice:
        out[DUPLICATES] = sorted(twice)
    return out


def _read_header(path: Path, size: int, file: str) -> tuple[dict[str, Any], int] | list[Problem]:
    """The parsed JSON header and where the data starts, or what is wrong with the framing."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if (other := _not_safetensors(head)) is not None:
            return [Problem(f"{other}; {HOW_TO_SAVE}", file=file)]
        if len(head) < 8:
            return [
                Problem(
                    f"not safetensors: the file is {size} bytes, too short for the 8-byte header "
                    "length a safetensors file starts with",
                    file=file,
                )
            ]
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER_BYTES:
            return [
                Problem(
                    f"the first 8 bytes give a header length of {length:,} bytes, above the "
                    f"limit of {MAX_HEADER_BYTES:,} (safetensors headers are a few KiB to a few "
                    "MiB: is this a safetensors file?)",
                    file=file,
                )
            ]
        if 8 + length > size:
            return [
                Problem(
                    f"truncated: the header should be {length:,} bytes, but only {size - 8:,} "
                    f"bytes follow the header length (the file is {size:,} bytes)",
                    file=file,
                )
            ]
        raw = fh.read(length)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [Problem(f"not safetensors: the header is not UTF-8 (byte {exc.start})", file=file)]
    if not text.startswith("{"):
        return [Problem("not safetensors: the header is not a JSON object", file=file)]
    try:
        header = json.loads(text, object_pairs_hook=_pairs)
    except (ValueError, RecursionError) as exc:
        return [Problem(f"not safetensors: the header is not valid JSON ({exc})", file=file)]
    if not isinstance(header, dict):
        return [Problem("not safetensors: the header is not a JSON object", file=file)]
    return header, 8 + length


def _check_metadata(value: Any, file: str) -> tuple[dict[str, str], list[Problem]]:
    if not isinstance(value, dict):
        return {}, [Problem(f"{METADATA_KEY} must be a JSON object of strings", file=file)]
    problems = []
    if twice := value.pop(DUPLICATES, None):
        problems.append(Problem(f"{METADATA_KEY}: keys given twice: {twice[:20]}", file=file))
    bad = [k for k, v in value.items() if not isinstance(v, str)]
    if bad:
        problems.append(
            Problem(
                f"{METADATA_KEY} must map strings to strings; not a string: {bad[:20]}", file=file
            )
        )
    kept = {k: v for k, v in value.items() if isinstance(v, str)}
    if len(json.dumps(kept)) > MAX_METADATA_BYTES:
        problems.append(
            Problem(
                f"{METADATA_KEY} is larger than the limit of {MAX_METADATA_BYTES:,} bytes",
                file=file,
            )
        )
    return kept, problems


def check_weights_file(
    path: Path, *, file: str, max_bytes: int, max_tensors: int
) -> WeightsManifest | list[Problem]:
    """Check that `path` is a well-formed safetensors file; its manifest, or every problem found.

    `file` is the user's name for it (shown in problems). Checked: size (not empty, at most
    `max_bytes`), other formats named (pickle, zip, ...), the header's length and JSON, each
    tensor's dtype, shape and offsets (size agrees with shape and dtype), and that the tensors
    cover the data exactly: from its start, contiguous, no overlap, ending at the file's end.
    """
    size = path.stat().st_size
    if size == 0:
        return [Problem("the weights file is empty", file=file)]
    if size > max_bytes:
        return [
            Problem(f"the weights file is {size:,} bytes, the limit is {max_bytes:,}", file=file)
        ]
    read = _read_header(path, size, file)
    if isinstance(read, list):
        return read
    header, data_start = read
    data_size = size - data_start
    problems: list[Problem] = []
    duplicates = header.pop(DUPLICATES, None)
    if duplicates:
        shown = ", ".join(repr(d) for d in duplicates[:20])
        problems.append(Problem(f"tensor names given twice in the header: {shown}", file=file))
    metadata: dict[str, str] = {}
    if METADATA_KEY in header:
        metadata, meta_problems = _check_metadata(header.pop(METADATA_KEY), file)
        problems += meta_problems
    if len(header) > max_tensors:
        problems.append(
            Problem(f"{len(header):,} tensors, the limit is {max_tensors:,}", file=file)
        )
        return problems
    if not header:
        problems.append(Problem("the file holds no tensors", file=file))
    tensors: TensorSpecs = {}
    spans: list[tuple[int, int, str]] = []
    for name, spec in header.items():
        label = f"tensor {name[:200]!r}"
        if not name or len(name) > MAX_NAME_CHARS or any(ord(c) < 32 or c == "\x7f" for c in name):
            problems.append(
                Problem(
                    f"{label}: a tensor name must be 1 to {MAX_NAME_CHARS} characters without "
                    "control characters",
                    file=file,
                )
            )
            continue
        if not isinstance(spec, dict):
            problems.append(
                Problem(
                    f"{label}: expected {{dtype, shape, data_offsets}}, got {spec!r:.100}",
                    file=file,
                )
            )
            continue
        if spec.pop(DUPLICATES, None):
            problems.append(Problem(f"{label}: a key is given twice", file=file))
        dtype_code = spec.get("dtype")
        shape = _shape(spec.get("shape"))
        offsets = _offsets(spec.get("data_offsets"))
        known = DTYPES.get(dtype_code) if isinstance(dtype_code, str) else None
        if known is None:
            problems.append(
                Problem(
                    f"{label}: dtype {dtype_code!r:.40} is not one of {', '.join(DTYPES)}",
                    file=file,
                )
            )
        if shape is None:
            problems.append(
                Problem(
                    f"{label}: shape must be a list of non-negative integers, got "
                    f"{json.dumps(spec.get('shape'))[:100]}",
                    file=file,
                )
            )
        if offsets is None:
            problems.append(
                Problem(
                    f"{label}: data_offsets must be [begin, end] with 0 <= begin <= end, got "
                    f"{json.dumps(spec.get('data_offsets'))[:100]}",
                    file=file,
                )
            )
        extra = sorted(set(spec) - {"dtype", "shape", "data_offsets"})
        if extra:
            problems.append(Problem(f"{label}: unknown keys {extra}", file=file))
        if known is None or shape is None or offsets is None:
            continue
        dtype, itemsize = known
        begin, end = offsets
        expected = math.prod(shape) * itemsize
        if end - begin != expected:
            problems.append(
                Problem(
                    f"{label}: data_offsets [{begin}, {end}) span {end - begin:,} bytes, but "
                    f"shape {list(shape)} of {dtype_code} needs {expected:,}",
                    file=file,
                )
            )
        if end > data_size:
            problems.append(
                Problem(
                    f"{label}: data_offsets [{begin}, {end}) end beyond the data, which is "
                    f"{data_size:,} bytes (is the file truncated?)",
                    file=file,
                )
            )
        tensors[name] = (shape, dtype)
        spans.append((begin, end, name))
    problems += _coverage_problems(spans, data_size, file)
    if problems:
        return problems
    library = _library_problems(path, tensors, file)
    if library:
        return library
    return WeightsManifest(size=size, tensors=tensors, metadata=metadata)


def _coverage_problems(
    spans: list[tuple[int, int, str]], data_size: int, file: str
) -> list[Problem]:
    """The tensors must tile the data: from byte 0, no gap, no overlap, to the end."""
    problems: list[Problem] = []
    at = 0
    previous: tuple[int, int, str] | None = None
    for begin, end, name in sorted(spans):
        if begin < at and previous is not None:
            problems.append(
                Problem(
                    f"tensor {name[:200]!r}: data_offsets [{begin}, {end}) overlap those of "
                    f"tensor {previous[2][:200]!r} [{previous[0]}, {previous[1]})",
                    file=file,
                )
            )
        elif begin > at:
            problems.append(
                Problem(
                    f"bytes [{at}, {begin}) of the data belong to no tensor (before tensor "
                    f"{name[:200]!r}): the tensors must be stored back to back",
                    file=file,
                )
            )
        if end >= at:
            at, previous = end, (begin, end, name)
    if spans and at < data_size:
        problems.append(
            Problem(
                f"the data is {data_size:,} bytes but the tensors end at byte {at:,}: "
                f"{data_size - at:,} bytes at the end belong to no tensor",
                file=file,
            )
        )
    elif not spans and data_size:
        problems.append(
            Problem(f"{data_size:,} bytes of data after the header, but no tensors", file=file)
        )
    return problems


def _library_problems(path: Path, tensors: TensorSpecs, file: str) -> list[Problem]:
    """Open the file with the safetensors library (what the runner uses) and compare listings."""
    from safetensors import SafetensorError, safe_open

    try:
        listed: TensorSpecs = {}
        with safe_open(str(path), framework="numpy") as handle:
            for name in handle.keys():  # noqa: SIM118 (a handle, not a dict)
                piece = handle.get_slice(name)
                code = piece.get_dtype()
                listed[name] = (tuple(piece.get_shape()), DTYPES.get(code, (code, 0))[0])
    except (SafetensorError, OSError, ValueError) as exc:
        return [Problem(f"not a readable safetensors file: {exc}", file=file)]
    if listed != tensors:
        return [
            Problem(
                "the safetensors library reads this file differently from its header; "
                "save it again with the safetensors library",
                file=file,
            )
        ]
    return []


# --- matching the weights to the exported graph -------------------------------------------------

_KINDS = (
    ("bfloat", "float"),
    ("float", "float"),
    ("complex", "complex"),
    ("uint", "integer"),
    ("int", "integer"),
    ("bool", "bool"),
)


def _dtype_name(dtype: str) -> str:
    name = dtype.strip().removeprefix("torch.").lower()
    return _ALIASES.get(name, name)


def dtype_kind(dtype: str) -> str | None:
    """ "float", "integer", "bool" or "complex" for a dtype name (torch's or safetensors'), or None."""
    name = _dtype_name(dtype)
    for prefix, kind in _KINDS:
        if name.startswith(prefix):
            return kind
    return None


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _prefixes(names: list[str], others: list[str]) -> dict[str, int]:
    """How many of `names` are one of `others` with a leading prefix, by that prefix (the
    shortest prefix that makes a match)."""
    wanted = set(others)
    counts: dict[str, int] = {}
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in wanted:
                prefix = ".".join(parts[:i]) + "."
                counts[prefix] = counts.get(prefix, 0) + 1
                break
    return counts


def _prefix_hint(missing: list[str], unexpected: list[str]) -> str | None:
    """A likely cause when names differ only by a leading prefix (e.g. `module.` or `model.`)."""
    extra = _prefixes(unexpected, missing)
    fewer = _prefixes(missing, unexpected)
    if extra:
        prefix, count = max(extra.items(), key=lambda kv: kv[1])
        return (
            f"{count} name(s) in the weights file are the graph's names with {prefix!r} in "
            f"front: save the state_dict of the module that `entire_model` is, or strip the prefix"
        )
    if fewer:
        prefix, count = max(fewer.items(), key=lambda kv: kv[1])
        return (
            f"{count} of the graph's name(s) are names in the weights file with {prefix!r} in "
            "front: save the state_dict of `entire_model` itself, not of a submodule"
        )
    return None


def match_weights(manifest: TensorSpecs, graph_params: TensorSpecs) -> list[str]:
    """Every way the weights (`manifest`) fail to fit the graph's parameters and buffers.

    Both map a name to (shape, dtype). Listed, one sentence each, sorted by name within each
    kind: names the graph needs that the weights lack, names the weights have that the graph
    does not use, shapes that differ, and dtypes of another kind (a floating-point tensor for an
    integer or boolean buffer, or the reverse). Floating-point widths are not compared (float16
    weights for a float32 parameter): a runner that loads the file as it is must cast them or
    refuse them itself. An empty list means they fit.
    """
    out: list[str] = []
    missing = sorted(set(graph_params) - set(manifest))
    unexpected = sorted(set(manifest) - set(graph_params))
    for name in missing:
        shape, dtype = graph_params[name]
        out.append(
            f"missing tensor {name!r}: the graph has a parameter or buffer of that name "
            f"(shape {_shape_text(shape)}, {_dtype_name(dtype)}), the weights file does not"
        )
    for name in unexpected:
        shape, dtype = manifest[name]
        out.append(
            f"unexpected tensor {name!r} (shape {_shape_text(shape)}, {_dtype_name(dtype)}): "
            "the weights file has it, but the graph has no parameter or buffer of that name"
        )
    for name in sorted(set(manifest) & set(graph_params)):
        given_shape, given_dtype = manifest[name]
        graph_shape, graph_dtype = graph_params[name]
        if tuple(given_shape) != tuple(graph_shape):
            out.append(
                f"tensor {name!r}: shape {_shape_text(tuple(given_shape))} in the weights file, "
                f"but {_shape_text(tuple(graph_shape))} in the graph"
            )
        given_kind, graph_kind = dtype_kind(given_dtype), dtype_kind(graph_dtype)
        if given_kind is None or graph_kind is None:
            unknown = given_dtype if given_kind is None else graph_dtype
            out.append(f"tensor {name!r}: unknown dtype {unknown!r}")
        elif given_kind != graph_kind:
            out.append(
                f"tensor {name!r}: {_dtype_name(given_dtype)} ({given_kind}) in the weights file, "
                f"but the graph's is {_dtype_name(graph_dtype)} ({graph_kind}): {_a(given_kind)} "
                f"tensor cannot stand for {_a(graph_kind)} one"
            )
    if missing and unexpected and (hint := _prefix_hint(missing, unexpected)) is not None:
        out.append(hint)
    return out
