"""Grading rules of every question type, and what learners see of a question, by example."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pydantic import TypeAdapter

from lms_live.quizzes.grading import (
    Grade,
    GradeState,
    InvalidResponse,
    draw_option_order,
    essay_word_report,
    grade,
    parse_response,
    public_response,
    public_view,
    right_answer,
)
from lms_live.quizzes.spec import EssaySpec, QuestionSpec

SPECS: TypeAdapter[QuestionSpec] = TypeAdapter(QuestionSpec)

CORRECT, PARTIAL, INCORRECT = GradeState.CORRECT, GradeState.PARTIAL, GradeState.INCORRECT
UNANSWERED, NEEDS_GRADING = GradeState.UNANSWERED, GradeState.NEEDS_GRADING


def spec(body: dict[str, Any]) -> QuestionSpec:
    return SPECS.validate_python(body)


def options(*correct: str, ids: str = "abcde", feedback: bool = False) -> list[dict[str, Any]]:
    return [
        {"id": i, "text": f"Option {i}", "correct": i in correct}
        | ({"feedback": f"About {i}."} if feedback else {})
        for i in ids
    ]


def scored(question: QuestionSpec, response: Any, points: float = 1.0) -> tuple[float, str]:
    result = grade(question, response, points=points)
    return result.score, result.state.value


# --------------------------------------------------------------------------- single choice


def test_single_choice_right_option_earns_the_points_with_its_feedback() -> None:
    question = spec({"type": "single_choice", "options": options("b", ids="abc", feedback=True)})
    assert grade(question, {"choice": "b"}, points=2) == Grade(2.0, 2.0, CORRECT, ["About b."])


def test_single_choice_wrong_option_earns_nothing_and_shows_that_options_feedback() -> None:
    question = spec({"type": "single_choice", "options": options("b", ids="abc", feedback=True)})
    assert grade(question, {"choice": "c"}, points=2) == Grade(0.0, 2.0, INCORRECT, ["About c."])


def test_single_choice_unknown_or_malformed_choice_is_refused_and_unanswered() -> None:
    question = spec({"type": "single_choice", "options": options("a", ids="ab")})
    with pytest.raises(InvalidResponse, match="unknown option id 'zz'") as caught:
        parse_response(question, {"choice": "zz"})
    assert caught.value.details == [
        {"loc": ["choice"], "msg": "unknown option id 'zz'", "type": "unknown_id"}
    ]
    bad: list[Any] = [{"choice": "zz"}, {"choice": 1}, {"choice": ""}, {"choices": ["a"]}, [], "a"]
    for response in bad:
        assert grade(question, response, points=1) == Grade(0.0, 1.0, UNANSWERED, [])


# --------------------------------------------------------------------------- multiple choice


def test_multiple_choice_all_or_nothing_needs_exactly_the_right_set() -> None:
    question = spec({"type": "multiple_choice", "options": options("a", "c", ids="abcd")})
    assert scored(question, {"choices": ["c", "a"]}, 3) == (3.0, "correct")
    assert scored(question, {"choices": ["a"]}, 3) == (0.0, "incorrect")
    assert scored(question, {"choices": ["a", "b", "c"]}, 3) == (0.0, "incorrect")
    assert scored(question, {"choices": []}, 3) == (0.0, "unanswered")


def test_multiple_choice_partial_credit_earns_rights_and_costs_wrongs_floored_at_zero() -> None:
    question = spec(
        {
            "type": "multiple_choice",
            "options": options("a", "b", "c", ids="abcde"),
            "scoring": "partial",
        }
    )
    assert scored(question, {"choices": ["a", "b", "c"]}, 3) == (3.0, "correct")
    assert scored(question, {"choices": ["a", "b"]}, 3) == (2.0, "partial")
    assert scored(question, {"choices": ["a", "b", "d"]}, 3) == (0.5, "partial")
    assert scored(question, {"choices": ["a", "d", "e"]}, 3) == (0.0, "incorrect")
    assert scored(question, {"choices": list("abcde")}, 3) == (0.0, "incorrect")
    assert scored(question, {"choices": ["a"]}, 1) == (0.3333, "partial")
    assert scored(question, {"choices": ["a", "b"]}, 1) == (0.6667, "partial")


def test_multiple_choice_partial_without_wrong_options_costs_nothing() -> None:
    question = spec(
        {
            "type": "multiple_choice",
            "options": options("a", "b", "c", ids="abc"),
            "scoring": "partial",
        }
    )
    assert scored(question, {"choices": ["b", "c"]}, 10) == (6.6667, "partial")


def test_multiple_choice_feedback_of_every_chosen_option_in_the_question_order() -> None:
    question = spec(
        {"type": "multiple_choice", "options": options("a", "c", ids="abcd", feedback=True)}
    )
    result = grade(question, {"choices": ["d", "a"]}, points=1)
    assert result.feedback == ["About a.", "About d."]


def test_multiple_choice_refuses_repeated_and_unknown_options() -> None:
    question = spec({"type": "multiple_choice", "options": options("a", ids="abc")})
    with pytest.raises(InvalidResponse, match="option 'a' is listed more than once"):
        parse_response(question, {"choices": ["a", "a"]})
    with pytest.raises(InvalidResponse, match="unknown option id 'x'"):
        parse_response(question, {"choices": ["a", "x"]})
    assert parse_response(question, {"choices": ["c", "a"]}) == {"choices": ["a", "c"]}
    assert scored(question, {"choices": ["a", "a"]}) == (0.0, "unanswered")


# --------------------------------------------------------------------------- true/false


def test_true_false_with_the_feedback_of_the_value_given() -> None:
    question = spec(
        {"type": "true_false", "answer": False, "feedback_true": "No.", "feedback_false": "Yes."}
    )
    assert grade(question, {"value": False}, points=1) == Grade(1.0, 1.0, CORRECT, ["Yes."])
    assert grade(question, {"value": True}, points=1) == Grade(0.0, 1.0, INCORRECT, ["No."])
    assert scored(question, {"value": "false"}) == (0.0, "unanswered")
    assert scored(question, {"value": 0}) == (0.0, "unanswered")


# --------------------------------------------------------------------------- short text


def short_text(*accepted: str | tuple[str, float], **rules: Any) -> QuestionSpec:
    answers = [
        {"text": a, "score": 1.0} if isinstance(a, str) else {"text": a[0], "score": a[1]}
        for a in accepted
    ]
    return spec({"type": "short_text", "accepted": answers, **rules})


def test_short_text_ignores_case_and_extra_spaces_by_default() -> None:
    question = short_text("New York")
    for given in ("New York", "new york", "  NEW   york\t", "New\u00a0York"):
        assert scored(question, {"text": given}) == (1.0, "correct"), given
    assert scored(question, {"text": "NewYork"}) == (0.0, "incorrect")


def test_short_text_case_sensitive() -> None:
    question = short_text("Paris", case_sensitive=True)
    assert scored(question, {"text": "Paris"}) == (1.0, "correct")
    assert scored(question, {"text": "paris"}) == (0.0, "incorrect")


def test_short_text_whitespace_rules() -> None:
    trim = short_text("New York", whitespace="trim")
    assert scored(trim, {"text": "  New York "}) == (1.0, "correct")
    assert scored(trim, {"text": "New  York"}) == (0.0, "incorrect")
    exact = short_text("New York", whitespace="exact")
    assert scored(exact, {"text": "New York"}) == (1.0, "correct")
    assert scored(exact, {"text": "New York "}) == (0.0, "incorrect")


def test_short_text_compares_unicode_canonically() -> None:
    assert scored(short_text("Café"), {"text": "Cafe\u0301"}) == (1.0, "correct")
    assert scored(short_text("Cafe\u0301", case_sensitive=True), {"text": "Café"}) == (
        1.0,
        "correct",
    )
    assert scored(short_text("straße"), {"text": "STRASSE"}) == (1.0, "correct")
    assert scored(short_text("Ὀδυσσεύς"), {"text": "ὀδυσσεύς"}) == (1.0, "correct")


def test_short_text_best_matching_answer_counts_with_its_feedback() -> None:
    question = spec(
        {
            "type": "short_text",
            "accepted": [
                {"text": "lutetia", "score": 0.5, "feedback": "Its Roman name."},
                {"text": "Paris", "score": 1.0, "feedback": "Right."},
                {"text": "PARIS", "score": 0.25, "feedback": "Shouting."},
            ],
        }
    )
    assert grade(question, {"text": "Lutetia"}, points=4) == Grade(
        2.0, 4.0, PARTIAL, ["Its Roman name."]
    )
    assert grade(question, {"text": "paris"}, points=4) == Grade(4.0, 4.0, CORRECT, ["Right."])
    assert grade(question, {"text": "London"}, points=4) == Grade(0.0, 4.0, INCORRECT, [])


def test_short_text_blank_is_unanswered_and_overlong_is_refused() -> None:
    question = short_text("Paris")
    assert scored(question, {"text": ""}) == (0.0, "unanswered")
    assert scored(question, {"text": " \n "}) == (0.0, "unanswered")
    with pytest.raises(InvalidResponse, match="text"):
        parse_response(question, {"text": "x" * 501})
    with pytest.raises(InvalidResponse, match="NUL"):
        parse_response(question, {"text": "Par\x00is"})


# --------------------------------------------------------------------------- numeric


def numeric(*answers: dict[str, Any]) -> QuestionSpec:
    return spec({"type": "numeric", "answers": list(answers)})


def test_numeric_absolute_tolerance_includes_its_edges_despite_float_rounding() -> None:
    question = numeric({"value": 0.3, "tolerance": 0.1})
    assert 0.4 - 0.3 > 0.1  # what a naive comparison would get wrong
    for value in (0.3, 0.2, 0.4, 0.35):
        assert scored(question, {"value": value}) == (1.0, "correct"), value
    for value in (0.4001, 0.1999, -0.3):
        assert scored(question, {"value": value}) == (0.0, "incorrect"), value


def test_numeric_relative_tolerance() -> None:
    question = numeric({"value": 200, "tolerance": 0.05, "tolerance_kind": "relative"})
    for value in (190, 210, 200.5):
        assert scored(question, {"value": value}) == (1.0, "correct"), value
    for value in (189.9, 210.1):
        assert scored(question, {"value": value}) == (0.0, "incorrect"), value
    edge = numeric({"value": 0.7, "tolerance": 0.1, "tolerance_kind": "relative"})
    assert scored(edge, {"value": 0.77}) == (1.0, "correct")
    assert scored(edge, {"value": 0.63}) == (1.0, "correct")
    exact = numeric({"value": -2.5})
    assert scored(exact, {"value": -2.5}) == (1.0, "correct")
    assert scored(exact, {"value": -2.5001}) == (0.0, "incorrect")


def test_numeric_best_matching_answer_counts() -> None:
    question = numeric(
        {"value": 40, "tolerance": 5, "score": 0.5, "feedback": "Close."},
        {"value": 42, "feedback": "Exactly."},
    )
    assert grade(question, {"value": 42}, points=2) == Grade(2.0, 2.0, CORRECT, ["Exactly."])
    assert grade(question, {"value": 44}, points=2) == Grade(1.0, 2.0, PARTIAL, ["Close."])
    assert grade(question, {"value": 50}, points=2) == Grade(0.0, 2.0, INCORRECT, [])


def test_numeric_refuses_what_is_not_a_finite_number() -> None:
    question = numeric({"value": 1})
    for bad in (float("nan"), float("inf"), "abc", True, None, [1]):
        with pytest.raises(InvalidResponse):
            parse_response(question, {"value": bad})
        assert scored(question, {"value": bad}) == (0.0, "unanswered")


# --------------------------------------------------------------------------- ordering


def ordering(*texts: str, scoring: str = "all_or_nothing") -> QuestionSpec:
    items = [{"id": f"i{n}", "text": t} for n, t in enumerate(texts)]
    return spec({"type": "ordering", "items": items, "scoring": scoring})


def test_ordering_all_or_nothing_and_partial_share_of_items_in_place() -> None:
    strict = ordering("one", "two", "three", "four")
    assert scored(strict, {"order": ["i0", "i1", "i2", "i3"]}, 4) == (4.0, "correct")
    assert scored(strict, {"order": ["i1", "i0", "i2", "i3"]}, 4) == (0.0, "incorrect")
    partial = ordering("one", "two", "three", "four", scoring="partial")
    assert scored(partial, {"order": ["i1", "i0", "i2", "i3"]}, 4) == (2.0, "partial")
    assert scored(partial, {"order": ["i3", "i0", "i1", "i2"]}, 4) == (0.0, "incorrect")
    assert scored(partial, {"order": ["i0", "i2", "i1", "i3"]}, 1) == (0.5, "partial")


def test_ordering_response_must_be_a_permutation_of_the_items() -> None:
    question = ordering("one", "two", "three")
    cases = {
        "missing: i2": ["i0", "i1"],
        "item 'i1' is listed more than once": ["i0", "i1", "i1"],
        "unknown item id 'i9'": ["i0", "i1", "i9"],
    }
    for message, order in cases.items():
        with pytest.raises(InvalidResponse, match=message):
            parse_response(question, {"order": order})
        assert scored(question, {"order": order}) == (0.0, "unanswered")
    assert scored(question, {"order": []}) == (0.0, "unanswered")


def test_ordering_items_that_read_the_same_are_interchangeable() -> None:
    question = ordering("1", "2", "2", "3")
    assert scored(question, {"order": ["i0", "i2", "i1", "i3"]}) == (1.0, "correct")


def test_ordering_is_never_shown_in_the_right_order() -> None:
    pair = ordering("first", "second")
    assert {tuple(draw_option_order(pair, random.Random(s), shuffle=False)) for s in range(50)} == {
        ("i1", "i0")
    }
    # Two items read the same: showing "x x y" swapped among the x's would still read right.
    same = ordering("x", "x", "y")
    for seed in range(200):
        order = draw_option_order(same, random.Random(seed), shuffle=False)
        assert [{"i0": "x", "i1": "x", "i2": "y"}[i] for i in order] != ["x", "x", "y"]
    identical = ordering("x", "x")
    for seed in range(20):
        assert draw_option_order(identical, random.Random(seed), shuffle=False) == ["i1", "i0"]


# --------------------------------------------------------------------------- matching


def matching(scoring: str = "partial", distractors: int = 1) -> QuestionSpec:
    return spec(
        {
            "type": "matching",
            "pairs": [
                {"id": "dog", "prompt": "Dog", "answer": "Mammal"},
                {"id": "trout", "prompt": "Trout", "answer": "Fish"},
                {"id": "frog", "prompt": "Frog", "answer": "Amphibian"},
            ],
            "distractors": [{"id": "bird", "text": "Bird"}][:distractors],
            "scoring": scoring,
        }
    )


def test_matching_partial_share_of_prompts_matched_right() -> None:
    question = matching()
    right = {"dog": "dog", "trout": "trout", "frog": "frog"}
    assert scored(question, {"matches": right}, 3) == (3.0, "correct")
    assert scored(question, {"matches": right | {"frog": "bird"}}, 3) == (2.0, "partial")
    assert scored(question, {"matches": {"dog": "dog"}}, 3) == (1.0, "partial")
    assert scored(question, {"matches": {"dog": "trout", "trout": "dog"}}, 3) == (
        0.0,
        "incorrect",
    )
    assert scored(question, {"matches": {}}, 3) == (0.0, "unanswered")
    # One choice for several prompts (drop-downs allow it): allowed, graded per prompt.
    assert scored(question, {"matches": {"dog": "dog", "trout": "dog"}}, 3) == (1.0, "partial")


def test_matching_all_or_nothing() -> None:
    question = matching("all_or_nothing")
    right = {"dog": "dog", "trout": "trout", "frog": "frog"}
    assert scored(question, {"matches": right}, 3) == (3.0, "correct")
    assert scored(question, {"matches": right | {"frog": "bird"}}, 3) == (0.0, "incorrect")


def test_matching_refuses_unknown_prompts_and_choices() -> None:
    question = matching()
    with pytest.raises(InvalidResponse, match="unknown prompt id 'bird'"):
        parse_response(question, {"matches": {"bird": "dog"}})
    with pytest.raises(InvalidResponse, match="unknown choice id 'cat'"):
        parse_response(question, {"matches": {"dog": "cat"}})
    assert parse_response(question, {"matches": {"frog": "bird", "dog": "dog"}}) == {
        "matches": {"dog": "dog", "frog": "bird"}
    }


def test_matching_choices_that_read_the_same_are_interchangeable() -> None:
    question = spec(
        {
            "type": "matching",
            "pairs": [
                {"id": "a", "prompt": "Dog", "answer": "Mammal"},
                {"id": "b", "prompt": "Cat", "answer": "Mammal"},
                {"id": "c", "prompt": "Trout", "answer": "Fish"},
            ],
        }
    )
    assert scored(question, {"matches": {"a": "b", "b": "a", "c": "c"}}) == (1.0, "correct")


# --------------------------------------------------------------------------- essay


def test_essay_waits_for_an_instructor_and_word_limits_are_only_reported() -> None:
    question = spec({"type": "essay", "min_words": 2, "max_words": 3, "guidance": "Look for X."})
    long = {"text": "one two three four five"}
    assert parse_response(question, long) == long
    assert grade(question, long, points=5) == Grade(0.0, 5.0, NEEDS_GRADING, [])
    assert grade(question, {"text": "  "}, points=5) == Grade(0.0, 5.0, UNANSWERED, [])
    assert isinstance(question, EssaySpec)
    assert essay_word_report(question, long) == {
        "words": 5,
        "min_words": 2,
        "max_words": 3,
        "within_limits": False,
    }
    assert essay_word_report(question, {"text": "two words"})["within_limits"] is True
    assert essay_word_report(question, None)["words"] == 0
    assert right_answer(question) == {}


# --------------------------------------------------------------------------- points and rounding


def test_scores_are_rounded_to_four_decimals_and_full_marks_are_exact() -> None:
    question = ordering("a", "b", "c", scoring="partial")
    assert scored(question, {"order": ["i0", "i2", "i1"]}, 2.5) == (0.8333, "partial")
    assert scored(question, {"order": ["i0", "i1", "i2"]}, 0.1 + 0.2) == (0.1 + 0.2, "correct")
    assert scored(question, {"order": ["i0", "i1", "i2"]}, 0) == (0.0, "correct")


@pytest.mark.parametrize("points", [-1, float("nan"), float("inf")])
def test_points_must_be_finite_and_not_negative(points: float) -> None:
    with pytest.raises(ValueError, match="points"):
        grade(ordering("a", "b"), {"order": ["i0", "i1"]}, points=points)


# --------------------------------------------------------------------------- what learners see

SECRET = "SECRET"
FORBIDDEN_KEYS = {
    "correct",
    "accepted",
    "tolerance",
    "tolerance_kind",
    "feedback",
    "feedback_true",
    "feedback_false",
    "guidance",
    "answer",
    "answers",
    "value",
    "score",
    "pairs",
    "distractors",
    "case_sensitive",
    "whitespace",
}

# One question of every type with its right answers, feedback, guidance and ids all marked
# SECRET: none of it may appear in what a learner sees.
EVERY_TYPE: dict[str, dict[str, Any]] = {
    "single_choice": {
        "type": "single_choice",
        "options": [
            {"id": "SECRETa", "text": "Red", "correct": True, "feedback": "SECRET yes"},
            {"id": "SECRETb", "text": "Blue", "feedback": "SECRET no"},
        ],
    },
    "multiple_choice": {
        "type": "multiple_choice",
        "scoring": "partial",
        "options": [
            {"id": "SECRETa", "text": "Red", "correct": True, "feedback": "SECRET yes"},
            {"id": "SECRETb", "text": "Blue", "feedback": "SECRET no"},
            {"id": "SECRETc", "text": "Green", "correct": True},
        ],
    },
    "true_false": {
        "type": "true_false",
        "answer": True,
        "feedback_true": "SECRET t",
        "feedback_false": "SECRET f",
    },
    "short_text": {
        "type": "short_text",
        "accepted": [{"text": "SECRET answer", "feedback": "SECRET well done"}],
        "case_sensitive": True,
        "whitespace": "exact",
    },
    "numeric": {
        "type": "numeric",
        "answers": [
            {"value": 12345.678, "tolerance": 0.5, "feedback": "SECRET close"},
            {"value": 999.25, "tolerance": 0.1, "tolerance_kind": "relative", "score": 0.5},
        ],
    },
    "ordering": {
        "type": "ordering",
        "items": [{"id": f"SECRET{n}", "text": t} for n, t in enumerate(["one", "two", "three"])],
    },
    "matching": {
        "type": "matching",
        "pairs": [
            {"id": "SECRETdog", "prompt": "Dog", "answer": "Mammal"},
            {"id": "SECRETtrout", "prompt": "Trout", "answer": "Fish"},
            {"id": "SECRETfrog", "prompt": "Frog", "answer": "Amphibian"},
        ],
        "distractors": [{"id": "SECRETbird", "text": "Bird"}],
    },
    "essay": {"type": "essay", "guidance": "SECRET rubric", "min_words": 10, "max_words": 200},
}


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


@pytest.mark.parametrize("kind", sorted(EVERY_TYPE))
@pytest.mark.parametrize("shuffle", [False, True])
def test_public_view_of_every_type_reveals_nothing(kind: str, shuffle: bool) -> None:
    question = spec(EVERY_TYPE[kind])
    order = draw_option_order(question, random.Random(7), shuffle=shuffle)
    view = public_view(question, option_order=order)
    text = json.dumps(view)
    assert SECRET not in text
    assert "12345" not in text
    assert "999" not in text
    assert keys_of(view).isdisjoint(FORBIDDEN_KEYS), keys_of(view) & FORBIDDEN_KEYS
    assert view["type"] == kind


def test_public_view_per_type() -> None:
    views = {}
    for kind, body in EVERY_TYPE.items():
        question = spec(body)
        views[kind] = public_view(
            question, option_order=draw_option_order(question, random.Random(3), shuffle=False)
        )
    assert views["true_false"] == {"type": "true_false"}
    assert views["short_text"] == {"type": "short_text"}
    assert views["numeric"] == {"type": "numeric"}
    assert views["essay"] == {"type": "essay", "min_words": 10, "max_words": 200}
    assert views["single_choice"] == {
        "type": "single_choice",
        "options": [{"id": "1", "text": "Red"}, {"id": "2", "text": "Blue"}],
    }
    assert views["multiple_choice"]["scoring"] == "partial"
    assert [o["text"] for o in views["multiple_choice"]["options"]] == ["Red", "Blue", "Green"]


def test_matching_view_lists_prompts_and_choices_apart_in_the_stored_order() -> None:
    question = spec(EVERY_TYPE["matching"])
    order = ["SECRETfrog", "SECRETbird", "SECRETdog", "SECRETtrout"]
    assert public_view(question, option_order=order) == {
        "type": "matching",
        "prompts": [
            {"id": "1", "text": "Dog"},
            {"id": "2", "text": "Trout"},
            {"id": "3", "text": "Frog"},
        ],
        "choices": [
            {"id": "4", "text": "Amphibian"},
            {"id": "5", "text": "Bird"},
            {"id": "6", "text": "Mammal"},
            {"id": "7", "text": "Fish"},
        ],
        "scoring": "partial",
    }
    # The learner answers with the labels; stored and graded in spec ids.
    answer = {"matches": {"1": "6", "2": "7", "3": "5"}}
    stored = parse_response(question, answer, option_order=order)
    assert stored == {
        "matches": {
            "SECRETdog": "SECRETdog",
            "SECRETtrout": "SECRETtrout",
            "SECRETfrog": "SECRETbird",
        }
    }
    assert scored(question, stored, 3) == (2.0, "partial")
    assert public_response(question, stored, option_order=order) == answer
    with pytest.raises(InvalidResponse, match="unknown choice '8'"):
        parse_response(question, {"matches": {"1": "8"}}, option_order=order)
    # Spec ids are not labels: a learner cannot answer "each prompt with its own id".
    with pytest.raises(InvalidResponse, match="unknown prompt 'SECRETdog'"):
        parse_response(question, {"matches": {"SECRETdog": "SECRETdog"}}, option_order=order)


def test_ordering_view_lists_items_in_the_stored_order() -> None:
    question = spec(EVERY_TYPE["ordering"])
    order = draw_option_order(question, random.Random(11), shuffle=False)
    assert order != ["SECRET0", "SECRET1", "SECRET2"]
    view = public_view(question, option_order=order)
    texts = {"SECRET0": "one", "SECRET1": "two", "SECRET2": "three"}
    assert view["items"] == [{"id": str(n), "text": texts[i]} for n, i in enumerate(order, 1)]
    # Putting them right on screen, by label, earns full points.
    labels = {texts[i]: str(n) for n, i in enumerate(order, 1)}
    answer = {"order": [labels["one"], labels["two"], labels["three"]]}
    stored = parse_response(question, answer, option_order=order)
    assert stored == {"order": ["SECRET0", "SECRET1", "SECRET2"]}
    assert scored(question, stored) == (1.0, "correct")


def test_labels_never_collide_with_spec_ids_so_a_forgotten_option_order_fails_loudly() -> None:
    question = spec({"type": "single_choice", "options": options("2", ids="123")})
    order = ["3", "1", "2"]
    view = public_view(question, option_order=order)
    assert [o["id"] for o in view["options"]] == ["a1", "a2", "a3"]
    assert [o["text"] for o in view["options"]] == ["Option 3", "Option 1", "Option 2"]
    assert parse_response(question, {"choice": "a3"}, option_order=order) == {"choice": "2"}
    with pytest.raises(InvalidResponse, match="unknown option id 'a3'"):
        parse_response(question, {"choice": "a3"})
    with pytest.raises(InvalidResponse, match="unknown option '2'"):
        parse_response(question, {"choice": "2"}, option_order=order)


def test_a_stale_option_order_is_reconciled_not_refused() -> None:
    question = spec({"type": "multiple_choice", "options": options("a", ids="abcd")})
    view = public_view(question, option_order=["c", "gone", "a", "c"])
    assert [o["text"] for o in view["options"]] == [f"Option {i}" for i in "cabd"]
    answer = {"choices": ["2", "4"]}
    stored = parse_response(question, answer, option_order=["c", "gone", "a", "c"])
    assert stored == {"choices": ["a", "d"]}


def test_choices_follow_the_quiz_shuffle_setting() -> None:
    question = spec({"type": "single_choice", "options": options("a", ids="abcde")})
    assert draw_option_order(question, random.Random(1), shuffle=False) == list("abcde")
    drawn = {tuple(draw_option_order(question, random.Random(s), shuffle=True)) for s in range(30)}
    assert len(drawn) > 10
    assert all(sorted(d) == list("abcde") for d in drawn)
    assert draw_option_order(spec(EVERY_TYPE["numeric"]), random.Random(1), shuffle=True) == []


def test_public_response_of_the_right_answer_for_review() -> None:
    question = spec(EVERY_TYPE["multiple_choice"])
    order = ["SECRETc", "SECRETb", "SECRETa"]
    assert public_response(question, right_answer(question), option_order=order) == {
        "choices": ["1", "3"]
    }
    assert public_response(question, {"choices": ["nope"]}, option_order=order) is None
    numeric_question = spec(EVERY_TYPE["numeric"])
    assert public_response(numeric_question, {"value": 3}, option_order=[]) == {"value": 3.0}
