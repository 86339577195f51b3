"""The bench's options: what --quick and the repetition defaults mean, and bad input refused."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import parse_args


def test_defaults_are_the_three_scales_with_fewer_large_repetitions() -> None:
    args = parse_args([])
    assert (args.scales, args.repeat, args.repeat_large) == ([1, 10, 100], 3, 1)
    assert not args.strict


def test_quick_is_scales_1_and_10_once() -> None:
    args = parse_args(["--quick", "--repeat", "5"])
    assert (args.scales, args.repeat, args.repeat_large) == ([1, 10], 1, 1)


def test_scales_are_sorted_and_deduplicated() -> None:
    assert parse_args(["--scales", "10,1,10"]).scales == [1, 10]


@pytest.mark.parametrize("argv", [["--scales", "0"], ["--scales", "x"], ["--repeat", "0"]])
def test_bad_options_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
