"""The README's "Compute placement" snippets run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_compute_placement_snippets_run():
    text = README.read_text()
    section = text[text.index("## Compute placement") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    first: dict = {}
    exec(compile(blocks[0], "README: choose", "exec"), first)
    assert first["placement"].pool.name == "l4-eu"  # the lowest-carbon pool within 4 h
    second: dict = {}
    exec(compile(blocks[1], "README: measure", "exec"), second)
    assert second["run"].actual.seconds > 0
    assert "placement/estimate vs actual" in second["metadata"]
