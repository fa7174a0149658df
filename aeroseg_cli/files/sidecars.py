"""The files GIS software pairs with a layer by its name alone, in one place: the output check protects them and the
writers write them.

QGIS loads ``NAME.qml`` as the default style of every file-based layer named ``NAME.<ext>`` (so ``x.tif``,
``x.tiff`` and ``x.shp`` share ``x.qml``), and GDAL keeps a file's metadata, statistics and attribute table in its
PAM sidecar ``NAME.<ext>.aux.xml``.
"""

from __future__ import annotations

from pathlib import Path

AUX_XML = ".aux.xml"


def qml_path(path: Path) -> Path:
    """Where QGIS looks for a file-based layer's default style: the file's name with ``.qml`` for its extension
    (``scene.labels.tif`` -> ``scene.labels.qml``)."""
    return path.with_suffix(".qml")


def aux_xml_path(path: Path) -> Path:
    """GDAL's PAM sidecar of a raster (``scene.tif`` -> ``scene.tif.aux.xml``)."""
    return path.with_name(path.name + AUX_XML)


def sidecars(path: Path) -> dict[Path, str]:
    """The sidecars of ``path`` (and, for a link, of the file it points to) -> what each one is, for messages."""
    out: dict[Path, str] = {}
    for p in dict.fromkeys((path, path.resolve())):
        if p.suffix.lower() != ".qml":
            out[qml_path(p)] = "QGIS style"
        out[aux_xml_path(p)] = "GDAL metadata (.aux.xml)"
    return out


def owners(sidecar: Path) -> list[Path]:
    """The existing files (other than sidecars) whose sidecar ``sidecar`` is: every ``NAME.<ext>`` for
    ``NAME.qml``, ``NAME.<ext>`` for ``NAME.<ext>.aux.xml``."""
    if sidecar.name.endswith(AUX_XML) and len(sidecar.name) > len(AUX_XML):
        found = [sidecar.with_name(sidecar.name[: -len(AUX_XML)])]
    elif sidecar.suffix.lower() == ".qml" and sidecar.parent.is_dir():
        stem = sidecar.stem
        found = [p for p in sidecar.parent.iterdir() if p.name.startswith(f"{stem}.") and qml_path(p) == sidecar]
    else:
        return []
    return sorted(p for p in found if p != sidecar and p.exists() and not is_sidecar(p))


def is_sidecar(path: Path) -> bool:
    return path.suffix.lower() == ".qml" or path.name.endswith(AUX_XML)
