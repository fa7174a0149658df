"""``aeroseg:segment`` and ``aeroseg:vectorize``: QGIS parameters -> the CLI's options -> a child process.

Every check of the values is left to aeroseg itself (one line ``aeroseg: error: ...`` shown in the log), so the
provider can never accept what the CLI refuses or refuse what it accepts. Outputs are replaced (QGIS's file dialog
has asked already); layers QGIS loads afterwards get the style aeroseg wrote beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProviderRegistry,
)

from . import runner

DEVICES = ["auto", "cpu", "cuda"]
PRECISIONS = ["auto", "fp32", "bf16", "fp16"]
ON_ERROR = ["fail", "skip"]


class StyleBeside(QgsProcessingLayerPostProcessorInterface):
    """Once QGIS has loaded an output: the ``.qml`` aeroseg wrote beside it, else the layer's default style (a
    GeoPackage's ``layer_styles`` row). Processing loads outputs without their default style, hence this step."""

    keep: ClassVar[list[StyleBeside]] = []  # QGIS holds a plain pointer: the Python objects must outlive the run

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    @classmethod
    def create(cls, path: str) -> StyleBeside:
        cls.keep.append(cls(path))
        return cls.keep[-1]

    def postProcessLayer(self, layer, context, feedback) -> None:
        qml = Path(self.path).with_suffix(".qml")
        if qml.is_file():
            _message, ok = layer.loadNamedStyle(str(qml))
        else:
            _message, ok = layer.loadDefaultStyle()
        if ok:
            layer.triggerRepaint()


def _advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return param


def _style_outputs(context, paths: list[str]) -> None:
    for path in paths:
        if path and context.willLoadLayerOnCompletion(path):
            context.layerToLoadOnCompletionDetails(path).setPostProcessor(StyleBeside.create(path))


def _raster_path(layer, name: str) -> str:
    """The file GDAL opens for a raster layer; other providers (WMS, WCS, ...) have none aeroseg could read."""
    if layer is None:
        raise QgsProcessingException(f"{name}: no raster layer")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(f"{name}: aeroseg reads files GDAL opens; save {layer.name()} as GeoTIFF first")
    source = layer.source()
    if "|" in source:  # QGIS's own options after the path
        source = QgsProviderRegistry.instance().decodeUri("gdal", source).get("path") or source
    return source


class _Algorithm(QgsProcessingAlgorithm):
    """What both algorithms share: naming, help and running the CLI."""

    command = ""
    title = ""
    help_text = ""

    def name(self) -> str:
        return self.command

    def displayName(self) -> str:
        return self.title

    def group(self) -> str:
        return "AerOSeg"

    def groupId(self) -> str:
        return "aeroseg"

    def shortHelpString(self) -> str:
        return self.help_text

    def createInstance(self):
        return type(self)()

    def run_cli(self, args: list[str], feedback, spans: dict) -> None:
        try:
            runner.run([self.command, *args], feedback, runner.Stages(spans))
        except runner.RunFailed as exc:
            raise QgsProcessingException(str(exc)) from None


SEGMENT_HELP = """Segments a raster into classes named in plain words with AerOSeg, running the aeroseg command line \
that installed this plugin (its own Python environment: QGIS needs no torch).

<b>Classes</b>: comma-separated names, "a|b" for synonyms; empty: the checkpoint's own classes.
<b>Model</b>: a checkpoint file (.pt / .safetensors), a released model or a preset name; empty: the one aeroseg \
picks on this machine (your `aeroseg weights default`, else the best model it has).
The labels are uint8 class ids (255 = nodata / unknown) in the input's CRS and grid, styled with the class names.
Cancel stops aeroseg (SIGTERM): nothing is written at the output and the finished rows are kept; run again with the \
same settings and <b>Resume</b> ticked to continue from them."""


class SegmentAlgorithm(_Algorithm):
    command = "segment"
    title = "Segment raster (open vocabulary)"
    help_text = SEGMENT_HELP

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Input raster"))
        self.addParameter(QgsProcessingParameterString("CLASSES", "Classes (comma-separated)", optional=True))
        model = QgsProcessingParameterFile(
            "MODEL",
            "Model (checkpoint file, released model or preset; empty: aeroseg's default)",
            optional=True,
            fileFilter="AerOSeg checkpoints (*.pt *.pth *.safetensors)",
        )
        self.addParameter(model)
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", options=DEVICES, defaultValue=0))
        number = QgsProcessingParameterNumber
        self.addParameter(number("TILE", "Window size in pixels (0: the model's)", number.Integer, 0, minValue=0))
        self.addParameter(number("OVERLAP", "Overlap between windows (fraction)", number.Double, 0.25, False, 0, 0.9))
        self.addParameter(number("BATCH_SIZE", "Windows per model call (0: auto)", number.Integer, 4, minValue=0))
        self.addParameter(
            number("UNKNOWN_THRESHOLD", "Unknown below this probability", number.Double, 0.0, False, 0.0, 1.0)
        )
        self.addParameter(QgsProcessingParameterBoolean("RESUME", "Resume an interrupted run", False))
        self.addParameter(QgsProcessingParameterBoolean("COG", "Cloud-Optimized GeoTIFF", False))
        for param in self._advanced_parameters():
            self.addParameter(_advanced(param))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Labels"))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "PROBABILITIES", "Probabilities (one band per class, p x 255)", optional=True, createByDefault=False
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                "VECTOR", "Polygons", QgsProcessing.TypeVectorPolygon, optional=True, createByDefault=False
            )
        )

    @staticmethod
    def _advanced_parameters() -> list:
        string = QgsProcessingParameterString
        return [
            QgsProcessingParameterEnum("PRECISION", "Precision", options=PRECISIONS, defaultValue=0),
            string("BANDS", "Bands for R,G,B (1-based, e.g. 4,3,2) [1,2,3]", optional=True),
            string("SCALE", "Raw values mapped to 0..1 (MIN,MAX) [the scene's stretch]", optional=True),
            QgsProcessingParameterNumber(
                "TARGET_GSD",
                "Resample to this pixel size first (map units)",
                QgsProcessingParameterNumber.Double,
                None,
                True,
                0.0,
            ),
            string("MAX_MEMORY", "Memory for blending (e.g. 512M, 4G) [auto]", optional=True),
            QgsProcessingParameterEnum("ON_ERROR", "A window that fails", options=ON_ERROR, defaultValue=0),
        ]

    def processAlgorithm(self, parameters, context, feedback) -> dict:
        scene = _raster_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        probs, vector = (
            self.parameterAsOutputLayer(parameters, name, context) if parameters.get(name) else ""
            for name in ("PROBABILITIES", "VECTOR")
        )
        args = [scene, "-o", output, *self._options(parameters, context), "--overwrite"]
        args += ["--probabilities", probs] if probs else []
        args += ["--vector", vector] if vector else []
        spans = {"model": (0, 5), "segment": (5, 95 if vector else 100), "vectorize": (95, 100)}
        self.run_cli(args, feedback, spans)
        _style_outputs(context, [output, probs, vector])
        return {"OUTPUT": output, "PROBABILITIES": probs or None, "VECTOR": vector or None}

    def _options(self, parameters, context) -> list[str]:
        v = _Values(self, parameters, context)
        tile, batch = int(v.number("TILE")), int(v.number("BATCH_SIZE"))
        args = ["--model", v.text("MODEL")] if v.text("MODEL") else []  # empty: aeroseg picks the best model here
        args += ["--device", v.enum("DEVICE", DEVICES)]
        args += ["--overlap", repr(v.number("OVERLAP")), "--batch-size", str(batch) if batch else "auto"]
        args += ["--unknown-threshold", repr(v.number("UNKNOWN_THRESHOLD"))]
        args += ["--precision", v.enum("PRECISION", PRECISIONS), "--on-error", v.enum("ON_ERROR", ON_ERROR)]
        args += ["--tile", str(tile)] if tile else []
        for name, option in (
            ("CLASSES", "--classes"),
            ("BANDS", "--bands"),
            ("SCALE", "--scale"),
            ("MAX_MEMORY", "--max-memory"),
        ):
            args += [option, v.text(name)] if v.text(name) else []
        if parameters.get("TARGET_GSD") not in (None, ""):
            args += ["--target-gsd", repr(v.number("TARGET_GSD"))]
        args += ["--resume"] if v.flag("RESUME") else []
        return args + (["--cog"] if v.flag("COG") else [])


class _Values:
    """Typed reads of one run's parameters."""

    def __init__(self, alg: QgsProcessingAlgorithm, parameters: dict, context) -> None:
        self.alg, self.parameters, self.context = alg, parameters, context

    def text(self, name: str) -> str:
        return (self.alg.parameterAsString(self.parameters, name, self.context) or "").strip()

    def number(self, name: str) -> float:
        return self.alg.parameterAsDouble(self.parameters, name, self.context)

    def flag(self, name: str) -> bool:
        return self.alg.parameterAsBool(self.parameters, name, self.context)

    def enum(self, name: str, options: list[str]) -> str:
        return options[self.alg.parameterAsEnum(self.parameters, name, self.context)]


VECTORIZE_HELP = """Turns a label raster made by aeroseg into polygons: one per connected region, with class name, \
area and perimeter (true areas, also in geographic CRSs), optionally the mean confidence from a probability raster. \
Seams between processing strips are merged; shared edges stay shared when simplifying."""


class VectorizeAlgorithm(_Algorithm):
    command = "vectorize"
    title = "Polygonise labels"
    help_text = VECTORIZE_HELP

    def initAlgorithm(self, config=None) -> None:
        number = QgsProcessingParameterNumber
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Label raster (from aeroseg segment)"))
        self.addParameter(QgsProcessingParameterString("CLASSES", "Classes to keep (names or ids)", optional=True))
        self.addParameter(number("MIN_AREA", "Merge regions smaller than (map units²)", number.Double, 0.0, False, 0))
        self.addParameter(number("SIMPLIFY", "Simplify tolerance (map units)", number.Double, 0.0, False, 0))
        self.addParameter(QgsProcessingParameterRasterLayer("PROBABILITIES", "Probability raster", optional=True))
        self.addParameter(QgsProcessingParameterCrs("DST_CRS", "Reproject to", optional=True))
        polygons = QgsProcessing.TypeVectorPolygon
        self.addParameter(QgsProcessingParameterVectorDestination("OUTPUT", "Polygons", polygons))

    def processAlgorithm(self, parameters, context, feedback) -> dict:
        labels = _raster_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        args = [labels, "-o", output, "--overwrite"]
        args += ["--min-area", repr(self.parameterAsDouble(parameters, "MIN_AREA", context))]
        args += ["--simplify", repr(self.parameterAsDouble(parameters, "SIMPLIFY", context))]
        classes = (self.parameterAsString(parameters, "CLASSES", context) or "").strip()
        args += ["--classes", classes] if classes else []
        if parameters.get("PROBABILITIES"):
            probs = self.parameterAsRasterLayer(parameters, "PROBABILITIES", context)
            args += ["--probabilities", _raster_path(probs, "PROBABILITIES")]
        crs = self.parameterAsCrs(parameters, "DST_CRS", context)
        if parameters.get("DST_CRS") and crs.isValid():
            args += ["--dst-crs", crs.authid() or crs.toWkt()]
        self.run_cli(args, feedback, {"vectorize": (0, 100)})
        _style_outputs(context, [output])
        return {"OUTPUT": output}
