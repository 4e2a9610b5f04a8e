"""Writing a benchmark's table into docs/benchmarks.md, between its own markers."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, key: str, heading: str, text: str) -> None:
    """Replace the text between ``<!-- bench:KEY:begin/end -->`` (append a new ``## heading``
    section with them when absent); other sections are left as they are."""
    begin, end = f"<!-- bench:{key}:begin -->", f"<!-- bench:{key}:end -->"
    body = f"{begin}\n{text}\n{end}"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in old:
        pre, rest = old.split(begin, 1)
        new = pre + body + rest.split(end, 1)[1]
    else:
        new = old.rstrip() + f"\n\n## {heading}\n\n" + body + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")
