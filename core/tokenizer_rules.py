"""What an uploaded tokenizer.json may contain: a vetted kind with bounded regex patterns.

An uploaded tokenizer runs in a trusted worker's child process (`worker.tokenize_job`, with a
time and memory limit), so nothing here is the last line of defence; these rules refuse at
upload, with the reason, what would only be slow or crash later:

- the model is WordPiece, BPE, Unigram or WordLevel, with at most `MAX_VOCAB` entries (and
  `MAX_MERGES` BPE merges);
- normalizers, pre-tokenizers, post-processors and decoders are from the `tokenizers` library's
  own list below, at most `MAX_COMPONENTS` of them, `Sequence`s at most `MAX_DEPTH` deep;
- every regex pattern (`Split`, `Replace`) is at most `MAX_PATTERN_CHARS` characters, has no
  backreference, subexpression call or absent operator, no repeated group that holds a
  quantifier or an alternation (`(a+)+`, `(a|ab)*`: exponential backtracking), counted
  repetitions up to `MAX_REPEAT`, and at most `MAX_UNBOUNDED_PER_BRANCH` unbounded quantifiers
  in one alternative (`.*.*.*x` is polynomial of degree 4 in the text's length). The patterns of
  the well-known tokenizers (GPT-2, Llama 3, ...) pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import Problem

MODELS = frozenset({"WordPiece", "BPE", "Unigram", "WordLevel"})
NORMALIZERS = frozenset(
    {
        "BertNormalizer",
        "Lowercase",
        "NFC",
        "NFD",
        "NFKC",
        "NFKD",
        "Nmt",
        "StripAccents",
        "Strip",
        "Prepend",
        "Replace",
        "Precompiled",
        "ByteLevel",
        "Sequence",
    }
)
PRE_TOKENIZERS = frozenset(
    {
        "BertPreTokenizer",
        "Whitespace",
        "WhitespaceSplit",
        "ByteLevel",
        "Metaspace",
        "Punctuation",
        "Digits",
        "Split",
        "CharDelimiterSplit",
        "UnicodeScripts",
        "FixedLength",
        "Sequence",
    }
)
POST_PROCESSORS = frozenset(
    {"TemplateProcessing", "BertProcessing", "RobertaProcessing", "ByteLevel", "Sequence"}
)
DECODERS = frozenset(
    {
        "WordPiece",
        "BPEDecoder",
        "ByteLevel",
        "Metaspace",
        "CTC",
        "Replace",
        "Fuse",
        "Strip",
        "ByteFallback",
        "Sequence",
    }
)
TOP_LEVEL = frozenset(
    {
        "version",
        "truncation",
        "padding",
        "added_tokens",
        "normalizer",
        "pre_tokenizer",
        "model",
        "post_processor",
        "decoder",
    }
)
# Where each part's nested list lives in a `Sequence`.
_SEQUENCE_KEYS = ("normalizers", "pretokenizers", "processors", "decoders")

MAX_VOCAB = 1_000_000
MAX_MERGES = 1_000_000
MAX_ADDED_TOKENS = 10_000
MAX_COMPONENTS = 16
MAX_DEPTH = 3
MAX_PATTERN_CHARS = 400
MAX_REPEAT = 100
MAX_UNBOUNDED_PER_BRANCH = 2


def check_tokenizer_file(path: Path, file_name: str) -> list[Problem]:
    """Every rule an uploaded tokenizer.json breaks (empty when it may be used)."""
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        return [Problem(f"not a JSON file: {str(exc)[:200]}", file=file_name)]
    return check_tokenizer(data, file_name)


def check_tokenizer(data: Any, file_name: str) -> list[Problem]:
    """Every rule a parsed tokenizer.json breaks."""
    if not isinstance(data, dict):
        return [Problem("a tokenizer.json must be a JSON object", file=file_name)]
    checker = _Checker(file_name)
    for key in sorted(set(data) - TOP_LEVEL):
        checker.add(key, f"unknown key; a tokenizer.json has {', '.join(sorted(TOP_LEVEL))}")
    checker.model(data.get("model"))
    added = data.get("added_tokens")
    if isinstance(added, list) and len(added) > MAX_ADDED_TOKENS:
        checker.add("added_tokens", f"{len(added):,} added tokens (at most {MAX_ADDED_TOKENS:,})")
    for key, allowed in (
        ("normalizer", NORMALIZERS),
        ("pre_tokenizer", PRE_TOKENIZERS),
        ("post_processor", POST_PROCESSORS),
        ("decoder", DECODERS),
    ):
        checker.component(data.get(key), key, allowed, depth=0)
    if checker.components > MAX_COMPONENTS:
        checker.add(
            "",
            f"{checker.components} normalizers, pre-tokenizers, processors and decoders "
            f"(at most {MAX_COMPONENTS})",
        )
    return checker.problems


@dataclass
class _Checker:
    file_name: str
    problems: list[Problem] = field(default_factory=list)
    components: int = 0

    def add(self, where: str, problem: str) -> None:
        text = f"{where}: {problem}" if where else problem
        self.problems.append(Problem(text, file=self.file_name))

    def model(self, model: Any) -> None:
        if not isinstance(model, dict):
            self.add("model", "missing (a WordPiece, BPE, Unigram or WordLevel model)")
            return
        kind = model.get("type")
        if kind not in MODELS:
            self.add(
                "model.type",
                f"{str(kind)[:50]!r} is not allowed; use one of {', '.join(sorted(MODELS))}",
            )
            return
        vocab = model.get("vocab")
        if isinstance(vocab, dict | list) and len(vocab) > MAX_VOCAB:
            self.add("model.vocab", f"{len(vocab):,} entries (at most {MAX_VOCAB:,})")
        merges = model.get("merges")
        if isinstance(merges, list) and len(merges) > MAX_MERGES:
            self.add("model.merges", f"{len(merges):,} merges (at most {MAX_MERGES:,})")

    def component(self, node: Any, where: str, allowed: frozenset[str], *, depth: int) -> None:
        if node is None:
            return
        if not isinstance(node, dict):
            self.add(where, "must be an object with a `type`")
            return
        self.components += 1
        kind = node.get("type")
        if kind not in allowed:
            self.add(
                f"{where}.type",
                f"{str(kind)[:50]!r} is not allowed here; use one of {', '.join(sorted(allowed))}",
            )
            return
        if kind == "Sequence":
            if depth >= MAX_DEPTH:
                self.add(where, f"Sequences nested more than {MAX_DEPTH} deep")
                return
            children = next((node[k] for k in _SEQUENCE_KEYS if k in node), None)
            if not isinstance(children, list):
                self.add(where, "a Sequence needs a list of its parts")
                return
            for i, child in enumerate(children[: MAX_COMPONENTS + 1]):
                key = next(k for k in _SEQUENCE_KEYS if k in node)
                self.component(child, f"{where}.{key}[{i}]", allowed, depth=depth + 1)
            return
        pattern = node.get("pattern")
        if isinstance(pattern, dict) and "Regex" in pattern:
            regex = pattern["Regex"]
            if not isinstance(regex, str):
                self.add(f"{where}.pattern", "the regex must be a string")
            elif (problem := regex_problem(regex)) is not None:
                self.add(f"{where}.pattern", f"regex {regex[:80]!r} refused: {problem}")


def regex_problem(pattern: str) -> str | None:
    """Why an Oniguruma pattern may backtrack badly (None when it is bounded enough)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"{len(pattern)} characters (at most {MAX_PATTERN_CHARS})"
    try:
        _RegexScan(pattern).run()
    except _RefusedError as exc:
        return str(exc)
    return None


class _RefusedError(Exception):
    pass


@dataclass
class _Group:
    has_quantifier: bool = False
    has_alternation: bool = False
    unbounded: int = 0  # unbounded quantifiers in the current alternative
    most_unbounded: int = 0  # the most in any alternative


_ESCAPE_BRACES = frozenset("pPxo")  # \p{L}, \x{263a}, \o{17}


@dataclass
class _RegexScan:
    """A single pass over the pattern: groups, classes, escapes and quantifiers."""

    pattern: str
    i: int = 0
    stack: list[_Group] = field(default_factory=lambda: [_Group()])
    # What the next quantifier applies to: None (nothing), "atom", or a closed group.
    last: _Group | str | None = None

    def run(self) -> None:
        p = self.pattern
        while self.i < len(p):
            c = p[self.i]
            if c == "\\":
                self._escape()
            elif c == "[":
                self._char_class()
            elif c == "(":
                self._open()
            elif c == ")":
                self._close()
            elif c == "|":
                top = self.stack[-1]
                top.has_alternation = True
                top.unbounded = 0
                self.last = None
                self.i += 1
            elif c in "*+?":
                self._quantifier(1 if c == "?" else None, 0 if c != "+" else 1)
                self.i += 1
                self._lazy_or_possessive()
            elif c == "{" and (interval := self._interval()) is not None:
                low, high, end = interval
                self._quantifier(high, low)
                self.i = end
                self._lazy_or_possessive()
            else:
                self.last = "atom"
                self.i += 1
        if len(self.stack) != 1:
            raise _RefusedError("unbalanced parentheses")

    def _escape(self) -> None:
        p = self.pattern
        nxt = p[self.i + 1] if self.i + 1 < len(p) else ""
        if nxt.isdigit() and nxt != "0":
            raise _RefusedError(f"backreference \\{nxt}")
        if nxt in ("k", "g") and p[self.i + 2 : self.i + 3] in ("<", "'"):
            what = "backreference" if nxt == "k" else "subexpression call"
            raise _RefusedError(f"{what} \\{nxt}")
        self.i += 2
        if nxt in _ESCAPE_BRACES and p[self.i : self.i + 1] == "{":
            end = p.find("}", self.i)
            if end < 0:
                raise _RefusedError(f"unterminated \\{nxt}{{")
            self.i = end + 1
        self.last = "atom"

    def _char_class(self) -> None:
        p = self.pattern
        depth = 0
        self.i += 1
        if p[self.i : self.i + 1] == "^":
            self.i += 1
        if p[self.i : self.i + 1] == "]":  # a leading ] is literal
            self.i += 1
        while self.i < len(p):
            c = p[self.i]
            if c == "\\":
                self.i += 2
                continue
            if c == "[":
                depth += 1
            elif c == "]":
                if depth == 0:
                    self.i += 1
                    self.last = "atom"
                    return
                depth -= 1
            self.i += 1
        raise _RefusedError("unterminated character class")

    def _open(self) -> None:
        p = self.pattern
        if p.startswith("(?~", self.i):
            raise _RefusedError("absent operator (?~...)")
        if p.startswith("(?#", self.i):
            end = p.find(")", self.i)
            if end < 0:
                raise _RefusedError("unterminated comment")
            self.i = end + 1
            return
        if len(self.stack) > 10:
            raise _RefusedError("groups nested more than 10 deep")
        self.stack.append(_Group())
        self.last = None
        self.i += 1

    def _close(self) -> None:
        if len(self.stack) == 1:
            raise _RefusedError("unbalanced parentheses")
        group = self.stack.pop()
        group.most_unbounded = max(group.most_unbounded, group.unbounded)
        parent = self.stack[-1]
        parent.has_quantifier |= group.has_quantifier
        parent.unbounded += group.most_unbounded
        self._check_branch(parent)
        self.last = group
        self.i += 1

    def _quantifier(self, high: int | None, low: int) -> None:
        """Apply {low,high} (high None: unbounded) to the last atom or group."""
        if self.last is None:
            return  # Oniguruma reads it as a literal or refuses it when it compiles
        if (high is not None and high > MAX_REPEAT) or low > MAX_REPEAT:
            raise _RefusedError(f"a counted repetition above {MAX_REPEAT}")
        repeats = high is None or high > 1
        if isinstance(self.last, _Group) and repeats:
            if self.last.has_quantifier:
                raise _RefusedError("a repeated group holds a quantifier (nested quantifiers)")
            if self.last.has_alternation:
                raise _RefusedError("a repeated group holds an alternation")
        top = self.stack[-1]
        top.has_quantifier = True
        if high is None:
            top.unbounded += 1
            self._check_branch(top)
        self.last = None

    def _check_branch(self, group: _Group) -> None:
        if group.unbounded > MAX_UNBOUNDED_PER_BRANCH:
            raise _RefusedError(
                f"more than {MAX_UNBOUNDED_PER_BRANCH} unbounded quantifiers (*, +, {{n,}}) "
                "in one alternative"
            )
        group.most_unbounded = max(group.most_unbounded, group.unbounded)

    def _lazy_or_possessive(self) -> None:
        if self.pattern[self.i : self.i + 1] in ("?", "+"):
            self.i += 1

    def _interval(self) -> tuple[int, int | None, int] | None:
        """`{n}`, `{n,}`, `{,m}`, `{n,m}` at self.i: (low, high, end index), else None (literal)."""
        p = self.pattern
        end = p.find("}", self.i)
        if end < 0:
            return None
        body = p[self.i + 1 : end]
        low_s, comma, high_s = body.partition(",")
        if not (low_s.isdigit() or (comma and low_s == "")):
            return None
        if high_s and not high_s.isdigit():
            return None
        if not low_s and not high_s:
            return None
        low = int(low_s) if low_s else 0
        high: int | None = int(high_s) if high_s else (None if comma else low)
        return low, high, end + 1
