"""Loading a submitted model file and building the inputs its modules are run on.

The contract is documented in examples/README.md; this module is its executable form.
"""

from __future__ import annotations

import inspect
import runpy
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import InvalidInputError, Problem

ENTIRE_MODEL = "entire_model"
# Token ids drawn for token inputs lie in [0, min(TOKEN_ID_BOUND, vocab_size)).
TOKEN_ID_BOUND = 100
# A rank-1 shape given to a module whose lower-cased name ends with one of these gets token ids.
TOKEN_MODULE_SUFFIXES = ("emb", "embedding", "embeddings")
# Keyword inputs `entire_model` receives besides input_ids, when its forward accepts them.
OPTIONAL_MODEL_INPUTS = ("attention_mask", "token_type_ids")

MakeInput = Callable[[str, tuple[int, ...]], Any]


class ModelFileError(InvalidInputError):
    """A model file could not be loaded, or one of its modules failed on a stated input."""

    code = "invalid_model_file"


@dataclass
class LoadedModel:
    """What a model file defines. Holds live modules: not a result, never serialised."""

    path: Path
    entire_model: nn.Module
    module_list: dict[str, nn.Module] = field(default_factory=dict)
    make_input: MakeInput | None = None
    vocab_size: int | None = None
    # Remarks worth showing the submitter (e.g. module_list parameters missing from entire_model).
    notes: list[str] = field(default_factory=list)

    def module(self, name: str | None) -> nn.Module:
        """`entire_model` for None (or "entire_model"), else the module_list entry."""
        if name is None or (name == ENTIRE_MODEL and name not in self.module_list):
            return self.entire_model
        try:
            return self.module_list[name]
        except KeyError:
            known = ", ".join(sorted(self.module_list)) or "none"
            raise ModelFileError(
                f"module {name!r} is not in the model file's module_list (it has: {known})",
                [Problem(f"unknown module {name!r}", file=self.path.name, column="modules")],
            ) from None

    @property
    def token_id_bound(self) -> int:
        if self.vocab_size is None:
            return TOKEN_ID_BOUND
        return min(TOKEN_ID_BOUND, self.vocab_size)


def _error(path: Path, message: str, problems: list[str] | None = None) -> ModelFileError:
    return ModelFileError(message, [Problem(p, file=path.name) for p in (problems or [message])])


def _location_in_file(exc: BaseException, path: Path) -> int | None:
    """Line of the innermost traceback frame inside the model file, if any."""
    line = None
    resolved = str(path.resolve())
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in (resolved, str(path)):
            line = frame.lineno
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        line = exc.lineno
    return line


def load_model_file(path: Path | str) -> LoadedModel:
    """Execute a model file (runpy, as `__paretoboard_model__`) and collect what it defines.

    Raises ModelFileError, with every problem found, when the file is missing, fails to run,
    or defines `entire_model` / `module_list` / `make_input` / `vocab_size` of the wrong kind.
    """
    path = Path(path)
    if not path.is_file():
        raise _error(path, f"model file {path.name!r} does not exist")
    try:
        namespace = runpy.run_path(str(path), run_name="__paretoboard_model__")
    except (Exception, SystemExit) as exc:
        line = _location_in_file(exc, path)
        summary = f"{type(exc).__name__}: {exc}"
        raise ModelFileError(
            f"running the model file failed: {summary}",
            [Problem(f"running the file raised {summary}", file=path.name, line=line)],
        ) from exc

    problems: list[str] = []
    model = namespace.get(ENTIRE_MODEL)
    if model is None:
        problems.append("the file defines no `entire_model` (an nn.Module: the whole network)")
    elif not isinstance(model, nn.Module):
        problems.append(f"`entire_model` must be a torch.nn.Module, got {type(model).__name__}")

    modules: dict[str, nn.Module] = {}
    raw_list = namespace.get("module_list")
    if raw_list is not None:
        if not isinstance(raw_list, Mapping | nn.ModuleDict):
            problems.append(
                f"`module_list` must be a dict of name -> nn.Module, got {type(raw_list).__name__}"
            )
        else:
            for key, value in raw_list.items():
                if not isinstance(key, str) or not key:
                    problems.append(f"`module_list` key {key!r} is not a non-empty string")
                elif any(c in key for c in " ;,()\t\n"):
                    problems.append(f"`module_list` key {key!r} contains a space or one of ;,()")
                elif not isinstance(value, nn.Module):
                    problems.append(
                        f"`module_list[{key!r}]` must be an nn.Module, got {type(value).__name__}"
                    )
                else:
                    modules[key] = value

    make_input = namespace.get("make_input")
    if make_input is not None and not callable(make_input):
        problems.append(f"`make_input` must be a function, got {type(make_input).__name__}")

    vocab_size = namespace.get("vocab_size")
    if vocab_size is not None and (
        not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 1
    ):
        problems.append(f"`vocab_size` must be a positive int, got {vocab_size!r}")

    if problems:
        raise _error(path, "the model file does not follow the contract", problems)
    assert isinstance(model, nn.Module)

    loaded = LoadedModel(
        path=path,
        entire_model=model,
        module_list=modules,
        make_input=make_input,
        vocab_size=vocab_size,
    )
    loaded.notes.extend(_check_coverage(model, modules))
    return loaded


def _check_coverage(model: nn.Module, modules: Mapping[str, nn.Module]) -> list[str]:
    """Notes for module_list entries whose parameters `entire_model` does not hold."""
    held = {_param_key(p) for p in model.parameters()}
    notes = []
    for name, module in modules.items():
        missing = sum(p.numel() for p in module.parameters() if _param_key(p) not in held)
        if missing:
            notes.append(
                f"module_list[{name!r}] has {missing:,} parameters that entire_model does not "
                "hold; the parameter count (taken on entire_model) leaves them out"
            )
    return notes


def _param_key(p: torch.Tensor) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    return (p.untyped_storage().data_ptr(), int(p.storage_offset()), tuple(p.shape), p.stride())


def count_parameters(model: nn.Module) -> int:
    """Number of parameters, each stored element counted once.

    Tied weights (the same Parameter twice) and distinct Parameters sharing one storage are
    counted once: contiguous parameters are merged as element ranges of their storage; a
    non-contiguous parameter counts its own elements, once per distinct (storage, offset,
    shape, stride).
    """
    ranges: dict[int, list[tuple[int, int]]] = {}
    seen: set[tuple[int, int, tuple[int, ...], tuple[int, ...]]] = set()
    total = 0
    for _, p in model.named_parameters(remove_duplicate=False):
        if p.numel() == 0:
            continue
        ptr = p.untyped_storage().data_ptr()
        if p.is_contiguous() and ptr != 0:
            start = int(p.storage_offset())
            ranges.setdefault(ptr, []).append((start, start + p.numel()))
            continue
        key = _param_key(p)
        if key not in seen:
            seen.add(key)
            total += p.numel()
    for spans in ranges.values():
        spans.sort()
        end = -1
        for lo, hi in spans:
            if hi <= end:
                continue
            total += hi - max(lo, end)
            end = hi
    return total


# --------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class ModelCall:
    """How a module is called: positional tensors, then keyword tensors, and a description."""

    args: tuple[torch.Tensor, ...]
    kwargs: dict[str, torch.Tensor]
    description: str

    def to(self, device: torch.device | str) -> ModelCall:
        return ModelCall(
            tuple(t.to(device) for t in self.args),
            {k: t.to(device) for k, t in self.kwargs.items()},
            self.description,
        )


def is_token_module(name: str) -> bool:
    return name.lower().endswith(TOKEN_MODULE_SUFFIXES)


def _float_dtype(module: nn.Module) -> torch.dtype:
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _generator(seed: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def module_call(
    loaded: LoadedModel, name: str, shape: tuple[int, ...], *, seed: int = 0
) -> ModelCall:
    """Input for `module_list[name]` at `shape` (without the batch dimension).

    1. If the file defines `make_input(name, shape)` and it returns a tensor or a tuple of
       tensors, those are the positional arguments as returned (batch dimension included).
       Returning None falls back to the rules below.
    2. A rank-1 shape for a module whose name ends with emb/embedding/embeddings: token ids,
       int64, uniform in [0, min(100, vocab_size)), shape (1, L).
    3. Otherwise: float activations, standard normal, shape (1, *shape), in the dtype of the
       module's first floating-point parameter (float32 if none).
    """
    module = loaded.module(name)
    if loaded.make_input is not None:
        try:
            made = loaded.make_input(name, shape)
        except Exception as exc:
            raise ModelFileError(
                f"make_input({name!r}, {shape}) raised {type(exc).__name__}: {exc}",
                [Problem(f"make_input raised {exc!r}", file=loaded.path.name)],
            ) from exc
        if made is not None:
            tensors = made if isinstance(made, tuple) else (made,)
            if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
                raise ModelFileError(
                    f"make_input({name!r}, {shape}) must return a tensor or a tuple of tensors",
                    [Problem("make_input returned a non-tensor", file=loaded.path.name)],
                )
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            return ModelCall(tuple(tensors), {}, f"make_input: {shapes}")
    gen = _generator(seed)
    if len(shape) == 1 and is_token_module(name):
        ids = torch.randint(0, loaded.token_id_bound, (1, *shape), generator=gen)
        return ModelCall((ids,), {}, f"token ids {tuple(ids.shape)} int64")
    dtype = _float_dtype(module)
    x = torch.randn((1, *shape), generator=gen).to(dtype)
    return ModelCall((x,), {}, f"randn {tuple(x.shape)} {str(dtype).removeprefix('torch.')}")


def _accepted_names(forward: Callable[..., Any]) -> tuple[set[str], bool, list[str]]:
    """(parameter names, accepts **kwargs, positional parameter names) of a forward."""
    try:
        sig = inspect.signature(forward)
    except (TypeError, ValueError):
        return set(), True, []
    names = set(sig.parameters)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    positional = [
        p.name
        for p in sig.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return names, var_kw, positional


def model_call(
    loaded: LoadedModel,
    length: int,
    *,
    seed: int = 0,
    token_ids: torch.Tensor | None = None,
    first_segment: int | None = None,
) -> ModelCall:
    """Input for `entire_model` on one sample of `length` tokens.

    input_ids: (1, L) int64, the given token ids or uniform in [0, min(100, vocab_size)).
    Passed by keyword when forward has an `input_ids` parameter (or **kwargs), else as the
    first positional argument. attention_mask (ones) and token_type_ids (0 for the first
    `first_segment` tokens, 1 after; all 0 when None) are passed by keyword when forward names
    them or takes **kwargs.
    """
    if token_ids is not None:
        ids = torch.as_tensor(token_ids, dtype=torch.long).reshape(1, -1)
        if ids.shape[1] != length:
            raise ValueError(f"token_ids has {ids.shape[1]} tokens, expected {length}")
    else:
        ids = torch.randint(0, loaded.token_id_bound, (1, length), generator=_generator(seed))
    names, var_kw, positional = _accepted_names(loaded.entire_model.forward)
    args: tuple[torch.Tensor, ...] = ()
    kwargs: dict[str, torch.Tensor] = {}
    if "input_ids" in names or (var_kw and not positional):
        kwargs["input_ids"] = ids
    else:
        args = (ids,)
    extras = {
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": _token_types(length, first_segment),
    }
    for key in OPTIONAL_MODEL_INPUTS:
        if key in names or var_kw:
            kwargs[key] = extras[key]
    parts = [f"input_ids (1, {length}) int64"] + [k for k in kwargs if k != "input_ids"]
    return ModelCall(args, kwargs, " + ".join(parts))


def _token_types(length: int, first_segment: int | None) -> torch.Tensor:
    types = torch.zeros((1, length), dtype=torch.long)
    if first_segment is not None and 0 <= first_segment < length:
        types[0, first_segment:] = 1
    return types
