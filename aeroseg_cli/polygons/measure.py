"""Where polygon areas and perimeters are measured, so that they are true ground metres whatever the raster's CRS.

A projected CRS is trusted only where its scale is near 1 over the whole scene: PROJ's scale factors are sampled on a
grid over the raster's extent, and if the areal scale or the linear scale in any direction (Tissot's axes) is off by
more than ``SCALE_TOLERANCE`` anywhere, polygons are measured in a Lambert azimuthal equal-area projection centred on
the scene instead, as geographic rasters always are. Web Mercator at 39.6 N has an areal scale of 1.68: measured in its
own units, areas would be 68 % too large. UTM is off by at most about 0.2 % inside its zone and keeps its own units.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
from pyproj import CRS, Proj, Transformer
from pyproj.exceptions import CRSError, ProjError

SCALE_TOLERANCE = 0.005  # 0.5 %: largest scale error accepted before measuring in a local equal-area projection
SAMPLES = 5  # scale factors are sampled on a SAMPLES x SAMPLES grid over the raster's extent (corners included)

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class Measure:
    """How to measure: reproject to ``crs`` first (None: measure the geometry as it is), then scale by ``factor``
    (CRS units to metres); ``note`` says what the numbers are in, for the summary."""

    crs: CRS | None
    factor: float
    note: str

    def area_perimeter(self, geoms: gpd.GeoSeries) -> tuple[np.ndarray, np.ndarray]:
        """Areas (units²) and perimeters of ``geoms`` as float64 arrays."""
        measured = geoms if self.crs is None or len(geoms) == 0 else geoms.to_crs(self.crs)
        area = np.asarray(measured.area, dtype=np.float64) * self.factor**2
        return area, np.asarray(measured.length, dtype=np.float64) * self.factor


def scale_error(crs: CRS, bounds: Bounds) -> float | None:
    """Largest deviation from 1 of the areal scale and of Tissot's axes (the extreme linear scales) over the scene,
    from PROJ's factors (unit conversion included); None where PROJ cannot compute them."""
    try:
        proj = Proj(crs)
    except CRSError:
        return None
    xs, ys = np.meshgrid(np.linspace(bounds[0], bounds[2], SAMPLES), np.linspace(bounds[1], bounds[3], SAMPLES))
    lon, lat = proj(xs.ravel(), ys.ravel(), inverse=True)
    factors = proj.get_factors(lon, lat)
    extremes = (factors.areal_scale, factors.tissot_semimajor, factors.tissot_semiminor)
    scales = np.stack([np.asarray(v, dtype=np.float64) for v in extremes])
    if not np.isfinite(scales).all() or (scales <= 0).any():
        return None
    return float(np.abs(scales - 1.0).max())


def local_equal_area(crs: CRS, bounds: Bounds) -> tuple[CRS, float, float] | None:
    """Lambert azimuthal equal-area on WGS 84 centred on the scene (lat, lon); None if ``crs`` cannot be related to
    the earth (e.g. an engineering CRS)."""
    try:
        to_wgs84 = Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)
        lon, lat = to_wgs84.transform((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, errcheck=True)
    except (CRSError, ProjError):
        return None
    laea = CRS.from_proj4(f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs")
    return laea, lat, lon


def _own_units(crs: CRS, error: float) -> Measure:
    """Measure in the CRS's own units, converted to metres (feet: by the unit's factor)."""
    unit = crs.axis_info[0]
    bound = f"at most {error:.2%}" if error >= 5e-5 else "under 0.01%"
    converted = f"converted from {unit.unit_name}; " if unit.unit_conversion_factor != 1 else ""
    return Measure(None, unit.unit_conversion_factor, f"metres ({converted}{crs.name}; scale error {bound})")


def measure_for(crs: CRS | None, bounds: Bounds, pixel_coords: bool = False) -> Measure:
    """The measure for a raster in ``crs`` covering ``bounds``: its own units (converted to metres) where its scale
    error stays within SCALE_TOLERANCE over the scene, else a local equal-area projection."""
    if crs is None:
        what = "pixel units (no CRS)" if pixel_coords else "the geotransform's units (no CRS)"
        return Measure(None, 1.0, what)
    if not crs.is_projected and not crs.is_geographic:
        return Measure(None, 1.0, f"the units of {crs.name} (not a CRS on the earth)")
    error = scale_error(crs, bounds) if crs.is_projected else None
    if crs.is_projected and error is not None and error <= SCALE_TOLERANCE:
        return _own_units(crs, error)
    local = local_equal_area(crs, bounds)
    if local is None:
        return Measure(None, 1.0, f"the units of {crs.name} (cannot be related to the earth)")
    laea, lat, lon = local
    where = f"Lambert azimuthal equal-area centred at {lat:.4f}, {lon:.4f}"
    if crs.is_geographic:
        why = "geographic source CRS"
    elif error is None:
        why = f"{crs.name}: PROJ gives no scale factors for it"
    else:
        why = f"{crs.name} is off true scale by up to {error:.1%} here, over the {SCALE_TOLERANCE:.1%} limit"
    return Measure(laea, 1.0, f"metres in {where} ({why})")
