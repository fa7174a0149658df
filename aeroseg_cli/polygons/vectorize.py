"""Polygons from a label raster, strip by strip, in bounded memory.

Each strip is sieved (with a halo, so small-region decisions match a whole-raster sieve), polygonised in pixel
coordinates, and pieces that touch the seam to the next strip are held back; pieces of one class that share an edge
across a seam are unioned. The result equals polygonising the whole raster at once (4-connectivity).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
import rasterio.features
import shapely
from pyproj import CRS
from rasterio.windows import Window
from shapely import affinity
from shapely.geometry import shape

from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.files.safety import Output, check_output

FORMATS = {
    "gpkg": ("GPKG", ".gpkg"),
    "geojson": ("GeoJSON", ".geojson"),
    "shp": ("ESRI Shapefile", ".shp"),
    "parquet": ("parquet", ".parquet"),
}
EXTENSIONS = {".gpkg": "gpkg", ".geojson": "geojson", ".json": "geojson", ".shp": "shp", ".parquet": "parquet"}
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
MAX_SIEVE_HALO = 4096
SIEVE_DTYPES = ("uint8", "uint16", "int16", "int32")


@dataclass
class VectorizeOptions:
    format: str | None = None
    classes: list[str] | None = None
    min_area: float = 0.0
    simplify: float = 0.0
    probabilities: Path | None = None
    dst_crs: str | None = None
    overwrite: bool = False
    allow_ungeoreferenced: bool = False
    block_rows: int = 1024
    layer: str | None = None


@dataclass
class Piece:
    """A polygon piece in pixel coordinates with its class and the sums behind its mean confidence."""

    geom: shapely.Geometry
    value: int
    prob_sum: float = 0.0
    count: int = 0
    members: list = field(default_factory=list)


def output_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
        return fmt
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        raise UsageError(f"cannot tell the format of {path.name}; use --format ({', '.join(FORMATS)})")
    return EXTENSIONS[ext]


def _siblings(path: Path, fmt: str) -> list[Path]:
    return [path.with_suffix(s) for s in SHAPEFILE_PARTS] if fmt == "shp" else [path]


def vector_output(path: Path, fmt: str | None = None) -> Output:
    """The vector file as an output to check: a shapefile's sibling files count as part of it."""
    return Output(path, "vector output", tuple(p for p in _siblings(path, output_format(path, fmt)) if p != path))


def check_vector_output(path: Path, overwrite: bool, fmt: str | None = None) -> str:
    fmt = output_format(path, fmt)
    check_output(path, overwrite, also=_siblings(path, fmt))
    return fmt


def class_table(ds) -> tuple[dict[int, str], dict[int, str]]:
    """Class names (from aeroseg's CLASS_NAMES tag or per-band class_<i> tags) and colours (#rrggbb)."""
    names: dict[int, str] = {}
    tags = ds.tags()
    if "CLASS_NAMES" in tags:
        try:
            names = dict(enumerate(json.loads(tags["CLASS_NAMES"])))
        except ValueError:
            names = {}
    for key, value in ds.tags(1).items():
        if key.startswith("class_") and key[6:].isdigit():
            names.setdefault(int(key[6:]), value)
    colors: dict[int, str] = {}
    with contextlib.suppress(ValueError):
        colors = {k: "#{:02x}{:02x}{:02x}".format(*v[:3]) for k, v in ds.colormap(1).items()}
    return names, colors


def _strips(height: int, block_rows: int) -> Iterator[tuple[int, int]]:
    for r0 in range(0, height, block_rows):
        yield r0, min(r0 + block_rows, height)


def _polygonize(labels: np.ndarray, mask: np.ndarray, row0: int, probs: np.ndarray | None) -> list[Piece]:
    """Pieces of one strip in pixel coordinates (x = column, y = row), with confidence sums when probs is given."""
    pieces: list[Piece] = []
    shift = rasterio.Affine.translation(0, row0)
    for geom, value in rasterio.features.shapes(labels, mask=mask, connectivity=4, transform=shift):
        pieces.append(Piece(shape(geom), int(value)))
    if probs is not None and pieces:
        ids = rasterio.features.rasterize(
            ((p.geom, i + 1) for i, p in enumerate(pieces)), out_shape=labels.shape, transform=shift, dtype="int32"
        )
        flat = ids.ravel()
        counts = np.bincount(flat, minlength=len(pieces) + 1)
        own = np.take_along_axis(probs, np.clip(labels, 0, probs.shape[0] - 1)[None].astype(np.int64), 0)[0]
        sums = np.bincount(flat, weights=own.ravel().astype(np.float64) / 255.0, minlength=len(pieces) + 1)
        for i, p in enumerate(pieces):
            p.prob_sum, p.count = float(sums[i + 1]), int(counts[i + 1])
    return pieces


def _merge_across_seam(upper: list[Piece], lower: list[Piece]) -> list[Piece]:
    """Union pieces of one class that share an edge across a seam (union-find over candidate pairs)."""
    items = upper + lower
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if upper and lower:
        tree = shapely.STRtree([p.geom for p in lower])
        for i, p in enumerate(upper):
            for j in tree.query(p.geom):
                q = lower[j]
                if q.value == p.value and p.geom.intersection(q.geom).length > 0:
                    parent[find(i)] = find(len(upper) + int(j))
    groups: dict[int, list[Piece]] = {}
    for i, p in enumerate(items):
        groups.setdefault(find(i), []).append(p)
    merged = []
    for members in groups.values():
        if len(members) == 1:
            merged.append(members[0])
            continue
        geom = shapely.union_all([m.geom for m in members])
        merged.append(Piece(geom, members[0].value, sum(m.prob_sum for m in members), sum(m.count for m in members)))
    return merged


def iter_polygons(ds, opts: VectorizeOptions, keep: set[int] | None, sieve_px: int, probs_ds=None):
    """Yield finished pieces (pixel coordinates) strip by strip; only seam-touching pieces are held in flight."""
    nodata = ds.nodata
    halo = min(sieve_px, MAX_SIEVE_HALO) if sieve_px > 1 else 0
    in_flight: list[Piece] = []
    for r0, r1 in _strips(ds.height, opts.block_rows):
        h0, h1 = max(0, r0 - halo), min(ds.height, r1 + halo)
        labels = ds.read(1, window=Window(0, h0, ds.width, h1 - h0))
        valid = ds.read_masks(1, window=Window(0, h0, ds.width, h1 - h0)) > 0
        if nodata is not None:
            valid &= labels != nodata
        if sieve_px > 1:
            labels = rasterio.features.sieve(labels, sieve_px, mask=valid, connectivity=4)
        labels, valid = labels[r0 - h0 : r1 - h0], valid[r0 - h0 : r1 - h0]
        if labels.dtype.name not in SIEVE_DTYPES:  # shapes() takes 8-32 bit integers
            labels = labels.astype(np.int32)
        if keep is not None:
            valid &= np.isin(labels, list(keep))
        probs = None
        if probs_ds is not None:
            probs = probs_ds.read(window=Window(0, r0, ds.width, r1 - r0))
        pieces = _polygonize(labels, valid, r0, probs)
        top, rest = [], []  # pieces touching the seam above, and the others
        for p in pieces:
            (top if r0 > 0 and p.geom.bounds[1] == r0 else rest).append(p)
        merged = _merge_across_seam(in_flight, top) if in_flight else top
        in_flight = []
        for p in merged + rest:
            if p.geom.bounds[3] == r1 and r1 < ds.height:
                in_flight.append(p)
            else:
                yield p
    yield from in_flight


def _measure_crs(crs: CRS | None, bounds: tuple[float, float, float, float]) -> tuple[CRS | None, str]:
    """CRS to measure area/perimeter in metres: the raster's own when projected, else a local equal-area one."""
    if crs is None:
        return None, "pixel units (no CRS)"
    if crs.is_projected:
        return crs, f"metres ({crs.name})"
    lon, lat = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
    laea = CRS.from_proj4(f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs")
    return laea, f"metres in Lambert azimuthal equal-area centred at {lat:.4f}, {lon:.4f} (geographic source CRS)"


def vectorize_raster(labels_path: Path, out_path: Path, opts: VectorizeOptions) -> dict:
    """Polygonise ``labels_path`` into ``out_path``; returns a summary. The file appears only when complete."""
    fmt = check_vector_output(out_path, opts.overwrite, opts.format)
    if not labels_path.exists():
        raise UsageError(f"{labels_path}: no such file")
    try:
        ds = rasterio.open(labels_path)
    except rasterio.errors.RasterioIOError:
        raise UsageError(f"{labels_path}: not a raster GDAL can read") from None
    with ds:
        if not np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
            raise UsageError(f"{labels_path}: expected a label raster (integer class ids), got {ds.dtypes[0]}")
        georef = ds.crs is not None and ds.transform != rasterio.Affine.identity()
        if not georef and not opts.allow_ungeoreferenced:
            raise UsageError(f"{labels_path}: no CRS or geotransform (use --allow-ungeoreferenced for pixel units)")
        if ds.dtypes[0] not in SIEVE_DTYPES and opts.min_area > 0:
            raise UsageError(f"--min-area needs uint8/uint16/int16/int32 labels, got {ds.dtypes[0]}")
        names, colors = class_table(ds)
        keep = None
        if opts.classes:
            lookup = {n.lower(): i for i, n in names.items()}
            keep = set()
            for c in opts.classes:
                if c.lower() in lookup:
                    keep.add(lookup[c.lower()])
                elif c.isdigit():
                    keep.add(int(c))
                else:
                    known = ", ".join(names.values()) or "none recorded"
                    raise UsageError(f"--classes: {c!r} is not a class of {labels_path.name} (classes: {known})")
        pixel_area = abs(ds.transform.a * ds.transform.e - ds.transform.b * ds.transform.d)
        sieve_px = math.ceil(opts.min_area / pixel_area) if opts.min_area > 0 else 0
        probs_ds = None
        if opts.probabilities is not None:
            probs_ds = rasterio.open(opts.probabilities)
            if probs_ds.shape != ds.shape or probs_ds.transform != ds.transform:
                raise UsageError(f"{opts.probabilities} is not on the grid of {labels_path}")
        crs = CRS.from_user_input(ds.crs) if georef else None
        measure_crs, measure_note = _measure_crs(crs, tuple(ds.bounds))
        dst_crs = CRS.from_user_input(opts.dst_crs) if opts.dst_crs else crs
        transform = ds.transform
        aff = [transform.a, transform.b, transform.d, transform.e, transform.xoff, transform.yoff]
        writer = _Writer(out_path, fmt, opts.layer or labels_path.stem, dst_crs, with_conf=probs_ds is not None)
        try:
            batch: list[Piece] = []
            pieces = iter_polygons(ds, opts, keep, sieve_px, probs_ds)
            if opts.simplify > 0:
                pieces = iter(_simplified(list(pieces), opts.simplify, aff))
            for p in pieces:
                batch.append(p)
                if len(batch) >= 5000:
                    writer.write(_frame(batch, names, colors, aff, crs, measure_crs, dst_crs, probs_ds is not None))
                    batch = []
            if batch or writer.count == 0:
                writer.write(_frame(batch, names, colors, aff, crs, measure_crs, dst_crs, probs_ds is not None))
            writer.commit(opts.overwrite)
        except BaseException:
            writer.discard()
            raise
        finally:
            if probs_ds is not None:
                probs_ds.close()
    return {
        "output": str(out_path),
        "format": fmt,
        "features": writer.count,
        "measured_in": measure_note,
        "crs": dst_crs.to_string() if dst_crs else None,
    }


def _simplified(pieces: list[Piece], tolerance: float, aff: list[float]) -> list[Piece]:
    """Coverage-preserving simplification (shared edges stay shared; holds all polygons in memory)."""
    if not pieces:
        return pieces
    pixel = math.sqrt(abs(aff[0] * aff[3] - aff[1] * aff[2]))
    series = gpd.GeoSeries([p.geom for p in pieces])
    simple = series.simplify_coverage(tolerance / pixel)
    for p, g in zip(pieces, simple, strict=True):
        p.geom = g
    return [p for p in pieces if not p.geom.is_empty]


def _frame(pieces, names, colors, aff, crs, measure_crs, dst_crs, with_conf: bool) -> gpd.GeoDataFrame:
    geoms = [affinity.affine_transform(p.geom, aff) for p in pieces]
    gdf = gpd.GeoDataFrame(
        {
            "class_id": np.array([p.value for p in pieces], dtype=np.int32),
            "class_name": [names.get(p.value, f"class_{p.value}") for p in pieces],
            "color": [colors.get(p.value, "") for p in pieces],
        },
        geometry=gpd.GeoSeries(geoms, crs=crs),
    )
    measured = gdf.geometry if measure_crs is None or measure_crs == crs else gdf.geometry.to_crs(measure_crs)
    factor = crs.axis_info[0].unit_conversion_factor if crs is not None and crs.is_projected else 1.0
    gdf["area"] = (measured.area * factor**2).astype(np.float64)
    gdf["perimeter"] = (measured.length * factor).astype(np.float64)
    if with_conf:
        gdf["confidence"] = np.array([p.prob_sum / p.count if p.count else np.nan for p in pieces], dtype=np.float64)
    if dst_crs is not None and crs is not None and dst_crs != crs:
        gdf = gdf.to_crs(dst_crs)
    return gdf


class _Writer:
    """Streams frames into a temporary file beside the target; ``commit`` renames it (and shapefile siblings)."""

    def __init__(self, target: Path, fmt: str, layer: str, crs, with_conf: bool) -> None:
        self.target, self.fmt, self.layer, self.crs = target, fmt, layer, crs
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        self.tmp = self.tmpdir / target.name
        self.count = 0
        self._parquet_frames: list[gpd.GeoDataFrame] = []

    def write(self, gdf: gpd.GeoDataFrame) -> None:
        if self.fmt == "parquet":  # no append in (Geo)Parquet: collected, written once
            self._parquet_frames.append(gdf)
        else:
            driver = FORMATS[self.fmt][0]
            extra = {"geometry_type": "Polygon"} if len(gdf) == 0 else {}
            pyogrio.write_dataframe(gdf, self.tmp, layer=self.layer, driver=driver, append=self.count > 0, **extra)
        self.count += len(gdf)

    def commit(self, overwrite: bool) -> None:
        if self.fmt == "parquet":
            frames = [f for f in self._parquet_frames if len(f)] or self._parquet_frames[:1]
            gpd.GeoDataFrame(gpd.pd.concat(frames, ignore_index=True), crs=self.crs).to_parquet(self.tmp)
        for src in sorted(self.tmpdir.iterdir()):
            dest = self.target.parent / src.name
            if dest.exists() and not overwrite:
                raise CLIError(f"{dest} appeared during the run; not replaced (use --overwrite)")
            os.replace(src, dest)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)
