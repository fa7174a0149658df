"""A PyQGIS session for tests/test_qgis.py, run by QGIS's own Python (``python3 tests/qgis_session.py JOB.json``).

It loads the installed plugin the way QGIS does (``qgis.utils.loadPlugin`` + ``startProcessingPlugin`` from the
profile's plugin folder), then runs the steps of the job and writes what it saw as JSON:

- ``cancel``: run ``aeroseg:segment`` and press Cancel (``feedback.cancel()``, what the dialog's Cancel button does)
  once the progress bar passes ``cancel_at`` percent;
- ``load``: run an algorithm as the Processing dialog does with "Open output file after running" (outputs loaded
  into the project, post-processors applied) and describe each loaded layer's renderer;
- ``screenshot``: render the scene and the loaded labels side by side with the labels' legend to a PNG.

Nothing here imports aeroseg: this is the QGIS side only.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (
    QgsApplication,
    QgsLayerTree,
    QgsLayoutExporter,
    QgsLayoutItemLabel,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsLayoutPoint,
    QgsLayoutSize,
    QgsPrintLayout,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
    QgsUnitTypes,
)
from qgis.PyQt.QtGui import QFont


class Recorder(QgsProcessingFeedback):
    """The feedback of a Processing dialog, recording what the algorithm reports; cancels past ``cancel_at`` %."""

    def __init__(self, cancel_at: float | None = None) -> None:
        super().__init__()
        self.cancel_at, self.progress, self.texts, self.infos, self.errors = cancel_at, [], [], [], []
        self.progressChanged.connect(self.on_progress)

    def on_progress(self, percent: float) -> None:  # a named slot: qgis_process crashed on a bare lambda
        self.progress.append(percent)
        if self.cancel_at is not None and percent >= self.cancel_at and not self.isCanceled():
            self.cancel()

    def setProgressText(self, text: str) -> None:
        self.texts.append(text)

    def pushInfo(self, info: str) -> None:
        self.infos.append(info)

    def pushWarning(self, warning: str) -> None:
        self.infos.append(warning)

    def reportError(self, error: str, fatalError: bool = False) -> None:
        self.errors.append(error)


def start(plugins_dir: str):
    app = QgsApplication([], True)
    QgsApplication.setPrefixPath(os.environ.get("QGIS_PREFIX_PATH", "/usr"), True)
    app.initQgis()
    sys.path.insert(0, os.path.join(QgsApplication.pkgDataPath(), "python", "plugins"))
    import qgis.utils
    from processing.core.Processing import Processing

    Processing.initialize()
    qgis.utils.plugin_paths.insert(0, plugins_dir)
    sys.path.insert(0, plugins_dir)
    qgis.utils.updateAvailablePlugins()
    if not (qgis.utils.loadPlugin("aeroseg_qgis") and qgis.utils.startProcessingPlugin("aeroseg_qgis")):
        raise RuntimeError("the aeroseg_qgis plugin did not load")
    return app


def cancel(step: dict) -> dict:
    import processing

    feedback = Recorder(step["cancel_at"])
    try:
        processing.run(step["algorithm"], step["parameters"], feedback=feedback)
        raised = None
    except QgsProcessingException as exc:
        raised = str(exc)
    return {"raised": raised, "cancelled": feedback.isCanceled(), "progress": feedback.progress,
            "texts": feedback.texts, "errors": feedback.errors}  # fmt: skip


def load(step: dict) -> dict:
    """As the dialog does: destinations point at the project, then the results are loaded (post-processors run)."""
    from processing.core.Processing import Processing
    from processing.gui.Postprocessing import handleAlgorithmResults

    alg = QgsApplication.processingRegistry().createAlgorithmById(step["algorithm"])
    parameters = dict(step["parameters"])
    for name in step["outputs"]:
        parameters[name] = QgsProcessingOutputLayerDefinition(parameters[name], QgsProject.instance())
    feedback, context = Recorder(), QgsProcessingContext()
    context.setProject(QgsProject.instance())
    results = Processing.runAlgorithm(alg, parameters, onFinish=handleAlgorithmResults, feedback=feedback,
                                      context=context)  # fmt: skip
    layers = [describe(layer) for layer in QgsProject.instance().mapLayers().values()]
    return {"results": {k: str(v) for k, v in (results or {}).items()}, "layers": layers, "errors": feedback.errors,
            "progress": feedback.progress, "texts": feedback.texts}  # fmt: skip


def describe(layer) -> dict:
    """The loaded layer's renderer, and that of the ``.qml`` beside its file if there is one."""
    renderer = layer.renderer()
    info = {"source": layer.source(), "name": layer.name(), "renderer": renderer.type() if renderer else None}
    qml = Path(layer.source().split("|")[0]).with_suffix(".qml")
    if qml.is_file():
        node = ET.parse(qml).getroot().find(".//rasterrenderer")
        if node is None:
            node = ET.parse(qml).getroot().find(".//renderer-v2")
        info["qml"] = {"renderer": node.get("type"), "entries": len(node.findall(".//paletteEntry"))}
    if renderer is not None and renderer.type() == "paletted":
        info["classes"] = [[c.value, c.label, c.color.name()] for c in renderer.classes()]
    if renderer is not None and renderer.type() == "categorizedSymbol":
        info["classes"] = [[str(c.value()), c.label(), c.symbol().color().name()] for c in renderer.categories()]
    return info


def style(step: dict) -> dict:
    """A style of QGIS's own making (single-band grey) at ``path``, unless one is there: whatever style lies beside an
    output, the loaded layer must carry it."""
    if os.path.exists(step["path"]):
        return {"written": False}
    layer = QgsRasterLayer(step["source"], "style")
    layer.setRenderer(QgsSingleBandGrayRenderer(layer.dataProvider(), 1))
    message, ok = layer.saveNamedStyle(step["path"])
    WRITTEN[step["path"]] = Path(step["path"]).read_bytes()
    return {"written": ok, "message": message}


WRITTEN: dict[str, bytes] = {}  # styles this session wrote, so the screenshot never shows one of them


def screenshot(step: dict) -> dict:
    """Scene | labels with the labels' legend, as a print layout exported to PNG (QGIS's own renderer)."""
    project = QgsProject.instance()
    labels = next(lyr for lyr in project.mapLayers().values() if lyr.source() == step["labels"])
    qml = os.path.splitext(step["labels"])[0] + ".qml"
    if qml in WRITTEN and Path(qml).read_bytes() == WRITTEN[qml]:  # still the test's: show what QGIS shows alone
        os.remove(qml)
        labels = QgsRasterLayer(step["labels"], "labels")
        project.addMapLayer(labels, False)
    scene = QgsRasterLayer(step["scene"], "scene")
    project.addMapLayer(scene, False)
    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    page_w, map_w, map_h = step.get("page_mm", (320, 120, 93))
    layout.pageCollection().page(0).setPageSize(QgsLayoutSize(page_w, map_h + 14, QgsUnitTypes.LayoutMillimeters))
    for i, layer in enumerate([scene, labels]):
        item = QgsLayoutItemMap(layout)
        item.attemptMove(QgsLayoutPoint(4 + i * (map_w + 4), 10, QgsUnitTypes.LayoutMillimeters))
        item.attemptResize(QgsLayoutSize(map_w, map_h, QgsUnitTypes.LayoutMillimeters))
        item.setLayers([layer])
        item.setExtent(scene.extent())
        layout.addLayoutItem(item)
    title = QgsLayoutItemLabel(layout)
    title.setText(step.get("title", ""))
    title.setFont(QFont("DejaVu Sans", 9))
    title.attemptMove(QgsLayoutPoint(4, 2, QgsUnitTypes.LayoutMillimeters))
    title.attemptResize(QgsLayoutSize(page_w - 8, 7, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(title)
    legend = QgsLayoutItemLegend(layout)
    legend.setAutoUpdateModel(False)
    root = QgsLayerTree()
    root.addLayer(labels)
    legend.model().setRootGroup(root)
    legend.setTitle("")
    legend.attemptMove(QgsLayoutPoint(12 + 2 * map_w, 10, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(legend)
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = step.get("dpi", 96)
    status = QgsLayoutExporter(layout).exportToImage(step["path"], settings)
    return {"status": int(status), "path": step["path"]}


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    app = start(job["plugins"])
    out = []
    try:
        for step in job["steps"]:
            result = {"cancel": cancel, "load": load, "style": style, "screenshot": screenshot}[step["do"]](step)
            out.append(result)
    except Exception:
        out.append({"exception": traceback.format_exc()})
    Path(job["result"]).write_text(json.dumps(out, indent=2))
    app.exitQgis()


if __name__ == "__main__":
    main()
