"""HTTP endpoints of the question bank and of quiz authoring: questions and their versions,
quizzes, their slots, publication and per-learner accommodations.

Everything here is for instructors and admins by role, then for the course's own instructors
(or admins) by the service (403 otherwise). Question bodies hold the right answers: these
endpoints are the only ones that ever return them. Every write runs in one unit of work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import BodyPartReader, web

from lms_live import keys
from lms_live.core.errors import (
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from lms_live.core.http import RouteTable, require_principal
from lms_live.core.uow import unit_of_work
from lms_live.courses.markdown import render
from lms_live.quizzes import bank, formats
from lms_live.quizzes.bank_schemas import (
    AccommodationIn,
    AccommodationOut,
    AccommodationPath,
    AccommodationsOut,
    BulkAccommodationIn,
    CoursePath,
    ExportQuery,
    FixedSlotIn,
    ImportFormat,
    ImportOut,
    ImportQuery,
    QuestionIn,
    QuestionListItemOut,
    QuestionOut,
    QuestionPatchIn,
    QuestionPath,
    QuestionsPage,
    QuestionsQuery,
    QuestionVersionOut,
    QuestionVersionPath,
    QuizIn,
    QuizOut,
    QuizPatchIn,
    QuizPath,
    QuizzesPage,
    QuizzesQuery,
    ReviewPolicy,
    SlotKind,
    SlotOut,
    SlotQuestionOut,
    SlotsIn,
    SlotsOut,
    VersionOut,
    VersionSummaryOut,
)
from lms_live.quizzes.models import GradingMethod, OverduePolicy, QuestionVersion
from lms_live.quizzes.spec import QuestionType

routes = RouteTable()
TAGS = ["quizzes"]
TEACHERS = ["instructor", "admin"]
MAX_IMPORT_BYTES = formats.MAX_TEXT_BYTES
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file
CHUNK = 64 * 1024
TEXT_TYPES = ("text/plain", "text/csv")
PARSERS: dict[ImportFormat, Callable[[str], list[formats.ImportedQuestion]]] = {
    ImportFormat.GIFT: formats.parse_gift,
    ImportFormat.AIKEN: formats.parse_aiken,
    ImportFormat.CSV: formats.parse_csv,
}


class MalformedUpload(BadRequest):
    code = "malformed_upload"
    message = "The multipart body could not be read."


class UploadMissing(ValidationFailed):
    code = "file_missing"
    message = "The multipart body has no `file` field."


# --------------------------------------------------------------------------- responses


def _version(version: QuestionVersion, *, used: bool) -> dict[str, Any]:
    return {
        "version": version.version,
        "type": QuestionType(version.type),
        "prompt": version.prompt,
        "prompt_html": render(version.prompt),
        "points": version.points,
        "general_feedback": version.general_feedback,
        "general_feedback_html": render(version.general_feedback),
        "image_file": version.image_file,
        "body": version.body,
        "created_at": version.created_at,
        "used": used,
    }


def _question(view: bank.QuestionView) -> QuestionOut:
    question = view.question
    return QuestionOut(
        id=question.id,
        course_id=question.course_id,
        title=question.title,
        tags=view.tags,
        archived=question.archived,
        current_version=question.current_version,
        created_by=question.created_by,
        created_at=question.created_at,
        updated_at=question.updated_at,
        version=VersionOut.model_validate(_version(view.current, used=view.current_used)),
        versions=[
            VersionSummaryOut(
                version=facts.version,
                type=QuestionType(facts.type),
                points=facts.points,
                created_at=facts.created_at,
                used=facts.used,
            )
            for facts in view.versions
        ],
    )


def _question_item(item: bank.QuestionItem) -> QuestionListItemOut:
    question = item.question
    return QuestionListItemOut(
        id=question.id,
        course_id=question.course_id,
        title=question.title,
        tags=item.tags,
        archived=question.archived,
        current_version=question.current_version,
        type=QuestionType(item.type),
        points=item.points,
        prompt_excerpt=item.excerpt,
        created_at=question.created_at,
        updated_at=question.updated_at,
    )


def _quiz(view: bank.QuizView) -> QuizOut:
    quiz = view.quiz
    return QuizOut(
        id=quiz.id,
        course_id=quiz.course_id,
        title=quiz.title,
        instructions=quiz.instructions,
        instructions_html=render(quiz.instructions),
        published=quiz.published,
        time_limit_seconds=quiz.time_limit_seconds,
        opens_at=quiz.opens_at,
        closes_at=quiz.closes_at,
        max_attempts=quiz.max_attempts,
        min_wait_seconds=quiz.min_wait_seconds,
        pass_percent=quiz.pass_percent,
        grading_method=GradingMethod(quiz.grading_method),
        shuffle_questions=quiz.shuffle_questions,
        shuffle_options=quiz.shuffle_options,
        review_policy=ReviewPolicy.model_validate(quiz.review_policy or {}),
        overdue_policy=OverduePolicy(quiz.overdue_policy),
        overdue_grace_seconds=quiz.overdue_grace_seconds,
        slot_count=view.slot_count,
        question_count=view.question_count,
        attempt_count=view.attempt_count,
        created_at=quiz.created_at,
        updated_at=quiz.updated_at,
    )


def _slots(view: bank.SlotsView) -> SlotsOut:
    slots = []
    for entry in view.slots:
        question = entry.question
        slots.append(
            SlotOut(
                position=entry.slot.position,
                kind=SlotKind.QUESTION if entry.slot.question_id is not None else SlotKind.POOL,
                question=None
                if question is None
                else SlotQuestionOut(
                    id=question.id,
                    title=question.title,
                    type=QuestionType(question.type),
                    points=question.points,
                    archived=question.archived,
                    current_version=question.current_version,
                ),
                pool_tag=entry.slot.pool_tag,
                pool_count=entry.slot.pool_count if entry.slot.pool_tag is not None else None,
                available=entry.available,
            )
        )
    return SlotsOut(quiz_id=view.quiz_id, slots=slots, question_count=view.question_count)


def _accommodation(view: bank.AccommodationView) -> AccommodationOut:
    a = view.accommodation
    return AccommodationOut(
        quiz_id=a.quiz_id,
        user_id=a.user_id,
        full_name=view.full_name,
        extra_seconds=a.extra_seconds,
        time_multiplier=a.time_multiplier,
        extra_attempts=a.extra_attempts,
        opens_at=a.opens_at,
        closes_at=a.closes_at,
        created_at=a.created_at,
        updated_at=a.updated_at,
    )


# --------------------------------------------------------------------------- questions


@routes.post(
    "/api/v1/courses/{course_id}/questions",
    summary="Add a question to a course's bank",
    tags=TAGS,
    path_model=CoursePath,
    body=QuestionIn,
    response=QuestionOut,
    status=201,
    roles=TEACHERS,
    operation_id="create_question",
)
async def create_question(request: web.Request, path: CoursePath, body: QuestionIn) -> QuestionOut:
    """`body` is the question's type-specific content with its right answers (`type` tells
    which); the question starts at version 1."""
    principal = require_principal(request)
    draft = bank.QuestionDraft(
        title=body.title,
        prompt=body.prompt,
        points=body.points,
        general_feedback=body.general_feedback,
        image_file=body.image_file,
        tags=body.tags,
        body=body.body,
    )
    async with unit_of_work(request.app) as work:
        view = await bank.create_question(
            work.session, principal=principal, course_id=path.course_id, draft=draft
        )
        return _question(view)


@routes.get(
    "/api/v1/courses/{course_id}/questions",
    summary="Find questions in a course's bank",
    tags=TAGS,
    path_model=CoursePath,
    query=QuestionsQuery,
    response=QuestionsPage,
    roles=TEACHERS,
    operation_id="list_questions",
)
async def list_questions(
    request: web.Request, path: CoursePath, query: QuestionsQuery
) -> QuestionsPage:
    """Newest first; `tag`, `type` (of the current version) and `q` (words of the title or
    prompt) narrow the list; archived questions only with `include_archived=true`."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        page = await bank.list_questions(
            session,
            principal=principal,
            course_id=path.course_id,
            tag=query.tag,
            type=query.type.value if query.type is not None else None,
            search=query.q,
            include_archived=query.include_archived,
            limit=query.limit,
            offset=query.offset,
        )
        return QuestionsPage(
            items=[_question_item(item) for item in page.items],
            total=page.total,
            limit=query.limit,
            offset=query.offset,
        )


@routes.get(
    "/api/v1/questions/{question_id}",
    summary="A question with its current version",
    tags=TAGS,
    path_model=QuestionPath,
    response=QuestionOut,
    roles=TEACHERS,
    operation_id="get_question",
)
async def get_question(request: web.Request, path: QuestionPath) -> QuestionOut:
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        view = await bank.get_question(session, principal=principal, question_id=path.question_id)
        return _question(view)


@routes.patch(
    "/api/v1/questions/{question_id}",
    summary="Change a question",
    tags=TAGS,
    path_model=QuestionPath,
    body=QuestionPatchIn,
    response=QuestionOut,
    roles=TEACHERS,
    errors=[409],
    operation_id="update_question",
)
async def update_question(
    request: web.Request, path: QuestionPath, body: QuestionPatchIn
) -> QuestionOut:
    """`title`, `tags` and `archived` change the question itself. The content (`prompt`,
    `points`, `general_feedback`, `image_file`, `body`) is edited in place while no attempt
    shows the current version; once one does, the edit becomes a new version and attempts
    keep the one they have. Archiving or dropping a tag that a published quiz needs answers
    409 `question_needed_by_quiz`."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        view = await bank.update_question(
            work.session, principal=principal, question_id=path.question_id, changes=body.changes()
        )
        return _question(view)


@routes.delete(
    "/api/v1/questions/{question_id}",
    summary="Archive a question",
    tags=TAGS,
    path_model=QuestionPath,
    roles=TEACHERS,
    errors=[409],
    operation_id="archive_question",
)
async def archive_question(request: web.Request, path: QuestionPath) -> None:
    """Questions are never deleted (attempts and statistics refer to them): archived, they are
    no longer drawn from pools (PATCH `archived: false` restores one). 409
    `question_needed_by_quiz` when a published quiz could no longer be drawn without it."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        await bank.archive_question(work.session, principal=principal, question_id=path.question_id)


@routes.get(
    "/api/v1/questions/{question_id}/versions/{version}",
    summary="One version of a question",
    tags=TAGS,
    path_model=QuestionVersionPath,
    response=QuestionVersionOut,
    roles=TEACHERS,
    operation_id="get_question_version",
)
async def get_question_version(
    request: web.Request, path: QuestionVersionPath
) -> QuestionVersionOut:
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        version, used, current = await bank.get_question_version(
            session, principal=principal, question_id=path.question_id, version=path.version
        )
        return QuestionVersionOut.model_validate(
            {**_version(version, used=used), "question_id": version.question_id, "current": current}
        )


# --------------------------------------------------------------------------- quizzes


def _quiz_fields(body: QuizIn) -> dict[str, Any]:
    values = body.model_dump(exclude={"review_policy", "grading_method", "overdue_policy"})
    values["review_policy"] = body.review_policy.model_dump(mode="json")
    values["grading_method"] = body.grading_method.value
    values["overdue_policy"] = body.overdue_policy.value
    return values


@routes.post(
    "/api/v1/courses/{course_id}/quizzes",
    summary="Create a quiz",
    tags=TAGS,
    path_model=CoursePath,
    body=QuizIn,
    response=QuizOut,
    status=201,
    roles=TEACHERS,
    operation_id="create_quiz",
)
async def create_quiz(request: web.Request, path: CoursePath, body: QuizIn) -> QuizOut:
    """Unpublished and without questions: PUT its slots, then publish it. `review_policy`
    says when learners see their answers, correctness, points, feedback and the right answers
    (never / during / after_submit / after_close; only `answers` may be `during`)."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        view = await bank.create_quiz(
            work.session, principal=principal, course_id=path.course_id, fields=_quiz_fields(body)
        )
        return _quiz(view)


@routes.get(
    "/api/v1/courses/{course_id}/quizzes",
    summary="A course's quizzes",
    tags=TAGS,
    path_model=CoursePath,
    query=QuizzesQuery,
    response=QuizzesPage,
    roles=TEACHERS,
    operation_id="list_quizzes",
)
async def list_quizzes(request: web.Request, path: CoursePath, query: QuizzesQuery) -> QuizzesPage:
    """In creation order, published or not."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        page = await bank.list_quizzes(
            session,
            principal=principal,
            course_id=path.course_id,
            limit=query.limit,
            offset=query.offset,
        )
        return QuizzesPage(
            items=[_quiz(view) for view in page.items],
            total=page.total,
            limit=query.limit,
            offset=query.offset,
        )


@routes.get(
    "/api/v1/quizzes/{quiz_id}",
    summary="A quiz as its authors see it",
    tags=TAGS,
    path_model=QuizPath,
    response=QuizOut,
    roles=TEACHERS,
    operation_id="get_quiz",
)
async def get_quiz(request: web.Request, path: QuizPath) -> QuizOut:
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        return _quiz(await bank.get_quiz(session, principal=principal, quiz_id=path.quiz_id))


@routes.patch(
    "/api/v1/quizzes/{quiz_id}",
    summary="Change a quiz's settings",
    tags=TAGS,
    path_model=QuizPath,
    body=QuizPatchIn,
    response=QuizOut,
    roles=TEACHERS,
    operation_id="update_quiz",
)
async def update_quiz(request: web.Request, path: QuizPath, body: QuizPatchIn) -> QuizOut:
    """Any subset of the fields; `review_policy` changes only the keys sent. The window must
    still close after it opens (422 `quiz_window_invalid`). Attempts already started keep
    their deadline (accommodations move it)."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        view = await bank.update_quiz(
            work.session, principal=principal, quiz_id=path.quiz_id, changes=body.changes()
        )
        return _quiz(view)


@routes.delete(
    "/api/v1/quizzes/{quiz_id}",
    summary="Delete a quiz",
    tags=TAGS,
    path_model=QuizPath,
    roles=TEACHERS,
    errors=[409],
    operation_id="delete_quiz",
)
async def delete_quiz(request: web.Request, path: QuizPath) -> None:
    """Only a quiz nobody attempted (409 `quiz_has_attempts`: unpublish it instead) and no
    lesson shows (409 `quiz_used_by_lesson`)."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        await bank.delete_quiz(work.session, principal=principal, quiz_id=path.quiz_id)


@routes.post(
    "/api/v1/quizzes/{quiz_id}/publish",
    summary="Publish a quiz",
    tags=TAGS,
    path_model=QuizPath,
    response=QuizOut,
    roles=TEACHERS,
    operation_id="publish_quiz",
)
async def publish_quiz(request: web.Request, path: QuizPath) -> QuizOut:
    """Needs at least one slot, no archived fixed question and enough distinct non-archived
    questions for every pool; otherwise 422 `quiz_not_ready` with every problem in
    `details`."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        view = await bank.publish_quiz(work.session, principal=principal, quiz_id=path.quiz_id)
        return _quiz(view)


@routes.post(
    "/api/v1/quizzes/{quiz_id}/unpublish",
    summary="Unpublish a quiz",
    tags=TAGS,
    path_model=QuizPath,
    response=QuizOut,
    roles=TEACHERS,
    operation_id="unpublish_quiz",
)
async def unpublish_quiz(request: web.Request, path: QuizPath) -> QuizOut:
    """No new attempts start; attempts in progress run to their deadline."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        view = await bank.unpublish_quiz(work.session, principal=principal, quiz_id=path.quiz_id)
        return _quiz(view)


# --------------------------------------------------------------------------- slots


@routes.get(
    "/api/v1/quizzes/{quiz_id}/slots",
    summary="A quiz's questions and pools",
    tags=TAGS,
    path_model=QuizPath,
    response=SlotsOut,
    roles=TEACHERS,
    operation_id="get_quiz_slots",
)
async def get_quiz_slots(request: web.Request, path: QuizPath) -> SlotsOut:
    """In order; a fixed slot with its question's title, type and points, a pool with how
    many questions it can draw from now."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        return _slots(await bank.get_slots(session, principal=principal, quiz_id=path.quiz_id))


@routes.put(
    "/api/v1/quizzes/{quiz_id}/slots",
    summary="Replace a quiz's questions and pools",
    tags=TAGS,
    path_model=QuizPath,
    body=SlotsIn,
    response=SlotsOut,
    roles=TEACHERS,
    operation_id="replace_quiz_slots",
)
async def replace_quiz_slots(request: web.Request, path: QuizPath, body: SlotsIn) -> SlotsOut:
    """Each slot is `{question_id}` (a question of the same course, once: else 422
    `slot_question_invalid`) or `{pool_tag, pool_count}` (drawn per attempt, distinct from
    the other slots' questions). At most 200 slots and 500 questions per attempt (422
    `too_many_questions`). A published quiz must stay publishable (422 `quiz_not_ready`).
    Attempts already started keep their questions."""
    principal = require_principal(request)
    slots = [
        bank.SlotDraft(question_id=slot.question_id)
        if isinstance(slot, FixedSlotIn)
        else bank.SlotDraft(pool_tag=slot.pool_tag, pool_count=slot.pool_count)
        for slot in body.slots
    ]
    async with unit_of_work(request.app) as work:
        view = await bank.replace_slots(
            work.session, principal=principal, quiz_id=path.quiz_id, slots=slots
        )
        return _slots(view)


# --------------------------------------------------------------------------- accommodations


@routes.get(
    "/api/v1/quizzes/{quiz_id}/accommodations",
    summary="A quiz's accommodations",
    tags=TAGS,
    path_model=QuizPath,
    response=AccommodationsOut,
    roles=TEACHERS,
    operation_id="list_accommodations",
)
async def list_accommodations(request: web.Request, path: QuizPath) -> AccommodationsOut:
    """By learner name."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        views = await bank.list_accommodations(session, principal=principal, quiz_id=path.quiz_id)
        return AccommodationsOut(items=[_accommodation(view) for view in views])


@routes.put(
    "/api/v1/quizzes/{quiz_id}/accommodations",
    summary="Give a group of learners the same accommodation",
    tags=TAGS,
    path_model=QuizPath,
    body=BulkAccommodationIn,
    response=AccommodationsOut,
    roles=TEACHERS,
    operation_id="set_accommodations",
)
async def set_accommodations(
    request: web.Request, path: QuizPath, body: BulkAccommodationIn
) -> AccommodationsOut:
    """Each learner's accommodation is replaced (all or none: every one must be enrolled in
    the course, else 422 `learner_not_enrolled` listing who is not); their attempts in
    progress get the new deadline at once."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        views = await bank.set_accommodations(
            work.session,
            principal=principal,
            quiz_id=path.quiz_id,
            user_ids=body.user_ids,
            fields=body.fields(),
        )
        return AccommodationsOut(items=[_accommodation(view) for view in views])


@routes.put(
    "/api/v1/quizzes/{quiz_id}/accommodations/{user_id}",
    summary="Set one learner's accommodation",
    tags=TAGS,
    path_model=AccommodationPath,
    body=AccommodationIn,
    response=AccommodationOut,
    roles=TEACHERS,
    operation_id="set_accommodation",
)
async def set_accommodation(
    request: web.Request, path: AccommodationPath, body: AccommodationIn
) -> AccommodationOut:
    """Extra seconds and a multiplier on the time limit (limit x multiplier + extra), extra
    attempts, and their own window dates. Replaces what they had; the learner must be
    enrolled (422 `learner_not_enrolled`); an attempt in progress gets the new deadline at
    once."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        [view] = await bank.set_accommodations(
            work.session,
            principal=principal,
            quiz_id=path.quiz_id,
            user_ids=[path.user_id],
            fields=body.fields(),
            one=True,
        )
        return _accommodation(view)


@routes.delete(
    "/api/v1/quizzes/{quiz_id}/accommodations/{user_id}",
    summary="Remove a learner's accommodation",
    tags=TAGS,
    path_model=AccommodationPath,
    roles=TEACHERS,
    operation_id="delete_accommodation",
)
async def delete_accommodation(request: web.Request, path: AccommodationPath) -> None:
    """404 `accommodation_not_found` when they have none; an attempt in progress goes back to
    the quiz's own deadline."""
    principal = require_principal(request)
    async with unit_of_work(request.app) as work:
        await bank.delete_accommodation(
            work.session, principal=principal, quiz_id=path.quiz_id, user_id=path.user_id
        )


# --------------------------------------------------------------------------- import / export


async def _capped(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The chunks joined, or 413 once they pass `limit` bytes (never buffering more)."""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise PayloadTooLarge(details=[{"limit_bytes": limit}])
    return bytes(data)


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


async def _upload(request: web.Request) -> bytes:
    """The uploaded file: a text/plain (or text/csv) body, or the `file` field of a multipart
    body; at most MAX_IMPORT_BYTES. The app's own body limit is for JSON, so the stream is
    read here with this one."""
    limit = MAX_IMPORT_BYTES
    size = request.content_length
    if request.content_type in TEXT_TYPES:
        if size is not None and size > limit:
            raise PayloadTooLarge(details=[{"limit_bytes": limit}])
        return await _capped(request.content.iter_chunked(CHUNK), limit)
    if request.content_type == "multipart/form-data":
        if size is not None and size > limit + MULTIPART_SLACK:
            raise PayloadTooLarge(details=[{"limit_bytes": limit}])
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and part.name == "file":
                    return await _capped(_part_chunks(part), limit)
                await part.release()
        except (ValueError, AssertionError) as exc:
            raise MalformedUpload() from exc
        raise UploadMissing()
    raise UnsupportedMediaType(
        "Send the file as a text/plain (or text/csv) body, or as the `file` field of a "
        "multipart/form-data body."
    )


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise bank.ImportInvalid(details=[{"line": line, "reason": "not UTF-8 text"}]) from None


@routes.post(
    "/api/v1/courses/{course_id}/questions/import",
    summary="Import questions from a GIFT, Aiken or CSV file",
    tags=TAGS,
    path_model=CoursePath,
    query=ImportQuery,
    response=ImportOut,
    status=201,
    roles=TEACHERS,
    errors=[413, 415],
    operation_id="import_questions",
)
async def import_questions(request: web.Request, path: CoursePath, query: ImportQuery) -> ImportOut:
    """The file (UTF-8, at most 2 MB) is the text/plain body, or the `file` field of a
    multipart/form-data body. All or nothing: a file with any bad question answers 422
    `import_invalid` with `details: [{line, reason}]` and imports none. Formats: see
    `lms_live/quizzes/formats.py` (GIFT as Moodle writes it, Aiken, and our CSV columns
    `type,title,prompt,points,tags,options,answer,feedback`)."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        await bank.teachable_course(session, principal=principal, course_id=path.course_id)
    text = _text(await _upload(request))
    try:
        # Pure CPU work on up to 2 MB: off the event loop.
        parsed = await asyncio.to_thread(PARSERS[query.format], text)
    except formats.FormatError as exc:
        raise bank.ImportInvalid(details=[{"line": exc.line, "reason": exc.reason}]) from None
    if not parsed:
        raise bank.ImportInvalid(details=[{"line": 0, "reason": "the file holds no question"}])
    async with unit_of_work(request.app) as work:
        questions = await bank.import_questions(
            work.session, principal=principal, course_id=path.course_id, questions=parsed
        )
        return ImportOut(imported=len(questions), question_ids=[q.id for q in questions])


@routes.get(
    "/api/v1/courses/{course_id}/questions/export.csv",
    summary="Export a course's questions as CSV",
    tags=TAGS,
    path_model=CoursePath,
    query=ExportQuery,
    roles=TEACHERS,
    media_type="text/csv",
    operation_id="export_questions",
)
async def export_questions(
    request: web.Request, path: CoursePath, query: ExportQuery
) -> web.Response:
    """The current version of every question (oldest first; archived ones with
    `include_archived=true`, one tag's with `tag`), in the CSV format the import reads back.
    Image references are not exported."""
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        questions = await bank.export_questions(
            session,
            principal=principal,
            course_id=path.course_id,
            tag=query.tag,
            include_archived=query.include_archived,
        )
    text = await asyncio.to_thread(formats.export_csv, questions)
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="questions-{path.course_id}.csv"'},
    )
