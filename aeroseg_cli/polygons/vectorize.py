"""``vectorize_raster``: a label raster in, a vector file out, with class, colour, true area and perimeter.

The work is split by job: ``polygonize`` (strips, sieve, seams, simplification), ``measure`` (what areas are measured
in), ``writer`` (format checks and the streaming, all-or-nothing writer). This module checks the input and runs them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import geopandas as gpd
import numpy as np
import rasterio
from pyproj import CRS
from shapely import affinity

from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.polygons.formats import FORMATS, check_vector_output, output_format
from aeroseg_cli.polygons.measure import Measure, measure_for
from aeroseg_cli.polygons.polygonize import SIEVE_DTYPES, Piece, StripPlan, iter_strips, simplified
from aeroseg_cli.polygons.request import VectorizeOptions
from aeroseg_cli.polygons.writer import VectorStyle, VectorWriter
from aeroseg_cli.styles.classes import ClassTable, raster_classes
from aeroseg_cli.styles.palette import hex_color

__all__ = [
    "FORMATS",
    "ProgressFn",
    "VectorizeOptions",
    "check_vector_output",
    "output_format",
    "vectorize_raster",
]

BATCH = 5000  # features per append to the output file
WGS84 = CRS.from_epsg(4326)
PIXEL_COORDS = "pixel coordinates (x = column, y = row, growing downwards; no CRS)"
GEOTRANSFORM_COORDS = "the geotransform's coordinates (no CRS)"

ProgressFn = Callable[[int, int, int], None]
"""``(features_written, rows_done, rows_total)``, called once per strip. A feature counts once finished (written, or
queued for the next append of up to BATCH); the last call, at rows_total, has the final count."""


@dataclass
class _Layer:
    """How pieces (pixel coordinates) become features: classes, the pixel-to-map affine, CRSs, the measure."""

    classes: ClassTable
    aff: list[float]
    crs: CRS | None
    dst_crs: CRS | None
    measure: Measure
    with_conf: bool
    coordinates: str  # what the output's coordinates are, for the summary
    rfc7946: bool = False  # GeoJSON as RFC 7946 has it: WGS 84 longitude/latitude, no crs member

    def frame(self, pieces: list[Piece]) -> gpd.GeoDataFrame:
        geoms = gpd.GeoSeries([affinity.affine_transform(p.geom, self.aff) for p in pieces], crs=self.crs)
        gdf = gpd.GeoDataFrame(
            {
                "class_id": np.array([p.value for p in pieces], dtype=np.int32),
                "class_name": [self.classes.name_of(p.value) for p in pieces],
                "color": [hex_color(self.classes.color_of(p.value)) for p in pieces],
            },
            geometry=geoms,
        )
        gdf["area"], gdf["perimeter"] = self.measure.area_perimeter(gdf.geometry)
        if self.with_conf:
            conf = [p.prob_sum / p.count if p.count else np.nan for p in pieces]
            gdf["confidence"] = np.array(conf, dtype=np.float64)
        if self.dst_crs is not None and self.crs is not None and self.dst_crs != self.crs:
            gdf = gdf.to_crs(self.dst_crs)
        return gdf


def _open_raster(path: Path | str) -> rasterio.io.DatasetReader:
    """Open ``path`` (a local file, or a remote or virtual GDAL path: /vsicurl/, http(s)://); a missing or unreadable
    file is a usage error. Georeferencing is checked (and reported) by the caller."""
    from aeroseg_cli.segment.reader import open_dataset

    return open_dataset(str(path))


def _check_labels(ds, path: Path | str, opts: VectorizeOptions) -> bool:
    """Refuse what cannot be polygonised as asked; returns whether the raster is georeferenced."""
    if ds.count != 1:  # a scene given by mistake would become one polygon per brightness value of its first band
        raise UsageError(
            f"{path}: expected a label raster (one band of class ids), got {ds.count} bands; vectorize the labels "
            "that aeroseg segment writes, not the scene"
        )
    if not np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
        raise UsageError(f"{path}: expected a label raster (integer class ids), got {ds.dtypes[0]}")
    georef = ds.crs is not None and ds.transform != rasterio.Affine.identity()
    if not georef and not opts.allow_ungeoreferenced:
        raise UsageError(f"{path}: no CRS or geotransform (use --allow-ungeoreferenced for pixel units)")
    if not georef and opts.dst_crs:
        raise UsageError(
            f"--dst-crs needs a georeferenced raster; {PurePosixPath(str(path)).name} has no CRS or geotransform"
        )
    if ds.dtypes[0] not in SIEVE_DTYPES and opts.min_area > 0:
        raise UsageError(f"--min-area needs uint8/uint16/int16/int32 labels, got {ds.dtypes[0]}")
    return georef


def _keep_classes(names: dict[int, str], classes: list[str] | None, path: PurePosixPath) -> set[int] | None:
    """Class ids to keep from names or ids given by the user (None: all)."""
    if not classes:
        return None
    lookup = {n.lower(): i for i, n in names.items()}
    keep = set()
    for c in classes:
        if c.lower() in lookup:
            keep.add(lookup[c.lower()])
        elif c.isdigit():
            keep.add(int(c))
        else:
            known = ", ".join(names.values()) or "none recorded"
            raise UsageError(f"--classes: {c!r} is not a class of {path.name} (classes: {known})")
    return keep


@contextlib.contextmanager
def _probabilities(path: Path | None, ds, labels_path: str) -> Iterator[rasterio.io.DatasetReader | None]:
    """The probability raster, which must lie on the label raster's grid (None when not asked for)."""
    if path is None:
        yield None
        return
    with _open_raster(path) as probs_ds:
        if probs_ds.shape != ds.shape or probs_ds.transform != ds.transform:
            raise UsageError(f"{path} is not on the grid of {labels_path}")
        yield probs_ds


def _layer(ds, georef: bool, opts: VectorizeOptions, with_conf: bool, fmt: str) -> _Layer:
    """GeoJSON defaults to RFC 7946 (WGS 84 longitude/latitude, no crs member); another ``--dst-crs`` writes the
    2008 GeoJSON that names its CRS in a crs member, since RFC 7946 readers take coordinates as WGS 84."""
    t = ds.transform
    crs = CRS.from_user_input(ds.crs) if georef else None
    dst_crs = CRS.from_user_input(opts.dst_crs) if opts.dst_crs else crs
    if fmt == "geojson" and georef and opts.dst_crs is None:
        dst_crs = WGS84
    rfc7946 = fmt == "geojson" and dst_crs is not None and dst_crs.equals(WGS84, ignore_axis_order=True)
    pixel_coords = t == rasterio.Affine.identity()
    measure = measure_for(crs, tuple(ds.bounds), pixel_coords)
    coordinates = dst_crs.to_string() if dst_crs else PIXEL_COORDS if pixel_coords else GEOTRANSFORM_COORDS
    if fmt == "geojson" and dst_crs is not None:
        coordinates += " (RFC 7946: longitude, latitude)" if rfc7946 else " (named in a crs member; not RFC 7946)"
    aff = [t.a, t.b, t.d, t.e, t.xoff, t.yoff]
    return _Layer(raster_classes(ds), aff, crs, dst_crs, measure, with_conf, coordinates, rfc7946)


def _simplify_all(strips, tolerance: float, aff: list[float], rows_total: int):
    """Hold every piece (coverage simplification needs all neighbours) and release them, simplified, with the last
    strip; earlier strips pass through empty so progress still advances."""
    held: list[Piece] = []
    for finished, rows_done in strips:
        held.extend(finished)
        if rows_done < rows_total:
            yield [], rows_done
    yield simplified(held, tolerance, aff), rows_total


def _stream(strips, writer: VectorWriter, layer: _Layer, rows_total: int, progress: ProgressFn | None) -> None:
    """Write the pieces strip by strip in batches of BATCH features; report progress after each strip."""
    batch: list[Piece] = []
    for finished, rows_done in strips:
        batch.extend(finished)
        while len(batch) >= BATCH:
            writer.write(layer.frame(batch[:BATCH]))
            batch = batch[BATCH:]
        if rows_done == rows_total and (batch or writer.count == 0):
            writer.write(layer.frame(batch))  # the last write may be empty: the layer and its schema still exist
            batch = []
        if progress is not None:
            progress(writer.count + len(batch), rows_done, rows_total)


def _checked(strips: Iterator, source: str) -> Iterator:
    """Each strip read under ``files.gdalread.checked``: a GDAL error while reading it fails the run before the
    output is published, and no raw GDAL line reaches stderr."""
    from aeroseg_cli.files.gdalread import checked

    while True:
        with checked(source):
            item = next(strips, None)
        if item is None:
            return
        yield item


def _write(
    ds, plan: StripPlan, layer: _Layer, writer: VectorWriter, opts: VectorizeOptions, progress: ProgressFn | None
) -> int:
    """Polygonise into the writer's temporary file and publish it; nothing is left at the target on any failure."""
    try:
        strips = _checked(iter_strips(ds, plan), ds.name)
        if opts.simplify > 0:
            strips = _simplify_all(strips, opts.simplify, layer.aff, ds.height)
        _stream(strips, writer, layer, ds.height, progress)
        writer.commit(opts.overwrite)
    except BaseException:
        writer.discard()
        raise
    return writer.count


def _sieve_pixels(ds, min_area: float) -> int:
    """``--min-area`` in pixels; an area larger than the whole raster would merge every region away: refused."""
    pixel_area = abs(ds.transform.a * ds.transform.e - ds.transform.b * ds.transform.d)
    if min_area <= 0:
        return 0
    if min_area > pixel_area * ds.width * ds.height:
        raise UsageError(
            f"--min-area {min_area:g} is larger than the whole raster ({pixel_area * ds.width * ds.height:g} map "
            "units²): every region would be merged away; give a smaller --min-area"
        )
    return math.ceil(min_area / pixel_area)


def vectorize_raster(
    labels_path: Path | str, out_path: Path, opts: VectorizeOptions, progress: ProgressFn | None = None
) -> dict:
    """Polygonise ``labels_path`` (a local file or a GDAL remote path) into ``out_path``; returns a summary. The file
    appears only when complete. ``progress(features_written, rows_done, rows_total)`` is called after each strip."""
    fmt = check_vector_output(out_path, opts.overwrite, opts.format, inputs=[labels_path, opts.probabilities])
    source = str(labels_path)  # as given: Path() would turn "http://" into "http:/"
    name = PurePosixPath(source)
    with _open_raster(source) as ds:
        georef = _check_labels(ds, source, opts)
        layer = _layer(ds, georef, opts, opts.probabilities is not None, fmt)
        plan = StripPlan(opts.block_rows, _keep_classes(layer.classes.names, opts.classes, name))
        plan.sieve_px = _sieve_pixels(ds, opts.min_area)
        with _probabilities(opts.probabilities, ds, source) as probs_ds:
            plan.probs_ds = probs_ds
            style = VectorStyle(layer.classes, plan.keep, f"aeroseg classes of {name.name}")
            writer = VectorWriter(out_path, fmt, opts.layer or name.stem, layer.dst_crs, layer.rfc7946, style)
            count = _write(ds, plan, layer, writer, opts, progress)
    return {
        "output": str(out_path),
        "format": fmt,
        "features": count,
        "measured_in": layer.measure.note,
        "crs": layer.dst_crs.to_string() if layer.dst_crs else None,
        "coordinates": layer.coordinates,
        "style": writer.style_location,
    }
