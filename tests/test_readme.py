"""README.md's code is run as written, so the front page cannot drift from the engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_block_after(heading: str) -> str:
    """The first ```python block below ``heading`` in README.md."""
    text = README.read_text()
    start = text.index(heading)
    found = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert found is not None, f"no python block under {heading!r}"
    return found.group(1)


async def test_the_engine_in_five_minutes_example_runs_to_completion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the example opens sqlite:///signoff.db in the cwd
    code = python_block_after("## The engine in five minutes")
    # Run main() and hand back the finished run, so the example is checked, not just loaded.
    code = code.replace(
        "        run = await engine.wait(run_id)  # completed, output recorded",
        "        run = await engine.wait(run_id)  # completed, output recorded\n        return run",
    )
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code, "README.md", "exec"), namespace)
    run = await namespace["main"]()
    assert run.status.value == "completed"
    assert run.output == {"refunded": True, "approved_by": "U0FINANCE1"}
    assert (tmp_path / "signoff.db").exists()
