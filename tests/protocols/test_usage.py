"""Usage normalisation fixes found while building the codecs."""

from __future__ import annotations

import pytest

from core.usage import Usage
from translator.protocols.gemini import usage as gemini_usage


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (
            {"promptTokenCount": 83, "candidatesTokenCount": 14, "thoughtsTokenCount": 104,
             "totalTokenCount": 201},
            Usage(input=83, output=14, reasoning=104),
        ),
        (
            {"promptTokenCount": 83, "candidatesTokenCount": 118, "thoughtsTokenCount": 104,
             "totalTokenCount": 201},
            Usage(input=83, output=14, reasoning=104),
        ),
    ],
    ids=["exclusive", "inclusive"],
)
def test_gemini_candidates_inclusive_of_thoughts_are_not_double_counted(
    meta: dict[str, int], expected: Usage
) -> None:
    """candidatesTokenCount that already includes thoughts (prompt+candidates == total) is split."""
    assert expected == gemini_usage.read(meta)
