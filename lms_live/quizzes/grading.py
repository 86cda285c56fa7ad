"""Grading of every question type, and what a learner may see of a question while answering.

Pure and deterministic (no database, clock or I/O): shared by self-paced attempts and live
quizzes. Invariants:
- `grade` never raises on a learner's response: a missing, empty or invalid one is UNANSWERED
  with score 0; a score is always within [0, points], rounded to 4 decimals (full marks are
  exactly `points`); the same input always gives the same grade;
- learners never see a spec's ids. `public_view` labels every option, item, prompt and choice
  by its place on screen ("1", "2", ...; the labels never equal one of the spec's ids), because
  ids give answers away: generated ids ("a", "b", ...) follow the right order of an ordering
  question, and a matching pair's prompt and answer share one id. A learner answers with those
  labels: `parse_response(..., option_order=...)` turns that into the spec-id form which is
  stored and graded, `public_response` turns a stored response back into labels;
- options that read the same are interchangeable: an ordering item or a matching choice whose
  text equals the right one's counts as right, since the learner cannot tell them apart;
- ordering items and matching choices are always shown shuffled, never reading in the right
  order (`draw_option_order`); choice options only when the quiz shuffles.
"""

from __future__ import annotations

import enum
import math
import random
import string
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lms_live.quizzes.spec import (
    RESPONSES,
    EssayResponse,
    EssaySpec,
    MatchingResponse,
    MatchingSpec,
    MultipleChoiceResponse,
    MultipleChoiceSpec,
    NumericAnswer,
    NumericResponse,
    NumericSpec,
    OrderingResponse,
    OrderingSpec,
    QuestionSpec,
    Scoring,
    ShortTextResponse,
    ShortTextSpec,
    SingleChoiceResponse,
    SingleChoiceSpec,
    Tolerance,
    TrueFalseResponse,
    TrueFalseSpec,
    Whitespace,
)

SCORE_DECIMALS = 4
# Relative slack for numeric tolerances, so float rounding never rejects a value exactly at
# the edge (0.4 - 0.3 > 0.1 in binary floating point).
NUMERIC_EPSILON = 1e-9
_SHUFFLE_TRIES = 32
# Label prefixes, tried in turn until no label equals one of the spec's ids; a spec id blocks at
# most one of them and a question has at most 52 ids, so one is always free.
_LABEL_PREFIXES = ("", *string.ascii_lowercase, *string.ascii_uppercase)

_T = TypeVar("_T")


class GradeState(enum.StrEnum):
    CORRECT = "correct"
    PARTIAL = "partial"
    INCORRECT = "incorrect"
    UNANSWERED = "unanswered"
    NEEDS_GRADING = "needs_grading"


@dataclass(frozen=True)
class Grade:
    """One response's score out of `max_score`, and the option/answer feedback that applies
    (general feedback lives on the question version and is the caller's to add)."""

    score: float
    max_score: float
    state: GradeState
    feedback: list[str] = field(default_factory=list)


class InvalidResponse(ValueError):
    """A learner's response that does not fit its question; `details` as in HTTP validation
    errors (`loc` relative to the response)."""

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details = details or [{"loc": [], "msg": message, "type": "invalid_response"}]


# --------------------------------------------------------------------------- grading


def grade(spec: QuestionSpec, response: Mapping[str, Any] | None, *, points: float) -> Grade:
    """Score a stored (spec-id) response out of `points`; missing or invalid is UNANSWERED."""
    if isinstance(points, bool) or not math.isfinite(points) or points < 0:
        raise ValueError(f"points must be a finite number >= 0, not {points!r}")
    points = float(points)
    unanswered = Grade(0.0, points, GradeState.UNANSWERED)
    if response is None:
        return unanswered
    try:
        parsed = _parse(spec, response)
    except ValueError:
        return unanswered
    if isinstance(spec, EssaySpec):
        if isinstance(parsed, EssayResponse) and parsed.text.strip():
            return Grade(0.0, points, GradeState.NEEDS_GRADING)
        return unanswered
    outcome = _judge(spec, parsed)
    if outcome is None:
        return unanswered
    share, feedback = outcome
    return _scored(share, points, [text for text in feedback if text])


def _scored(share: Fraction | float, points: float, feedback: list[str]) -> Grade:
    if share >= 1:
        return Grade(points, points, GradeState.CORRECT, feedback)
    if share <= 0:
        return Grade(0.0, points, GradeState.INCORRECT, feedback)
    score = min(max(round(points * float(share), SCORE_DECIMALS), 0.0), points)
    return Grade(score, points, GradeState.PARTIAL, feedback)


_Outcome = tuple[Fraction | float, list[str]] | None  # share of the points and feedback; None
# when the response, although valid, says nothing (no choice, no text, no match).


def _judge(spec: QuestionSpec, response: BaseModel) -> _Outcome:
    if isinstance(spec, SingleChoiceSpec) and isinstance(response, SingleChoiceResponse):
        [chosen] = [o for o in spec.options if o.id == response.choice]
        return (1 if chosen.correct else 0), [chosen.feedback]
    if isinstance(spec, MultipleChoiceSpec) and isinstance(response, MultipleChoiceResponse):
        return _judge_multiple(spec, response)
    if isinstance(spec, TrueFalseSpec) and isinstance(response, TrueFalseResponse):
        feedback = spec.feedback_true if response.value else spec.feedback_false
        return (1 if response.value == spec.answer else 0), [feedback]
    if isinstance(spec, ShortTextSpec) and isinstance(response, ShortTextResponse):
        return _judge_short_text(spec, response)
    if isinstance(spec, NumericSpec) and isinstance(response, NumericResponse):
        best = _best((a for a in spec.answers if _within(response.value, a)), key=lambda a: a.score)
        return (0, []) if best is None else (best.score, [best.feedback])
    if isinstance(spec, OrderingSpec) and isinstance(response, OrderingResponse):
        if not response.order:
            return None
        reads = {item.id: _reads(item.text) for item in spec.items}
        in_place = sum(
            reads[given] == reads[item.id]
            for given, item in zip(response.order, spec.items, strict=True)
        )
        return _share(in_place, len(spec.items), spec.scoring), []
    if isinstance(spec, MatchingSpec) and isinstance(response, MatchingResponse):
        if not response.matches:
            return None
        reads = _matching_choices(spec)
        right = sum(
            pair.id in response.matches and reads[response.matches[pair.id]] == reads[pair.id]
            for pair in spec.pairs
        )
        return _share(right, len(spec.pairs), spec.scoring), []
    raise TypeError(f"no grading rule for {type(spec).__name__} with {type(response).__name__}")


def _judge_multiple(spec: MultipleChoiceSpec, response: MultipleChoiceResponse) -> _Outcome:
    if not response.choices:
        return None
    chosen = set(response.choices)
    right = {o.id for o in spec.options if o.correct}
    wrong = {o.id for o in spec.options if not o.correct}
    feedback = [o.feedback for o in spec.options if o.id in chosen]
    if spec.scoring is Scoring.ALL_OR_NOTHING:
        return (1 if chosen == right else 0), feedback
    share = Fraction(len(chosen & right), len(right))
    if wrong:
        share -= Fraction(len(chosen & wrong), len(wrong))
    return max(share, Fraction(0)), feedback


def _judge_short_text(spec: ShortTextSpec, response: ShortTextResponse) -> _Outcome:
    if not response.text.strip():
        return None
    given = _comparable(response.text, spec)
    best = _best(
        (a for a in spec.accepted if _comparable(a.text, spec) == given), key=lambda a: a.score
    )
    return (0, []) if best is None else (best.score, [best.feedback])


def _comparable(text: str, spec: ShortTextSpec) -> str:
    """The text as the question compares it: NFC, its whitespace rule, then its case rule."""
    text = unicodedata.normalize("NFC", text)
    if spec.whitespace is Whitespace.NORMALIZE:
        text = " ".join(text.split())
    elif spec.whitespace is Whitespace.TRIM:
        text = text.strip()
    if not spec.case_sensitive:
        # Unicode canonical caseless matching (casefold between canonical decompositions).
        text = unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).casefold())
    return text


def _within(value: float, answer: NumericAnswer) -> bool:
    allowed = answer.tolerance
    if answer.tolerance_kind is Tolerance.RELATIVE:
        allowed *= abs(answer.value)
    slack = NUMERIC_EPSILON * max(1.0, abs(answer.value), allowed)
    return abs(value - answer.value) <= allowed + slack


def _share(right: int, total: int, scoring: Scoring) -> Fraction:
    if scoring is Scoring.ALL_OR_NOTHING:
        return Fraction(1 if right == total else 0)
    return Fraction(right, total)


def _best(candidates: Iterable[_T], *, key: Callable[[_T], float]) -> _T | None:
    """The first candidate with the highest key (deterministic on ties)."""
    best: _T | None = None
    for candidate in candidates:
        if best is None or key(candidate) > key(best):
            best = candidate
    return best


def _reads(text: str) -> str:
    """What a learner sees of a text, for telling options apart."""
    return unicodedata.normalize("NFC", text).strip()


def _matching_choices(spec: MatchingSpec) -> dict[str, str]:
    """Every choice id of a matching question (pair answers, then distractors) -> its reading."""
    return {p.id: _reads(p.answer) for p in spec.pairs} | {
        d.id: _reads(d.text) for d in spec.distractors
    }


# --------------------------------------------------------------------------- responses


def parse_response(
    spec: QuestionSpec, data: Any, *, option_order: Sequence[str] | None = None
) -> dict[str, Any]:
    """Validate a response and return its stored (spec-id) form; raises InvalidResponse.

    With `option_order` (the attempt's), `data` is a learner's answer naming the labels of
    `public_view`; without it, `data` names spec ids (stored answers, instructors, imports).
    """
    if option_order is not None:
        data = _from_labels(spec, data, option_order)
    return _parse(spec, data).model_dump(mode="json")


def public_response(
    spec: QuestionSpec, response: Mapping[str, Any] | None, *, option_order: Sequence[str]
) -> dict[str, Any] | None:
    """A stored response as the learner's screen names it (labels); None if it is invalid."""
    try:
        parsed = parse_response(spec, response)
    except ValueError:
        return None
    groups = _layout(spec, option_order)
    to_label = {name: {id_: label for label, id_, _ in entries} for name, entries in groups.items()}
    if isinstance(spec, SingleChoiceSpec):
        return {"choice": to_label["options"][parsed["choice"]]}
    if isinstance(spec, MultipleChoiceSpec):
        options = to_label["options"]
        return {"choices": sorted((options[i] for i in parsed["choices"]), key=_label_place)}
    if isinstance(spec, OrderingSpec):
        return {"order": [to_label["items"][i] for i in parsed["order"]]}
    if isinstance(spec, MatchingSpec):
        prompts, choices = to_label["prompts"], to_label["choices"]
        return {"matches": {prompts[p]: choices[c] for p, c in parsed["matches"].items()}}
    return parsed


def _parse(spec: QuestionSpec, data: Any) -> BaseModel:
    """Validate against RESPONSES[type], then against the spec's ids; normalised order."""
    if isinstance(data, Mapping) and not isinstance(data, dict):
        data = dict(data)
    if (
        isinstance(spec, NumericSpec)
        and isinstance(data, dict)
        and isinstance(data.get("value"), bool)
    ):
        _refuse("value must be a number, not true or false", "value", kind="float_type")
    try:
        response = RESPONSES[spec.type].model_validate(data)
    except ValidationError as exc:
        details = [
            {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidResponse(_summary(details), details=details) from None
    if isinstance(spec, SingleChoiceSpec) and isinstance(response, SingleChoiceResponse):
        _known([response.choice], [o.id for o in spec.options], "option", "choice")
        return response
    if isinstance(spec, MultipleChoiceSpec) and isinstance(response, MultipleChoiceResponse):
        ids = [o.id for o in spec.options]
        _known(response.choices, ids, "option", "choices")
        _no_repeats(response.choices, "option", "choices")
        chosen = set(response.choices)
        return MultipleChoiceResponse(choices=[i for i in ids if i in chosen])
    if isinstance(spec, OrderingSpec) and isinstance(response, OrderingResponse):
        ids = [i.id for i in spec.items]
        _known(response.order, ids, "item", "order")
        _no_repeats(response.order, "item", "order")
        listed = set(response.order)
        missing = [i for i in ids if i not in listed]
        if response.order and missing:
            _refuse(f"the order must list every item; missing: {', '.join(missing)}", "order")
        return response
    if isinstance(spec, MatchingSpec) and isinstance(response, MatchingResponse):
        prompts = [p.id for p in spec.pairs]
        _known(response.matches, prompts, "prompt", "matches")
        _known(response.matches.values(), _matching_choices(spec), "choice", "matches")
        # A choice may serve several prompts (as in a list of drop-downs): not refused.
        return MatchingResponse(
            matches={p: response.matches[p] for p in prompts if p in response.matches}
        )
    if isinstance(response, ShortTextResponse | EssayResponse) and "\x00" in response.text:
        _refuse("NUL characters are not allowed", "text")
    # True/false and numeric have no ids; essay word limits are reported, never enforced here.
    return response


def _known(given: Collection[str], ids: Collection[str], what: str, where: str) -> None:
    for id_ in given:
        if id_ not in ids:
            _refuse(f"unknown {what} id {id_!r}", where, kind="unknown_id")


def _no_repeats(given: Sequence[str], what: str, where: str) -> None:
    seen: set[str] = set()
    for id_ in given:
        if id_ in seen:
            _refuse(f"{what} {id_!r} is listed more than once", where, kind="duplicate_id")
        seen.add(id_)


def _refuse(message: str, where: str, *, kind: str = "invalid_response") -> None:
    raise InvalidResponse(message, details=[{"loc": [where], "msg": message, "type": kind}])


def _summary(details: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in d['loc'])}: {d['msg']}" if d["loc"] else d["msg"]
        for d in details
    )


def word_count(text: str) -> int:
    """Words of an essay (runs of non-space characters)."""
    return len(text.split())


def essay_word_report(spec: EssaySpec, response: Mapping[str, Any] | None) -> dict[str, Any]:
    """An essay's length against its limits, for the learner and graders (never enforced)."""
    text = response.get("text") if response is not None else None
    words = word_count(text) if isinstance(text, str) else 0
    return {
        "words": words,
        "min_words": spec.min_words,
        "max_words": spec.max_words,
        "within_limits": spec.min_words <= words <= spec.max_words,
    }


# --------------------------------------------------------------------------- presentation


def draw_option_order(spec: QuestionSpec, rng: random.Random, *, shuffle: bool) -> list[str]:
    """The ids to store per attempt: options (shuffled if `shuffle`), ordering items and
    matching choices (always shuffled, never reading in the right order); [] for the rest."""
    if isinstance(spec, SingleChoiceSpec | MultipleChoiceSpec):
        ids = [o.id for o in spec.options]
        if shuffle:
            rng.shuffle(ids)
        return ids
    if isinstance(spec, OrderingSpec):
        return _shuffled_away([(i.id, i.text) for i in spec.items], [], rng)
    if isinstance(spec, MatchingSpec):
        return _shuffled_away(
            [(p.id, p.answer) for p in spec.pairs], [d.id for d in spec.distractors], rng
        )
    return []


def _shuffled_away(right: list[tuple[str, str]], extra: list[str], rng: random.Random) -> list[str]:
    """`right` ids (in the right order) and `extra` ids, shuffled so that the right ones do not
    read in the right order: compared by text when their texts differ, else by id."""
    by_text = len({_reads(text) for _, text in right}) > 1
    key = {id_: (_reads(text) if by_text else id_) for id_, text in right}
    target = [key[id_] for id_, _ in right]
    order = [id_ for id_, _ in right] + extra

    def reads_right() -> bool:
        return [key[i] for i in order if i in key] == target

    for _ in range(_SHUFFLE_TRIES):  # each try fails with probability <= 1/2
        rng.shuffle(order)
        if not reads_right():
            return order
    places = [n for n, i in enumerate(order) if i in key]
    first = places[0]
    other = next(n for n in places if key[order[n]] != key[order[first]])
    order[first], order[other] = order[other], order[first]
    return order


def public_view(spec: QuestionSpec, *, option_order: Sequence[str]) -> dict[str, Any]:
    """What a learner may see while answering: the type, labelled options/items/prompts and
    choices in the stored order, the scoring rule; never ids, right answers or feedback."""
    view: dict[str, Any] = {"type": spec.type.value}
    for name, entries in _layout(spec, option_order).items():
        view[name] = [{"id": label, "text": text} for label, _, text in entries]
    if isinstance(spec, MultipleChoiceSpec | OrderingSpec | MatchingSpec):
        view["scoring"] = spec.scoring.value
    if isinstance(spec, EssaySpec):
        view["min_words"] = spec.min_words
        view["max_words"] = spec.max_words
    return view


def right_answer(spec: QuestionSpec) -> dict[str, Any]:
    """A response (spec ids) earning full points, for review; {} for essays, which have none."""
    if isinstance(spec, SingleChoiceSpec):
        return {"choice": next(o.id for o in spec.options if o.correct)}
    if isinstance(spec, MultipleChoiceSpec):
        return {"choices": [o.id for o in spec.options if o.correct]}
    if isinstance(spec, TrueFalseSpec):
        return {"value": spec.answer}
    if isinstance(spec, ShortTextSpec):
        return {"text": next(a.text for a in spec.accepted if a.score == 1.0)}
    if isinstance(spec, NumericSpec):
        return {"value": next(a.value for a in spec.answers if a.score == 1.0)}
    if isinstance(spec, OrderingSpec):
        return {"order": [i.id for i in spec.items]}
    if isinstance(spec, MatchingSpec):
        return {"matches": {p.id: p.id for p in spec.pairs}}
    return {}


_Entry = tuple[str, str, str]  # label shown, spec id, text


def _layout(spec: QuestionSpec, option_order: Sequence[str]) -> dict[str, list[_Entry]]:
    """The labelled groups a learner sees, in the order shown (labels numbered across groups).

    A stale or foreign `option_order` is reconciled, not refused: its known ids first, then the
    spec's others in spec order, so the view and the label translation always agree.
    """
    groups: dict[str, list[tuple[str, str]]]
    if isinstance(spec, SingleChoiceSpec | MultipleChoiceSpec):
        groups = {"options": _in_order([(o.id, o.text) for o in spec.options], option_order)}
    elif isinstance(spec, OrderingSpec):
        groups = {"items": _in_order([(i.id, i.text) for i in spec.items], option_order)}
    elif isinstance(spec, MatchingSpec):
        choices = [(p.id, p.answer) for p in spec.pairs] + [
            (d.id, d.text) for d in spec.distractors
        ]
        groups = {
            "prompts": [(p.id, p.prompt) for p in spec.pairs],
            "choices": _in_order(choices, option_order),
        }
    else:
        return {}
    spec_ids = {id_ for entries in groups.values() for id_, _ in entries}
    count = sum(len(entries) for entries in groups.values())
    prefix = next(
        p for p in _LABEL_PREFIXES if spec_ids.isdisjoint(f"{p}{n}" for n in range(1, count + 1))
    )
    labelled: dict[str, list[_Entry]] = {}
    number = 0
    for name, entries in groups.items():
        labelled[name] = []
        for id_, text in entries:
            number += 1
            labelled[name].append((f"{prefix}{number}", id_, text))
    return labelled


def _in_order(entries: list[tuple[str, str]], option_order: Sequence[str]) -> list[tuple[str, str]]:
    by_id = dict(entries)
    ordered = list(dict.fromkeys(i for i in option_order if i in by_id))
    shown = set(ordered)
    ordered += [id_ for id_, _ in entries if id_ not in shown]
    return [(id_, by_id[id_]) for id_ in ordered]


def _label_place(label: str) -> int:
    return int(label.lstrip(string.ascii_letters))


def _from_labels(spec: QuestionSpec, data: Any, option_order: Sequence[str]) -> Any:
    """A learner's labelled answer in spec ids; values of the wrong shape are left for
    validation to refuse, unknown labels are refused here."""
    if not isinstance(data, Mapping):
        return data
    data = dict(data)
    groups = _layout(spec, option_order)
    to_id = {name: {label: id_ for label, id_, _ in entries} for name, entries in groups.items()}

    def translate(value: Any, group: str, what: str, where: str) -> Any:
        if not isinstance(value, str):
            return value
        if value not in to_id[group]:
            _refuse(f"unknown {what} {value!r}", where, kind="unknown_id")
        return to_id[group][value]

    def translate_list(where: str, group: str, what: str) -> None:
        if isinstance(data.get(where), list):
            data[where] = [translate(v, group, what, where) for v in data[where]]

    if isinstance(spec, SingleChoiceSpec) and "choice" in data:
        data["choice"] = translate(data["choice"], "options", "option", "choice")
    elif isinstance(spec, MultipleChoiceSpec):
        translate_list("choices", "options", "option")
    elif isinstance(spec, OrderingSpec):
        translate_list("order", "items", "item")
    elif isinstance(spec, MatchingSpec) and isinstance(data.get("matches"), Mapping):
        data["matches"] = {
            translate(prompt, "prompts", "prompt", "matches"): translate(
                choice, "choices", "choice", "matches"
            )
            for prompt, choice in data["matches"].items()
        }
    return data
