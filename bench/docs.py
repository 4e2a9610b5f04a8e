"""Writing a benchmark's table into docs/benchmarks.md, between its own markers."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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


def code_state() -> str:
    """The commit, and whether the engine's files had uncommitted changes."""
    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return r.stdout.rstrip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = [ln for ln in git("status", "--porcelain", "--", "geo", "layers", "api")
             .splitlines() if ln.strip()]
    names = [ln[3:] for ln in dirty]
    return f"commit {head}" + (f" + uncommitted changes in {', '.join(names)}" if dirty else "")
