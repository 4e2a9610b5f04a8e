"""The planner's walk-through notebook executes from top to bottom (as in CI), offline."""

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # the last cell renders the folium map
    last = nb.cells[-1]["outputs"]
    assert any("text/html" in o.get("data", {}) for o in last)
    assert_offline(json.dumps([o.get("data", {}) for o in outputs]))


#: what loading something from the network looks like in HTML: a tile URL template, a tile
#: server, a script/style/image fetched over http(s)
ONLINE = [r"https?:\\?/\\?/[^\s\"'<>]*\{[zxys]\}", r"tile\.openstreetmap\.org",
          r"tiles?\.[a-z0-9.-]+\.(?:com|org|net|cn)", r"basemaps\.cartocdn",
          r"(?:src|href)\s*=\s*\\?[\"']?https?:", r"cdn\.jsdelivr|unpkg\.com|cdnjs"]


def assert_offline(text: str) -> None:
    found = [m.group(0) for pat in ONLINE for m in re.finditer(pat, text, re.I)]
    assert not found, found[:5]


@pytest.mark.parametrize("html,online", [
    ('<script src="https://cdn.jsdelivr.net/npm/leaflet.js"></script>', True),
    ('L.tileLayer("https://{s}.tile.openstreetmap.org/{z}/{x}/{y}.png")', True),
    ('&lt;link href=\\"https://unpkg.com/x.css\\"&gt;', True),
    ("<b>\u00a9 OpenStreetMap contributors</b>", False),
])
def test_the_offline_check_itself(html: str, online: bool) -> None:
    if online:
        with pytest.raises(AssertionError):
            assert_offline(json.dumps(html))
    else:
        assert_offline(json.dumps(html))


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS
