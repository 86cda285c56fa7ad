"""Item analysis of a quiz and the per-learner results export, for the course's instructors.

Two layers: `load_results` reads everything in a fixed number of queries (the quiz, its course
for the teacher check, its slots, the submitted attempts with their learners, every attempt
question with its answer, and each question version shown), whatever the number of attempts;
the functions below it are pure statistics over that snapshot.

Conventions kept here:
- only SUBMITTED attempts count (in progress and abandoned ones never do); `first` / `last`
  keep each learner's lowest / highest numbered submitted attempt;
- a question is followed across its versions by its question id (option ids are stable across
  versions, see spec.py); its options, texts and right answers are read from the newest
  version seen, older versions adding only the options they alone had;
- an item's score is its answer's stored score (0 when unanswered); an essay still waiting for
  its grade is answered but pending: left out of facility and discrimination, empty in the CSV;
- questions come in the quiz's slot order (fixed slots, listed even before anyone saw them,
  described by their current version), then drawn ones by the first place they were shown,
  then title: the CSV has one column per question in that order, so a shuffled or pooled
  quiz still puts one question's scores in one column;
- the CSV neutralises spreadsheet formulas (OWASP CSV injection): a text cell starting with
  = + - @, a tab or a carriage return gets a leading single quote.
"""

from __future__ import annotations

import csv
import enum
import io
import math
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lms_live.auth.models import User
from lms_live.core.security import Principal
from lms_live.courses.access import ensure_teaches, get_course
from lms_live.quizzes.attempts import effective_score, get_quiz, spec_of
from lms_live.quizzes.grading import GradeState
from lms_live.quizzes.models import (
    Answer,
    Attempt,
    AttemptQuestion,
    AttemptStatus,
    Question,
    QuestionVersion,
    Quiz,
    QuizSlot,
)
from lms_live.quizzes.spec import MultipleChoiceSpec, QuestionSpec, SingleChoiceSpec, TrueFalseSpec

DECIMALS = 4
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class AttemptsFilter(enum.StrEnum):
    """Which submitted attempts of each learner count."""

    ALL = "all"
    FIRST = "first"
    LAST = "last"


# --------------------------------------------------------------------------- the snapshot


@dataclass(frozen=True, slots=True)
class TakenAttempt:
    """One submitted attempt and its learner."""

    id: uuid.UUID
    user_id: uuid.UUID
    number: int
    name: str
    email: str
    started_at: datetime
    submitted_at: datetime | None
    submitted_by: str | None
    score: float | None  # the effective one (an override counts)
    max_score: float
    percent: float | None
    passed: bool | None


@dataclass(frozen=True, slots=True)
class ShownVersion:
    """A question version some attempt showed."""

    question_id: uuid.UUID
    version: int
    title: str
    spec: QuestionSpec


@dataclass(frozen=True, slots=True)
class Item:
    """One attempt question and its answer."""

    attempt_id: uuid.UUID
    position: int
    version_id: uuid.UUID
    points: float
    score: float  # 0 when unanswered
    answered: bool
    pending: bool  # an essay waiting for its grade
    response: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Results:
    """Everything the analysis and the export read, loaded once."""

    quiz: Quiz
    attempts: list[TakenAttempt]
    versions: dict[uuid.UUID, ShownVersion]
    items: list[Item]
    slot_positions: dict[uuid.UUID, int]  # question id -> its fixed slot's position
    current: dict[uuid.UUID, ShownVersion]  # fixed slots' questions, current versions


async def load_results(
    session: AsyncSession, *, principal: Principal, quiz_id: uuid.UUID, which: AttemptsFilter
) -> Results:
    """The quiz's submitted attempts (filtered by `which`) with their items, for the course's
    instructors and admins (404 quiz_not_found, 403 forbidden)."""
    quiz = await get_quiz(session, quiz_id=quiz_id)
    course = await get_course(session, course_id=quiz.course_id)
    await ensure_teaches(session, principal=principal, course=course)
    slots = await session.execute(
        select(QuizSlot.position, QuestionVersion, Question.title)
        .join(Question, Question.id == QuizSlot.question_id)
        .join(
            QuestionVersion,
            (QuestionVersion.question_id == Question.id)
            & (QuestionVersion.version == Question.current_version),
        )
        .where(QuizSlot.quiz_id == quiz.id)
    )
    slot_positions: dict[uuid.UUID, int] = {}
    current: dict[uuid.UUID, ShownVersion] = {}
    for position, version, title in slots.all():
        slot_positions[version.question_id] = position
        current[version.question_id] = _shown(version, title)
    submitted = (Attempt.quiz_id == quiz.id, Attempt.status == AttemptStatus.SUBMITTED.value)
    rows = await session.execute(
        select(Attempt, User.full_name, User.email)
        .join(User, User.id == Attempt.user_id)
        .where(*submitted)
    )
    taken = choose_attempts(
        [
            TakenAttempt(
                id=a.id,
                user_id=a.user_id,
                number=a.number,
                name=name,
                email=email,
                started_at=a.started_at,
                submitted_at=a.submitted_at,
                submitted_by=a.submitted_by,
                score=effective_score(a),
                max_score=a.max_score,
                percent=a.percent,
                passed=a.passed,
            )
            for a, name, email in rows.all()
        ],
        which,
    )
    kept = {a.id for a in taken}
    # Rows of plain columns (no version body per row); each version shown is read once.
    shown = await session.execute(
        select(
            AttemptQuestion.attempt_id,
            AttemptQuestion.position,
            AttemptQuestion.question_version_id,
            AttemptQuestion.points,
            Answer.score,
            Answer.state,
            Answer.response,
        )
        .join(Attempt, Attempt.id == AttemptQuestion.attempt_id)
        .outerjoin(Answer, Answer.attempt_question_id == AttemptQuestion.id)
        .where(*submitted)
    )
    items = [_item(*row) for row in shown.all() if row[0] in kept]
    used = await session.execute(
        select(QuestionVersion, Question.title)
        .join(Question, Question.id == QuestionVersion.question_id)
        .where(
            QuestionVersion.id.in_(
                select(AttemptQuestion.question_version_id)
                .join(Attempt, Attempt.id == AttemptQuestion.attempt_id)
                .where(*submitted)
            )
        )
    )
    versions = {version.id: _shown(version, title) for version, title in used.all()}
    return Results(quiz, taken, versions, items, slot_positions, current)


def _shown(version: QuestionVersion, title: str) -> ShownVersion:
    return ShownVersion(version.question_id, version.version, title, spec_of(version))


def _item(
    attempt_id: uuid.UUID,
    position: int,
    version_id: uuid.UUID,
    points: float,
    score: float | None,
    state: str | None,
    response: dict[str, Any] | None,
) -> Item:
    """An attempt question with its answer's columns (all None when never answered)."""
    answered = response is not None and state != GradeState.UNANSWERED
    return Item(
        attempt_id=attempt_id,
        position=position,
        version_id=version_id,
        points=points,
        score=score or 0.0,
        answered=answered,
        pending=state == GradeState.NEEDS_GRADING,
        response=response if answered else None,
    )


def choose_attempts(attempts: Iterable[TakenAttempt], which: AttemptsFilter) -> list[TakenAttempt]:
    """All attempts, or each learner's first or last one (by attempt number)."""
    chosen = list(attempts)
    if which != AttemptsFilter.ALL:
        best: dict[uuid.UUID, TakenAttempt] = {}
        for attempt in chosen:
            held = best.get(attempt.user_id)
            later = held is None or attempt.number > held.number
            if held is None or later == (which == AttemptsFilter.LAST):
                best[attempt.user_id] = attempt
        chosen = list(best.values())
    return sorted(chosen, key=lambda a: (a.name.casefold(), a.email.casefold(), a.number, a.id))


# --------------------------------------------------------------------------- statistics


def rounded(value: float | None) -> float | None:
    """A statistic as reported (4 decimals), None kept."""
    return None if value is None else round(value, DECIMALS)


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean, None for no values."""
    return math.fsum(values) / len(values) if values else None


def median(values: Sequence[float]) -> float | None:
    """The median, None for no values."""
    return float(statistics.median(values)) if values else None


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's correlation of paired values; None for fewer than 2 pairs or a constant side."""
    n = len(xs)
    if n != len(ys):
        raise ValueError("pearson needs paired values")
    if n < 2:
        return None
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    dx = [x - mx for x in xs]
    dy = [y - my for y in ys]
    vx = math.fsum(d * d for d in dx)
    vy = math.fsum(d * d for d in dy)
    # Scores are sums of 4-decimal values: anything this small is float noise around zero.
    if vx <= 1e-12 or vy <= 1e-12:
        return None
    r = math.fsum(a * b for a, b in zip(dx, dy, strict=True)) / math.sqrt(vx * vy)
    return min(1.0, max(-1.0, r))


@dataclass(frozen=True, slots=True)
class OptionCount:
    id: str
    text: str
    correct: bool
    count: int
    share: float | None  # of the answered attempts (choices of a multiple choice may add up > 1)


@dataclass(frozen=True, slots=True)
class TrueFalseCount:
    true: int
    false: int
    right_answer: bool


@dataclass(frozen=True, slots=True)
class QuestionAnalysis:
    question_id: uuid.UUID
    title: str
    type: str
    versions: list[int]
    attempts: int
    answered: int
    pending: int
    facility: float | None
    discrimination: float | None
    options: list[OptionCount] | None
    true_false: TrueFalseCount | None


@dataclass(frozen=True, slots=True)
class QuizAnalysis:
    attempts: int
    learners: int
    mean_percent: float | None
    median_percent: float | None
    pass_rate: float | None
    questions: list[QuestionAnalysis] = field(default_factory=list)


def question_order(results: Results) -> list[uuid.UUID]:
    """Question ids in reporting order: fixed slots first, then by first place shown, title."""
    first_place: dict[uuid.UUID, int] = {}
    titles: dict[uuid.UUID, str] = {}
    for item in results.items:
        version = results.versions[item.version_id]
        qid = version.question_id
        first_place[qid] = min(first_place.get(qid, item.position), item.position)
        titles.setdefault(qid, version.title)
    for qid, version in results.current.items():
        first_place.setdefault(qid, results.slot_positions[qid])
        titles[qid] = version.title  # the current title, where there is one

    def key(qid: uuid.UUID) -> tuple[int, int, str, str]:
        slot = results.slot_positions.get(qid)
        if slot is not None:
            return (0, slot, titles[qid], str(qid))
        return (1, first_place[qid], titles[qid].casefold(), str(qid))

    return sorted(first_place, key=key)


def analyse(results: Results) -> QuizAnalysis:
    """Quiz-level figures and, per question, facility, discrimination and answer spread."""
    attempts = results.attempts
    percents = [a.percent for a in attempts if a.percent is not None]
    by_question: dict[uuid.UUID, list[Item]] = defaultdict(list)
    totals: dict[uuid.UUID, float] = defaultdict(float)
    for item in results.items:
        by_question[results.versions[item.version_id].question_id].append(item)
        totals[item.attempt_id] += item.score
    return QuizAnalysis(
        attempts=len(attempts),
        learners=len({a.user_id for a in attempts}),
        mean_percent=rounded(mean(percents)),
        median_percent=rounded(median(percents)),
        pass_rate=rounded(mean([1.0 if a.passed else 0.0 for a in attempts])),
        questions=[
            analyse_question(
                by_question.get(qid, []), results.versions, totals, results.current.get(qid)
            )
            for qid in question_order(results)
        ],
    )


def _share(item: Item) -> float:
    return item.score / item.points if item.points > 0 else 0.0


def analyse_question(
    items: Sequence[Item],
    versions: dict[uuid.UUID, ShownVersion],
    totals: dict[uuid.UUID, float],
    current: ShownVersion | None = None,
) -> QuestionAnalysis:
    """One question's figures over the items showing it (`totals`: each attempt's item sum;
    `current`: its current version, which describes a question no attempt showed yet)."""
    shown = {i.version_id: versions[i.version_id] for i in items}
    seen = sorted(shown.values(), key=lambda v: v.version, reverse=True)
    newest = seen[0] if seen else current
    if newest is None:
        raise ValueError("a question nobody saw needs its current version")
    graded = [i for i in items if not i.pending and i.points > 0]
    item_shares = [_share(i) for i in graded]
    rests = [totals[i.attempt_id] - i.score for i in graded]
    answered = [i for i in items if i.answered]
    return QuestionAnalysis(
        question_id=newest.question_id,
        title=newest.title,
        type=newest.spec.type.value,
        versions=sorted(v.version for v in seen),
        attempts=len(items),
        answered=len(answered),
        pending=sum(1 for i in items if i.pending),
        facility=rounded(mean(item_shares)),
        discrimination=rounded(pearson(item_shares, rests)),
        options=option_counts(answered, versions, [v.spec for v in seen] or [newest.spec]),
        true_false=true_false_counts(answered, versions, newest.spec),
    )


def option_counts(
    answered: Sequence[Item],
    versions: dict[uuid.UUID, ShownVersion],
    specs: Sequence[QuestionSpec],
) -> list[OptionCount] | None:
    """How often each option was chosen (choice types; None otherwise). `specs` newest first:
    the newest version's options lead, and give each option's text and correctness."""
    if not isinstance(specs[0], SingleChoiceSpec | MultipleChoiceSpec):
        return None
    options: dict[str, tuple[str, bool]] = {}
    for spec in specs:
        if isinstance(spec, SingleChoiceSpec | MultipleChoiceSpec):
            for option in spec.options:
                options.setdefault(option.id, (option.text, option.correct))
    counts: dict[str, int] = dict.fromkeys(options, 0)
    for item in answered:
        for chosen in _chosen(versions[item.version_id].spec, item.response):
            if chosen in counts:
                counts[chosen] += 1
    total = len(answered)
    return [
        OptionCount(
            id=id_,
            text=text,
            correct=correct,
            count=counts[id_],
            share=rounded(counts[id_] / total) if total else None,
        )
        for id_, (text, correct) in options.items()
    ]


def _chosen(spec: QuestionSpec, response: dict[str, Any] | None) -> list[str]:
    if response is None:
        return []
    if isinstance(spec, SingleChoiceSpec) and isinstance(response.get("choice"), str):
        return [response["choice"]]
    choices = response.get("choices")
    if isinstance(spec, MultipleChoiceSpec) and isinstance(choices, list):
        return [c for c in dict.fromkeys(choices) if isinstance(c, str)]
    return []


def true_false_counts(
    answered: Sequence[Item], versions: dict[uuid.UUID, ShownVersion], newest: QuestionSpec
) -> TrueFalseCount | None:
    """How many answered true and false (true/false questions; None otherwise)."""
    if not isinstance(newest, TrueFalseSpec):
        return None
    values = [
        item.response.get("value")
        for item in answered
        if item.response is not None and isinstance(versions[item.version_id].spec, TrueFalseSpec)
    ]
    return TrueFalseCount(
        true=sum(1 for v in values if v is True),
        false=sum(1 for v in values if v is False),
        right_answer=newest.answer,
    )


# --------------------------------------------------------------------------- the export


def neutralised(cell: str) -> str:
    """A text cell a spreadsheet will not run as a formula (OWASP CSV injection)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def number(value: float | None) -> str:
    """A score as written in the CSV: up to 4 decimals, no trailing zeros, empty for None."""
    if value is None:
        return ""
    text = f"{round(value, DECIMALS):.{DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _moment(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def _passed(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")


RESULT_COLUMNS = (
    "learner",
    "email",
    "attempt",
    "started_at",
    "submitted_at",
    "submitted_by",
    "score",
    "max_score",
    "percent",
    "passed",
)


def results_table(results: Results) -> list[list[str]]:
    """The header and one row per attempt (learner, email, attempt number); per question the
    attempt's score, empty when it was not shown, not answered or awaits its grade."""
    order = question_order(results)
    titles = {qid: version.title for qid, version in results.current.items()}
    scores: dict[tuple[uuid.UUID, uuid.UUID], Item] = {}
    for item in results.items:
        version = results.versions[item.version_id]
        titles.setdefault(version.question_id, version.title)
        scores[(item.attempt_id, version.question_id)] = item
    header = [*RESULT_COLUMNS, *(f"Q{n} {titles[qid]}" for n, qid in enumerate(order, 1))]
    table = [header]
    for a in results.attempts:
        row = [
            a.name,
            a.email,
            str(a.number),
            _moment(a.started_at),
            _moment(a.submitted_at),
            a.submitted_by or "",
            number(a.score),
            number(a.max_score),
            number(a.percent),
            _passed(a.passed),
        ]
        for qid in order:
            found = scores.get((a.id, qid))
            graded = found is not None and found.answered and not found.pending
            row.append(number(found.score) if found is not None and graded else "")
        table.append(row)
    return table


def results_csv(results: Results) -> str:
    """The results table as CSV text (CRLF lines), every cell formula-neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([neutralised(cell) for cell in row] for row in results_table(results))
    return out.getvalue()
