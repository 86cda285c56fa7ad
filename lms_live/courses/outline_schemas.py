"""Requests and responses of course outlines: sections, lessons, their order, lesson reading.

Which content fields a lesson kind takes is checked by the service (`outline.check_content`)
against the resulting lesson, so creating and patching share one rule; the shapes and bounds of
each field are checked here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from lms_live.courses.models import LessonKind
from lms_live.courses.schemas import FileRef, Title, no_nul

MAX_POSITION = 10_000
# Outline bodies stay well under MAX_BODY_BYTES (1 MiB by default) even one item over the
# limit, so an oversized list is a 422 rather than a 413.
MAX_SECTIONS = 200
MAX_LESSONS_PER_SECTION = 500
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host, in its normalised form."""
    try:
        url = _HTTP_URL.validate_python(value)
    except ValidationError as exc:
        raise ValueError("must be an absolute http or https URL") from exc
    normalised = str(url)
    if len(normalised) > 1000:
        raise ValueError("must be at most 1000 characters")
    return normalised


MarkdownBody = Annotated[str, Field(max_length=100_000), AfterValidator(no_nul)]
VideoUrl = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_http_url)]
Duration = Annotated[StrictInt, Field(ge=1, le=86_400, description="Length in seconds.")]
Position = Annotated[
    StrictInt,
    Field(ge=0, le=MAX_POSITION, description="0-based place among its siblings."),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Patch(_In):
    """A partial update: a field left out is unchanged; `null` only where a field may be empty."""

    NOT_NULL: ClassVar[tuple[str, ...]] = ()

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in cls.NOT_NULL:
            raise ValueError("may be left out but not null")
        return value


class CoursePath(BaseModel):
    course_id: uuid.UUID


class SectionPath(BaseModel):
    section_id: uuid.UUID


class LessonPath(BaseModel):
    lesson_id: uuid.UUID


class SectionIn(_In):
    title: Title
    position: Position | None = Field(
        None, description="Where to insert (0..number of sections); at the end by default."
    )


class SectionPatchIn(_Patch):
    NOT_NULL = ("title", "position")

    title: Title | None = None
    position: Position | None = Field(
        None, description="Move the section to this place (0..number of sections - 1)."
    )


class LessonIn(_In):
    """A new lesson. `body` is for text lessons, `video_url` for (and required by) video
    lessons, `file_ref` for file lessons, `quiz_id` for quiz lessons; `duration_seconds` for
    any kind."""

    title: Title
    kind: LessonKind
    body: MarkdownBody | None = Field(None, description="Markdown (text lessons).")
    video_url: VideoUrl | None = None
    duration_seconds: Duration | None = None
    file_ref: FileRef | None = Field(None, description="Storage key of the file.")
    quiz_id: uuid.UUID | None = None
    is_preview: StrictBool = Field(
        False, description="Readable by anyone signed in while the course is published."
    )
    is_required: StrictBool = Field(True, description="Counts towards course progress.")
    position: Position | None = Field(
        None, description="Where to insert (0..number of lessons); at the end by default."
    )


class LessonPatchIn(_Patch):
    """Any subset of a lesson's fields; `kind` may be sent but not changed. `position` moves
    the lesson within its section (moving between sections: PUT the outline)."""

    NOT_NULL = ("title", "kind", "is_preview", "is_required", "position")

    title: Title | None = None
    kind: LessonKind | None = None
    body: MarkdownBody | None = None
    video_url: VideoUrl | None = None
    duration_seconds: Duration | None = None
    file_ref: FileRef | None = None
    quiz_id: uuid.UUID | None = None
    is_preview: StrictBool | None = None
    is_required: StrictBool | None = None
    position: Position | None = None


class OutlineSectionIn(_In):
    id: uuid.UUID
    lessons: list[uuid.UUID] = Field(
        max_length=MAX_LESSONS_PER_SECTION, description="Every lesson of this section, in order."
    )


class OutlineIn(_In):
    """The whole new order: every section of the course once, every lesson once."""

    sections: list[OutlineSectionIn] = Field(max_length=MAX_SECTIONS)


class AuthoredLessonOut(BaseModel):
    """A lesson as its authors see it."""

    id: uuid.UUID
    course_id: uuid.UUID
    section_id: uuid.UUID
    title: str
    kind: LessonKind
    position: int
    body: str
    video_url: str | None
    duration_seconds: int | None
    file_ref: str | None
    quiz_id: uuid.UUID | None
    is_preview: bool
    is_required: bool
    created_at: datetime
    updated_at: datetime


class AuthoredSectionOut(BaseModel):
    id: uuid.UUID
    course_id: uuid.UUID
    title: str
    position: int
    lessons: list[AuthoredLessonOut]


class OutlineOut(BaseModel):
    course_id: uuid.UUID
    sections: list[AuthoredSectionOut]


class LessonContentOut(BaseModel):
    """A lesson as its readers see it; `body_html` is the Markdown body rendered safely."""

    id: uuid.UUID
    course_id: uuid.UUID
    section_id: uuid.UUID
    title: str
    kind: LessonKind
    position: int
    body: str
    body_html: str
    video_url: str | None
    duration_seconds: int | None
    file_ref: str | None
    quiz_id: uuid.UUID | None
    is_preview: bool
    is_required: bool
