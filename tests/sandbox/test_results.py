"""Results too large to hand back end with the limit that stopped them and say what to do.

The harness measures the report before it sends it; the host notices when a
result and what the tool printed cross the output limit together.
"""

from __future__ import annotations

import json

import pytest

from sandbox.base import ExitReason, MiB, SandboxBackend
from sandbox.harness import describe_size, json_size_at_least
from tests.sandbox.helpers import run_tool

HUGE_RESULT = """
    def run(mib):
        return "x" * (mib * 1024 * 1024)
"""


async def test_result_larger_than_the_output_limit_ends_with_output_limit(backend: SandboxBackend) -> None:
    # With the default 512 MiB of memory even encoding 200 MB of JSON runs out of memory.
    result = await run_tool(backend, HUGE_RESULT, {"mib": 200}, output_bytes=8 * MiB)
    assert result.reason is ExitReason.OUTPUT_LIMIT, result
    assert result.output is None
    assert "the tool's result was larger than the output limit of 8 MiB" in (result.error or ""), result.error
    assert "return less or raise the limit" in (result.error or "")


async def test_oversized_result_that_could_be_encoded_says_how_large_it_was(backend: SandboxBackend) -> None:
    result = await run_tool(backend, HUGE_RESULT, {"mib": 40}, output_bytes=8 * MiB, memory_bytes=512 * MiB)
    assert result.reason is ExitReason.OUTPUT_LIMIT, result
    assert "the tool's result (40.0 MiB as JSON) was larger than the output limit of 8 MiB" in (result.error or "")


async def test_result_within_the_output_limit_that_does_not_fit_in_memory_ends_with_memory(
    backend: SandboxBackend,
) -> None:
    # The 150 MB string fits in 256 MiB; a second copy of it, as JSON, does not.
    result = await run_tool(backend, HUGE_RESULT, {"mib": 150}, output_bytes=256 * MiB, memory_bytes=256 * MiB)
    assert result.reason is ExitReason.MEMORY, result
    assert result.error_type == "MemoryError"
    assert "the tool's result could not be encoded as JSON within the memory limit of 256 MiB" in (result.error or "")
    assert "return less or raise the memory limit" in (result.error or "")


async def test_large_result_within_the_limits_comes_back_whole(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        def run():
            return {"text": "é" * (3 * 1024 * 1024), "tail": "end"}
        """,
        output_bytes=8 * MiB,
    )
    assert result.reason is ExitReason.OK, result.error
    assert result.output == {"text": "é" * (3 * 1024 * 1024), "tail": "end"}


async def test_result_and_printed_text_over_the_limit_together_say_so(backend: SandboxBackend) -> None:
    result = await run_tool(
        backend,
        """
        import sys
        def run():
            sys.stderr.write("y" * (5 * 1024 * 1024))
            sys.stderr.flush()
            return "x" * (5 * 1024 * 1024)
        """,
        output_bytes=8 * MiB,
    )
    assert result.reason is ExitReason.OUTPUT_LIMIT, result
    assert "result and what it printed were together larger than the output limit of 8 MiB" in (result.error or "")


@pytest.mark.parametrize(
    "value",
    [None, 12345, "héllo", {"a": [1, 2.5, True, None], "b": {"c": "d"}}, [[], {}, [[1]]], {"x" * 100: ["y"] * 50}],
)
def test_json_size_lower_bound_never_exceeds_the_real_size(value: object) -> None:
    assert json_size_at_least(value, 10**9) <= len(json.dumps(value, ensure_ascii=False).encode())


def test_json_size_lower_bound_stops_at_the_limit_even_for_a_cycle() -> None:
    cycle: list[object] = ["x" * 10]
    cycle.append(cycle)
    assert 1000 < json_size_at_least(cycle, 1000) < 1100


def test_sizes_are_described_in_the_units_limits_are_set_in() -> None:
    assert [describe_size(size) for size in (8 * MiB, 512 * 1024, 4000, int(1.5 * MiB))] == [
        "8 MiB",
        "512 KiB",
        "3.9 KiB",
        "1.5 MiB",
    ]
