"""Question import/export formats: GIFT and Aiken import, CSV import and export.

What an instructor sees: the questions a file turns into (type, right answers, feedback,
tags), or one error naming the line and the reason, never a partial result or a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lms_live.quizzes.formats import (
    MAX_QUESTIONS,
    MAX_TEXT_BYTES,
    FormatError,
    ImportedQuestion,
    export_csv,
    parse_aiken,
    parse_csv,
    parse_gift,
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

DATA = Path(__file__).parent / "data" / "quiz"
Parser = Callable[[str], list[ImportedQuestion]]


def read(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def body(question: ImportedQuestion) -> dict[str, Any]:
    return question.spec.model_dump(mode="json")


def choices(
    *texts: str, right: str | tuple[str, ...], feedback: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Choice dicts with generated ids a, b, c ...; `right` names the right texts."""
    rights = (right,) if isinstance(right, str) else right
    notes = feedback or {}
    return [
        {"id": chr(ord("a") + n), "text": t, "correct": t in rights, "feedback": notes.get(t, "")}
        for n, t in enumerate(texts)
    ]


def numeric(*answers: tuple[float, float, float, str]) -> dict[str, Any]:
    return {
        "type": "numeric",
        "answers": [
            {"value": v, "tolerance": t, "tolerance_kind": "absolute", "score": s, "feedback": f}
            for v, t, s, f in answers
        ],
    }


def short(*accepted: tuple[str, float, str]) -> dict[str, Any]:
    return {
        "type": "short_text",
        "accepted": [{"text": t, "score": s, "feedback": f} for t, s, f in accepted],
        "case_sensitive": False,
        "whitespace": "normalize",
    }


def error_of(parse: Parser, text: str) -> FormatError:
    with pytest.raises(FormatError) as caught:
        parse(text)
    return caught.value


# --------------------------------------------------------------------------- GIFT


def test_gift_documentation_examples() -> None:
    """The 'quick examples' of Moodle's GIFT page, question by question."""
    questions = parse_gift(read("moodle_examples.gift"))

    assert [q.title for q in questions] == [f"Q{n}" for n in range(1, 9)]
    assert all(q.points == 1.0 and q.tags == [] and q.general_feedback == "" for q in questions)
    prompts = [q.prompt for q in questions]
    assert prompts == [
        "1+1=2",
        "What's between orange and green in the spectrum?",
        "Two plus _____ equals four.",
        "Which animal eats which food?",
        "What is a number from 1 to 5?",
        "What is a number from 1 to 5?",
        "When was Ulysses S. Grant born?",
        "How are you?",
    ]
    specs = [body(q) for q in questions]
    assert specs[0] == {
        "type": "true_false",
        "answer": True,
        "feedback_true": "",
        "feedback_false": "",
    }
    assert specs[1] == {
        "type": "single_choice",
        "options": choices(
            "yellow",
            "red",
            "blue",
            right="yellow",
            feedback={
                "yellow": "right; good!",
                "red": "wrong, it's yellow",
                "blue": "wrong, it's yellow",
            },
        ),
    }
    assert specs[2] == short(("two", 1.0, ""), ("2", 1.0, ""))
    assert specs[3] == {
        "type": "matching",
        "pairs": [
            {"id": "a", "prompt": "cat", "answer": "cat food"},
            {"id": "b", "prompt": "dog", "answer": "dog food"},
        ],
        "distractors": [],
        "scoring": "partial",
    }
    assert specs[4] == numeric((3.0, 2.0, 1.0, ""))
    assert specs[5] == specs[4], "a range 1..5 is the same as 3:2"
    assert specs[6] == numeric(
        (1822.0, 0.0, 1.0, "Correct! Full credit."),
        (1822.0, 2.0, 0.5, "He was born in 1822. Half credit for being close."),
    )
    assert specs[7] == {"type": "essay", "guidance": "", "min_words": 0, "max_words": 5000}


def test_gift_documentation_types_and_options() -> None:
    """The examples of each question type, option and special character on Moodle's page."""
    questions = parse_gift(read("moodle_types.gift"))
    by_prompt = {q.prompt: q for q in reversed(questions)}

    assert [q.spec.type.value for q in questions] == [
        "single_choice", "single_choice", "single_choice", "single_choice",
        "short_text", "short_text", "true_false", "true_false", "matching",
        "numeric", "numeric", "numeric", "numeric",
        "numeric", "short_text", "single_choice", "single_choice", "short_text", "true_false",
        "multiple_choice", "multiple_choice", "short_text", "multiple_choice",
        "single_choice", "single_choice", "single_choice", "essay",
    ]  # fmt: skip
    # $CATEGORY: the last path segment, as a slug, tags what follows until the next one.
    assert {tuple(q.tags) for q in questions[:13]} == {("us-presidents",)}
    assert {tuple(q.tags) for q in questions[13:]} == {("physics",)}

    thanksgiving = questions[2]
    assert thanksgiving.prompt == (
        "The American holiday of Thanksgiving is celebrated on the _____ Thursday of November."
    )
    assert thanksgiving.title == (
        "The American holiday of Thanksgiving is celebrated on the _____ Thursday of N..."
    )
    assert body(thanksgiving)["options"] == choices("second", "third", "fourth", right="fourth")
    assert body(questions[4]) == short(
        ("Grant", 1.0, ""), ("Ulysses S. Grant", 1.0, ""), ("Ulysses Grant", 1.0, "")
    )
    assert body(questions[6])["answer"] is False
    assert body(questions[7])["answer"] is True

    capitals = questions[8]
    assert capitals.general_feedback == "It's good to know the capitals"
    assert [(p["prompt"], p["answer"]) for p in body(capitals)["pairs"]] == [
        ("Canada", "Ottawa"), ("Italy", "Rome"), ("Japan", "Tokyo"), ("India", "New Delhi"),
    ]  # fmt: skip

    assert body(questions[9]) == numeric((1822.0, 5.0, 1.0, ""))
    assert questions[10].prompt == "What is the value of pi (to 3 decimal places)? _____."
    assert body(questions[10]) == numeric((3.14159, 0.0005, 1.0, ""))
    (pi_range,) = body(questions[11])["answers"]
    for end in (3.141, 3.142):  # both ends of a range stay right despite float rounding
        assert abs(end - pi_range["value"]) <= pi_range["tolerance"]
    assert abs(3.1405 - pi_range["value"]) > pi_range["tolerance"]
    assert body(questions[12]) == numeric((1822.0, 0.0, 1.0, ""), (1822.0, 2.0, 0.5, ""))

    kanji = questions[14]
    assert kanji.title == "Kanji Origins"
    assert kanji.prompt == "Japanese characters originally\ncame from what country?"
    assert body(kanji) == short(("China", 1.0, ""))

    assert body(questions[16])["options"] == choices(
        "wrong answer",
        "another wrong answer",
        "right answer",
        right="right answer",
        feedback={
            "wrong answer": "feedback comment on the wrong answer",
            "another wrong answer": "feedback comment on this wrong answer",
            "right answer": "Very good!",
        },
    )
    assert body(questions[17]) == short(
        ("no one", 1.0, "excellent answer!"), ("nobody", 1.0, "excellent answer too!")
    )
    # {FALSE#...}: the first feedback is for a wrong answer, i.e. for whoever says true.
    assert body(questions[18]) == {
        "type": "true_false",
        "answer": False,
        "feedback_true": "No one is buried in Grant's tomb.",
        "feedback_false": "",
    }
    # Weights make a partial-credit multiple choice; a weight > 0 marks a right option.
    assert body(questions[19]) == {
        "type": "multiple_choice",
        "options": choices(
            "wrong answer",
            "half credit answer",
            "full credit answer",
            right=("half credit answer", "full credit answer"),
        ),
        "scoring": "partial",
    }
    hometown = questions[20]
    assert hometown.title == "Jesus' hometown"
    assert hometown.prompt == "Jesus Christ was from _____."
    assert [o["correct"] for o in body(hometown)["options"]] == [False, True, True, True]
    assert body(hometown)["options"][1]["feedback"] == "He was born here, but not raised here."
    assert body(questions[21]) == short(
        ("Nazareth", 1.0, "Yes! That's right!"),
        ("Nazereth", 0.75, "Right, but misspelled."),
        ("Bethlehem", 0.25, "He was born here, but not raised here."),
    )
    assert body(questions[22]) == {
        "type": "multiple_choice",
        "options": choices(
            "No one", "Grant", "Grant's wife", "Grant's father", right=("Grant", "Grant's wife")
        ),
        "scoring": "partial",
    }
    assert [o["text"] for o in body(questions[23])["options"]] == ["= 2 + 2", "= 2 + 3", "= 2 + 4"]
    control = body(questions[24])["options"]
    assert [o["text"] for o in control] == ["~", "=", "#", "{", "}", "\\"]
    assert [o["correct"] for o in control] == [False] * 5 + [True]
    assert control[1]["feedback"] == "= is a control character."
    assert control[5]["feedback"].startswith("Correct! \\ (backslash) is not a control character.")
    markdown = questions[25]
    assert markdown.prompt.startswith("The *American holiday of Thanksgiving* is celebrated")
    assert by_prompt["Write a short biography of Dag Hammarskjöld."].spec.type.value == "essay"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Q {T}",
            {"type": "true_false", "answer": True, "feedback_true": "", "feedback_false": ""},
        ),
        (
            "Q {TRUE}",
            {"type": "true_false", "answer": True, "feedback_true": "", "feedback_false": ""},
        ),
        (
            "Q {F}",
            {"type": "true_false", "answer": False, "feedback_true": "", "feedback_false": ""},
        ),
        (
            "Q {false}",
            {"type": "true_false", "answer": False, "feedback_true": "", "feedback_false": ""},
        ),
        (
            "Q {T#Think again#Well done}",
            {
                "type": "true_false",
                "answer": True,
                "feedback_true": "Well done",
                "feedback_false": "Think again",
            },
        ),
        ("Q {=a ~b}", {"type": "single_choice", "options": choices("a", "b", right="a")}),
        (
            "Q {=a =b ~c}",
            {
                "type": "multiple_choice",
                "options": choices("a", "b", "c", right=("a", "b")),
                "scoring": "all_or_nothing",
            },
        ),
        (
            "Q {~%100%a ~%-50%b}",
            {
                "type": "multiple_choice",
                "options": choices("a", "b", right="a"),
                "scoring": "partial",
            },
        ),
        (
            "Q {~%33.3%a ~%33.3%b ~%33.3%c ~%-100%d}",
            {
                "type": "multiple_choice",
                "options": choices("a", "b", "c", "d", right=("a", "b", "c")),
                "scoring": "partial",
            },
        ),
        ("Q {=four =4}", short(("four", 1.0, ""), ("4", 1.0, ""))),
        ("Q {=%50%half}", None),  # no full-marks answer: refused below
        ("Q {#3.14:0.01}", numeric((3.14, 0.01, 1.0, ""))),
        ("Q {#-5}", numeric((-5.0, 0.0, 1.0, ""))),
        ("Q {#1.5e3:10}", numeric((1500.0, 10.0, 1.0, ""))),
        ("Q {#1..2}", numeric((1.5, 0.5, 1.0, ""))),
        ("Q {#-2..-1}", numeric((-1.5, 0.5, 1.0, ""))),
        ("Q {#=3:0.1 =%50%3:1}", numeric((3.0, 0.1, 1.0, ""), (3.0, 1.0, 0.5, ""))),
        (
            "Q {#2 # good =%25%3 # close}",
            numeric((2.0, 0.0, 1.0, "good"), (3.0, 0.0, 0.25, "close")),
        ),
        (
            "Q {=a -> 1 =b -> 2 = -> 3}",
            {
                "type": "matching",
                "pairs": [
                    {"id": "a", "prompt": "a", "answer": "1"},
                    {"id": "b", "prompt": "b", "answer": "2"},
                ],
                "distractors": [{"id": "c", "text": "3"}],
                "scoring": "partial",
            },
        ),
        ("Q {}", {"type": "essay", "guidance": "", "min_words": 0, "max_words": 5000}),
        ("Q {\n}", {"type": "essay", "guidance": "", "min_words": 0, "max_words": 5000}),
    ],
)
def test_gift_question_types(text: str, expected: dict[str, Any] | None) -> None:
    if expected is None:
        assert "full points" in error_of(parse_gift, text).reason
        return
    (question,) = parse_gift(text)
    assert body(question) == expected
    assert question.prompt == "Q"
    assert question.title == "Q"


def test_gift_escapes_titles_markers_and_feedback() -> None:
    text = (
        "::Escapes \\: all\\::: Is 1 \\= 1\\? Use \\{braces\\} and \\~\\#.\\nNew line {\n"
        "  =yes \\= sure # right\\: \\#1\n"
        "  ~no # wrong\n"
        "  #### Because \\{ 1 \\} \\= 1.\n"
        "}\n"
    )
    (question,) = parse_gift(text)
    assert question.title == "Escapes : all:"
    assert question.prompt == "Is 1 = 1\\? Use {braces} and ~#.\nNew line"
    assert body(question)["options"] == choices(
        "yes = sure", "no", right="yes = sure", feedback={"yes = sure": "right: #1", "no": "wrong"}
    )
    assert question.general_feedback == "Because { 1 } = 1."

    (question,) = parse_gift("::T::[markdown]**Bold** question {=[markdown]*yes* ~no}")
    assert question.prompt == "**Bold** question"
    assert body(question)["options"][0]["text"] == "*yes*"

    (question,) = parse_gift("[html]<p>Which?</p>{=a ~b}")
    assert question.prompt == "<p>Which?</p>"
    (question,) = parse_gift("[unknown] stays {=a ~b}")
    assert question.prompt == "[unknown] stays"

    (question,) = parse_gift("::::Untitled {T}")
    assert question.title == "Untitled"
    (question,) = parse_gift("A very long question text " * 10 + "{T}")
    assert len(question.title) == 80
    assert question.title.endswith("...")


def test_gift_comments_blank_lines_categories_and_tags() -> None:
    text = (
        "\ufeff// header comment\r\n"
        "\r\n"
        "$CATEGORY: $course$/top/Default for Course/Linear Algebra\r\n"
        "\r\n"
        "// [id:q1] [tag:Vectors] [tag:hard]\r\n"
        "::A:: first {T}\r\n"
        "\r\n"
        "   \r\n"
        "::B:: second {\r\n"
        "// a comment inside the answers\r\n"
        "=yes\r\n"
        "~no\r\n"
        "}\r\n"
        "\r\n"
        "$CATEGORY: top/Unit 2//Part a\r\n"
        "::C:: third {F}\r\n"
        "\r\n"
        "$CATEGORY: $course$/top\r\n"
        "\r\n"
        "::D:: fourth {F}\r\n"
        "// trailing comment only\r\n"
    )
    questions = parse_gift(text)
    assert [(q.title, q.tags) for q in questions] == [
        ("A", ["linear-algebra", "vectors", "hard"]),
        ("B", ["linear-algebra"]),
        ("C", ["unit-2-part-a"]),
        ("D", []),
    ]
    assert body(questions[1])["options"] == choices("yes", "no", right="yes")


def test_gift_empty_and_comment_only_files() -> None:
    assert parse_gift("") == []
    assert parse_gift("// nothing\n\n// here\n") == []
    assert parse_gift("$CATEGORY: only/a/category\n") == []


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("Q1 {T}\n\nJust a description.", 3, "descriptions are not supported"),
        ("::Title without end {T}", 1, "not closed with '::'"),
        ("Q {=a ~b", 1, "is not closed"),
        ("Q {=a\n\n~b}", 1, "is not closed"),
        ("Q {T}\n\nQ2 {=a\n~b\n\n}", 3, "is not closed"),
        ("Q } {T}", 1, "without an opening"),
        ("Q {=a\n{~b}", 2, "'{' inside an answer block"),
        ("Q {T} and {F}", 1, "one answer block"),
        ("Q {T}\nthen }", 2, "one answer block"),
        ("Q {\n~a\n~b\n}", 1, "no right answer"),
        ("Q {\n=a\n~\n}", 3, "an answer has no text"),
        ("Q {=only ~}", 1, "an answer has no text"),
        ("Q {~a}", 1, "at least 2 answers"),
        ("Q {\n=a\n~%150%b\n}", 3, "not within -100..100%"),
        ("Q {oops =a ~b}", 1, "unexpected text 'oops' before the first answer"),
        ("Q {\nyellow\n}", 2, "unexpected text 'yellow'"),
        ("Q {=a\n=%0%b}", 2, "more than 0%"),
        ("Q {=a =}", 1, "an answer has no text"),
        ("Q {=%50%a}", 1, "at least one accepted answer must earn full points"),
        ("Q {T#a#b#c}", 1, "at most two feedbacks"),
        ("Q {#}", 1, "needs an answer"),
        ("Q {#\n=1\n=abc\n}", 3, "the value 'abc' is not a number"),
        ("Q {#3:x}", 1, "the tolerance 'x' is not a number"),
        ("Q {#3:-1}", 1, "must not be negative"),
        ("Q {#5..1}", 1, "starts above its end"),
        ("Q {#1e999}", 1, "too large"),
        ("Q {#nan}", 1, "not a number"),
        ("Q {#1\n~#other}", 2, "'~'"),
        ("Q {#=%-50%1 =2}", 1, "more than 0%"),
        ("Q {=a -> b\n=c}", 2, "'=prompt -> answer'"),
        ("Q {=a -> b =c -> }", 1, "no answer after '->'"),
        ("Q {=a -> b\n=%50%c -> d}", 2, "no weight or feedback"),
        ("Q {=a -> b # fb =c -> d}", 1, "no weight or feedback"),
        ("Q {=a -> b}", 1, "pairs"),
        ("Q {=a -> b = -> c}", 1, "pairs"),
        ("::a\\nb:: Q {T}", 1, "one line"),
        ("::" + "t" * 201 + ":: Q {T}", 1, "longer than 200"),
        ("::T:: {T}", 1, "question text is empty"),
        ("{=a ~b}", 1, "question text is empty"),
        ("Q {T}\n\n$CATEGORY: a/!!!", 3, "no letter or digit"),
        (
            "Q {T}\n\n" + "// " + " ".join(f"[tag:t{n}]" for n in range(21)) + "\nQ {T}",
            4,
            "at most 20 tags",
        ),
        ("Q {T}\nline two \x00 {", 2, "NUL"),
        ("Q {T}\n\nQ \ue001 {T}", 3, "reserved"),
        ("Q {" + " ".join(f"~o{n}" for n in range(26)) + " =right}", 1, "at most 26"),
        ("Q\n\n\nR {T}\n\nS {=a\n~b\n~c\n\n}", 1, "descriptions"),
    ],
)
def test_gift_errors_name_the_line(text: str, line: int, reason: str) -> None:
    error = error_of(parse_gift, text)
    assert (error.line, reason in error.reason) == (line, True), error.reason
    assert str(error).startswith(f"line {line}: ")


def test_gift_error_lines_follow_crlf_and_blank_lines() -> None:
    text = "// c\r\n\r\nQ1 {T}\r\n\r\n::Q2::\r\nText\r\n{\r\n=a\r\n~%x%b\r\n~\r\n}\r\n"
    assert error_of(parse_gift, text).line == 10


# --------------------------------------------------------------------------- Aiken


def test_aiken_documentation_examples() -> None:
    questions = parse_aiken(read("moodle.aiken"))
    assert [(q.title, q.prompt, q.points, q.tags) for q in questions] == [
        (
            "What is the correct answer to this question?",
            "What is the correct answer to this question?",
            1.0,
            [],
        ),
        (
            "Which LMS has the most quiz import formats?",
            "Which LMS has the most quiz import formats?",
            1.0,
            [],
        ),
    ]
    assert body(questions[0]) == {
        "type": "single_choice",
        "options": choices(
            "Is it this one?",
            "Maybe this answer?",
            "Possibly this one?",
            "Must be this one!",
            right="Must be this one!",
        ),
    }
    assert body(questions[1])["options"] == choices(
        "Moodle", "ATutor", "Claroline", "Blackboard", "WebCT", "Ilias", right="Moodle"
    )


def test_aiken_multiline_question_no_blank_lines_and_crlf() -> None:
    text = (
        "First line\r\nsecond line\r\nA) yes\r\nB) no\r\nANSWER: b\r\n"
        "Next?\r\nA. x\r\nB.\ty\r\nANSWER:A"
    )
    first, second = parse_aiken(text)
    assert first.prompt == "First line\nsecond line"
    assert first.title == "First line second line"
    assert body(first)["options"] == choices("yes", "no", right="no")
    assert body(second)["options"] == choices("x", "y", right="x")
    assert parse_aiken("") == []
    assert parse_aiken("\n\n  \n") == []


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("A. orphan\nB. no\nANSWER: A", 1, "before the question text"),
        ("Q\nANSWER: A", 2, "before any option"),
        ("Q\nA. a\nB. b\nANSWER: C", 4, "not one of the option letters A-B"),
        ("Q\nA. a\nB. b\nANSWER: AB", 4, "not one of the option letters"),
        ("Q\nA. a\nB. b\nANSWER:", 4, "not one of the option letters"),
        ("Q\nA. a\nANSWER: A", 3, "at least 2 options"),
        ("Q\nA. a\nC. c\nANSWER: A", 3, "expected option B, found C"),
        ("Q\nA. a\nB.\nANSWER: A", 3, "option B has no text"),
        (
            "Q\nA. a\nB. b\n\nQ2\nA. c\nB. d\nANSWER: A",
            5,
            "expected option C or 'ANSWER: <letter>'",
        ),
        ("Q1\nA. a\nB. b\nANSWER: A\n\nQ2\nA. c\nB. d\n", 6, "no 'ANSWER: <letter>' line"),
        ("Q1\nA. a\nB. b\nANSWER: A\n\nQ2 \x00\nA. c\nB. d\nANSWER: A", 6, "NUL"),
    ],
)
def test_aiken_errors_name_the_line(text: str, line: int, reason: str) -> None:
    error = error_of(parse_aiken, text)
    assert (error.line, reason in error.reason) == (line, True), error.reason


# --------------------------------------------------------------------------- CSV


def test_csv_every_type_in_its_short_form() -> None:
    questions = parse_csv(read("all_types.csv"))
    summary = [(q.spec.type.value, q.title, q.points, q.tags) for q in questions]
    assert summary == [
        ("single_choice", "Capital of France", 1.0, ["geography", "europe"]),
        ("multiple_choice", "Primes", 2.0, ["math"]),
        ("multiple_choice", "Primes (partial)", 2.0, ["math"]),
        ("true_false", "Sky", 0.5, []),
        ("short_text", "Grant's tomb", 1.0, ["history"]),
        ("numeric", "Pi", 1.0, ["math"]),
        ("numeric", "A number", 1.0, ["math"]),
        ("ordering", "Planets", 1.0, ["astronomy"]),
        ("matching", "Capitals", 3.0, ["geography"]),
        ("essay", "Biography", 10.0, ["history"]),
        ("single_choice", "Shell pipe", 1.0, []),
        ("numeric", "Speed of light", 1.0, ["physics"]),
    ]
    france, primes, partial, sky, grant, pi, number, planets, capitals, essay, pipe, light = (
        questions
    )
    assert france.general_feedback == "Paris has been the capital since 508."
    assert body(france)["options"] == choices("Paris", "London", "Berlin", right="Paris")
    assert body(primes) == {
        "type": "multiple_choice",
        "options": choices("2", "3", "4", "5", right=("2", "3", "5")),
        "scoring": "all_or_nothing",
    }
    assert body(partial)["scoring"] == "partial"
    assert body(sky)["answer"] is True
    assert body(grant) == short(
        ("no one", 1.0, ""), ("nobody", 1.0, ""), ("Ulysses S. Grant", 1.0, "")
    )
    assert body(pi) == numeric((3.14, 0.005, 1.0, ""))
    assert body(number) == numeric((3.0, 2.0, 1.0, ""))
    assert body(planets) == {
        "type": "ordering",
        "items": [
            {"id": "a", "text": "Mercury"},
            {"id": "b", "text": "Venus"},
            {"id": "c", "text": "Earth"},
            {"id": "d", "text": "Mars"},
        ],
        "scoring": "partial",
    }
    assert body(capitals) == {
        "type": "matching",
        "pairs": [
            {"id": "a", "prompt": "Canada", "answer": "Ottawa"},
            {"id": "b", "prompt": "Italy", "answer": "Rome"},
        ],
        "distractors": [{"id": "c", "text": "Paris"}],
        "scoring": "partial",
    }
    assert essay.prompt == "Write a short biography of\n*Dag Hammarskjöld*."
    assert essay.general_feedback == "Look for the main dates."
    assert body(essay) == {"type": "essay", "guidance": "", "min_words": 0, "max_words": 5000}
    assert [o["text"] for o in body(pipe)["options"]] == ["|", "&", ";"]
    assert body(light)["answers"][0]["tolerance_kind"] == "relative"


def test_csv_json_answers_carry_everything_else() -> None:
    spec = MultipleChoiceSpec(
        options=[
            Choice(id="yes", text="Yes", correct=True, feedback="Indeed"),
            Choice(id="no", text="No", feedback="Look again"),
        ],
        scoring=Scoring.PARTIAL,
    )
    text = (
        "type,prompt,answer\r\n"
        'multiple_choice,Really?,"'
        + spec.model_dump_json(exclude={"type"}).replace('"', '""')
        + '"\r\n'
        'essay,Tell me,"{""type"": ""essay"", ""min_words"": 50, ""guidance"": ""Be kind""}"\r\n'
    )
    first, second = parse_csv(text)
    assert first.spec == spec
    assert (first.title, first.points, first.tags) == ("Really?", 1.0, [])
    assert second.spec == EssaySpec(min_words=50, guidance="Be kind")


def test_csv_accepts_reordered_partial_headers_bom_and_lenient_cells() -> None:
    text = (
        "\ufeff Prompt ,TYPE,answer,options\n"
        "Pick,single_choice, b ,  x  |  y  \n"
        "\n"
        ",,,\n"
        'Pick some,multiple_choice,"a, c",x|y|z\n'
        "Is it?,true_false,F,\n"
        "Order,ordering,,1|2,,\n"
    )
    pick, some, is_it, order = parse_csv(text)
    assert body(pick)["options"] == choices("x", "y", right="y")
    assert [o["correct"] for o in body(some)["options"]] == [True, False, True]
    assert body(is_it)["answer"] is False
    assert body(order)["scoring"] == "all_or_nothing"
    assert parse_csv("type,prompt\r\n") == []


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("", 1, "missing header"),
        ("kind,prompt\n", 1, "header must name"),
        ("type,title\n", 1, "including type and prompt"),
        ("type,prompt,type\n", 1, "distinct"),
        ("type;title;prompt\nessay;T;P\n", 1, "commas, not semicolons"),
        ("type,prompt\nsingle,Q\n", 2, "unknown type 'single'"),
        ('type,prompt,answer\ntrue_false,"Multi\nline",true\nessay,Q,x\n', 4, "takes no answer"),
        ('type,prompt,answer\ntrue_false,"Multi\nline",yes\n', 2, "true or false"),
        ('type,prompt,answer\nessay,ok,\ntrue_false,"a\n\nb",maybe\n', 3, "true or false"),
        ('type,prompt\nessay,"never closed\nessay,x\n', 2, "malformed CSV"),
        ('type,prompt\nessay,"a"b\n', 2, "malformed CSV"),
        ("type,prompt\nessay,ok,extra\n", 2, "3 cells, but the header names 2"),
        ("type,prompt\nessay,   \n", 2, "question text is empty"),
        ("type,prompt,points\nessay,Q,lots\n", 2, "points 'lots' is not a number"),
        ("type,prompt,points\nessay,Q,-1\n", 2, "more than 0 and at most 1000"),
        ("type,prompt,points\nessay,Q,0\n", 2, "more than 0 and at most 1000"),
        ("type,prompt,points\nessay,Q,1001\n", 2, "more than 0 and at most 1000"),
        ("type,prompt,points\nessay,Q,inf\n", 2, "not a number"),
        ("type,prompt,tags\nessay,Q,ok;***\n", 2, "tag '***' has no letter or digit"),
        (
            "type,prompt,tags\nessay,Q," + ";".join(f"t{n}" for n in range(21)) + "\n",
            2,
            "at most 20 tags",
        ),
        ('type,prompt,title\nessay,Q,"two\nlines"\n', 2, "one line"),
        ("type,prompt,title\nessay,Q," + "t" * 201 + "\n", 2, "longer than 200"),
        ("type,prompt\nessay," + "p" * 20_001 + "\n", 2, "longer than 20000"),
        ("type,prompt,feedback\nessay,Q," + "f" * 10_001 + "\n", 2, "general feedback is longer"),
        ("type,prompt,options,answer\nsingle_choice,Q,,A\n", 2, "needs options"),
        ("type,prompt,options,answer\nsingle_choice,Q,a|b,\n", 2, "names no option letter"),
        (
            "type,prompt,options,answer\nsingle_choice,Q,a|b,C\n",
            2,
            "'C' is not an option letter A-B",
        ),
        ("type,prompt,options,answer\nsingle_choice,Q,a|b,A;B\n", 2, "one letter"),
        ("type,prompt,options,answer\nmultiple_choice,Q,a|b,A;a\n", 2, "given twice"),
        ("type,prompt,options,answer\nmultiple_choice,Q,a||b,A\n", 2, "option 2 is empty"),
        ("type,prompt,options,answer\nsingle_choice,Q,a,A\n", 2, "at least 2"),
        ("type,prompt,options,answer\nmultiple_choice,Q,a|b,most:A\n", 2, "not an option letter"),
        ("type,prompt,answer\nshort_text,Q,\n", 2, "needs accepted answers"),
        ("type,prompt,answer\nshort_text,Q,a||b\n", 2, "accepted answer 2 is empty"),
        ("type,prompt,answer\nnumeric,Q,\n", 2, "needs a value"),
        ("type,prompt,answer\nnumeric,Q,1|two\n", 2, "the value 'two' is not a number"),
        ("type,prompt,answer\nnumeric,Q,2..1\n", 2, "starts above its end"),
        ("type,prompt,options,answer\nnumeric,Q,1,1\n", 2, "take no options"),
        (
            "type,prompt,options,answer\nordering,Q,a|b,sometimes\n",
            2,
            "'partial' or 'all_or_nothing'",
        ),
        ("type,prompt,options\nordering,Q,a\n", 2, "at least 2"),
        ("type,prompt,options\nmatching,Q,a -> 1|b\n", 2, "'b' is not 'prompt -> answer'"),
        ("type,prompt,options\nmatching,Q,a -> 1|b ->\n", 2, "no answer after '->'"),
        ("type,prompt,answer\nessay,Q,words\n", 2, "takes no answer"),
        ("type,prompt,answer\nessay,Q,{oops\n", 2, "not valid JSON"),
        ('type,prompt,answer\nessay,Q,{}\nessay,Q,"{""a"": [}"\n', 3, "not valid JSON"),
        ('type,prompt,answer\nessay,Q,"{""type"": ""numeric""}"\n', 2, "is a 'numeric' spec"),
        ('type,prompt,answer\nessay,Q,"{""max_words"": 0}"\n', 2, "max_words"),
        ('type,prompt,answer\nessay,Q,"{""extra"": 1}"\n', 2, "extra"),
        ("type,prompt,options,answer\nessay,Q,a,{}\n", 2, "leave options empty"),
        ("type,prompt\nessay,Q\nessay,Q \x00\n", 3, "NUL"),
    ],
)
def test_csv_errors_name_the_line(text: str, line: int, reason: str) -> None:
    error = error_of(parse_csv, text)
    assert (error.line, reason in error.reason) == (line, True), error.reason


def test_csv_export_round_trips_the_samples() -> None:
    for questions in (
        parse_csv(read("all_types.csv")),
        parse_gift(read("moodle_examples.gift")),
        parse_gift(read("moodle_types.gift")),
        parse_aiken(read("moodle.aiken")),
    ):
        exported = export_csv(questions)
        assert parse_csv(exported) == questions
        assert export_csv(parse_csv(exported)) == exported


def test_csv_export_writes_short_forms_and_json_when_needed() -> None:
    exported = export_csv(parse_csv(read("all_types.csv")))
    expected = read("all_types.csv").replace("\n", "\r\n")
    # Canonical forms: tags as slugs, a range as value:tolerance, floats as Python writes them.
    expected = expected.replace("Geography;Europe", "geography;europe").replace(
        "History", "history"
    )
    expected = expected.replace(",1..5,", ",3:2,").replace("\r\n*Dag", "\n*Dag")
    expected = expected.replace('""value"": 299792458,', '""value"": 299792458.0,')
    assert exported == expected
    assert exported.startswith("type,title,prompt,points,tags,options,answer,feedback\r\n")


def test_csv_export_empty() -> None:
    assert export_csv([]) == "type,title,prompt,points,tags,options,answer,feedback\r\n"
    assert parse_csv(export_csv([])) == []


# --------------------------------------------------------------------------- round trip


_PRINTABLE = st.characters(categories=["L", "M", "N", "P", "S"], include_characters=" ")
_ANY = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_TRICKY = st.sampled_from([*"|\\,\"';:{}#=~->%\n\r\t ", "->", "\r\n", "partial:", "A;B"])
_text = st.lists(st.one_of(_ANY, _TRICKY), max_size=12).map("".join)
_word = st.lists(
    st.one_of(_PRINTABLE, _TRICKY.filter(str.isprintable)), min_size=1, max_size=12
).map("".join)
_line = st.text(_PRINTABLE, max_size=30).map(str.strip).filter(bool)
_option_text = st.one_of(_word.map(str.strip).filter(bool), _text)
_feedback = st.one_of(st.just(""), _text)
_floats = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False), st.floats(allow_nan=False, allow_infinity=False)
)
_score = st.one_of(st.just(1.0), st.floats(0.01, 1.0))


@st.composite
def _ids(draw: st.DrawFn, count: int) -> list[str]:
    if draw(st.booleans()):
        return [chr(ord("a") + n) for n in range(count)]
    return draw(
        st.lists(
            st.from_regex(r"[A-Za-z0-9_-]{1,6}", fullmatch=True),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )


@st.composite
def _specs(draw: st.DrawFn) -> QuestionSpec:
    kind = draw(st.integers(0, 7))
    if kind in (0, 1):
        count = draw(st.integers(2, 6))
        ids = draw(_ids(count))
        right = draw(
            st.sets(st.integers(0, count - 1), min_size=1, max_size=1 if kind == 0 else count)
        )
        options = [
            Choice(id=ids[n], text=draw(_option_text), correct=n in right, feedback=draw(_feedback))
            for n in range(count)
        ]
        if kind == 0:
            return SingleChoiceSpec(options=options)
        return MultipleChoiceSpec(options=options, scoring=draw(st.sampled_from(Scoring)))
    if kind == 2:
        return TrueFalseSpec(
            answer=draw(st.booleans()),
            feedback_true=draw(_feedback),
            feedback_false=draw(_feedback),
        )
    if kind == 3:
        accepted = [AcceptedText(text=draw(_word), feedback=draw(_feedback))]
        accepted += draw(
            st.lists(
                st.builds(AcceptedText, text=_word, score=_score, feedback=_feedback), max_size=3
            )
        )
        return ShortTextSpec(
            accepted=draw(st.permutations(accepted)),
            case_sensitive=draw(st.booleans()),
            whitespace=draw(st.sampled_from(Whitespace)),
        )
    if kind == 4:
        full = NumericAnswer(
            value=draw(_floats), tolerance=draw(st.one_of(st.just(0.0), st.floats(0, 1e6)))
        )
        others = draw(
            st.lists(
                st.builds(
                    NumericAnswer,
                    value=_floats,
                    tolerance=st.floats(0, 1e3),
                    tolerance_kind=st.sampled_from(Tolerance),
                    score=_score,
                    feedback=_feedback,
                ),
                max_size=2,
            )
        )
        return NumericSpec(answers=[full, *others])
    if kind == 5:
        count = draw(st.integers(2, 6))
        ids = draw(_ids(count))
        return OrderingSpec(
            items=[Item(id=i, text=draw(_option_text)) for i in ids],
            scoring=draw(st.sampled_from(Scoring)),
        )
    if kind == 6:
        pairs, extra = draw(st.integers(2, 5)), draw(st.integers(0, 2))
        ids = draw(_ids(pairs + extra))
        return MatchingSpec(
            pairs=[
                Pair(id=i, prompt=draw(_option_text), answer=draw(_option_text))
                for i in ids[:pairs]
            ],
            distractors=[Item(id=i, text=draw(_option_text)) for i in ids[pairs:]],
            scoring=draw(st.sampled_from(Scoring)),
        )
    if draw(st.booleans()):
        return EssaySpec()
    low = draw(st.integers(0, 100))
    return EssaySpec(
        guidance=draw(_text), min_words=low, max_words=draw(st.integers(max(low, 1), 10_000))
    )


_tag = st.from_regex(r"[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,2}", fullmatch=True)
_questions = st.builds(
    ImportedQuestion,
    title=_line,
    prompt=_text.filter(str.strip),
    points=st.one_of(
        st.sampled_from([0.5, 1.0, 2.0, 1000.0]), st.floats(0, 1000, exclude_min=True)
    ),
    general_feedback=_feedback,
    tags=st.lists(_tag, max_size=4, unique=True),
    spec=_specs(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_questions, max_size=4))
def test_csv_round_trip_property(questions: list[ImportedQuestion]) -> None:
    """Whatever the bank holds comes back unchanged, and re-exports to the same text."""
    exported = export_csv(questions)
    assert parse_csv(exported) == questions
    assert export_csv(parse_csv(exported)) == exported


@pytest.mark.parametrize(
    "spec",
    [
        SingleChoiceSpec(
            options=[Choice(id="a", text="x|y", correct=True), Choice(id="b", text="\\")]
        ),
        SingleChoiceSpec(
            options=[Choice(id="a", text=" padded ", correct=True), Choice(id="b", text="")]
        ),
        ShortTextSpec(accepted=[AcceptedText(text="{json?}")]),
        ShortTextSpec(accepted=[AcceptedText(text="a\\|b")]),
        NumericSpec(
            answers=[NumericAnswer(value=-0.0), NumericAnswer(value=1e300, tolerance=1e-300)]
        ),
        NumericSpec(
            answers=[NumericAnswer(value=2.5, tolerance=0.1, tolerance_kind=Tolerance.RELATIVE)]
        ),
        MatchingSpec(
            pairs=[Pair(id="a", prompt="x -> y", answer="z"), Pair(id="b", prompt="p", answer="q")]
        ),
        MatchingSpec(
            pairs=[Pair(id="a", prompt="x", answer="y"), Pair(id="b", prompt="p", answer="q")],
            scoring=Scoring.ALL_OR_NOTHING,
        ),
        OrderingSpec(
            items=[Item(id="a", text="1"), Item(id="b", text="2")], scoring=Scoring.PARTIAL
        ),
        EssaySpec(max_words=10),
        TrueFalseSpec(answer=False, feedback_false="yes"),
    ],
)
def test_csv_round_trip_examples(spec: QuestionSpec) -> None:
    question = ImportedQuestion(
        title="T",
        prompt='P, "quoted"\nand more',
        points=1.5,
        general_feedback="",
        tags=["a"],
        spec=spec,
    )
    exported = export_csv([question])
    assert parse_csv(exported) == [question]
    assert export_csv(parse_csv(exported)) == exported


# --------------------------------------------------------------------------- limits, fuzz


def _many(parse: Parser, count: int) -> str:
    if parse is parse_gift:
        return "\n\n".join(f"Q{n} {{T}}" for n in range(count))
    if parse is parse_aiken:
        return "\n".join(f"Q{n}\nA. a\nB. b\nANSWER: A" for n in range(count))
    return "type,prompt,answer\n" + "".join(f"true_false,Q{n},true\n" for n in range(count))


@pytest.mark.parametrize("parse", [parse_gift, parse_aiken, parse_csv])
def test_at_most_1000_questions(parse: Parser) -> None:
    assert len(parse(_many(parse, MAX_QUESTIONS))) == MAX_QUESTIONS
    error = error_of(parse, _many(parse, MAX_QUESTIONS + 1))
    assert (error.line, error.reason) == (0, "a file holds at most 1000 questions")
    assert str(error) == "a file holds at most 1000 questions"


@pytest.mark.parametrize("parse", [parse_gift, parse_aiken, parse_csv])
def test_at_most_2_mb(parse: Parser) -> None:
    head = _many(parse, 1)
    fits = head + "\n" * (MAX_TEXT_BYTES - len(head))
    assert len(parse(fits)) == 1
    for too_big in (fits + "\n", head + "é" * (MAX_TEXT_BYTES // 2)):
        error = error_of(parse, too_big)
        assert (error.line, error.reason) == (0, "the file is larger than 2 MB")


@pytest.mark.parametrize("parse", [parse_gift, parse_aiken, parse_csv])
def test_lone_surrogates_are_refused(parse: Parser) -> None:
    error = error_of(parse, "ok\nbad \ud800 {T}")
    assert (error.line, "surrogate" in error.reason) == (2, True)


_GIFTISH = st.lists(
    st.sampled_from(
        [*'{}=~#:\\->%T.1aA)/$[]\n \r|,"', "//", "\n\n", "$CATEGORY:", "::", "ANSWER: ", "A. "]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(_GIFTISH, st.text(max_size=60)),
    parser=st.sampled_from([parse_gift, parse_aiken, parse_csv]),
)
@example(text="{#1..1e308}", parser=parse_gift)
@example(text="Q {#-1e308..1.7e308}", parser=parse_gift)
@example(text="type,prompt,answer\nnumeric,Q,-1.7e308..1.7e308", parser=parse_csv)
def test_parsers_answer_any_text_with_questions_or_a_format_error(
    text: str, parser: Parser
) -> None:
    """Garbage in: a list or a FormatError with a line inside the file, never another error."""
    outcome = _outcome(parser, text)
    if isinstance(outcome, FormatError):
        assert 0 <= outcome.line <= len(text.splitlines()) + 1
        assert outcome.reason
    else:
        assert all(q.prompt.strip() for q in outcome)


def _outcome(parser: Parser, text: str) -> list[ImportedQuestion] | FormatError:
    try:
        return parser(text)
    except FormatError as error:
        return error
