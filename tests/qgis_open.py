"""Open layers in QGIS as a user does (default settings, default styles) and print what QGIS shows, as JSON.

Run by tests/test_styles.py with QGIS's own Python (Debian's ``python3-qgis``), never imported by the test suite:
``QT_QPA_PLATFORM=offscreen python3 tests/qgis_open.py SPEC.json``. SPEC is {"layers": [{"path": ..., "kind":
"raster" | "vector", "probe": [[x, y], ...], "render": PNG or null}]}; the probes are identified in map coordinates.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsPointXY,
    QgsRaster,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize


def raster(path: str, probes: list) -> dict:
    layer = QgsRasterLayer(path, os.path.basename(path))
    renderer = layer.renderer()
    out = {"valid": layer.isValid(), "renderer": renderer.type(), "bands": layer.bandCount()}
    out["band_names"] = [layer.bandName(b) for b in range(1, layer.bandCount() + 1)]
    if renderer.type() == "paletted":
        out["classes"] = [[int(c.value), c.label, c.color.name(), c.color.alpha()] for c in renderer.classes()]
    if renderer.type() == "singlebandpseudocolor":
        out["band"] = renderer.band()
        out["min"], out["max"] = renderer.classificationMin(), renderer.classificationMax()
    out["legend"] = [label for label, _ in renderer.legendSymbologyItems()]
    provider = layer.dataProvider()
    out["nodata"] = [provider.sourceNoDataValue(b) if provider.sourceHasNoDataValue(b) else None
                     for b in range(1, layer.bandCount() + 1)]  # fmt: skip
    out["probes"] = []
    for x, y in probes:
        values = provider.identify(QgsPointXY(x, y), QgsRaster.IdentifyFormatValue).results()
        out["probes"].append({str(k): v for k, v in values.items()})
    return out, layer


def vector(path: str, probes: list) -> dict:
    layer = QgsVectorLayer(path, os.path.basename(path), "ogr")
    renderer = layer.renderer()
    out = {"valid": layer.isValid(), "renderer": renderer.type(), "features": layer.featureCount()}
    if renderer.type() == "categorizedSymbol":
        out["attribute"] = renderer.classAttribute()
        out["classes"] = [[c.value(), c.label(), c.symbol().color().name()] for c in renderer.categories()]
    out["crs"] = layer.crs().authid()
    return out, layer


def render(layer, png: str) -> None:
    """The layer alone, drawn as QGIS draws it on the map canvas, to ``png``."""
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    extent = layer.extent()
    width = 480
    settings.setOutputSize(QSize(width, max(1, round(width * extent.height() / max(extent.width(), 1e-9)))))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(png, "PNG")


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    app = QgsApplication([], False)
    app.initQgis()
    results = []
    for item in spec["layers"]:
        info, layer = (raster if item["kind"] == "raster" else vector)(item["path"], item.get("probe", []))
        if item.get("render"):
            render(layer, item["render"])
        results.append(info)
    print(json.dumps({"layers": results}), flush=True)
    os._exit(0)  # QGIS 3.22's exitQgis() can crash on layers Python still holds; the results are out


if __name__ == "__main__":
    main()
