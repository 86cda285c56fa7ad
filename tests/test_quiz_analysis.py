"""Quiz item analysis and the results CSV over REST: exact statistics on a hand-made class of
four learners (facility and discrimination worked out by hand below), option and true/false
counts, the first/last attempt filters, the CSV's rows, columns and formula neutralisation,
an empty quiz, a fixed number of queries whatever the number of attempts, and who may call.

The attempts are made through the learners' own endpoints (start, save, submit).
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from typing import Any

from lms_live.auth.models import Role
from lms_live.quizzes.analysis import neutralised, number, pearson
from lms_live.quizzes.spec import (
    Choice,
    MultipleChoiceSpec,
    QuestionSpec,
    Scoring,
    SingleChoiceSpec,
)
from tests.authkit import Api
from tests.test_courses_catalog import statements
from tests.test_enrollments import Person, enroll, person
from tests.test_quiz_attempts import (
    SINGLE,
    T0,
    TRUE_FALSE,
    QuizBuilt,
    label,
    learner,
    make_quiz,
    save,
    started,
    submit,
    use_clock,
)

# Two right options of three, partial credit: a right one chosen earns 1 of the 2 points, the
# wrong one chosen costs 2 (floored at 0).
PRIMES = MultipleChoiceSpec(
    options=[
        Choice(id="a", text="Two", correct=True),
        Choice(id="b", text="Three", correct=True),
        Choice(id="c", text="Four"),
    ],
    scoring=Scoring.PARTIAL,
)
QUESTIONS: list[tuple[str, QuestionSpec, float]] = [
    ("Capital of France?", SINGLE, 1.0),
    ("The sky is blue.", TRUE_FALSE, 1.0),
    ("Which are prime?", PRIMES, 2.0),
]
# What each learner answers, by question (None: left unanswered), and the resulting scores:
#            capital     sky     primes        scores     total  percent
# ann        Paris       true    Two, Three    1, 1, 2    4      100
# bob        Paris       false   Two           1, 0, 1    2      50
# cid        Rome        true    Two, Four     0, 1, 0    1      25
# dee        Madrid      -       -             0, 0, 0    0      0
CLASS: dict[str, tuple[str, bool | None, list[str] | None]] = {
    "ann": ("Paris", True, ["Two", "Three"]),
    "bob": ("Paris", False, ["Two"]),
    "cid": ("Rome", True, ["Two", "Four"]),
    "dee": ("Madrid", None, None),
}


async def answer(
    api: Api, made: QuizBuilt, who: Person, given: tuple[str, bool | None, list[str] | None]
) -> dict[str, Any]:
    """One attempt with these answers, submitted; the submitted attempt's body."""
    attempt = await started(api, made, who)
    capital, sky, primes = given
    views = [q["question"] for q in attempt["questions"]]
    responses: list[dict[str, Any] | None] = [
        {"choice": label(views[0], "options", capital)},
        None if sky is None else {"value": sky},
        None if primes is None else {"choices": [label(views[2], "options", t) for t in primes]},
    ]
    for position, response in enumerate(responses):
        if response is not None:
            status, body = await save(api, attempt["id"], who, position, response)
            assert status == 200, body
    status, body = await submit(api, attempt["id"], who)
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def the_class(api: Api) -> tuple[QuizBuilt, dict[str, Person]]:
    """The quiz and four learners who each submitted one attempt as in CLASS."""
    use_clock(api)
    made = await make_quiz(api, questions=QUESTIONS)
    people = {}
    for name, given in CLASS.items():
        people[name] = await learner(api, made)
        await answer(api, made, people[name], given)
    return made, people


async def analysis(
    api: Api, made: QuizBuilt, who: Person, **params: str
) -> tuple[int, dict[str, Any]]:
    response = await api.client.get(
        f"/api/v1/quizzes/{made.id}/analysis", headers=who.headers, params=params
    )
    body: dict[str, Any] = await response.json()
    return response.status, body


async def results_csv(
    api: Api, made: QuizBuilt, who: Person, **params: str
) -> tuple[list[str], list[dict[str, str]]]:
    response = await api.client.get(
        f"/api/v1/quizzes/{made.id}/results.csv", headers=who.headers, params=params
    )
    assert response.status == 200, await response.text()
    assert response.content_type == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="quiz-{made.id}-results.csv"'
    )
    reader = csv.DictReader(io.StringIO(await response.text(), newline=""))
    return list(reader.fieldnames or []), list(reader)


def by_title(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["title"]: q for q in body["questions"]}


# --------------------------------------------------------------------------- statistics


async def test_item_analysis_of_a_hand_made_class(api: Api) -> None:
    made, _ = await the_class(api)
    status, body = await analysis(api, made, made.owner)
    assert status == 200, body

    assert body["quiz_id"] == str(made.id)
    assert body["filter"] == "all"
    assert (body["attempts"], body["learners"]) == (4, 4)
    assert body["mean_percent"] == (100 + 50 + 25 + 0) / 4
    assert body["median_percent"] == (50 + 25) / 2
    assert body["pass_rate"] == 0.5  # ann and bob reach the default 50%
    questions = body["questions"]
    assert [q["title"] for q in questions] == [title for title, _, _ in QUESTIONS]
    assert [q["type"] for q in questions] == ["single_choice", "true_false", "multiple_choice"]
    assert all(q["versions"] == [1] for q in questions)
    assert all(q["attempts"] == 4 and q["pending"] == 0 for q in questions)
    assert [q["answered"] for q in questions] == [4, 3, 3]
    capital, sky, primes = questions

    # Capital: item scores 1 1 0 0, rest of the score (total - item) 3 1 1 0.
    # Deviations from the means (0.5 and 1.25): x .5 .5 -.5 -.5, y 1.75 -.25 -.25 -1.25;
    # sum xy = 1.5, sum x^2 = 1, sum y^2 = 4.75.
    assert capital["facility"] == 0.5
    assert capital["discrimination"] == round(1.5 / math.sqrt(1 * 4.75), 4) == 0.6882
    assert capital["options"] == [
        {"id": "a", "text": "Paris", "correct": True, "count": 2, "share": 0.5},
        {"id": "b", "text": "Rome", "correct": False, "count": 1, "share": 0.25},
        {"id": "c", "text": "Madrid", "correct": False, "count": 1, "share": 0.25},
    ]
    assert capital["true_false"] is None

    # Sky: items 1 0 1 0, rests 3 2 0 0; x .5 -.5 .5 -.5, y 1.75 .75 -1.25 -1.25;
    # sum xy = .5, sum x^2 = 1, sum y^2 = 6.75. Dee's blank counts as 0 but not as answered.
    assert sky["facility"] == 0.5
    assert sky["discrimination"] == round(0.5 / math.sqrt(6.75), 4) == 0.1925
    assert sky["options"] is None
    assert sky["true_false"] == {"true": 2, "false": 1, "right_answer": True}

    # Primes (2 points): item shares 1 .5 0 0 (scores 2 1 0 0), rests 2 1 1 0;
    # x .625 .125 -.375 -.375, y 1 0 0 -1; sum xy = 1, sum x^2 = .6875, sum y^2 = 2.
    assert primes["facility"] == (1 + 0.5 + 0 + 0) / 4
    assert primes["discrimination"] == round(1 / math.sqrt(0.6875 * 2), 4) == 0.8528
    # Each chosen option counts: shares of the 3 answered attempts add up to more than 1.
    assert primes["options"] == [
        {"id": "a", "text": "Two", "correct": True, "count": 3, "share": 1.0},
        {"id": "b", "text": "Three", "correct": True, "count": 1, "share": 0.3333},
        {"id": "c", "text": "Four", "correct": False, "count": 1, "share": 0.3333},
    ]


async def test_first_and_last_attempt_of_each_learner(api: Api) -> None:
    made, people = await the_class(api)
    # Bob tries again and gets everything right.
    await answer(api, made, people["bob"], ("Paris", True, ["Two", "Three"]))

    status, every = await analysis(api, made, made.owner)
    assert status == 200
    assert (every["attempts"], every["learners"]) == (5, 4)
    assert every["mean_percent"] == (100 + 50 + 100 + 25 + 0) / 5
    assert every["pass_rate"] == 0.6
    assert by_title(every)["Capital of France?"]["attempts"] == 5

    status, first = await analysis(api, made, made.owner, attempts="first")
    assert status == 200
    assert (first["filter"], first["attempts"], first["learners"]) == ("first", 4, 4)
    assert first["mean_percent"] == 43.75
    assert by_title(first)["Capital of France?"]["discrimination"] == 0.6882

    status, last = await analysis(api, made, made.owner, attempts="last")
    assert status == 200
    assert (last["attempts"], last["mean_percent"], last["median_percent"]) == (4, 56.25, 62.5)
    assert by_title(last)["The sky is blue."]["true_false"] == {
        "true": 3,
        "false": 0,
        "right_answer": True,
    }

    status, body = await analysis(api, made, made.owner, attempts="best")
    assert (status, body["error"]) == (422, "validation_failed")


async def test_only_submitted_attempts_count(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=QUESTIONS)
    student = await learner(api, made)
    await started(api, made, student)  # left in progress
    status, body = await analysis(api, made, made.owner)
    assert status == 200
    assert (body["attempts"], body["learners"]) == (0, 0)
    assert all(q["attempts"] == 0 for q in body["questions"])


async def test_an_empty_quiz_answers_zeros_and_nulls(api: Api) -> None:
    made = await make_quiz(api, questions=QUESTIONS)
    status, body = await analysis(api, made, made.owner)
    assert status == 200, body
    assert (body["attempts"], body["learners"]) == (0, 0)
    assert (body["mean_percent"], body["median_percent"], body["pass_rate"]) == (None, None, None)
    # The quiz's questions are listed all the same, from their current version.
    capital, sky, primes = body["questions"]
    for question in (capital, sky, primes):
        assert question["versions"] == []
        assert (question["attempts"], question["answered"], question["pending"]) == (0, 0, 0)
        assert (question["facility"], question["discrimination"]) == (None, None)
    assert [o["count"] for o in capital["options"]] == [0, 0, 0]
    assert [o["share"] for o in primes["options"]] == [None, None, None]
    assert sky["true_false"] == {"true": 0, "false": 0, "right_answer": True}

    header, rows = await results_csv(api, made, made.owner)
    assert header[-3:] == ["Q1 Capital of France?", "Q2 The sky is blue.", "Q3 Which are prime?"]
    assert rows == []

    quizless = await make_quiz(api, questions=())
    status, body = await analysis(api, quizless, quizless.owner)
    assert status == 200
    assert body["questions"] == []


async def test_one_attempt_has_no_discrimination(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=QUESTIONS)
    await answer(api, made, await learner(api, made), CLASS["ann"])
    status, body = await analysis(api, made, made.owner)
    assert status == 200
    assert [q["facility"] for q in body["questions"]] == [1.0, 1.0, 1.0]
    assert [q["discrimination"] for q in body["questions"]] == [None, None, None]


async def test_questions_are_followed_across_versions(api: Api) -> None:
    """A new version of the capital question (Rome now counted right, a new option) keeps one
    entry: both version numbers, options from the newest version plus the old one's."""
    use_clock(api)
    made = await make_quiz(api, questions=QUESTIONS)
    first = await learner(api, made)
    await answer(api, made, first, CLASS["ann"])
    capital = made.questions[0]
    edited = SingleChoiceSpec(
        options=[
            Choice(id="b", text="Rome", correct=True),
            Choice(id="a", text="Paris"),
            Choice(id="d", text="Lyon"),
        ]
    )
    status, body = await call_json(
        api,
        "PATCH",
        f"/api/v1/questions/{capital.id}",
        made.owner,
        {"body": edited.model_dump(mode="json")},
    )
    assert status == 200, body
    assert body["current_version"] == 2
    second = await learner(api, made)
    await answer(api, made, second, ("Rome", True, ["Two", "Three"]))

    status, body = await analysis(api, made, made.owner)
    assert status == 200
    entry = by_title(body)["Capital of France?"]
    assert entry["versions"] == [1, 2]
    assert entry["attempts"] == 2
    assert entry["facility"] == 1.0
    assert [(o["id"], o["text"], o["correct"], o["count"]) for o in entry["options"]] == [
        ("b", "Rome", True, 1),
        ("a", "Paris", False, 1),
        ("d", "Lyon", False, 0),
        ("c", "Madrid", False, 0),
    ]


async def call_json(
    api: Api, method: str, url: str, who: Person, body: Any
) -> tuple[int, dict[str, Any]]:
    response = await api.client.request(method, url, headers=who.headers, json=body)
    data: dict[str, Any] = await response.json()
    return response.status, data


# --------------------------------------------------------------------------- the CSV


async def test_results_csv_has_a_row_per_attempt_and_a_column_per_question(api: Api) -> None:
    made, people = await the_class(api)
    await answer(api, made, people["bob"], ("Paris", True, ["Two", "Three"]))
    header, rows = await results_csv(api, made, made.owner)
    assert header == [
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
        "Q1 Capital of France?",
        "Q2 The sky is blue.",
        "Q3 Which are prime?",
    ]
    assert len(rows) == 5
    emails = {p.user.email: name for name, p in people.items()}
    got = [
        (
            emails[r["email"]],
            r["attempt"],
            r["score"],
            r["max_score"],
            r["percent"],
            r["passed"],
            r["Q1 Capital of France?"],
            r["Q2 The sky is blue."],
            r["Q3 Which are prime?"],
        )
        for r in rows
    ]
    assert sorted(got) == [
        ("ann", "1", "4", "4", "100", "true", "1", "1", "2"),
        ("bob", "1", "2", "4", "50", "true", "1", "0", "1"),
        ("bob", "2", "4", "4", "100", "true", "1", "1", "2"),
        ("cid", "1", "1", "4", "25", "false", "0", "1", "0"),
        ("dee", "1", "0", "4", "0", "false", "0", "", ""),  # blanks stay empty
    ]
    for row in rows:
        assert row["learner"] == "Test student"
        assert row["started_at"] == T0.isoformat()
        assert row["submitted_at"] == T0.isoformat()
        assert row["submitted_by"] == "learner"

    _, lasts = await results_csv(api, made, made.owner, attempts="last")
    assert sorted((emails[r["email"]], r["attempt"]) for r in lasts) == [
        ("ann", "1"),
        ("bob", "2"),
        ("cid", "1"),
        ("dee", "1"),
    ]


async def test_results_csv_neutralises_formulas(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=[("=1+1 is?", SINGLE, 1.0)])
    names = ['=HYPERLINK("http://evil")', "+SUM(1)", "-2+3", "@cmd", "\tTab", "Plain = name"]
    for name in names:
        student = await person(api, name=name, email=f"{uuid.uuid4().hex[:8]}@example.org")
        status, body = await enroll(api, student, made.built.id)
        assert status == 201, body
        attempt = await started(api, made, student)
        view = attempt["questions"][0]["question"]
        await save(api, attempt["id"], student, 0, {"choice": label(view, "options", "Paris")})
        submitted, _ = await submit(api, attempt["id"], student)
        assert submitted == 200
    header, rows = await results_csv(api, made, made.owner)
    assert header[-1] == "Q1 =1+1 is?"  # starts with Q: nothing to neutralise
    assert sorted(r["learner"] for r in rows) == sorted(
        [
            '\'=HYPERLINK("http://evil")',
            "'+SUM(1)",
            "'-2+3",
            "'@cmd",
            "'\tTab",
            "Plain = name",
        ]
    )


def test_neutralised_and_number_cells() -> None:
    for risky in ("=1", "+1", "-1", "@x", "\tx", "\rx"):
        assert neutralised(risky) == "'" + risky
    for safe in ("", "Ann", "1=1", " =1", "'=1"):
        assert neutralised(safe) == safe
    assert [number(v) for v in (None, 0.0, 1.0, 2.5, 1 / 3, 12.34567)] == [
        "",
        "0",
        "1",
        "2.5",
        "0.3333",
        "12.3457",
    ]


def test_pearson() -> None:
    assert pearson([], []) is None
    assert pearson([1.0], [2.0]) is None
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None  # no variance
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == 1.0
    assert pearson([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == -1.0


# --------------------------------------------------------------------------- efficiency


async def test_a_fixed_number_of_queries_whatever_the_attempts(api: Api) -> None:
    use_clock(api)
    made = await make_quiz(api, questions=QUESTIONS)
    await answer(api, made, await learner(api, made), CLASS["ann"])
    counts = []
    for _ in range(2):
        for path in ("analysis", "results.csv"):
            with statements(api.app) as seen:
                response = await api.client.get(
                    f"/api/v1/quizzes/{made.id}/{path}", headers=made.owner.headers
                )
                assert response.status == 200
            counts.append((path, len(seen)))
        for given in CLASS.values():  # four more learners between the two rounds
            await answer(api, made, await learner(api, made), given)
    assert counts[:2] == counts[2:], counts


# --------------------------------------------------------------------------- who may call


async def test_only_the_courses_teachers_and_admins(api: Api) -> None:
    made, people = await the_class(api)
    other = await person(api, Role.INSTRUCTOR)
    admin = await person(api, Role.ADMIN)
    for path in ("analysis", "results.csv"):
        url = f"/api/v1/quizzes/{made.id}/{path}"
        for who, expected in (
            (None, (401, "unauthorized")),
            (people["ann"], (403, "forbidden")),
            (other, (403, "forbidden")),
        ):
            response = await api.client.get(url, headers=who.headers if who else {})
            body = await response.json()
            assert (response.status, body["error"]) == expected, (path, body)
        response = await api.client.get(url, headers=admin.headers)
        assert response.status == 200
        missing = await api.client.get(
            f"/api/v1/quizzes/{uuid.uuid4()}/{path}", headers=made.owner.headers
        )
        assert (missing.status, (await missing.json())["error"]) == (404, "quiz_not_found")
        bad = await api.client.get(f"/api/v1/quizzes/not-a-uuid/{path}", headers=admin.headers)
        assert (bad.status, (await bad.json())["error"]) == (422, "validation_failed")
