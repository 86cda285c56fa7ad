"""What a question is, per type: the contract shared by the bank, the importers, grading, the
attempt payloads and (next issue) live quizzes.

A question version's `body` is one of the `*Spec` models below, told apart by `type`
(`QuestionSpec`, a discriminated union). Specs hold the right answers: they are only ever
shown to the course's instructors. Learners get `public_view` of a spec (see grading.py),
and send a response of the matching `*Response` model.

Ids of options, items and pairs are short strings chosen by the author (or generated: "a",
"b", ...), unique within the question, stable across versions so statistics can follow them.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, TypeAdapter, model_validator

OptionId = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9_-]+$")]
Text = Annotated[str, Field(max_length=10_000, description="Markdown.")]
ShortLine = Annotated[str, Field(min_length=1, max_length=500)]


class QuestionType(enum.StrEnum):
    SINGLE_CHOICE = "single_choice"
    MULTIPLE_CHOICE = "multiple_choice"
    TRUE_FALSE = "true_false"
    SHORT_TEXT = "short_text"
    NUMERIC = "numeric"
    ORDERING = "ordering"
    MATCHING = "matching"
    ESSAY = "essay"


class Scoring(enum.StrEnum):
    """How a question with several parts scores: every part right, or a share of the points."""

    ALL_OR_NOTHING = "all_or_nothing"
    PARTIAL = "partial"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Choice(_Spec):
    id: OptionId
    text: Text
    correct: StrictBool = False
    feedback: Text = ""


def _unique(ids: list[str], what: str) -> None:
    if len(set(ids)) != len(ids):
        raise ValueError(f"{what} ids must be unique")


class SingleChoiceSpec(_Spec):
    """One right option among 2..26."""

    type: Literal[QuestionType.SINGLE_CHOICE] = QuestionType.SINGLE_CHOICE
    options: list[Choice] = Field(min_length=2, max_length=26)

    @model_validator(mode="after")
    def _one_correct(self) -> SingleChoiceSpec:
        _unique([o.id for o in self.options], "option")
        if sum(o.correct for o in self.options) != 1:
            raise ValueError("exactly one option must be correct")
        return self


class MultipleChoiceSpec(_Spec):
    """Any number of right options (at least one). Partial credit: each right option chosen
    earns points/right, each wrong option chosen costs points/wrong, floored at 0."""

    type: Literal[QuestionType.MULTIPLE_CHOICE] = QuestionType.MULTIPLE_CHOICE
    options: list[Choice] = Field(min_length=2, max_length=26)
    scoring: Scoring = Scoring.ALL_OR_NOTHING

    @model_validator(mode="after")
    def _some_correct(self) -> MultipleChoiceSpec:
        _unique([o.id for o in self.options], "option")
        if not any(o.correct for o in self.options):
            raise ValueError("at least one option must be correct")
        return self


class TrueFalseSpec(_Spec):
    type: Literal[QuestionType.TRUE_FALSE] = QuestionType.TRUE_FALSE
    answer: StrictBool
    feedback_true: Text = ""
    feedback_false: Text = ""


class Whitespace(enum.StrEnum):
    """How a short text answer's spaces are compared: ends trimmed and runs of whitespace made
    one space (`normalize`, the default), ends trimmed only (`trim`), or exactly (`exact`)."""

    NORMALIZE = "normalize"
    TRIM = "trim"
    EXACT = "exact"


class AcceptedText(_Spec):
    text: ShortLine
    score: float = Field(1.0, gt=0, le=1, description="Share of the points this answer earns.")
    feedback: Text = ""


class ShortTextSpec(_Spec):
    """Accepted answers (the best match counts); compared after Unicode NFC normalisation."""

    type: Literal[QuestionType.SHORT_TEXT] = QuestionType.SHORT_TEXT
    accepted: list[AcceptedText] = Field(min_length=1, max_length=50)
    case_sensitive: StrictBool = False
    whitespace: Whitespace = Whitespace.NORMALIZE

    @model_validator(mode="after")
    def _full_marks_possible(self) -> ShortTextSpec:
        if not any(a.score == 1.0 for a in self.accepted):
            raise ValueError("at least one accepted answer must earn full points")
        return self


class Tolerance(enum.StrEnum):
    ABSOLUTE = "absolute"  # |x - value| <= tolerance
    RELATIVE = "relative"  # |x - value| <= tolerance * |value|


class NumericAnswer(_Spec):
    value: float = Field(allow_inf_nan=False)
    tolerance: float = Field(0.0, ge=0, allow_inf_nan=False)
    tolerance_kind: Tolerance = Tolerance.ABSOLUTE
    score: float = Field(1.0, gt=0, le=1)
    feedback: Text = ""


class NumericSpec(_Spec):
    """Accepted values with tolerances (the best match counts)."""

    type: Literal[QuestionType.NUMERIC] = QuestionType.NUMERIC
    answers: list[NumericAnswer] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _full_marks_possible(self) -> NumericSpec:
        if not any(a.score == 1.0 for a in self.answers):
            raise ValueError("at least one answer must earn full points")
        return self


class Item(_Spec):
    id: OptionId
    text: Text


class OrderingSpec(_Spec):
    """Items listed in the right order (shown shuffled). Partial credit: the share of items
    in their right place."""

    type: Literal[QuestionType.ORDERING] = QuestionType.ORDERING
    items: list[Item] = Field(min_length=2, max_length=26)
    scoring: Scoring = Scoring.ALL_OR_NOTHING

    @model_validator(mode="after")
    def _ids(self) -> OrderingSpec:
        _unique([i.id for i in self.items], "item")
        return self


class Pair(_Spec):
    id: OptionId
    prompt: Text
    answer: Text


class MatchingSpec(_Spec):
    """Prompts each matched to one answer; answers (plus distractors) shown shuffled, each
    with an id. Partial credit: the share of prompts matched right."""

    type: Literal[QuestionType.MATCHING] = QuestionType.MATCHING
    pairs: list[Pair] = Field(min_length=2, max_length=26)
    distractors: list[Item] = Field(default_factory=list, max_length=26)
    scoring: Scoring = Scoring.PARTIAL

    @model_validator(mode="after")
    def _ids(self) -> MatchingSpec:
        _unique([p.id for p in self.pairs] + [d.id for d in self.distractors], "pair/distractor")
        return self


class EssaySpec(_Spec):
    """Graded by an instructor (score and feedback)."""

    type: Literal[QuestionType.ESSAY] = QuestionType.ESSAY
    guidance: Text = Field("", description="For graders only.")
    min_words: int = Field(0, ge=0, le=10_000)
    max_words: int = Field(5_000, ge=1, le=10_000)


QuestionSpec = Annotated[
    SingleChoiceSpec
    | MultipleChoiceSpec
    | TrueFalseSpec
    | ShortTextSpec
    | NumericSpec
    | OrderingSpec
    | MatchingSpec
    | EssaySpec,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- responses


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SingleChoiceResponse(_Response):
    choice: OptionId


class MultipleChoiceResponse(_Response):
    choices: list[OptionId] = Field(max_length=26)


class TrueFalseResponse(_Response):
    value: StrictBool


class ShortTextResponse(_Response):
    text: str = Field(max_length=500)


class NumericResponse(_Response):
    value: float = Field(allow_inf_nan=False)


class OrderingResponse(_Response):
    order: list[OptionId] = Field(max_length=26)


class MatchingResponse(_Response):
    matches: dict[OptionId, OptionId] = Field(
        max_length=26, description="prompt (pair) id -> chosen answer id"
    )


class EssayResponse(_Response):
    text: str = Field(max_length=100_000)


RESPONSES: dict[QuestionType, type[_Response]] = {
    QuestionType.SINGLE_CHOICE: SingleChoiceResponse,
    QuestionType.MULTIPLE_CHOICE: MultipleChoiceResponse,
    QuestionType.TRUE_FALSE: TrueFalseResponse,
    QuestionType.SHORT_TEXT: ShortTextResponse,
    QuestionType.NUMERIC: NumericResponse,
    QuestionType.ORDERING: OrderingResponse,
    QuestionType.MATCHING: MatchingResponse,
    QuestionType.ESSAY: EssayResponse,
}


_SPEC: TypeAdapter[QuestionSpec] = TypeAdapter(QuestionSpec)


def load_spec(body: Any) -> QuestionSpec:
    """The typed spec of a stored question body (a version's, or a live session's copy)."""
    return _SPEC.validate_python(body)
