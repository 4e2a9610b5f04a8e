"""Chinese fonts are found even when matplotlib's font cache predates their installation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from buque.geo.report import fonts

REPO = Path(__file__).resolve().parents[1]


def _py(code: str, env: dict[str, str]) -> str:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, env=env, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_a_stale_font_cache_still_finds_the_chinese_font(tmp_path: Path) -> None:
    assert fonts.find_cjk_font() is not None, "fonts-noto-cjk is installed by setup.sh"
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl"),
           "BUQUE_CACHE": str(tmp_path / "buque"),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    # a cache as made before fonts-noto-cjk was installed: the same list without CJK fonts
    cache = _py("""
        import matplotlib
        from pathlib import Path
        from matplotlib import font_manager as fm
        m = fm.fontManager
        m.ttflist = [e for e in m.ttflist if "CJK" not in e.name and "CJK" not in e.fname]
        path = Path(matplotlib.get_cachedir(), f"fontlist-v{fm.FontManager.__version__}.json")
        fm.json_dump(m, path)
        print(path)
        """, env)
    assert "CJK" not in Path(cache).read_text()
    out = _py("""
        from buque.geo.report.fonts import find_cjk_font, map_family
        print(find_cjk_font().family)
        print(map_family("安康市汉滨区")[0])
        """, env)
    family, mapped = out.splitlines()
    assert "CJK" in family or "Han" in family or "Hei" in family
    assert mapped.startswith("Buque CJK")
    # the cache was written again, so the next process finds the font at once
    assert any("CJK" in e["name"] for e in json.loads(Path(cache).read_text())["ttflist"])


def test_no_chinese_font_at_all_names_the_package(monkeypatch) -> None:
    monkeypatch.setattr(fonts, "_lookup_cjk", lambda bold: None)
    monkeypatch.setattr(fonts, "refresh_font_list", lambda: False)
    assert fonts.find_cjk_font() is None
    with pytest.raises(fonts.FontError, match="fonts-noto-cjk"):
        fonts.map_family("村")
    assert fonts.map_family("Andorra") == [fonts.FALLBACK]
