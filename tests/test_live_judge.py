"""A live question judges each distinct response once (runtime.FrozenQuestion.judge)."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from pydantic import TypeAdapter

from lms_live.live import runtime
from lms_live.live.runtime import FrozenQuestion
from lms_live.quizzes import grading
from lms_live.quizzes.spec import QuestionSpec

SPECS: TypeAdapter[QuestionSpec] = TypeAdapter(QuestionSpec)


def frozen(body: dict[str, Any], *, shuffle: bool = True) -> FrozenQuestion:
    spec = SPECS.validate_python(body)
    order = grading.draw_option_order(spec, random.Random(7), shuffle=shuffle)
    return FrozenQuestion(uuid.uuid4(), 0, spec, order)


def uncached(question: FrozenQuestion, response: Any) -> tuple[Any, ...]:
    """What the answer handler computed before the cache, for comparison."""
    stored = grading.parse_response(question.spec, response, option_order=question.option_order)
    result = grading.grade(question.spec, stored, points=1.0)
    shown = grading.public_response(question.spec, stored, option_order=question.option_order)
    return stored, shown, result.state.value, min(1.0, max(0.0, result.score))


CHOICE = {
    "type": "multiple_choice",
    "options": [{"id": i, "text": i, "correct": i in "ac"} for i in "abcd"],
}


def test_every_response_is_judged_as_without_the_cache_and_repeats_hit_it() -> None:
    question = frozen(CHOICE)
    labels = [
        label for label, _, _ in grading._layout(question.spec, question.option_order)["options"]
    ]
    responses = [{"choices": [a, b]} for a in labels for b in labels if a != b]
    for response in responses * 3:
        judged = question.judge(response)
        stored, shown, state, fraction = uncached(question, response)
        assert (judged.stored, judged.state, judged.fraction) == (stored, state, fraction)
        assert judged.choice == ",".join(shown["choices"])
    assert len(question.judged) == len(responses)
    assert question.judge(responses[0]) is question.judge(dict(responses[0]))


def test_true_and_one_are_different_responses() -> None:
    question = frozen({"type": "true_false", "answer": True})
    assert question.judge({"value": True}).state == "correct"
    with pytest.raises(grading.InvalidResponse):
        question.judge({"value": 1})  # not a boolean: refused, not served from the cache
    assert question.judge({"value": False}).state == "incorrect"


def test_invalid_responses_are_refused_every_time_and_not_remembered() -> None:
    question = frozen(CHOICE)
    for _ in range(2):
        with pytest.raises(grading.InvalidResponse):
            question.judge({"choices": ["Z9"]})
    assert question.judged == {}


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "JUDGED_PER_QUESTION", 3)
    question = frozen({"type": "short_text", "accepted": [{"text": "paris", "score": 1.0}]})
    for n in range(10):
        assert question.judge({"text": f"city {n}"}).state == "incorrect"
    assert question.judge({"text": "Paris"}).state == "correct"
    assert len(question.judged) == 3
