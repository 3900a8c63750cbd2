"""The check that stands between a model's prose and the user: numbers and decision ids must come from tools."""

from __future__ import annotations

from agents.answer_check import check_answer, numbers_in, supported
from agents.journal_tools import ToolOutput

OUT = ToolOutput(
    tool="explain_decision",
    data={"close": 2486.77, "change": 0.0018054, "total": 7, "time": "2024-02-09T16:00", "reasons": ["a", "b", "c"],
          "rationale": "P(up)=0.622 from 4 signals", "equity": 101357.6912, "flag": True, "nothing": None},
    decision_ids=["d-fcae45a56eef1e78"],
)  # fmt: skip


def test_numbers_are_read_as_written() -> None:
    assert numbers_in("bought 1,234.5 at -0.06% on 2024-02-09T16:00 [d-0123456789abcdef]") == [
        "1,234.5", "-0.06", "2024", "02", "09", "16", "00"]  # fmt: skip


def test_rounding_percentages_and_text_numbers_are_supported() -> None:
    known = [2486.77, 0.0018054, 101357.6912, 7.0, 3.0]
    for written in ("2,486.77", "2486.8", "2487", "0.18", "0.1805", "101,357.69", "101,358", "7", "-0.18", "3"):
        assert supported(written, known), written
    for written in ("2,486.7", "0.19", "101,357", "8", "2486.771"):
        assert not supported(written, known), written


def test_a_supported_answer_passes() -> None:
    text = ("ETH closed at 2,486.77 on 2024-02-09T16:00 and moved +0.18% over the horizon; the gate denied 7 orders "
            "for 3 reasons, with P(up)=0.622 from 4 signals [d-fcae45a56eef1e78].")  # fmt: skip
    result = check_answer(text, [OUT])
    assert result.ok and result.problems == []


def test_unsupported_numbers_unknown_ids_and_missing_citations_fail() -> None:
    result = check_answer("It closed at 2,500.00 [d-fcae45a56eef1e78] and [d-ffffffffffffffff].", [OUT])
    assert not result.ok and result.unsupported_numbers == ["2,500.00"] and result.unknown_ids == ["d-ffffffffffffffff"]
    assert result.reason == ("it states 2,500.00, which no tool output contains; it cites d-ffffffffffffffff, which no "
                             "tool returned")  # fmt: skip
    assert check_answer("The gate denied 7 orders.", [OUT]).reason == (
        "it cites no decision id although the tools returned some"
    )
    assert check_answer("  ", [OUT]).reason == "the model returned no text"
    assert check_answer("Nothing journaled matches.", []).ok
    assert check_answer("It had 12 orders.", [], question="were there 12 orders?").ok  # numbers the user gave
