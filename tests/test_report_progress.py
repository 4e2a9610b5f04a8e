"""The PDF report's progress page: present when the run's folder holds earlier runs of its
project (three runs: the map page, then the chart), absent for a run alone; its title and axes
in Chinese text (pdftotext) drawn with an embedded CJK font; not blank."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from synth_world import require_tools
from three_runs import make_three

from buque.geo.report import ExportOptions, export


@pytest.fixture(scope="module")
def three(synth, tmp_path_factory):
    require_tools("pdftoppm", "pdffonts", "pdftotext", "pdfinfo", package="poppler-utils")
    return make_three(synth.dir, tmp_path_factory.mktemp("report-progress"))


@pytest.fixture(scope="module", autouse=True)
def font_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BUQUE_CACHE", str(tmp_path_factory.mktemp("buque-cache")))
        yield


def _pages(pdf) -> int:
    info = subprocess.run(["pdfinfo", pdf], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)$", info, re.M).group(1))


def _text(pdf, page: int) -> str:
    return subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), pdf, "-"],
                          capture_output=True, text=True, check=True).stdout


def test_pdf_ends_with_the_progress_chart(three, tmp_path):
    out = tmp_path / "r3.pdf"
    export(three / "r3", out, ExportOptions(fmt="pdf", dpi=100))
    assert _pages(out) == 2
    assert "达标率进展" not in _text(out, 1)
    text = _text(out, 2)
    for s in ("达标率进展", "评估日期", "达标率（%）", "3 次评估", "2025-03-01", "2025-09-01",
              "通硬化路", "标准化村卫生室", "虚线 目标"):
        assert s in text, s
    fonts = subprocess.run(["pdffonts", "-f", "2", "-l", "2", out], capture_output=True,
                           text=True, check=True).stdout
    cjk = [r.split() for r in fonts.splitlines()[2:] if "CJK" in r]
    assert cjk and all(r[-5] == "yes" for r in cjk), fonts
    png = tmp_path / "chart"
    subprocess.run(["pdftoppm", "-r", "40", "-f", "2", "-l", "2", "-png", "-singlefile", out,
                    png], check=True)
    with Image.open(png.with_suffix(".png")) as im:
        assert float(np.asarray(im.convert("L"), dtype=float).std()) > 10


def test_the_chart_counts_only_runs_up_to_the_one_exported(three, tmp_path):
    out = tmp_path / "r2.pdf"
    export(three / "r2", out, ExportOptions(fmt="pdf", dpi=100, lang="en"))
    assert _pages(out) == 2
    text = _text(out, 2)
    assert "2 runs (2025-03-01 to 2025-06-01)" in text and "Run date" in text, text


def test_a_run_alone_has_no_chart_page(three, tmp_path):
    alone = tmp_path / "alone" / "r1"
    shutil.copytree(three / "r1", alone)
    out = tmp_path / "r1.pdf"
    export(alone, out, ExportOptions(fmt="pdf", dpi=100))
    assert _pages(out) == 1
