"""The documentation keeps up with the code: every setting is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from lms_live.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("document", ["README.md", ".env.example"])
def test_every_setting_is_documented(document: str) -> None:
    text = (ROOT / document).read_text()
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in text]
    assert missing == [], f"{document} does not mention {missing}"


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == [
        "make run",
        "make test",
    ]
    assert "make test" in (ROOT / ".ci" / "run").read_text()
