"""The plugin object QGIS loads and the Processing provider (id ``aeroseg``) it registers."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import SegmentAlgorithm, VectorizeAlgorithm

ICON = Path(__file__).with_name("icon.svg")


class AerosegProvider(QgsProcessingProvider):
    """``aeroseg:segment`` and ``aeroseg:vectorize``; outputs in the formats aeroseg writes."""

    def id(self) -> str:
        return "aeroseg"

    def name(self) -> str:
        return "aeroseg"

    def longName(self) -> str:
        return "AerOSeg open-vocabulary segmentation"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:
        self.addAlgorithm(SegmentAlgorithm())
        self.addAlgorithm(VectorizeAlgorithm())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]

    def supportedOutputVectorLayerExtensions(self) -> list[str]:
        return ["gpkg", "shp", "geojson"]

    def supportsNonFileBasedOutput(self) -> bool:  # aeroseg writes files, never memory layers
        return False


class AerosegPlugin:
    """What ``classFactory`` returns: registers the provider in QGIS and in ``qgis_process`` (no GUI of its own)."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: AerosegProvider | None = None

    def initProcessing(self) -> None:
        if self.provider is None:
            self.provider = AerosegProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
