"""Polygons from a label raster, strip by strip, in bounded memory.

Each strip is sieved (with a halo, so small-region decisions match a whole-raster sieve), polygonised in pixel
coordinates, and pieces that touch the seam to the next strip are held back; pieces of one class that share an edge
across a seam are unioned. The result equals polygonising the whole raster at once (4-connectivity).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import shapely
from rasterio.windows import Window
from shapely.geometry import shape

MAX_SIEVE_HALO = 4096
SIEVE_DTYPES = ("uint8", "uint16", "int16", "int32")


@dataclass
class Piece:
    """A polygon piece in pixel coordinates with its class and the sums behind its mean confidence."""

    geom: shapely.Geometry
    value: int
    prob_sum: float = 0.0
    count: int = 0
    members: list = field(default_factory=list)


@dataclass
class StripPlan:
    """What to polygonise: rows per strip, classes to keep (None: all), sieve size in pixels, probabilities."""

    block_rows: int
    keep: set[int] | None = None
    sieve_px: int = 0
    probs_ds: rasterio.io.DatasetReader | None = None


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


def _strip_pieces(ds, plan: StripPlan, r0: int, r1: int) -> list[Piece]:
    """Sieve (with a halo of rows either side) and polygonise rows r0:r1."""
    halo = min(plan.sieve_px, MAX_SIEVE_HALO) if plan.sieve_px > 1 else 0
    h0, h1 = max(0, r0 - halo), min(ds.height, r1 + halo)
    labels = ds.read(1, window=Window(0, h0, ds.width, h1 - h0))
    valid = ds.read_masks(1, window=Window(0, h0, ds.width, h1 - h0)) > 0
    if ds.nodata is not None:
        valid &= labels != ds.nodata
    if plan.sieve_px > 1:
        labels = rasterio.features.sieve(labels, plan.sieve_px, mask=valid, connectivity=4)
    labels, valid = labels[r0 - h0 : r1 - h0], valid[r0 - h0 : r1 - h0]
    if labels.dtype.name not in SIEVE_DTYPES:  # shapes() takes 8-32 bit integers
        labels = labels.astype(np.int32)
    if plan.keep is not None:
        valid &= np.isin(labels, list(plan.keep))
    probs = None
    if plan.probs_ds is not None:
        probs = plan.probs_ds.read(window=Window(0, r0, ds.width, r1 - r0))
    return _polygonize(labels, valid, r0, probs)


def iter_strips(ds, plan: StripPlan) -> Iterator[tuple[list[Piece], int]]:
    """Per strip: the pieces (pixel coordinates) it finishes and the rows done so far. Only pieces touching the seam
    below are held in flight, to be unioned with their continuation in the next strip."""
    in_flight: list[Piece] = []
    for r0, r1 in _strips(ds.height, plan.block_rows):
        top, rest = [], []  # pieces touching the seam above, and the others
        for p in _strip_pieces(ds, plan, r0, r1):
            (top if r0 > 0 and p.geom.bounds[1] == r0 else rest).append(p)
        merged = _merge_across_seam(in_flight, top) if in_flight else top
        in_flight, finished = [], []
        for p in merged + rest:
            (in_flight if p.geom.bounds[3] == r1 and r1 < ds.height else finished).append(p)
        yield finished, r1  # the last strip holds nothing back (r1 == height), so in_flight ends empty


def simplified(pieces: list[Piece], tolerance: float, aff: list[float]) -> list[Piece]:
    """Coverage-preserving simplification (shared edges stay shared; holds all polygons in memory)."""
    if not pieces:
        return pieces
    pixel = math.sqrt(abs(aff[0] * aff[3] - aff[1] * aff[2]))
    series = gpd.GeoSeries([p.geom for p in pieces])
    simple = series.simplify_coverage(tolerance / pixel)
    for p, g in zip(pieces, simple, strict=True):
        p.geom = g
    return [p for p in pieces if not p.geom.is_empty]
