"""``--aoi``: polygons that bound the work. Windows that do not touch them are never read nor run, and pixels outside
them are nodata (255), exactly as if the scene were nodata there.

The polygons are read once (any OGR vector format, any CRS), reprojected into each scene's CRS and taken to the
scene's pixel grid (the model grid under ``--target-gsd``). Pixels count as inside when their centre is (GDAL's
rasterisation rule). The AOI only adds to the validity mask the reader already gives: every window that runs sees
the same pixels and contributes as in a run without it, so inside the AOI the labels are those of the whole scene,
bit for bit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aeroseg_cli.files.errors import UsageError

DENSIFY_STEPS = 256  # AOI edges are split into pieces of at most 1/256 of its extent before reprojection


@dataclass
class Aoi:
    """The AOI on one scene's pixel grid: ``geometry`` in pixel coordinates (x = column, y = row)."""

    source: str
    geometry: object  # shapely (Multi)Polygon, prepared
    width: int
    height: int
    _touching: dict = field(default_factory=dict, repr=False)

    @property
    def digest(self) -> str:
        """Identifies the AOI on this grid for ``--resume`` (the geometry, not the file's name or bytes)."""
        import shapely

        return hashlib.sha256(shapely.to_wkb(shapely.normalize(self.geometry))).hexdigest()

    @property
    def fraction(self) -> float:
        """The share of the scene's area inside the AOI."""
        import shapely

        return shapely.clip_by_rect(self.geometry, 0, 0, self.width, self.height).area / (self.width * self.height)

    def touching(self, grid) -> np.ndarray:
        """(window rows, window columns) bool: which windows of ``grid`` (clipped to the scene) touch the AOI."""
        key = (grid.tile, grid.stride)
        if key not in self._touching:
            import shapely

            rows, cols = np.meshgrid(np.array(grid.rows), np.array(grid.cols), indexing="ij")
            boxes = shapely.box(cols, rows, np.minimum(cols + grid.tile, self.width),
                                np.minimum(rows + grid.tile, self.height))  # fmt: skip
            self._touching[key] = shapely.intersects(self.geometry, boxes)
        return self._touching[key]

    def mask(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """(r1 - r0, c1 - c0) bool: pixels of rows [r0, r1) x columns [c0, c1) whose centre is inside the AOI."""
        import shapely
        from affine import Affine
        from rasterio.features import geometry_mask

        shape = (r1 - r0, c1 - c0)
        clipped = shapely.clip_by_rect(self.geometry, c0, r0, c1, r1)
        if clipped.is_empty:
            return np.zeros(shape, bool)
        if shapely.contains_properly(self.geometry, shapely.box(c0, r0, c1, r1)):
            return np.ones(shape, bool)
        return geometry_mask([clipped], out_shape=shape, transform=Affine.translation(c0, r0), invert=True)


def aoi_inputs(path: Path | None) -> list[Path]:
    """The AOI file and, for a shapefile, the files beside it that it is read from (outputs must not be any)."""
    if path is None:
        return []
    if path.suffix.lower() != ".shp":
        return [path]
    return [path, *(path.with_suffix(s) for s in (".shx", ".dbf", ".prj", ".cpg"))]


def read_aoi(path: Path):
    """The polygons of a one-layer vector file with a CRS, as a GeoSeries; anything else is one usage error."""
    import pyogrio

    from aeroseg_cli.files.safety import file_kind

    if not path.exists():
        raise UsageError(f"--aoi {path}: no such file")
    if file_kind(path) not in (None, "a folder"):  # a FIFO would block GDAL (a folder can be a vector dataset)
        raise UsageError(f"--aoi {path} is {file_kind(path)}, not a vector file")
    try:
        layers = [str(name) for name, kind in pyogrio.list_layers(path) if kind is not None]
    except Exception:
        raise UsageError(f"--aoi {path}: not a vector file GDAL can read") from None
    if len(layers) != 1:
        what = "no layer with geometries" if not layers else f"{len(layers)} layers ({', '.join(layers)})"
        raise UsageError(f"--aoi {path} has {what}; give a file with one polygon layer")
    try:
        frame = pyogrio.read_dataframe(path, layer=layers[0], columns=[])
    except Exception as exc:
        raise UsageError(f"--aoi {path}: cannot read its features ({str(exc).splitlines()[0]})") from None
    if frame.crs is None:
        raise UsageError(
            f"--aoi {path} has no CRS (a shapefile without .prj?); assign one, e.g. "
            f"ogr2ogr -a_srs EPSG:4326 aoi.gpkg {path}"
        )
    return _polygons(frame.geometry, path)


def _polygons(geoms, path: Path):
    """The polygonal parts of the geometries (collections taken apart, invalid rings repaired)."""
    import shapely

    parts = shapely.get_parts(shapely.make_valid(geoms.dropna().values))
    parts = shapely.get_parts(parts)  # a repaired polygon may become a collection
    polygons = parts[np.isin(shapely.get_type_id(parts), (3, 6)) & ~shapely.is_empty(parts)]
    if len(polygons) == 0:
        raise UsageError(f"--aoi {path} has no polygons (points or lines only, or no features); give areas")
    import geopandas as gpd

    return gpd.GeoSeries(polygons, crs=geoms.crs)


def scene_aoi(polygons, path: Path, info) -> Aoi:
    """The AOI on a scene's pixel grid; refused when the scene is not georeferenced or the AOI misses it."""
    import shapely
    from shapely import affinity

    if info.crs is None or info.transform.is_identity:
        raise UsageError(f"--aoi needs georeferenced scenes; {info.name} has no CRS or geotransform")
    extent = polygons.total_bounds
    step = max(extent[2] - extent[0], extent[3] - extent[1]) / DENSIFY_STEPS
    dense = polygons if step <= 0 else polygons.segmentize(step)
    geom = shapely.union_all(dense.to_crs(info.crs).values)
    inv = ~info.transform
    pixels = affinity.affine_transform(geom, [inv.a, inv.b, inv.d, inv.e, inv.xoff, inv.yoff])
    if shapely.clip_by_rect(pixels, 0, 0, info.width, info.height).area <= 0:
        from rasterio.transform import array_bounds

        aoi = "x {:.6g}..{:.6g}, y {:.6g}..{:.6g}".format(*np.asarray(shapely.bounds(geom))[[0, 2, 1, 3]])
        west, south, east, north = array_bounds(info.height, info.width, info.transform)
        raise UsageError(
            f"--aoi {path} does not overlap {info.name}: in the scene's CRS the AOI spans {aoi}, the scene "
            f"x {west:.6g}..{east:.6g}, y {south:.6g}..{north:.6g}"
        )
    shapely.prepare(pixels)
    return Aoi(path.name, pixels, info.width, info.height)
