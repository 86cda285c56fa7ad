"""Grading properties over random questions of every type and random responses (hypothesis):
scores stay within [0, points] and are deterministic, the right answer earns full points, an
empty response earns 0 unanswered, and what a learner sees never gives an answer away."""

from __future__ import annotations

import json
import math
import random
import unicodedata
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lms_live.quizzes.grading import (
    GradeState,
    InvalidResponse,
    draw_option_order,
    grade,
    parse_response,
    public_response,
    public_view,
    right_answer,
)
from lms_live.quizzes.spec import (
    AcceptedText,
    Choice,
    EssaySpec,
    Item,
    MatchingSpec,
    MultipleChoiceSpec,
    NumericAnswer,
    NumericSpec,
    OrderingSpec,
    Pair,
    QuestionSpec,
    Scoring,
    ShortTextSpec,
    SingleChoiceSpec,
    Tolerance,
    TrueFalseSpec,
    Whitespace,
)

PROPERTIES = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# Ids that look like labels ("1", "a1") on purpose, to provoke collisions with them.
ids = st.one_of(
    st.sampled_from(["a", "b", "c", "1", "2", "3", "a1", "a2", "b1", "x_y", "Z-9"]),
    st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True),
)
# Texts repeat often (interchangeable options) and include Unicode and odd spaces.
texts = st.one_of(
    st.sampled_from(["x", "y", "Paris", "paris", " New  York ", "Café", "Cafe\u0301", "1", "ß"]),
    st.text(max_size=12),
)
line = st.text(min_size=1, max_size=30).filter(lambda t: t.strip() != "" and "\x00" not in t)
scorings = st.sampled_from(list(Scoring))
feedbacks = st.sampled_from(["", "Because.", "Nope."])
shares = st.one_of(st.just(1.0), st.sampled_from([0.5, 0.25, 0.1]), st.floats(0.001, 1.0))
points = st.one_of(
    st.sampled_from([0.0, 1.0, 2.5, 3.0, 10.0, 0.1 + 0.2]), st.floats(0, 1_000, allow_nan=False)
)


def unique_ids(size: int) -> st.SearchStrategy[list[str]]:
    return st.lists(ids, min_size=size, max_size=size, unique=True)


@st.composite
def choices(draw: st.DrawFn, *, exactly_one: bool) -> list[Choice]:
    n = draw(st.integers(2, 8))
    if exactly_one:
        right = draw(st.integers(0, n - 1))
        flags = [i == right for i in range(n)]
    else:
        flags = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(any))
    return [
        Choice(id=i, text=draw(texts), correct=flag, feedback=draw(feedbacks))
        for i, flag in zip(draw(unique_ids(n)), flags, strict=True)
    ]


@st.composite
def short_texts(draw: st.DrawFn) -> ShortTextSpec:
    accepted = draw(st.lists(st.tuples(line, shares, feedbacks), min_size=1, max_size=4))
    full = draw(st.integers(0, len(accepted) - 1))
    return ShortTextSpec(
        accepted=[
            AcceptedText(text=t, score=1.0 if n == full else s, feedback=f)
            for n, (t, s, f) in enumerate(accepted)
        ],
        case_sensitive=draw(st.booleans()),
        whitespace=draw(st.sampled_from(list(Whitespace))),
    )


finite = st.floats(allow_nan=False, allow_infinity=False)
moderate = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def numerics(draw: st.DrawFn, values: st.SearchStrategy[float] = finite) -> NumericSpec:
    n = draw(st.integers(1, 3))
    full = draw(st.integers(0, n - 1))
    return NumericSpec(
        answers=[
            NumericAnswer(
                value=draw(values),
                tolerance=draw(st.one_of(st.just(0.0), st.floats(0, 1e3))),
                tolerance_kind=draw(st.sampled_from(list(Tolerance))),
                score=1.0 if i == full else draw(shares),
                feedback=draw(feedbacks),
            )
            for i in range(n)
        ]
    )


@st.composite
def orderings(draw: st.DrawFn) -> OrderingSpec:
    n = draw(st.integers(2, 8))
    return OrderingSpec(
        items=[Item(id=i, text=draw(texts)) for i in draw(unique_ids(n))],
        scoring=draw(scorings),
    )


@st.composite
def matchings(draw: st.DrawFn) -> MatchingSpec:
    n = draw(st.integers(2, 6))
    extra = draw(st.integers(0, 3))
    all_ids = draw(unique_ids(n + extra))
    return MatchingSpec(
        pairs=[Pair(id=i, prompt=draw(texts), answer=draw(texts)) for i in all_ids[:n]],
        distractors=[Item(id=i, text=draw(texts)) for i in all_ids[n:]],
        scoring=draw(scorings),
    )


@st.composite
def essays(draw: st.DrawFn) -> EssaySpec:
    low = draw(st.integers(0, 50))
    return EssaySpec(
        guidance=draw(texts), min_words=low, max_words=draw(st.integers(max(low, 1), 500))
    )


SPEC_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "single_choice": choices(exactly_one=True).map(lambda o: SingleChoiceSpec(options=o)),
    "multiple_choice": st.builds(
        lambda o, s: MultipleChoiceSpec(options=o, scoring=s), choices(exactly_one=False), scorings
    ),
    "true_false": st.builds(
        lambda a, t, f: TrueFalseSpec(answer=a, feedback_true=t, feedback_false=f),
        st.booleans(),
        feedbacks,
        feedbacks,
    ),
    "short_text": short_texts(),
    "numeric": numerics(),
    "ordering": orderings(),
    "matching": matchings(),
    "essay": essays(),
}
specs: st.SearchStrategy[QuestionSpec] = st.one_of(*SPEC_STRATEGIES.values())
gradable: st.SearchStrategy[QuestionSpec] = st.one_of(
    *(s for kind, s in SPEC_STRATEGIES.items() if kind != "essay")
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


def spec_ids(spec: QuestionSpec) -> list[str]:
    if isinstance(spec, SingleChoiceSpec | MultipleChoiceSpec):
        return [o.id for o in spec.options]
    if isinstance(spec, OrderingSpec):
        return [i.id for i in spec.items]
    if isinstance(spec, MatchingSpec):
        return [p.id for p in spec.pairs] + [d.id for d in spec.distractors]
    return []


def responses(spec: QuestionSpec) -> st.SearchStrategy[Any]:
    """Responses of the right shape (known and unknown ids, repeats) and of any shape."""
    known = spec_ids(spec) or ["a"]
    some_id = st.one_of(st.sampled_from(known), ids)
    shaped: st.SearchStrategy[Any]
    if isinstance(spec, SingleChoiceSpec):
        shaped = st.fixed_dictionaries({"choice": some_id})
    elif isinstance(spec, MultipleChoiceSpec):
        shaped = st.fixed_dictionaries({"choices": st.lists(some_id, max_size=10)})
    elif isinstance(spec, TrueFalseSpec):
        shaped = st.fixed_dictionaries({"value": st.booleans()})
    elif isinstance(spec, ShortTextSpec):
        guesses = [a.text for a in spec.accepted]
        text = st.one_of(texts, st.sampled_from(guesses), st.sampled_from(guesses).map(str.upper))
        shaped = st.fixed_dictionaries({"text": text})
    elif isinstance(spec, NumericSpec):
        near = st.sampled_from(spec.answers).flatmap(
            lambda a: st.floats(a.value - 2 * a.tolerance - 1, a.value + 2 * a.tolerance + 1)
        )
        shaped = st.fixed_dictionaries({"value": st.one_of(finite, near)})
    elif isinstance(spec, OrderingSpec):
        shaped = st.fixed_dictionaries(
            {"order": st.one_of(st.permutations(known), st.lists(some_id, max_size=10))}
        )
    elif isinstance(spec, MatchingSpec):
        prompts = [p.id for p in spec.pairs]
        shaped = st.fixed_dictionaries(
            {"matches": st.dictionaries(st.one_of(st.sampled_from(prompts), ids), some_id)}
        )
    else:
        shaped = st.fixed_dictionaries({"text": st.text(max_size=40)})
    return st.one_of(shaped, shaped, json_values)


def empty_responses(spec: QuestionSpec) -> list[Any]:
    empties: list[Any] = [None, {}]
    if isinstance(spec, MultipleChoiceSpec):
        empties.append({"choices": []})
    if isinstance(spec, OrderingSpec):
        empties.append({"order": []})
    if isinstance(spec, MatchingSpec):
        empties.append({"matches": {}})
    if isinstance(spec, ShortTextSpec | EssaySpec):
        empties += [{"text": ""}, {"text": " \t\n"}]
    return empties


@PROPERTIES
@given(spec=specs, points=points, data=st.data())
def test_any_response_scores_within_bounds_deterministically(
    spec: QuestionSpec, points: float, data: st.DataObject
) -> None:
    response = data.draw(responses(spec))
    result = grade(spec, response, points=points)
    assert grade(spec, response, points=points) == result
    assert result.max_score == points
    assert 0 <= result.score <= points
    assert result.score == points or result.score == round(result.score, 4)
    if result.state is GradeState.CORRECT:
        assert result.score == points
    if result.state in {GradeState.INCORRECT, GradeState.UNANSWERED, GradeState.NEEDS_GRADING}:
        assert result.score == 0
    assert all(isinstance(f, str) and f for f in result.feedback)
    try:
        stored = parse_response(spec, response)
    except InvalidResponse:
        assert result.state is GradeState.UNANSWERED
    else:
        # The stored form is stable, grades the same and survives a JSON round trip.
        assert parse_response(spec, stored) == stored
        assert json.loads(json.dumps(stored)) == stored
        assert grade(spec, stored, points=points) == result


@PROPERTIES
@given(spec=gradable, points=points, seed=st.integers(0, 2**32), shuffle=st.booleans())
def test_the_right_answer_earns_full_points_also_through_the_learners_labels(
    spec: QuestionSpec, points: float, seed: int, shuffle: bool
) -> None:
    perfect = right_answer(spec)
    result = grade(spec, perfect, points=points)
    assert (result.score, result.state) == (points, GradeState.CORRECT)
    order = draw_option_order(spec, random.Random(seed), shuffle=shuffle)
    shown = public_response(spec, perfect, option_order=order)
    assert shown is not None
    assert parse_response(spec, shown, option_order=order) == parse_response(spec, perfect)


@PROPERTIES
@given(spec=specs, points=points)
def test_an_empty_response_scores_zero_unanswered(spec: QuestionSpec, points: float) -> None:
    for empty in empty_responses(spec):
        result = grade(spec, empty, points=points)
        assert (result.score, result.state, result.feedback) == (0, GradeState.UNANSWERED, [])


def keys_of(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


ALLOWED_KEYS = {"type", "options", "items", "prompts", "choices", "id", "text", "scoring"}


@PROPERTIES
@given(spec=specs, seed=st.integers(0, 2**32), shuffle=st.booleans())
def test_public_view_shows_the_stored_order_and_never_an_id_or_answer(
    spec: QuestionSpec, seed: int, shuffle: bool
) -> None:
    order = draw_option_order(spec, random.Random(seed), shuffle=shuffle)
    assert draw_option_order(spec, random.Random(seed), shuffle=shuffle) == order
    view = public_view(spec, option_order=order)
    assert json.loads(json.dumps(view)) == view
    assert keys_of(view) <= ALLOWED_KEYS | {"min_words", "max_words"}
    assert view["type"] == spec.type.value
    entries = [e for name in ("options", "items", "prompts", "choices") for e in view.get(name, [])]
    labels = [e["id"] for e in entries]
    assert len(set(labels)) == len(labels)
    assert set(labels).isdisjoint(spec_ids(spec))
    if isinstance(spec, SingleChoiceSpec | MultipleChoiceSpec):
        text_of = {o.id: o.text for o in spec.options}
        assert [e["text"] for e in view["options"]] == [text_of[i] for i in order]
    elif isinstance(spec, OrderingSpec):
        text_of = {i.id: i.text for i in spec.items}
        assert [e["text"] for e in view["items"]] == [text_of[i] for i in order]
    elif isinstance(spec, MatchingSpec):
        text_of = {p.id: p.answer for p in spec.pairs} | {d.id: d.text for d in spec.distractors}
        assert [e["text"] for e in view["prompts"]] == [p.prompt for p in spec.pairs]
        assert [e["text"] for e in view["choices"]] == [text_of[i] for i in order]
    else:
        assert order == []
        assert set(view) <= {"type", "min_words", "max_words"}


@PROPERTIES
@given(spec=st.one_of(orderings(), matchings()), seed=st.integers(0, 2**32))
def test_ordering_and_matching_are_never_shown_reading_in_the_right_order(
    spec: OrderingSpec | MatchingSpec, seed: int
) -> None:
    order = draw_option_order(spec, random.Random(seed), shuffle=False)
    if isinstance(spec, OrderingSpec):
        right = [(i.id, i.text) for i in spec.items]
        assert sorted(order) == sorted(i for i, _ in right)
    else:
        right = [(p.id, p.answer) for p in spec.pairs]
        assert sorted(order) == sorted(spec_ids(spec))
    text_of = dict(right)
    shown = [i for i in order if i in text_of]
    assert shown != [i for i, _ in right]
    # Compared as a learner reads them: "Café" precomposed and with a combining accent are
    # the same text on screen (when all read alike, no order can read differently).
    reads = {i: unicodedata.normalize("NFC", t).strip() for i, t in text_of.items()}
    if len(set(reads.values())) > 1:
        assert [reads[i] for i in shown] != [reads[i] for i, _ in right]


@PROPERTIES
@given(spec=numerics(moderate), pick=st.integers(0, 2), up=st.booleans())
def test_a_numeric_value_exactly_at_the_tolerance_edge_is_accepted(
    spec: NumericSpec, pick: int, up: bool
) -> None:
    answer = spec.answers[pick % len(spec.answers)]
    allowed = answer.tolerance
    if answer.tolerance_kind is Tolerance.RELATIVE:
        allowed *= abs(answer.value)
    edge = answer.value + allowed if up else answer.value - allowed
    result = grade(spec, {"value": edge}, points=1)
    assert result.score >= answer.score - 1e-4
    outside = answer.value + (2 * allowed + 1) * (1 if up else -1)
    alone = NumericSpec(answers=[answer.model_copy(update={"score": 1.0})])
    assert grade(alone, {"value": outside}, points=1).state is GradeState.INCORRECT
    assert math.isfinite(edge)
