"""Requests and responses of the question bank and of quiz authoring.

Shapes and bounds are checked here (question bodies by `quizzes.spec`, tags normalised to
slugs, dates timezone-aware and turned to UTC, review policies that could leak answers while an
attempt is open refused); rules that need the database (who may edit, a question of another
course, a pool too small to publish) live in `quizzes.bank`.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lms_live.courses.schemas import FileRef, Limit, Offset, Tag, Title, no_nul
from lms_live.quizzes.models import GradingMethod, OverduePolicy
from lms_live.quizzes.spec import QuestionSpec, QuestionType

MAX_QUESTION_TAGS = 20
MAX_SLOTS = 200
MAX_POOL_COUNT = 100
MAX_BULK_LEARNERS = 500
MIN_YEAR, MAX_YEAR = 2000, 2999


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _one_line(value: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("control characters are not allowed")
    return value


def _unique_sorted(values: list[str]) -> list[str]:
    return sorted(set(values))


def _utc(value: datetime) -> datetime:
    """An aware datetime in UTC, within years the deadline arithmetic can never overflow."""
    try:
        value = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("date out of range") from exc
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be between the years {MIN_YEAR} and {MAX_YEAR}")
    return value


Prompt = Annotated[
    str,
    Field(min_length=1, max_length=20_000, description="Markdown."),
    AfterValidator(no_nul),
    AfterValidator(_not_blank),
]
Feedback = Annotated[str, Field(max_length=10_000, description="Markdown."), AfterValidator(no_nul)]
Instructions = Annotated[
    str, Field(max_length=20_000, description="Markdown."), AfterValidator(no_nul)
]
Points = Annotated[StrictFloat, Field(gt=0, le=1000, allow_inf_nan=False)]
QuestionTags = Annotated[
    list[Tag],
    Field(
        max_length=MAX_QUESTION_TAGS,
        description="Categories (pools draw by tag); normalised to lower-case slugs.",
    ),
    AfterValidator(_unique_sorted),
]
When = Annotated[
    AwareDatetime,
    AfterValidator(_utc),
    Field(description="With a timezone; stored and returned in UTC."),
]
TimeLimit = Annotated[StrictInt, Field(ge=60, le=86_400, description="Seconds.")]
MaxAttempts = Annotated[StrictInt, Field(ge=1, le=100)]
MinWait = Annotated[
    StrictInt, Field(ge=0, le=604_800, description="Seconds between two attempts' starts.")
]
PassPercent = Annotated[StrictFloat, Field(ge=0, le=100, allow_inf_nan=False)]
OverdueGrace = Annotated[StrictInt, Field(ge=0, le=3600, description="Seconds.")]
ExtraSeconds = Annotated[StrictInt, Field(ge=0, le=86_400)]
TimeMultiplier = Annotated[StrictFloat, Field(ge=1, le=10, allow_inf_nan=False)]
ExtraAttempts = Annotated[StrictInt, Field(ge=0, le=100)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Patch(_In):
    """A partial update: a field left out is unchanged; `null` only where a field may be empty;
    at least one field."""

    NOT_NULL: ClassVar[tuple[str, ...]] = ()

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.NOT_NULL:
            raise ValueError("may be left out but not null")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> _Patch:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields sent."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def _window(opens_at: datetime | None, closes_at: datetime | None) -> None:
    if opens_at is not None and closes_at is not None and closes_at <= opens_at:
        raise ValueError("closes_at must be after opens_at")


# --------------------------------------------------------------------------- paths


class CoursePath(BaseModel):
    course_id: uuid.UUID


class QuestionPath(BaseModel):
    question_id: uuid.UUID


class QuestionVersionPath(BaseModel):
    question_id: uuid.UUID
    version: Annotated[int, Field(ge=1, le=1_000_000)]


class QuizPath(BaseModel):
    quiz_id: uuid.UUID


class AccommodationPath(BaseModel):
    quiz_id: uuid.UUID
    user_id: uuid.UUID


# --------------------------------------------------------------------------- questions


class QuestionIn(_In):
    title: Title
    prompt: Prompt
    points: Points = 1.0
    general_feedback: Feedback = Field("", description="Shown to every learner on review.")
    image_file: FileRef | None = Field(None, description="Storage key of an image.")
    tags: QuestionTags = Field(default_factory=list)
    body: QuestionSpec


class QuestionPatchIn(_Patch):
    """Any subset of the fields. `title`, `tags` and `archived` change the question itself;
    the content fields (`prompt`, `points`, `general_feedback`, `image_file`, `body`) make a
    new version when an attempt already shows the current one, else edit it in place.
    `general_feedback` and `image_file` may be null (cleared)."""

    NOT_NULL = ("title", "prompt", "points", "tags", "body", "archived")

    title: Title | None = None
    prompt: Prompt | None = None
    points: Points | None = None
    general_feedback: Feedback | None = None
    image_file: FileRef | None = None
    tags: QuestionTags | None = None
    body: QuestionSpec | None = None
    archived: StrictBool | None = Field(None, description="false restores an archived question.")

    def changes(self) -> dict[str, Any]:
        """The fields sent; a null `general_feedback` as an empty string."""
        values = super().changes()
        if "general_feedback" in values and values["general_feedback"] is None:
            values["general_feedback"] = ""
        return values


class QuestionsQuery(BaseModel):
    tag: Tag | None = None
    type: QuestionType | None = None
    q: Annotated[str, AfterValidator(_one_line)] | None = Field(
        None, max_length=200, description="Words of the title or the prompt."
    )
    include_archived: bool = False
    limit: Limit = 50
    offset: Offset = 0


class VersionOut(BaseModel):
    """One version of a question's content, with its right answers (instructors only)."""

    version: int
    type: QuestionType
    prompt: str = Field(description="Markdown.")
    prompt_html: str = Field(description="The prompt rendered as safe HTML.")
    points: float
    general_feedback: str
    general_feedback_html: str
    image_file: str | None
    body: QuestionSpec
    created_at: datetime
    used: bool = Field(description="Shown in an attempt: it will never change again.")


class VersionSummaryOut(BaseModel):
    version: int
    type: QuestionType
    points: float
    created_at: datetime
    used: bool


class QuestionOut(BaseModel):
    """A bank question: its current version in full and the list of its versions."""

    id: uuid.UUID
    course_id: uuid.UUID
    title: str
    tags: list[str]
    archived: bool
    current_version: int
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    version: VersionOut = Field(description="The current version.")
    versions: list[VersionSummaryOut] = Field(description="Every version, oldest first.")


class QuestionVersionOut(VersionOut):
    question_id: uuid.UUID
    current: bool


class QuestionListItemOut(BaseModel):
    id: uuid.UUID
    course_id: uuid.UUID
    title: str
    tags: list[str]
    archived: bool
    current_version: int
    type: QuestionType
    points: float
    prompt_excerpt: str = Field(description="The first 200 characters of the prompt.")
    created_at: datetime
    updated_at: datetime


class QuestionsPage(BaseModel):
    items: list[QuestionListItemOut]
    total: int
    limit: int
    offset: int


class ImportFormat(enum.StrEnum):
    GIFT = "gift"
    AIKEN = "aiken"
    CSV = "csv"


class ImportQuery(BaseModel):
    format: ImportFormat = Field(description="gift (Moodle), aiken or csv (see the docs).")


class ImportOut(BaseModel):
    imported: int
    question_ids: list[uuid.UUID] = Field(description="In the file's order.")


class ExportQuery(BaseModel):
    tag: Tag | None = None
    include_archived: bool = False


# --------------------------------------------------------------------------- quizzes


class ReviewWhen(enum.StrEnum):
    """When the learner sees a part of their attempt: never, while answering (their own
    answers only), right after submitting, or once the quiz has closed."""

    NEVER = "never"
    DURING = "during"
    AFTER_SUBMIT = "after_submit"
    AFTER_CLOSE = "after_close"


class ReviewPolicy(BaseModel):
    """What a learner sees of their attempt, and when (the stored shape; `{}` reads as the
    defaults)."""

    answers: ReviewWhen = ReviewWhen.DURING
    correctness: ReviewWhen = ReviewWhen.AFTER_SUBMIT
    points: ReviewWhen = ReviewWhen.AFTER_SUBMIT
    feedback: ReviewWhen = ReviewWhen.AFTER_SUBMIT
    right_answers: ReviewWhen = ReviewWhen.AFTER_CLOSE


# Everything but the learner's own answers tells (or hints at) what is right.
REVEALING = ("correctness", "points", "feedback", "right_answers")


def _not_during(policy: BaseModel) -> None:
    for name in REVEALING:
        if getattr(policy, name, None) == ReviewWhen.DURING:
            raise ValueError(
                f"{name} cannot be shown during an attempt (only the learner's own answers can)"
            )


class ReviewPolicyIn(ReviewPolicy):
    """Keys left out take their defaults; only `answers` may be `during`."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _safe(self) -> ReviewPolicyIn:
        _not_during(self)
        return self


class ReviewPolicyPatchIn(_Patch):
    """Keys left out keep their stored value; only `answers` may be `during`."""

    NOT_NULL = ("answers", "correctness", "points", "feedback", "right_answers")

    answers: ReviewWhen | None = None
    correctness: ReviewWhen | None = None
    points: ReviewWhen | None = None
    feedback: ReviewWhen | None = None
    right_answers: ReviewWhen | None = None

    @model_validator(mode="after")
    def _safe(self) -> ReviewPolicyPatchIn:
        _not_during(self)
        return self


class QuizIn(_In):
    title: Title
    instructions: Instructions = ""
    time_limit_seconds: TimeLimit | None = Field(None, description="null: no time limit.")
    opens_at: When | None = None
    closes_at: When | None = None
    max_attempts: MaxAttempts | None = Field(None, description="null: unlimited.")
    min_wait_seconds: MinWait = 0
    pass_percent: PassPercent = 50.0
    grading_method: GradingMethod = GradingMethod.HIGHEST
    shuffle_questions: StrictBool = False
    shuffle_options: StrictBool = False
    review_policy: ReviewPolicyIn = Field(default_factory=ReviewPolicyIn)
    overdue_policy: OverduePolicy = OverduePolicy.AUTO_SUBMIT
    overdue_grace_seconds: OverdueGrace = Field(0, description="For the `grace` policy.")

    @model_validator(mode="after")
    def _window(self) -> QuizIn:
        _window(self.opens_at, self.closes_at)
        return self


class QuizPatchIn(_Patch):
    """Any subset of the fields; `time_limit_seconds`, `opens_at`, `closes_at` and
    `max_attempts` may be null (none), `instructions` null is empty; `review_policy` changes
    only the keys sent. The resulting window must still close after it opens."""

    NOT_NULL = (
        "title",
        "min_wait_seconds",
        "pass_percent",
        "grading_method",
        "shuffle_questions",
        "shuffle_options",
        "review_policy",
        "overdue_policy",
        "overdue_grace_seconds",
    )

    title: Title | None = None
    instructions: Instructions | None = None
    time_limit_seconds: TimeLimit | None = None
    opens_at: When | None = None
    closes_at: When | None = None
    max_attempts: MaxAttempts | None = None
    min_wait_seconds: MinWait | None = None
    pass_percent: PassPercent | None = None
    grading_method: GradingMethod | None = None
    shuffle_questions: StrictBool | None = None
    shuffle_options: StrictBool | None = None
    review_policy: ReviewPolicyPatchIn | None = None
    overdue_policy: OverduePolicy | None = None
    overdue_grace_seconds: OverdueGrace | None = None

    @model_validator(mode="after")
    def _window(self) -> QuizPatchIn:
        _window(self.opens_at, self.closes_at)
        return self

    def changes(self) -> dict[str, Any]:
        """The fields sent (plain values); a null `instructions` as an empty string and
        `review_policy` as the dict of the keys sent."""
        values = super().changes()
        if "instructions" in values and values["instructions"] is None:
            values["instructions"] = ""
        if self.review_policy is not None:
            values["review_policy"] = {
                name: getattr(self.review_policy, name).value
                for name in self.review_policy.model_fields_set
            }
        for name in ("grading_method", "overdue_policy"):
            if name in values:
                values[name] = values[name].value
        return values


class QuizzesQuery(BaseModel):
    limit: Limit = 50
    offset: Offset = 0


class QuizOut(BaseModel):
    id: uuid.UUID
    course_id: uuid.UUID
    title: str
    instructions: str
    instructions_html: str
    published: bool
    time_limit_seconds: int | None
    opens_at: datetime | None
    closes_at: datetime | None
    max_attempts: int | None
    min_wait_seconds: int
    pass_percent: float
    grading_method: GradingMethod
    shuffle_questions: bool
    shuffle_options: bool
    review_policy: ReviewPolicy
    overdue_policy: OverduePolicy
    overdue_grace_seconds: int
    slot_count: int
    question_count: int = Field(description="Questions in each attempt (pools count fully).")
    attempt_count: int
    created_at: datetime
    updated_at: datetime


class QuizzesPage(BaseModel):
    items: list[QuizOut]
    total: int
    limit: int
    offset: int


# --------------------------------------------------------------------------- slots


class FixedSlotIn(_In):
    question_id: uuid.UUID


class PoolSlotIn(_In):
    pool_tag: Tag
    pool_count: Annotated[StrictInt, Field(ge=1, le=MAX_POOL_COUNT)] = 1


class SlotsIn(_In):
    """The whole new list of slots, in order: a fixed question, or `pool_count` questions
    drawn at random per attempt from the bank's questions tagged `pool_tag`."""

    slots: list[FixedSlotIn | PoolSlotIn] = Field(max_length=MAX_SLOTS)


class SlotKind(enum.StrEnum):
    QUESTION = "question"
    POOL = "pool"


class SlotQuestionOut(BaseModel):
    id: uuid.UUID
    title: str
    type: QuestionType
    points: float
    archived: bool
    current_version: int


class SlotOut(BaseModel):
    position: int
    kind: SlotKind
    question: SlotQuestionOut | None = Field(description="A fixed slot's question.")
    pool_tag: str | None
    pool_count: int | None
    available: int | None = Field(
        description="A pool's candidates now: non-archived questions with the tag."
    )


class SlotsOut(BaseModel):
    quiz_id: uuid.UUID
    slots: list[SlotOut]
    question_count: int


# --------------------------------------------------------------------------- accommodations


class _Allowance(_In):
    extra_seconds: ExtraSeconds = Field(0, description="Added to the time limit.")
    time_multiplier: TimeMultiplier = Field(1.0, description="Multiplies the time limit.")
    extra_attempts: ExtraAttempts = Field(0, description="Added to max_attempts.")
    opens_at: When | None = Field(None, description="Replaces the quiz's opening for them.")
    closes_at: When | None = Field(None, description="Replaces the quiz's closing for them.")

    @model_validator(mode="after")
    def _window(self) -> _Allowance:
        _window(self.opens_at, self.closes_at)
        return self

    def fields(self) -> dict[str, Any]:
        """The accommodation's columns."""
        return self.model_dump(
            include={"extra_seconds", "time_multiplier", "extra_attempts", "opens_at", "closes_at"}
        )


class AccommodationIn(_Allowance):
    """One learner's adjustments; replaces what they had on this quiz."""


class BulkAccommodationIn(_Allowance):
    """The same adjustments for a group of learners (each one's replaced)."""

    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_BULK_LEARNERS)

    @field_validator("user_ids")
    @classmethod
    def _unique(cls, value: list[uuid.UUID]) -> list[uuid.UUID]:
        return list(dict.fromkeys(value))


class AccommodationOut(BaseModel):
    quiz_id: uuid.UUID
    user_id: uuid.UUID
    full_name: str
    extra_seconds: int
    time_multiplier: float
    extra_attempts: int
    opens_at: datetime | None
    closes_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AccommodationsOut(BaseModel):
    items: list[AccommodationOut]
