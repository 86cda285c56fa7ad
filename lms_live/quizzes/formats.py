"""Question import and export: Moodle's GIFT and Aiken text formats, and our own CSV.

Pure functions, no database: a parser turns a whole file into `ImportedQuestion`s or raises
`FormatError(line, reason)` (1-based line; 0 for file-wide limits). Nothing is returned
partially, so the caller imports all or nothing. Limits: `MAX_TEXT_BYTES` of UTF-8 text,
`MAX_QUESTIONS` questions. Every question is checked as the bank stores it: its spec validates
(`quizzes.spec`), the prompt is not empty, the title is one line of at most 200 characters
(derived from the prompt when missing), tags are slugs (`courses.schemas.normalise_tag`),
points within (0, 1000], at most 20 tags, prompts of at most 20,000 characters, general
feedback of at most 10,000. Text is Markdown and kept as written.

GIFT (https://docs.moodle.org/en/GIFT_format), questions separated by blank lines:
  `// comment` lines (a `[tag:name]` in them tags the question, as Moodle exports it);
  `$CATEGORY: a/b/c` tags the questions that follow with the slug of the last segment;
  `::title::`; a `[markdown]`/`[html]`/`[plain]`/`[moodle]` marker is dropped, text kept;
  `{=right ~wrong}` single choice (one `=`); several `=`: multiple choice (all or nothing);
  `~%50%`-style weights: multiple choice with partial scoring, weight > 0 marks a right option;
  `{T}` `{F}` `{TRUE}` `{FALSE}`, any case (`{T#shown if wrong#shown if right}`);
  `{=a =%50%b}` short text; `{#3.14:0.01}`, `{#1..2}`, `{#=3:0.1 =%50%3:1}` numeric (absolute
  tolerance);
  `{=a -> b =c -> d}` matching (`= -> x` adds a distractor); `{}` essay; `#feedback` after an
  answer; `####feedback` general feedback; escapes `\\~ \\= \\# \\{ \\} \\: \\\\` and `\\n`. An
  answer block inside the text (missing word) leaves `_____` in the prompt. Not imported, as
  our types cannot hold them: descriptions (no `{}`), `~` wrong-answer feedback of numeric
  questions, short answers worth 0%.

Aiken: the question (one or more lines), options `A. text` or `A) text` with consecutive
capital letters from A, then `ANSWER: B` (in capitals); single choice only; blank lines are
ignored.

CSV (RFC 4180, UTF-8; a leading BOM is ignored), one question per row under the header
`type,title,prompt,points,tags,options,answer,feedback` (columns in any order; only `type` and
`prompt` are required):
  type      one of single_choice multiple_choice true_false short_text numeric ordering
            matching essay
  title     one line; empty: the start of the prompt
  prompt    Markdown, may span lines (quoted)
  points    a number more than 0, at most 1000; empty: 1
  tags      `;`-separated, each made a slug (`Linear Algebra` -> `linear-algebra`)
  options   `|`-separated list (write `\\|` for a literal `|`, `\\\\` for `\\`); option ids are
            a, b, c ... in order
  answer    per type, below
  feedback  general feedback, Markdown
Per type, `options` / `answer`:
  single_choice    options: the choices    / answer: the right letter, `B`
  multiple_choice  options: the choices    / answer: right letters `A;C` (all or nothing), or
                                             `partial:A;C` (partial credit)
  true_false       options: empty          / answer: `true` or `false`
  short_text       options: empty          / answer: accepted answers `no one|nobody` (case
                                             and extra spaces ignored)
  numeric          options: empty          / answer: accepted values `3.14:0.01|3.1416`,
                                             `value`, `value:tolerance` or `low..high`
  ordering         options: items in the right order / answer: empty (all or nothing) or
                                             `partial`
  matching         options: `prompt -> answer` pairs; ` -> answer` (no prompt) is a
                   distractor              / answer: empty (partial credit) or `all_or_nothing`
  essay            options: empty          / answer: empty
Anything else (per-option feedback, own ids, partial scores, case rules, relative tolerances,
essay word limits...): leave `options` empty and put the whole spec as a JSON object in
`answer`, as `quizzes.spec` defines it (`type` and fields at their default may be left out),
e.g.
`{"answers": [{"value": 100, "tolerance": 0.05, "tolerance_kind": "relative"}]}`.
`export_csv` writes the short form whenever it reads back to the same spec and JSON otherwise,
so `parse_csv(export_csv(questions)) == questions`, and `export_csv(parse_csv(x)) == x` for
any `x` that `export_csv` wrote.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from lms_live.courses import schemas as course_schemas
from lms_live.quizzes.spec import (
    EssaySpec,
    MatchingSpec,
    MultipleChoiceSpec,
    NumericSpec,
    OrderingSpec,
    QuestionSpec,
    QuestionType,
    Scoring,
    ShortTextSpec,
    SingleChoiceSpec,
    TrueFalseSpec,
)

MAX_QUESTIONS = 1_000
MAX_TEXT_BYTES = 2 * 1024 * 1024
MAX_TITLE = 200
# As the bank stores questions (quizzes.bank_schemas).
MAX_PROMPT = 20_000
MAX_TEXT = 10_000
MAX_POINTS = 1_000.0
MAX_TAGS = 20
DERIVED_TITLE = 80
BLANK = "_____"
CSV_COLUMNS = ("type", "title", "prompt", "points", "tags", "options", "answer", "feedback")

_SPECS: dict[QuestionType, type[BaseModel]] = {
    QuestionType.SINGLE_CHOICE: SingleChoiceSpec,
    QuestionType.MULTIPLE_CHOICE: MultipleChoiceSpec,
    QuestionType.TRUE_FALSE: TrueFalseSpec,
    QuestionType.SHORT_TEXT: ShortTextSpec,
    QuestionType.NUMERIC: NumericSpec,
    QuestionType.ORDERING: OrderingSpec,
    QuestionType.MATCHING: MatchingSpec,
    QuestionType.ESSAY: EssaySpec,
}
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class ImportedQuestion:
    """One question read from a file, ready for the bank (spec holds the right answers)."""

    title: str
    prompt: str
    points: float
    general_feedback: str
    tags: list[str]
    spec: QuestionSpec


class FormatError(ValueError):
    """A file the importers refuse: `line` (1-based, 0 for the whole file) and `reason`."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.line = line
        self.reason = reason


# --------------------------------------------------------------------------- shared


def _check_file(text: str) -> str:
    """The text without a BOM, or FormatError: too large, NUL or lone surrogate characters."""
    too_large = FormatError(0, f"the file is larger than {MAX_TEXT_BYTES // (1024 * 1024)} MB")
    if len(text) > MAX_TEXT_BYTES:
        raise too_large
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise FormatError(_line_of(text, exc.start), "invalid character (lone surrogate)") from None
    if size > MAX_TEXT_BYTES:
        raise too_large
    text = text.removeprefix("\ufeff")
    nul = text.find("\x00")
    if nul >= 0:
        raise FormatError(_line_of(text, nul), "NUL characters are not allowed")
    return text


def _line_of(text: str, offset: int) -> int:
    return len(_NEWLINE.findall(text, 0, offset)) + 1


def _ids(count: int) -> list[str]:
    """Generated option ids: a..z, then a1..z1 and so on (ids of matching distractors)."""
    return [chr(ord("a") + i % 26) + (str(i // 26) if i >= 26 else "") for i in range(count)]


def _letter(index: int) -> str:
    return chr(ord("A") + index)


def _spec(kind: QuestionType, data: dict[str, Any], line: int) -> QuestionSpec:
    """Validate a spec of `kind`, turning pydantic's complaint into a FormatError."""
    try:
        return cast(QuestionSpec, _SPECS[kind].model_validate(data))
    except ValidationError as exc:
        raise FormatError(line, f"invalid {kind.value} question: {_explain(exc)}") from None


def _explain(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {message}" if where else message


def _derived_title(prompt: str) -> str:
    words = " ".join("".join(c if c.isprintable() else " " for c in prompt).split())
    return words if len(words) <= DERIVED_TITLE else words[: DERIVED_TITLE - 3].rstrip() + "..."


def _tags(names: Iterable[str], line: int) -> list[str]:
    tags: list[str] = []
    for name in names:
        try:
            tag = course_schemas.normalise_tag(name)
        except ValueError:
            raise FormatError(line, f"tag {name!r} has no letter or digit") from None
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise FormatError(line, f"a question has at most {MAX_TAGS} tags")
    return tags


def _question(
    *,
    line: int,
    title: str,
    prompt: str,
    points: float,
    general_feedback: str,
    tags: list[str],
    spec: QuestionSpec,
) -> ImportedQuestion:
    """An ImportedQuestion after the checks every format shares."""
    if not prompt.strip():
        raise FormatError(line, "the question text is empty")
    if len(prompt) > MAX_PROMPT:
        raise FormatError(line, f"the question text is longer than {MAX_PROMPT} characters")
    if len(general_feedback) > MAX_TEXT:
        raise FormatError(line, f"the general feedback is longer than {MAX_TEXT} characters")
    title = title.strip() or _derived_title(prompt)
    if any(not c.isprintable() for c in title):
        raise FormatError(line, "the title must be one line without control characters")
    if len(title) > MAX_TITLE:
        raise FormatError(line, f"the title is longer than {MAX_TITLE} characters")
    if not (math.isfinite(points) and 0 < points <= MAX_POINTS):
        raise FormatError(line, f"points must be more than 0 and at most {MAX_POINTS:g}")
    return ImportedQuestion(
        title=title,
        prompt=prompt,
        points=points,
        general_feedback=general_feedback,
        tags=tags,
        spec=spec,
    )


def _add(questions: list[ImportedQuestion], question: ImportedQuestion) -> None:
    if len(questions) >= MAX_QUESTIONS:
        raise FormatError(0, f"a file holds at most {MAX_QUESTIONS} questions")
    questions.append(question)


def _number(text: str, line: int, what: str) -> float:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise FormatError(line, f"{what} {text!r} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise FormatError(line, f"{what} {text!r} is too large")
    return value


def _numeric_answer(text: str, line: int) -> dict[str, Any]:
    """`value`, `value:tolerance` or `low..high` as a NumericAnswer's value and tolerance."""
    if ".." in text:
        low_text, high_text = text.split("..", 1)
        low = _number(low_text, line, "the range start")
        high = _number(high_text, line, "the range end")
        if low > high:
            raise FormatError(line, f"the range {text.strip()!r} starts above its end")
        value = (low + high) / 2
        # Both ends stay accepted by |x - value| <= tolerance despite rounding.
        tolerance = max(abs(high - value), abs(low - value))
    elif ":" in text:
        value_text, tolerance_text = text.split(":", 1)
        value = _number(value_text, line, "the value")
        tolerance = _number(tolerance_text, line, "the tolerance")
        if tolerance < 0:
            raise FormatError(line, "the tolerance must not be negative")
    else:
        value, tolerance = _number(text, line, "the value"), 0.0
    if not (math.isfinite(value) and math.isfinite(tolerance)):
        raise FormatError(line, f"the range {text.strip()!r} is too large")
    return {"value": value, "tolerance": tolerance}


def _num(value: float) -> str:
    """A float written so that float() reads it back exactly; integers without '.0'."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


# --------------------------------------------------------------------------- GIFT

# Escaped control characters become private-use placeholders while the structure is parsed.
_GIFT_ESCAPES = {"~": "\ue001", "=": "\ue002", "#": "\ue003", "{": "\ue004", "}": "\ue005"}
_GIFT_ESCAPES |= {":": "\ue006", "\\": "\ue007", "n": "\ue008"}
_GIFT_RESTORE = str.maketrans({v: ("\n" if k == "n" else k) for k, v in _GIFT_ESCAPES.items()})
_GIFT_RESERVED = re.compile("[\ue001-\ue008]")
_GIFT_FORMAT = re.compile(r"\[(?:moodle|html|plain|markdown)\]")
_GIFT_BRACE = re.compile(r"[{}]")
_GIFT_WEIGHT = re.compile(r"%(-?\d+(?:\.\d+)?)%")
_GIFT_TAG = re.compile(r"\[tag:((?:\\]|[^\]\x00-\x1f])+)\]")


@dataclass
class _Block:
    """One GIFT question: its non-comment lines joined by newlines, escapes replaced."""

    text: str
    offsets: list[int]  # where each kept line starts in `text`
    lines: list[int]  # its line number in the file
    comments: list[str]
    category: tuple[str, int] | None  # a `$CATEGORY:` line heading the block, its number

    def line_at(self, offset: int) -> int:
        return self.lines[max(bisect.bisect_right(self.offsets, offset) - 1, 0)]


def _gift_escape(line: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] in _GIFT_ESCAPES:
            out.append(_GIFT_ESCAPES[line[i + 1]])
            i += 2
        else:
            out.append(line[i])
            i += 1
    return "".join(out)


def _gift_blocks(text: str) -> Iterator[_Block]:
    """The blank-line separated blocks of a GIFT file."""
    block = _Block("", [], [], [], None)
    parts: list[str] = []
    size = 0
    for number, raw in enumerate(_NEWLINE.split(text), start=1):
        reserved = _GIFT_RESERVED.search(raw)
        if reserved:
            char = f"U+{ord(reserved.group()):04X}"
            raise FormatError(number, f"the character {char} is reserved (private use)")
        stripped = raw.strip()
        if not stripped:
            if parts or block.comments or block.category:
                block.text = "\n".join(parts)
                yield block
            block, parts, size = _Block("", [], [], [], None), [], 0
        elif stripped.startswith("//"):
            block.comments.append(stripped)
        elif stripped.startswith("$CATEGORY:") and not parts:
            block.category = (stripped, number)
        else:
            escaped = _gift_escape(raw)
            block.offsets.append(size)
            block.lines.append(number)
            parts.append(escaped)
            size += len(escaped) + 1
    if parts or block.comments or block.category:
        block.text = "\n".join(parts)
        yield block


def _gift_text(text: str) -> str:
    """A piece of GIFT text as stored: format marker dropped, escapes restored, trimmed."""
    text = text.strip()
    marker = _GIFT_FORMAT.match(text)
    if marker:
        text = text[marker.end() :]
    return text.translate(_GIFT_RESTORE).strip()


def _gift_category(line: str, number: int) -> str | None:
    """The tag of `$CATEGORY: a/b/c` (its last segment, `//` being an escaped `/`)."""
    path = line.strip()[len("$CATEGORY:") :]
    segments = [s.replace("//", "/").strip() for s in re.split(r"(?<!/)/(?!/)", path)]
    names = [s for s in segments if s and not s.startswith("$") and s != "top"]
    if not names:
        return None
    return _tags([names[-1]], number)[0]


def parse_gift(text: str) -> list[ImportedQuestion]:
    """Questions of a Moodle GIFT file (see the module docstring for what is supported)."""
    text = _check_file(text)
    questions: list[ImportedQuestion] = []
    category: str | None = None
    for block in _gift_blocks(text):
        if block.category:
            category = _gift_category(*block.category)
        if not block.text.strip():
            continue
        comment_tags = [
            found.group(1).replace("\\]", "]")
            for comment in block.comments
            for found in _GIFT_TAG.finditer(comment)
        ]
        first_line = block.line_at(len(block.text) - len(block.text.lstrip()))
        tags = _tags(([category] if category else []) + comment_tags, first_line)
        _add(questions, _gift_question(block, tags))
    return questions


def _gift_question(block: _Block, tags: list[str]) -> ImportedQuestion:
    text = block.text
    pos = len(text) - len(text.lstrip())
    first_line = block.line_at(pos)
    title = ""
    if text.startswith("::", pos):
        end = text.find("::", pos + 2)
        if end < 0:
            raise FormatError(first_line, "the title opened with '::' is not closed with '::'")
        title = text[pos + 2 : end].translate(_GIFT_RESTORE).strip()
        if "\n" in title:
            raise FormatError(first_line, "the title must be on one line")
        pos = end + 2
    start, end = text.find("{", pos), text.find("}", pos)
    if start < 0 and end < 0:
        raise FormatError(
            first_line,
            "no answer block {...}: descriptions are not supported (write {} for an essay)",
        )
    if end >= 0 and (start < 0 or end < start):
        raise FormatError(block.line_at(end), "'}' without an opening '{' (write \\} for a '}')")
    if end < 0:
        raise FormatError(
            block.line_at(start),
            "the answer block '{' is not closed; a blank line ends a question "
            "(write \\n for a line break, \\{ for a '{')",
        )
    inner_open = text.find("{", start + 1, end)
    if inner_open >= 0:
        raise FormatError(block.line_at(inner_open), "'{' inside an answer block (write \\{)")
    stray = _GIFT_BRACE.search(text, end + 1)
    if stray:
        raise FormatError(
            block.line_at(stray.start()),
            f"a question has one answer block; write \\{stray.group()} for a literal "
            f"'{stray.group()}'",
        )
    after = text[end + 1 :]
    prompt = text[pos:start] + (BLANK + after if after.strip() else "")
    prompt = _gift_text(prompt)
    inner, inner_at = text[start + 1 : end], start + 1
    feedback = ""
    general = inner.rfind("####")
    if general >= 0:
        feedback = _gift_text(inner[general + 4 :])
        inner = inner[:general]
    spec = _gift_spec(block, inner, inner_at)
    return _question(
        line=first_line,
        title=title,
        prompt=prompt,
        points=1.0,
        general_feedback=feedback,
        tags=tags,
        spec=spec,
    )


@dataclass
class _GiftAnswer:
    mark: str  # '=' or '~' (or '' for a numeric answer written without '=')
    weight: float | None  # the %n% weight, in percent
    text: str
    feedback: str
    line: int


def _gift_answers(block: _Block, inner: str, at: int, marks: str) -> list[_GiftAnswer]:
    """Split an answer list on its marks (`=`, `~`): weight, text and `#feedback` of each."""
    found = list(re.finditer(f"[{re.escape(marks)}]", inner))
    head = inner[: found[0].start()] if found else inner
    if head.strip():
        raise FormatError(
            block.line_at(at + len(head) - len(head.lstrip())),
            f"unexpected text {_gift_text(head)!r} before the first answer "
            f"(answers start with {' or '.join(marks)})",
        )
    answers: list[_GiftAnswer] = []
    for index, mark in enumerate(found):
        stop = found[index + 1].start() if index + 1 < len(found) else len(inner)
        body = inner[mark.end() : stop].strip()
        line = block.line_at(at + mark.start())
        weight = None
        matched = _GIFT_WEIGHT.match(body)
        if matched:
            weight = float(matched.group(1))
            if not -100 <= weight <= 100:
                raise FormatError(line, f"the weight {matched.group()} is not within -100..100%")
            body = body[matched.end() :]
        answer_text, _, answer_feedback = body.partition("#")
        answers.append(
            _GiftAnswer(mark.group(), weight, answer_text, _gift_text(answer_feedback), line)
        )
    return answers


def _gift_spec(block: _Block, inner: str, at: int) -> QuestionSpec:
    content = inner.strip()
    line = block.line_at(at - 1)  # where the answer block opens
    if not content:
        return _spec(QuestionType.ESSAY, {}, line)
    if content.startswith("#"):
        return _gift_numeric(block, inner, at, line)
    if "~" in content:
        return _gift_choice(block, inner, at, line)
    if "=" in content and "->" in content:
        return _gift_matching(block, inner, at, line)
    flag, *feedback = content.split("#")
    if flag.strip().upper() in ("T", "TRUE", "F", "FALSE"):
        if len(feedback) > 2:
            raise FormatError(line, "true/false takes at most two feedbacks: {T#if wrong#if right}")
        answer = flag.strip().upper() in ("T", "TRUE")
        wrong, right = [_gift_text(f) for f in feedback] + [""] * (2 - len(feedback))
        data = {
            "answer": answer,
            "feedback_true": right if answer else wrong,
            "feedback_false": wrong if answer else right,
        }
        return _spec(QuestionType.TRUE_FALSE, data, line)
    return _gift_short_text(block, inner, at, line)


def _gift_choice(block: _Block, inner: str, at: int, line: int) -> QuestionSpec:
    answers = _gift_answers(block, inner, at, "=~")
    if len(answers) < 2:
        raise FormatError(line, "a choice question needs at least 2 answers")
    weighted = any(a.weight is not None for a in answers)
    weights = [
        a.weight if a.weight is not None else (100.0 if a.mark == "=" else 0.0) for a in answers
    ]
    options = []
    for option_id, answer, weight in zip(_ids(len(answers)), answers, weights, strict=True):
        text = _gift_text(answer.text)
        if not text:
            raise FormatError(answer.line, "an answer has no text")
        options.append(
            {"id": option_id, "text": text, "correct": weight > 0, "feedback": answer.feedback}
        )
    if not any(weight > 0 for weight in weights):
        raise FormatError(line, "no right answer: mark one with '=' or give it a weight > 0")
    if weighted:
        data = {"options": options, "scoring": Scoring.PARTIAL.value}
        return _spec(QuestionType.MULTIPLE_CHOICE, data, line)
    if sum(a.mark == "=" for a in answers) == 1:
        return _spec(QuestionType.SINGLE_CHOICE, {"options": options}, line)
    return _spec(QuestionType.MULTIPLE_CHOICE, {"options": options}, line)


def _gift_matching(block: _Block, inner: str, at: int, line: int) -> QuestionSpec:
    answers = _gift_answers(block, inner, at, "=")
    pairs: list[tuple[str, str]] = []
    for answer in answers:
        if answer.weight is not None or answer.feedback or "#" in answer.text:
            raise FormatError(
                answer.line, "matching pairs take no weight or feedback (write \\# for a '#')"
            )
        if "->" not in answer.text:
            raise FormatError(answer.line, "a matching pair is written '=prompt -> answer'")
        left, right = answer.text.split("->", 1)
        if not _gift_text(right):
            raise FormatError(answer.line, "a matching pair has no answer after '->'")
        pairs.append((_gift_text(left), _gift_text(right)))
    matched = [(p, a) for p, a in pairs if p]
    distractors = [a for p, a in pairs if not p]
    ids = _ids(len(pairs))
    data = {
        "pairs": [
            {"id": i, "prompt": p, "answer": a}
            for i, (p, a) in zip(ids[: len(matched)], matched, strict=True)
        ],
        "distractors": [
            {"id": i, "text": a} for i, a in zip(ids[len(matched) :], distractors, strict=True)
        ],
    }
    return _spec(QuestionType.MATCHING, data, line)


def _gift_short_text(block: _Block, inner: str, at: int, line: int) -> QuestionSpec:
    answers = _gift_answers(block, inner, at, "=")
    if not answers:
        raise FormatError(line, "no answer: write {=answer}, {~wrong =right}, {T}, {#1} or {}")
    accepted = []
    for answer in answers:
        weight = 100.0 if answer.weight is None else answer.weight
        if weight <= 0:
            raise FormatError(answer.line, "short answers must be worth more than 0%")
        text = _gift_text(answer.text)
        if not text:
            raise FormatError(answer.line, "an answer has no text")
        accepted.append({"text": text, "score": weight / 100, "feedback": answer.feedback})
    return _spec(QuestionType.SHORT_TEXT, {"accepted": accepted}, line)


def _gift_numeric(block: _Block, inner: str, at: int, line: int) -> QuestionSpec:
    hash_at = inner.index("#")
    body, body_at = inner[hash_at + 1 :], at + hash_at + 1
    wrong = body.find("~")
    if wrong >= 0:
        raise FormatError(
            block.line_at(body_at + wrong),
            "feedback for other answers ('~') is not supported in numeric questions",
        )
    first = body.find("=")
    answers = _gift_answers(block, body[first:], body_at + first, "=") if first >= 0 else []
    head = body if first < 0 else body[:first]
    if head.strip():
        head_line = block.line_at(body_at + len(head) - len(head.lstrip()))
        text, _, feedback = head.strip().partition("#")
        answers.insert(0, _GiftAnswer("", None, text, _gift_text(feedback), head_line))
    if not answers:
        raise FormatError(line, "a numeric question needs an answer: {#3.14:0.01} or {#1..2}")
    values = []
    for answer in answers:
        weight = 100.0 if answer.weight is None else answer.weight
        if weight <= 0:
            raise FormatError(answer.line, "numeric answers must be worth more than 0%")
        number = _numeric_answer(answer.text.translate(_GIFT_RESTORE), answer.line)
        values.append(number | {"score": weight / 100, "feedback": answer.feedback})
    return _spec(QuestionType.NUMERIC, {"answers": values}, line)


# --------------------------------------------------------------------------- Aiken

_AIKEN_OPTION = re.compile(r"([A-Z])[.)](?:[ \t]+(.*))?")
_AIKEN_ANSWER = re.compile(r"ANSWER:\s*(.*)")


def parse_aiken(text: str) -> list[ImportedQuestion]:
    """Single-choice questions of an Aiken file: question, `A. text` options, `ANSWER: A`."""
    text = _check_file(text)
    questions: list[ImportedQuestion] = []
    prompt: list[str] = []
    options: list[str] = []
    start = 0
    for number, raw in enumerate(_NEWLINE.split(text), start=1):
        line = raw.strip()
        if not line:
            continue
        option = _AIKEN_OPTION.fullmatch(line)
        answer = _AIKEN_ANSWER.fullmatch(line)
        if answer:
            if not options:
                raise FormatError(number, "'ANSWER:' before any option ('A. text')")
            letter = answer.group(1).strip().upper()
            if len(letter) != 1 or not "A" <= letter <= _letter(len(options) - 1):
                raise FormatError(
                    number,
                    f"the answer {answer.group(1).strip()!r} is not one of the option letters "
                    f"A-{_letter(len(options) - 1)}",
                )
            if len(options) < 2:
                raise FormatError(number, "a question needs at least 2 options")
            right = ord(letter) - ord("A")
            data = {
                "options": [
                    {"id": i, "text": t, "correct": n == right}
                    for n, (i, t) in enumerate(zip(_ids(len(options)), options, strict=True))
                ]
            }
            _add(
                questions,
                _question(
                    line=start,
                    title="",
                    prompt="\n".join(prompt),
                    points=1.0,
                    general_feedback="",
                    tags=[],
                    spec=_spec(QuestionType.SINGLE_CHOICE, data, start),
                ),
            )
            prompt, options = [], []
        elif option and prompt:
            expected = _letter(len(options))
            if option.group(1) != expected:
                raise FormatError(number, f"expected option {expected}, found {option.group(1)}")
            if not (option.group(2) or "").strip():
                raise FormatError(number, f"option {expected} has no text")
            options.append((option.group(2) or "").strip())
        elif option:
            raise FormatError(number, "an option before the question text")
        elif options:
            raise FormatError(
                number, f"expected option {_letter(len(options))} or 'ANSWER: <letter>'"
            )
        else:
            if not prompt:
                start = number
            prompt.append(line)
    if prompt:
        raise FormatError(start, "the question starting here has no 'ANSWER: <letter>' line")
    return questions


# --------------------------------------------------------------------------- CSV

_SCORING_WORDS = {s.value: s for s in Scoring}


def _split_list(cell: str) -> list[str]:
    """A `|`-separated list (`\\|` is a literal '|', `\\\\` a '\\'), items trimmed."""
    items: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(cell):
        char = cell[i]
        if char == "\\" and i + 1 < len(cell) and cell[i + 1] in "|\\":
            current.append(cell[i + 1])
            i += 2
            continue
        if char == "|":
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    items.append("".join(current).strip())
    return items


def _join_list(items: Iterable[str]) -> str:
    return "|".join(item.replace("\\", "\\\\").replace("|", "\\|") for item in items)


def _items(cell: str, line: int, what: str) -> list[str]:
    if not cell.strip():
        return []
    items = _split_list(cell)
    for index, item in enumerate(items, start=1):
        if not item:
            raise FormatError(line, f"{what} {index} is empty")
    return items


def _letters(cell: str, count: int, line: int) -> list[int]:
    """Indexes of the option letters in `A;C` (also `A,C` or `A C`), each once."""
    picked: list[int] = []
    for part in re.split(r"[;,\s]+", cell.strip()):
        if not part:
            continue
        index = ord(part.upper()) - ord("A") if len(part) == 1 else -1
        if not 0 <= index < count:
            raise FormatError(line, f"{part!r} is not an option letter A-{_letter(count - 1)}")
        if index in picked:
            raise FormatError(line, f"the letter {_letter(index)} is given twice")
        picked.append(index)
    if not picked:
        raise FormatError(line, "the answer names no option letter")
    return picked


def _scoring(cell: str, default: Scoring, line: int) -> str:
    word = cell.strip().lower()
    if not word:
        return default.value
    if word not in _SCORING_WORDS:
        raise FormatError(
            line, f"the answer must be empty, 'partial' or 'all_or_nothing', not {cell!r}"
        )
    return word


def _csv_spec(kind: QuestionType, options: str, answer: str, line: int) -> QuestionSpec:
    """A spec from the `options` and `answer` cells (short form, or JSON in `answer`)."""
    answer = answer.strip()
    if answer.startswith("{"):
        if options.strip():
            raise FormatError(line, "leave options empty when the answer is a JSON spec")
        try:
            data = json.loads(answer)
        except ValueError as exc:
            raise FormatError(line, f"the answer is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise FormatError(line, "the answer JSON must be an object")
        declared = data.pop("type", kind.value)
        if declared != kind.value:
            raise FormatError(line, f"the answer JSON is a {declared!r} spec, not {kind.value}")
        return _spec(kind, data, line)
    if kind in (QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE):
        return _csv_choice(kind, _items(options, line, "option"), answer, line)
    if kind is QuestionType.ORDERING:
        items = _items(options, line, "item")
        ordering = {
            "items": [{"id": i, "text": t} for i, t in zip(_ids(len(items)), items, strict=True)],
            "scoring": _scoring(answer, Scoring.ALL_OR_NOTHING, line),
        }
        return _spec(kind, ordering, line)
    if kind is QuestionType.MATCHING:
        return _csv_matching(_items(options, line, "pair"), answer, line)
    if options.strip():
        raise FormatError(line, f"{kind.value} questions take no options (see the answer column)")
    if kind is QuestionType.TRUE_FALSE:
        word = answer.lower()
        if word not in ("true", "false", "t", "f"):
            raise FormatError(line, f"the answer must be true or false, not {answer!r}")
        return _spec(kind, {"answer": word in ("true", "t")}, line)
    if kind is QuestionType.SHORT_TEXT:
        accepted = _items(answer, line, "accepted answer")
        if not accepted:
            raise FormatError(line, "a short_text question needs accepted answers: a|b")
        return _spec(kind, {"accepted": [{"text": t} for t in accepted]}, line)
    if kind is QuestionType.NUMERIC:
        values = _items(answer, line, "value")
        if not values:
            raise FormatError(line, "a numeric question needs a value: 3.14:0.01 or 1..2")
        return _spec(kind, {"answers": [_numeric_answer(v, line) for v in values]}, line)
    if answer:
        raise FormatError(line, "an essay takes no answer (JSON for guidance or word limits)")
    return _spec(kind, {}, line)


def _csv_choice(kind: QuestionType, options: list[str], answer: str, line: int) -> QuestionSpec:
    scoring = Scoring.ALL_OR_NOTHING
    if kind is QuestionType.MULTIPLE_CHOICE:
        prefix, colon, rest = answer.partition(":")
        if colon and prefix.strip().lower() == Scoring.PARTIAL.value:
            scoring, answer = Scoring.PARTIAL, rest
    if not options:
        raise FormatError(line, "a choice question needs options: a|b|c")
    right = _letters(answer, len(options), line)
    if kind is QuestionType.SINGLE_CHOICE and len(right) != 1:
        raise FormatError(line, "a single_choice answer is one letter")
    data: dict[str, Any] = {
        "options": [
            {"id": i, "text": t, "correct": n in right}
            for n, (i, t) in enumerate(zip(_ids(len(options)), options, strict=True))
        ]
    }
    if kind is QuestionType.MULTIPLE_CHOICE:
        data["scoring"] = scoring.value
    return _spec(kind, data, line)


def _csv_matching(items: list[str], answer: str, line: int) -> QuestionSpec:
    pairs: list[dict[str, str]] = []
    distractors: list[dict[str, str]] = []
    for option_id, item in zip(_ids(len(items)), items, strict=True):
        if "->" not in item:
            raise FormatError(line, f"the pair {item!r} is not 'prompt -> answer'")
        prompt, right = (part.strip() for part in item.split("->", 1))
        if not right:
            raise FormatError(line, f"the pair {item!r} has no answer after '->'")
        if prompt:
            pairs.append({"id": option_id, "prompt": prompt, "answer": right})
        else:
            distractors.append({"id": option_id, "text": right})
    data = {
        "pairs": pairs,
        "distractors": distractors,
        "scoring": _scoring(answer, Scoring.PARTIAL, line),
    }
    return _spec(QuestionType.MATCHING, data, line)


def parse_csv(text: str) -> list[ImportedQuestion]:
    """Questions of a CSV file in our format (see the module docstring)."""
    text = _check_file(text)
    csv.field_size_limit(max(csv.field_size_limit(), MAX_TEXT_BYTES))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = _csv_rows(reader)
    try:
        _, header = next(rows)
    except StopIteration:
        raise FormatError(1, f"missing header: {','.join(CSV_COLUMNS)}") from None
    columns = [name.strip().lower() for name in header]
    unknown = [name for name in columns if name not in CSV_COLUMNS]
    if len(columns) == 1 and ";" in columns[0]:
        raise FormatError(1, "columns must be separated by commas, not semicolons")
    if unknown or len(set(columns)) != len(columns) or not {"type", "prompt"} <= set(columns):
        raise FormatError(
            1,
            f"the header must name distinct columns among {','.join(CSV_COLUMNS)}, "
            "including type and prompt",
        )
    questions: list[ImportedQuestion] = []
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns) and any(cell.strip() for cell in row[len(columns) :]):
            raise FormatError(line, f"{len(row)} cells, but the header names {len(columns)}")
        cells = dict(zip(columns, row + [""] * (len(columns) - len(row)), strict=False))
        _add(questions, _csv_question(cells, line))
    return questions


def _csv_rows(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each record, csv errors as FormatError."""
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FormatError(line, f"malformed CSV: {exc}") from None
        yield line, row


def _csv_question(cells: dict[str, str], line: int) -> ImportedQuestion:
    type_name = cells["type"].strip().lower()
    try:
        kind = QuestionType(type_name)
    except ValueError:
        known = ", ".join(t.value for t in QuestionType)
        raise FormatError(line, f"unknown type {cells['type']!r} (one of {known})") from None
    points_text = cells.get("points", "").strip()
    points = _number(points_text, line, "points") if points_text else 1.0
    tag_names = [t for t in cells.get("tags", "").split(";") if t.strip()]
    return _question(
        line=line,
        title=cells.get("title", ""),
        prompt=cells["prompt"],
        points=points,
        general_feedback=cells.get("feedback", ""),
        tags=_tags(tag_names, line),
        spec=_csv_spec(kind, cells.get("options", ""), cells.get("answer", ""), line),
    )


def _short_form(spec: QuestionSpec) -> tuple[str, str]:
    """The `options` and `answer` cells of the short form (may not hold the whole spec)."""
    if isinstance(spec, SingleChoiceSpec | MultipleChoiceSpec):
        right = ";".join(_letter(n) for n, o in enumerate(spec.options) if o.correct)
        if isinstance(spec, MultipleChoiceSpec) and spec.scoring is Scoring.PARTIAL:
            right = f"{Scoring.PARTIAL.value}:{right}"
        return _join_list(o.text for o in spec.options), right
    if isinstance(spec, TrueFalseSpec):
        return "", "true" if spec.answer else "false"
    if isinstance(spec, ShortTextSpec):
        return "", _join_list(a.text for a in spec.accepted)
    if isinstance(spec, NumericSpec):
        values = [
            _num(a.value) + (f":{_num(a.tolerance)}" if a.tolerance else "") for a in spec.answers
        ]
        return "", _join_list(values)
    if isinstance(spec, OrderingSpec):
        scoring = "" if spec.scoring is Scoring.ALL_OR_NOTHING else spec.scoring.value
        return _join_list(i.text for i in spec.items), scoring
    if isinstance(spec, MatchingSpec):
        pairs = [f"{p.prompt} -> {p.answer}" for p in spec.pairs]
        pairs += [f" -> {d.text}" for d in spec.distractors]
        scoring = "" if spec.scoring is Scoring.PARTIAL else spec.scoring.value
        return _join_list(pairs), scoring
    return "", ""


def _spec_cells(spec: QuestionSpec) -> tuple[str, str]:
    """The short form when it reads back to the same spec, else the spec as JSON."""
    options, answer = _short_form(spec)
    try:
        if _csv_spec(spec.type, options, answer, 0) == spec:
            return options, answer
    except FormatError:
        pass
    data = spec.model_dump(mode="json", exclude={"type"}, exclude_defaults=True)
    return "", json.dumps(data, ensure_ascii=False)


def export_csv(questions: Iterable[ImportedQuestion]) -> str:
    """Questions as CSV in our format; `parse_csv` reads them back unchanged."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for question in questions:
        options, answer = _spec_cells(question.spec)
        writer.writerow(
            [
                question.spec.type.value,
                question.title,
                question.prompt,
                _num(question.points),
                ";".join(question.tags),
                options,
                answer,
                question.general_feedback,
            ]
        )
    return out.getvalue()
