"""HTTP endpoints of quiz item analysis and the results export, for the course's instructors
(and admins): the instructor view, so right answers are shown.

Read-only: one session, no unit of work. The export is built off the event loop.
"""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from lms_live import keys
from lms_live.core.http import RouteTable, require_principal
from lms_live.quizzes import analysis as service
from lms_live.quizzes.analysis import AttemptsFilter
from lms_live.quizzes.attempt_schemas import QuizIdPath

routes = RouteTable()
TAGS = ["analysis"]
TEACHERS = ["instructor", "admin"]


class AnalysisQuery(BaseModel):
    attempts: AttemptsFilter = Field(
        AttemptsFilter.ALL,
        description="Every submitted attempt, or each learner's first or last one.",
    )


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class OptionCountOut(_Out):
    id: str
    text: str
    correct: bool
    count: int = Field(description="Answered attempts that chose this option.")
    share: float | None = Field(description="count / answered; null when nobody answered.")


class TrueFalseCountOut(_Out):
    true: int
    false: int
    right_answer: bool


class QuestionAnalysisOut(_Out):
    question_id: uuid.UUID
    title: str
    type: str = Field(description="The newest version's question type.")
    versions: list[int] = Field(description="The version numbers the attempts showed.")
    attempts: int = Field(description="How many counted attempts showed the question.")
    answered: int
    pending: int = Field(description="Essays waiting for their grade (left out of the stats).")
    facility: float | None = Field(description="Mean score / points (0..1).")
    discrimination: float | None = Field(
        description="Pearson correlation of the item's score with the rest of the attempt's "
        "score; null with fewer than 2 attempts or no variance."
    )
    options: list[OptionCountOut] | None = Field(description="Choice questions only.")
    true_false: TrueFalseCountOut | None = Field(description="True/false questions only.")


class QuizAnalysisOut(_Out):
    quiz_id: uuid.UUID
    filter: AttemptsFilter
    attempts: int
    learners: int
    mean_percent: float | None
    median_percent: float | None
    pass_rate: float | None = Field(description="Share of the counted attempts that passed.")
    questions: list[QuestionAnalysisOut]


async def _results(
    request: web.Request, quiz_id: uuid.UUID, which: AttemptsFilter
) -> service.Results:
    principal = require_principal(request)
    async with request.app[keys.DATABASE].reads() as session:
        return await service.load_results(
            session, principal=principal, quiz_id=quiz_id, which=which
        )


@routes.get(
    "/api/v1/quizzes/{quiz_id}/analysis",
    operation_id="quiz_analysis",
    summary="Item analysis of a quiz's submitted attempts",
    tags=TAGS,
    path_model=QuizIdPath,
    query=AnalysisQuery,
    response=QuizAnalysisOut,
    roles=TEACHERS,
    errors=[403, 404, 422],
)
async def quiz_analysis(
    request: web.Request, path: QuizIdPath, query: AnalysisQuery
) -> QuizAnalysisOut:
    """Attempts, learners, mean and median percent, pass rate; per question facility,
    discrimination and how the options were chosen. The course's instructors and admins."""
    results = await _results(request, path.quiz_id, query.attempts)
    figures = service.analyse(results)
    return QuizAnalysisOut.model_validate(
        {
            "quiz_id": path.quiz_id,
            "filter": query.attempts,
            "attempts": figures.attempts,
            "learners": figures.learners,
            "mean_percent": figures.mean_percent,
            "median_percent": figures.median_percent,
            "pass_rate": figures.pass_rate,
            "questions": figures.questions,
        }
    )


@routes.get(
    "/api/v1/quizzes/{quiz_id}/results.csv",
    operation_id="export_quiz_results",
    summary="Export a quiz's results per learner and question as CSV",
    tags=TAGS,
    path_model=QuizIdPath,
    query=AnalysisQuery,
    roles=TEACHERS,
    media_type="text/csv",
    errors=[403, 404, 422],
)
async def export_quiz_results(
    request: web.Request, path: QuizIdPath, query: AnalysisQuery
) -> web.Response:
    """One row per submitted attempt, then one column per question with its score (empty when
    unanswered). Formula-like cells are quoted. The course's instructors and admins."""
    results = await _results(request, path.quiz_id, query.attempts)
    text = await asyncio.to_thread(service.results_csv, results)
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="quiz-{path.quiz_id}-results.csv"'},
    )
