"""Chinese fonts for matplotlib maps, embeddable in PDF.

The installed CJK fonts (fonts-noto-cjk) are OpenType/CFF collections (.ttc). Matplotlib embeds
a CFF font as if it were TrueType (``/FontFile2`` holding CFF data: a malformed PDF that strict
readers reject). So each export subsets the font to the characters it draws and converts the
subset's outlines to TrueType (quadratic) with fontTools, which matplotlib embeds as a valid
CID TrueType (Type 42) font. Subsets are cached on disk by character set, about a second to
make for a few hundred characters.

Matplotlib finds fonts through a cache of the system's font list (``fontlist-*.json``), made
the first time it runs. A cache made before the CJK fonts were installed does not list them:
when the lookup finds none, the fonts fontconfig knows for Chinese (``fc-list :lang=zh``;
without fontconfig, the system font folders) are added and the cache is written again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from fontTools import subset
from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTFont, newTable
from matplotlib import font_manager

#: preferred Chinese families, best first (Simplified Chinese forms)
CJK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Source Han Sans CN", "WenQuanYi Zen Hei",
                "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC", "Noto Sans SC",
                "Noto Sans CJK JP", "Noto Sans CJK TC")
FALLBACK = "DejaVu Sans"
BASE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F)) + "".join(chr(c) for c in range(0xA0, 0x180)) \
    + "·—–‘’“”…‰′″→←↑↓≥≤×÷°±©、。，：；！？（）《》【】「」〔〕－～·¥"
KEEP = 48  # cached subset files kept (newest first)
_lock = threading.Lock()
_registered: dict[str, str] = {}
_refresh_lock = threading.Lock()
_refreshed = False
#: what to install when no Chinese font exists (named in errors and API answers)
CJK_PACKAGE = "fonts-noto-cjk"
NO_CJK_FONT = (f"no Chinese font installed: install {CJK_PACKAGE} (Debian/Ubuntu: apt-get "
               f"install {CJK_PACKAGE}) or another CJK font for Chinese text on maps")


class FontError(RuntimeError):
    """No font can draw the text (e.g. no Chinese font installed)."""


@dataclass(frozen=True)
class FontSource:
    path: str
    index: int
    family: str


def find_cjk_font(bold: bool = False) -> FontSource | None:
    """The installed Chinese font to use (regular or bold face), or None.

    A stale matplotlib font cache (made before the font was installed) is refreshed once per
    process when the lookup finds nothing.
    """
    found = _lookup_cjk(bold)
    if found is None and refresh_font_list():
        found = _lookup_cjk(bold)
    return found


def _fontconfig_cjk_files() -> list[str] | None:
    """Font files fontconfig lists for Chinese, or None without fontconfig."""
    exe = shutil.which("fc-list")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, ":lang=zh", "file"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sorted({line.strip().rstrip(":").strip() for line in out.splitlines() if line.strip()})


def refresh_font_list() -> bool:
    """Add installed fonts missing from matplotlib's font list; True when any was added.

    Runs once per process; the refreshed list is written back to matplotlib's cache so the next
    process finds the fonts at once.
    """
    global _refreshed
    with _refresh_lock:
        if _refreshed:
            return False
        _refreshed = True
        fm = font_manager.fontManager
        known = {e.fname for e in fm.ttflist}
        files = _fontconfig_cjk_files()
        if files is None:
            files = font_manager.findSystemFonts()
        added = 0
        for f in files:
            if f in known or not os.path.isfile(f):
                continue
            try:
                fm.addfont(f)
            except (OSError, RuntimeError, ValueError):
                continue
            added += 1
        if added:
            cache = Path(matplotlib.get_cachedir(),
                         f"fontlist-v{font_manager.FontManager.__version__}.json")
            with contextlib.suppress(OSError):  # a read-only cache: found again next time
                font_manager.json_dump(fm, cache)
        return added > 0


def _lookup_cjk(bold: bool) -> FontSource | None:
    want = 700 if bold else 400
    entries = font_manager.fontManager.ttflist
    for fam in CJK_FAMILIES:
        faces = [e for e in entries if e.name == fam and e.style == "normal"]
        if not faces:
            continue
        best = min(faces, key=lambda e: abs(_weight(e.weight) - want))
        return FontSource(best.fname, int(getattr(best, "index", 0) or 0), fam)
    return None


def _weight(w: int | str) -> int:
    if isinstance(w, int):
        return w
    return font_manager.weight_dict.get(str(w), 400)


def cache_dir() -> Path:
    """Where converted font subsets are kept ($BUQUE_CACHE or ~/.cache/buque, else a temp dir)."""
    base = os.environ.get("BUQUE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "buque")
    d = Path(base) / "fonts"
    try:
        d.mkdir(parents=True, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    d = Path(tempfile.gettempdir()) / f"buque-fonts-{os.getuid() if hasattr(os, 'getuid') else 0}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def truetype_subset(src: FontSource, chars: str, family: str, out: Path) -> Path:
    """Write ``src`` cut down to ``chars`` with TrueType outlines, renamed to ``family``."""
    opts = subset.Options()
    opts.font_number = src.index
    opts.notdef_outline = True
    opts.name_IDs = ["*"]
    opts.name_languages = ["*"]
    opts.drop_tables += ["VORG", "vhea", "vmtx"]
    font = subset.load_font(src.path, opts)
    try:
        sub = subset.Subsetter(opts)
        sub.populate(text=chars)
        sub.subset(font)
        if "CFF " in font:
            _cff_to_glyf(font)
        _rename(font, family)
        font.recalcBBoxes = True
        tmp = out.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        font.save(tmp)
    finally:
        font.close()
    os.replace(tmp, out)
    return out


def _cff_to_glyf(font: TTFont) -> None:
    """Replace CFF outlines by quadratic TrueType outlines (as fontTools' otf2ttf snippet)."""
    order = font.getGlyphOrder()
    glyph_set = font.getGlyphSet()
    glyf = newTable("glyf")
    glyf.glyphOrder = order
    glyf.glyphs = {}
    for name in order:  # glyphs of the subset: a few hundred
        pen = TTGlyphPen(glyph_set)
        glyph_set[name].draw(Cu2QuPen(pen, 1.0, reverse_direction=True))
        glyf.glyphs[name] = pen.glyph()
    font["loca"] = newTable("loca")
    font["glyf"] = glyf
    del font["CFF "]
    font.recalcBBoxes = True
    glyf.compile(font)
    hmtx = font["hmtx"]
    for name in order:
        hmtx[name] = (hmtx[name][0], getattr(glyf[name], "xMin", 0))
    maxp = newTable("maxp")
    maxp.tableVersion = 0x00010000
    maxp.numGlyphs = len(order)
    for attr in ("maxPoints", "maxContours", "maxCompositePoints", "maxCompositeContours",
                 "maxTwilightPoints", "maxStorage", "maxFunctionDefs", "maxInstructionDefs",
                 "maxStackElements", "maxSizeOfInstructions", "maxComponentElements",
                 "maxComponentDepth"):
        setattr(maxp, attr, 0)
    maxp.maxZones = 1
    font["maxp"] = maxp
    maxp.recalc(font)
    font["head"].glyphDataFormat = 0
    post = font["post"]
    post.formatType = 2.0
    post.extraNames = []
    post.mapping = {}
    post.glyphOrder = order
    font.sfntVersion = "\x00\x01\x00\x00"


def _rename(font: TTFont, family: str) -> None:
    """Give the subset its own family name, so it never shadows the installed font.

    The PostScript name (what a PDF lists) stays the original's, e.g. NotoSansCJKsc-Regular.
    """
    name = font["name"]
    sub = "Bold" if font["OS/2"].usWeightClass >= 600 else "Regular"
    for rec in list(name.names):
        if rec.nameID in (1, 16):
            rec.string = family
        elif rec.nameID in (2, 17):
            rec.string = sub
        elif rec.nameID == 4:
            rec.string = f"{family} {sub}"


def _prune(d: Path) -> None:
    """Drop all but the newest :data:`KEEP` cached subsets."""
    files = sorted(d.glob("buque-cjk-*.ttf"), key=lambda p: p.stat().st_mtime, reverse=True)
    for p in files[KEEP:]:
        p.unlink(missing_ok=True)


def map_family(text: str) -> list[str]:
    """Register fonts able to draw ``text`` with matplotlib; the ``font.family`` list to use.

    Chinese (or other non-Latin) text needs an installed CJK font; without one a
    :class:`FontError` says which package to install.
    """
    chars = "".join(sorted(set(text) | set(BASE_CHARS)))
    regular = find_cjk_font(False)
    if regular is None:
        if any(ord(c) > 0x24F for c in text):
            raise FontError(NO_CJK_FONT)
        return [FALLBACK]
    bold = find_cjk_font(True) or regular
    digest = hashlib.sha1((regular.path + str(regular.index) + bold.path + str(bold.index)
                           + chars).encode()).hexdigest()[:10]
    family = f"Buque CJK {digest}"
    with _lock:
        if family not in _registered:
            d = cache_dir()
            for src, tag in ((regular, "regular"), (bold, "bold")):
                out = d / f"buque-cjk-{digest}-{tag}.ttf"
                if not out.is_file():
                    truetype_subset(src, chars, family, out)
                font_manager.fontManager.addfont(str(out))
                if src is bold:
                    break
            _registered[family] = family
            _prune(d)
    return [family, FALLBACK]
