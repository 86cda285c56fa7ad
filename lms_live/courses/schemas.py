"""Requests and responses of the course catalog and of course authoring.

Shapes and bounds are checked here (titles stripped, tags normalised to slugs, slug and
language patterns); rules that need the database (a slug taken, who may edit) live in
`courses.service`.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from slugify import slugify

from lms_live.core.errors import BadRequest
from lms_live.core.storage import check_key
from lms_live.courses.models import CourseStatus, LessonKind, Level

SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Z]{2})?$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
MAX_TAGS = 10
MAX_OFFSET = 10_000


def _one_line(value: str) -> str:
    """No control characters in one-line text (PostgreSQL refuses NUL; the rest is noise)."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("control characters are not allowed")
    return value


def _plain_text(value: str) -> str:
    """Multi-line text: line breaks and tabs, but no other control characters."""
    if any((ord(ch) < 32 and ch not in "\n\r\t") or ord(ch) == 127 for ch in value):
        raise ValueError("control characters other than line breaks and tabs are not allowed")
    return value


def no_nul(value: str) -> str:
    """Refuse NUL (PostgreSQL text cannot hold it)."""
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


def _storage_key(value: str) -> str:
    try:
        return check_key(value)
    except BadRequest as exc:
        raise ValueError("must be a storage key (letters, digits, '_', '.', '-', '/')") from exc


def normalise_tag(value: str) -> str:
    """A tag as stored: lower-case letters, digits and '-' (python-slugify), at most 40."""
    tag = slugify(value, max_length=40)
    if not tag:
        raise ValueError("must contain at least one letter or digit")
    return tag


def _unique_tags(values: list[str]) -> list[str]:
    return sorted(set(values))


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_one_line),
]
FileRef = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_storage_key)]
Summary = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=500), AfterValidator(_plain_text)
]
Description = Annotated[
    str, Field(max_length=50_000, description="Markdown."), AfterValidator(no_nul)
]
Language = Annotated[
    str,
    Field(
        min_length=2,
        max_length=6,
        pattern=LANGUAGE_PATTERN,
        description="Language tag: `en`, `fr`, `pt-BR`.",
    ),
]
Currency = Annotated[
    str,
    Field(min_length=3, max_length=3, pattern=CURRENCY_PATTERN, description="ISO 4217 code."),
]
Price = Annotated[
    StrictInt, Field(ge=0, le=100_000_000, description="In minor units (cents); 0 is free.")
]
Slug = Annotated[
    str,
    Field(
        min_length=1,
        max_length=120,
        pattern=SLUG_PATTERN,
        description="Lower-case letters and digits, words joined by single '-'.",
    ),
]
Tag = Annotated[
    str,
    Field(min_length=1, max_length=40),
    AfterValidator(normalise_tag),
]
Tags = Annotated[
    list[Tag],
    Field(
        max_length=MAX_TAGS,
        description="Normalised to lower-case slugs and deduplicated.",
    ),
    AfterValidator(_unique_tags),
]
Limit = Annotated[int, Field(ge=1, le=100)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- paths


class CoursePath(BaseModel):
    course_id: uuid.UUID


class CourseInstructorPath(BaseModel):
    course_id: uuid.UUID
    user_id: uuid.UUID


class CatalogPath(BaseModel):
    slug: str = Field(min_length=1, max_length=200)


# --------------------------------------------------------------------------- catalog


class CatalogSort(enum.StrEnum):
    NEWEST = "newest"  # latest published first
    TITLE = "title"  # A to Z
    POPULAR = "popular"  # most enrollments first


class PriceFilter(enum.StrEnum):
    FREE = "free"
    PAID = "paid"


class CatalogQuery(BaseModel):
    q: Annotated[str, AfterValidator(_one_line)] | None = Field(
        None, max_length=200, description="Words of the title or summary."
    )
    instructor: uuid.UUID | None = Field(None, description="Owned or co-taught by this user.")
    level: Level | None = None
    language: Language | None = None
    tag: Tag | None = None
    price: PriceFilter | None = None
    sort: CatalogSort | None = Field(
        None,
        description="newest (default), title (A to Z) or popular (most enrollments); with `q` "
        "and no sort, best matches first.",
    )
    limit: Limit = 20
    offset: Offset = 0


class PersonOut(BaseModel):
    id: uuid.UUID
    full_name: str


class CourseCardOut(BaseModel):
    """A published course as the catalog lists it."""

    id: uuid.UUID
    slug: str
    title: str
    summary: str
    level: Level
    language: str
    tags: list[str]
    price_minor: int
    currency: str
    is_free: bool
    owner: PersonOut
    published_at: datetime | None
    enrollment_count: int
    lesson_count: int
    total_duration_seconds: int = Field(description="Sum of the video lessons' durations.")
    cover_file: str | None


class CatalogPage(BaseModel):
    items: list[CourseCardOut]
    total: int
    limit: int
    offset: int


class OutlineLessonOut(BaseModel):
    """A lesson in a course outline: never its body or URLs."""

    id: uuid.UUID
    title: str
    kind: LessonKind
    position: int
    is_preview: bool
    is_required: bool
    duration_seconds: int | None


class OutlineSectionOut(BaseModel):
    id: uuid.UUID
    title: str
    position: int
    lessons: list[OutlineLessonOut]


class ViewerOut(BaseModel):
    """What the signed-in caller is to this course."""

    enrolled: bool
    teaches: bool


class CourseDetailOut(CourseCardOut):
    """A course's catalog page: the card, the description, the instructors and the outline."""

    status: CourseStatus
    description: str = Field(description="Markdown.")
    description_html: str = Field(description="The description rendered as safe HTML.")
    instructors: list[PersonOut] = Field(description="The owner first, then co-instructors.")
    sections: list[OutlineSectionOut]
    viewer: ViewerOut | None = Field(description="null for anonymous callers.")


# --------------------------------------------------------------------------- authoring


class CourseIn(_In):
    title: Title
    summary: Summary = ""
    description: Description = ""
    level: Level = Level.BEGINNER
    language: Language = "en"
    tags: Tags = Field(default_factory=list)
    price_minor: Price = 0
    currency: Currency = "EUR"
    slug: Slug | None = Field(None, description="Generated from the title when left out.")
    cover_file: FileRef | None = Field(
        None, description="Storage key of the cover image (the files API will upload it)."
    )


class CoursePatchIn(_In):
    """Any subset of the course's fields; `summary`, `description` and `cover_file` may be
    null (cleared), the others may be left out but not null."""

    NOT_NULL: ClassVar[tuple[str, ...]] = (
        "title",
        "level",
        "language",
        "tags",
        "price_minor",
        "currency",
        "slug",
    )

    title: Title | None = None
    summary: Summary | None = None
    description: Description | None = None
    level: Level | None = None
    language: Language | None = None
    tags: Tags | None = None
    price_minor: Price | None = None
    currency: Currency | None = None
    slug: Slug | None = None
    cover_file: FileRef | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.NOT_NULL:
            raise ValueError("may be left out but not null")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> CoursePatchIn:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields sent, with null texts as empty strings."""
        values = {name: getattr(self, name) for name in self.model_fields_set}
        for name in ("summary", "description"):
            if name in values and values[name] is None:
                values[name] = ""
        return values


class CoursesQuery(BaseModel):
    status: CourseStatus | None = None
    limit: Limit = 20
    offset: Offset = 0


class CourseListItemOut(BaseModel):
    """A course as its authors see it in lists (no description, no outline)."""

    id: uuid.UUID
    slug: str
    title: str
    summary: str
    level: Level
    language: str
    tags: list[str]
    price_minor: int
    currency: str
    is_free: bool
    status: CourseStatus
    published_at: datetime | None
    owner_id: uuid.UUID
    instructors: list[PersonOut] = Field(description="The owner first, then co-instructors.")
    cover_file: str | None
    enrollment_count: int
    lesson_count: int
    total_duration_seconds: int
    created_at: datetime
    updated_at: datetime


class CoursesPage(BaseModel):
    items: list[CourseListItemOut]
    total: int
    limit: int
    offset: int


class CourseOut(CourseListItemOut):
    """A course as its authors see it: every field, the description and the outline."""

    description: str = Field(description="Markdown.")
    description_html: str = Field(description="The description rendered as safe HTML.")
    sections: list[OutlineSectionOut]


class InstructorsOut(BaseModel):
    instructors: list[PersonOut] = Field(description="The owner first, then co-instructors.")
