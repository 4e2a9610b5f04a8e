"""A county's report bundle: map (PDF and PNG), ledger (XLSX) and GeoPackage in one zip."""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

from buque.geo.report.filters import ReportData, place_name
from buque.geo.report.gis import write_gpkg
from buque.geo.report.ledger import write_xlsx
from buque.geo.report.maps import MapOptions, write_maps
from buque.geo.report.progress import Progress, part, reporter
from buque.geo.report.text import profile_label


def _safe(name: str) -> str:
    """A file-name-safe version of a place name (keeps CJK)."""
    bad = '<>:"/\\|?*\0'
    out = "".join("_" if c in bad or ord(c) < 32 else c for c in name).strip(" .")
    return out or "selection"


def bundle_names(place: str, lang: str) -> dict[str, str]:
    p = _safe(place)
    if lang == "zh":
        return {"pdf": f"{p}-补短板缺口图.pdf", "png": f"{p}-补短板缺口图.png",
                "xlsx": f"{p}-补短板台账.xlsx", "gpkg": f"{p}.gpkg", "readme": "说明.txt"}
    return {"pdf": f"{p}-gap-map.pdf", "png": f"{p}-gap-map.png", "xlsx": f"{p}-ledger.xlsx",
            "gpkg": f"{p}.gpkg", "readme": "README.txt"}


def _readme(data: ReportData, names: dict[str, str], lang: str) -> str:
    m, p = data.manifest, data.profile
    zh = lang == "zh"
    lines = [
        f"{place_name(data, lang)} — " + ("农村基础设施补短板报告材料" if zh else
                                          "rural infrastructure gap report"),
        "",
        f"{names['pdf']}\t" + ("缺口图（打印用，A4/A3）" if zh else "gap map for print"),
        f"{names['png']}\t" + ("缺口图（插入文档用）" if zh else "gap map for documents"),
        f"{names['xlsx']}\t" + ("台账：汇总、各指标缺口村、待核实" if zh else
                                "ledger: rates, deficient villages per indicator, to verify"),
        f"{names['gpkg']}\t" + ("GIS 数据（村庄、缺口、设施图层、项目、汇总）" if zh else
                                "GIS data (villages, gaps, layers, projects, summary)"),
        "manifest.json\t" + ("评估运行记录（输入文件哈希、标准、计数）" if zh else
                             "the run's manifest (input hashes, standard, counts)"),
        "",
        ("运行编号 " if zh else "Run ") + str(m.get("run_id", "")),
        ("评估时间 " if zh else "Assessed ") + str(m.get("created", "")),
        profile_label(p, lang),
        ("项目 " if zh else "Project ") + str(m.get("project", {}).get("name", "")),
        "",
        *data.attribution,
    ]
    return "\r\n".join(lines) + "\r\n"


def write_bundle(data: ReportData, out: Path, opts: MapOptions,
                 progress: Progress | None = None) -> Path:
    """Zip the map, ledger, GeoPackage, manifest and a read-me of ``data`` into ``out``;
    ``progress`` hears of each step (the map's share measured on a county-sized run)."""
    lang = opts.lang
    names = bundle_names(place_name(data, lang), lang)
    report = reporter(progress)
    with tempfile.TemporaryDirectory(prefix=".buque-bundle-", dir=out.parent) as tmp:
        d = Path(tmp)
        write_maps([data], opts, pdf=d / names["pdf"], png=d / names["png"],
                   progress=part(progress, 0.0, 0.7))
        report(0.7, "writing the ledger")
        write_xlsx(data, d / names["xlsx"], lang=lang, paper=opts.paper)
        report(0.85, "writing the GeoPackage")
        write_gpkg(data, d / names["gpkg"])
        report(0.95, "zipping")
        zpath = d / "bundle.zip"
        with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for key in ("pdf", "png", "xlsx", "gpkg"):
                z.write(d / names[key], names[key])
            z.writestr("manifest.json", json.dumps(data.manifest, ensure_ascii=False, indent=2))
            z.writestr(names["readme"], _readme(data, names, lang).encode("utf-8-sig"))
        zpath.replace(out)
    report(1.0, "bundle written")
    return out
