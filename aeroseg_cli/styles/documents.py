"""Style documents from class names and colours: QGIS layer styles (QML) and GDAL's PAM ``.aux.xml``.

QGIS loads ``NAME.qml`` beside a file-based layer as its default style, so a label raster opens with a legend of
exactly its classes (a GeoTIFF palette always has 256 entries, and without a style QGIS lists every one), a
probability raster as one band in pseudocolour, and polygons categorized by class. The QML written is the subset
of what QGIS 3.22 itself saves for these renderers (``styleCategories="Symbology"``: only the look is replaced);
symbol properties are written both as QGIS 3.22 does (``Option`` maps) and as older versions read them (``prop``).
The PAM sidecar holds the category names and a thematic raster attribute table (value, class, colour) that GDAL
reads back with the raster and QGIS 3.30+ shows.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from aeroseg_cli.styles.palette import RGB, UNKNOWN, UNKNOWN_LABEL, hex_color

QGIS_VERSION = "3.22.0"
DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
# viridis at nine stops: perceptually even, readable in grey and by colour-blind readers
PROBABILITY_RAMP = (
    "#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725",
)  # fmt: skip
# GDAL's raster attribute table codes: field types and usages (gdal.h GDALRATFieldType, GDALRATFieldUsage)
GFT_INTEGER, GFT_STRING = 0, 2
GFU_NAME, GFU_MINMAX, GFU_RED, GFU_GREEN, GFU_BLUE, GFU_ALPHA = 2, 5, 6, 7, 8, 9


def _document(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return DOCTYPE + ET.tostring(root, encoding="unicode") + "\n"


def _qgis_root() -> ET.Element:
    return ET.Element("qgis", version=QGIS_VERSION, styleCategories="Symbology")


def _raster_pipe(root: ET.Element, renderer: dict[str, str]) -> ET.Element:
    """The raster pipe around a renderer: nearest-neighbour resampling (class ids and probabilities must not be
    smoothed into values they never had), no colour adjustments."""
    pipe = ET.SubElement(root, "pipe")
    provider = ET.SubElement(pipe, "provider")
    nearest = {"zoomedInResamplingMethod": "nearestNeighbour", "zoomedOutResamplingMethod": "nearestNeighbour"}
    ET.SubElement(provider, "resampling", {"enabled": "false", "maxOversampling": "2", **nearest})
    element = ET.SubElement(pipe, "rasterrenderer", {"opacity": "1", "alphaBand": "-1", "nodataColor": "", **renderer})
    ET.SubElement(element, "rasterTransparency")
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0", invertColors="0", colorizeOn="0",
                  colorizeRed="255", colorizeGreen="128", colorizeBlue="128", colorizeStrength="100")  # fmt: skip
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(pipe, "resamplingStage").text = "resamplingFilter"
    ET.SubElement(root, "blendMode").text = "0"
    return element


def label_qml(names: Sequence[str], colors: Sequence[RGB]) -> str:
    """A paletted style of exactly the classes, and the unknown value (255) listed as transparent."""
    root = _qgis_root()
    renderer = _raster_pipe(root, {"type": "paletted", "band": "1"})
    palette = ET.SubElement(renderer, "colorPalette")
    for value, (name, rgb) in enumerate(zip(names, colors, strict=True)):
        ET.SubElement(palette, "paletteEntry", value=str(value), color=hex_color(rgb), alpha="255", label=name)
    ET.SubElement(palette, "paletteEntry", value=str(UNKNOWN), color="#000000", alpha="0", label=UNKNOWN_LABEL)
    return _document(root)


def probability_qml(band: int = 1, band_name: str = "") -> str:
    """One band of a probability raster in single-band pseudocolour over p in [0, 1] (GDAL's scale 1/255 makes the
    stored p x 255 read as p); nodata (0: outside the scene) stays transparent."""
    root = _qgis_root()
    renderer = _raster_pipe(root, {"type": "singlebandpseudocolor", "band": str(band),
                                   "classificationMin": "0", "classificationMax": "1"})  # fmt: skip
    shader = ET.SubElement(ET.SubElement(renderer, "rastershader"), "colorrampshader",
                           colorRampType="INTERPOLATED", classificationMode="1", clip="0", minimumValue="0",
                           maximumValue="1", labelPrecision="2")  # fmt: skip
    last = len(PROBABILITY_RAMP) - 1
    for k, color in enumerate(PROBABILITY_RAMP):
        value = k / last
        label = f"p({band_name}) = {value:g}" if band_name and k in (0, last) else f"{value:g}"
        ET.SubElement(shader, "item", value=f"{value:g}", color=color, alpha="255", label=label)
    return _document(root)


def _options(parent: ET.Element, props: dict[str, str]) -> None:
    option = ET.SubElement(parent, "Option", type="Map")
    for key, value in props.items():
        ET.SubElement(option, "Option", type="QString", name=key, value=value)
    for key, value in props.items():
        ET.SubElement(parent, "prop", k=key, v=value)


def polygon_qml(classes: Sequence[tuple[int, str, RGB]], attribute: str = "class_id") -> str:
    """Polygons categorized by ``attribute`` (the class id): one filled symbol per (id, name, colour), outlined in a
    darker shade of the fill so that neighbouring regions of one class stay apart."""
    root = _qgis_root()
    renderer = ET.SubElement(root, "renderer-v2", type="categorizedSymbol", attr=attribute, symbollevels="0",
                             forceraster="0", enableorderby="0", referencescale="-1")  # fmt: skip
    categories = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for n, (value, name, rgb) in enumerate(classes):
        ET.SubElement(categories, "category", value=str(value), symbol=str(n), label=name, render="true")
        symbol = ET.SubElement(symbols, "symbol", type="fill", name=str(n), alpha="1", clip_to_extent="1",
                               force_rhr="0")  # fmt: skip
        layer = ET.SubElement(symbol, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"})
        outline = tuple(round(c * 0.6) for c in rgb)
        _options(layer, {"color": "{},{},{},255".format(*rgb), "style": "solid", "joinstyle": "bevel",
                         "outline_color": "{},{},{},255".format(*outline), "outline_style": "solid",
                         "outline_width": "0.26", "outline_width_unit": "MM"})  # fmt: skip
    ET.SubElement(root, "blendMode").text = "0"
    ET.SubElement(root, "featureBlendMode").text = "0"
    ET.SubElement(root, "layerOpacity").text = "1"
    return _document(root)


def _rat(band: ET.Element, names: Sequence[str], colors: Sequence[RGB]) -> None:
    """A thematic raster attribute table: Value (min-max usage), Class (name), Red, Green, Blue, Alpha."""
    table = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    fields = [
        ("Value", GFT_INTEGER, GFU_MINMAX),
        ("Class", GFT_STRING, GFU_NAME),
        ("Red", GFT_INTEGER, GFU_RED),
        ("Green", GFT_INTEGER, GFU_GREEN),
        ("Blue", GFT_INTEGER, GFU_BLUE),
        ("Alpha", GFT_INTEGER, GFU_ALPHA),
    ]
    for index, (name, kind, usage) in enumerate(fields):
        field = ET.SubElement(table, "FieldDefn", index=str(index))
        ET.SubElement(field, "Name").text = name
        ET.SubElement(field, "Type").text = str(kind)
        ET.SubElement(field, "Usage").text = str(usage)
    rows = [(v, n, (*c, 255)) for v, (n, c) in enumerate(zip(names, colors, strict=True))]
    rows.append((UNKNOWN, UNKNOWN_LABEL, (0, 0, 0, 0)))
    for index, (value, name, rgba) in enumerate(rows):
        row = ET.SubElement(table, "Row", index=str(index))
        for cell in (value, name, *rgba):
            ET.SubElement(row, "F").text = str(cell)


def label_aux_xml(names: Sequence[str], colors: Sequence[RGB]) -> str:
    """GDAL's PAM sidecar of a label raster: band description, category names (value = index; 255 named unknown)
    and the raster attribute table."""
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    ET.SubElement(band, "Description").text = "class"
    categories = ET.SubElement(band, "CategoryNames")
    for name in [*names, *[""] * (UNKNOWN - len(names)), UNKNOWN_LABEL]:
        ET.SubElement(categories, "Category").text = name
    _rat(band, names, colors)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"
