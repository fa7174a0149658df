"""Reader: opens and checks a scene, fixes one scene-wide radiometric stretch, reads padded windows and masks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from aeroseg_cli.files.errors import CLIError, UsageError

STRETCH_PERCENTILES = (2.0, 98.0)
STATS_MAX_SIDE = 2048  # decimated read for statistics (rasterio serves it from overviews when present)


@dataclass
class Radiometry:
    """How raw values become [0, 1]: ``(x - low) / (high - low)`` per band, clipped; identity scale for uint8."""

    low: list[float]
    high: list[float]
    source: str  # "uint8", "percentile 2-98 (scene-wide)", or "user --scale"

    def apply(self, data: np.ndarray) -> np.ndarray:
        if self.source == "uint8":  # identity stretch: one pass, already in range
            return np.true_divide(data, np.float32(255), dtype=np.float32)
        low = np.asarray(self.low, dtype=np.float32)[:, None, None]
        span = np.maximum(np.asarray(self.high, dtype=np.float32)[:, None, None] - low, 1e-12)
        return np.clip((data.astype(np.float32) - low) / span, 0.0, 1.0)

    def as_tag(self) -> str:
        pairs = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in zip(self.low, self.high, strict=True))
        return f"{self.source}: {pairs}"


@dataclass
class SceneInfo:
    path: Path
    width: int  # model grid (after --target-gsd resampling)
    height: int
    crs: object
    transform: Affine
    bands: list[int]
    dtype: str
    nodata: float | None
    radiometry: Radiometry
    scale: float = 1.0  # model pixels per scene pixel
    notes: list[str] = field(default_factory=list)


def parse_bands(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        bands = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--bands must be comma-separated 1-based band numbers, got {text!r}") from None
    if len(bands) not in (1, 3):
        raise UsageError(f"--bands takes 1 band (used as grey) or 3 bands (R,G,B), got {len(bands)}")
    return bands


def parse_scale(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--scale takes MIN,MAX (the raw values mapped to 0 and 1), got {text!r}") from None
    if not high > low:
        raise UsageError(f"--scale needs MIN < MAX, got {text!r}")
    return low, high


def open_dataset(path: Path) -> rasterio.io.DatasetReader:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    try:
        return rasterio.open(path)
    except RasterioIOError:
        raise UsageError(f"{path}: not a raster GDAL can read") from None


def is_georeferenced(ds) -> bool:
    return ds.crs is not None and ds.transform != Affine.identity()


class SceneReader:
    """Windowed, reflect-padded reads of one scene in model-pixel space; one dataset handle per reader.

    Open one reader per thread: GDAL handles must not be shared between threads.
    """

    def __init__(self, info: SceneInfo) -> None:
        self.info = info
        self._ds = rasterio.open(info.path)
        self._src = self._ds
        if info.scale != 1.0:
            self._src = WarpedVRT(
                self._ds,
                crs=self._ds.crs,
                transform=info.transform,
                width=info.width,
                height=info.height,
                resampling=Resampling.bilinear,
            )

    def close(self) -> None:
        if self._src is not self._ds:
            self._src.close()
        self._ds.close()

    def __enter__(self) -> SceneReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, row: int, col: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Window (row, col, size x size), may extend past the scene: -> image (3, size, size) in [0, 1] with
        reflect padding outside the scene, and validity mask (size, size) bool (False outside or nodata)."""
        info = self.info
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + size, info.height), min(col + size, info.width)
        window = Window(c0, r0, c1 - c0, r1 - r0)
        data = self._src.read(info.bands, window=window)
        valid = self._src.dataset_mask(window=window) > 0
        if info.nodata is not None and np.isnan(info.nodata):
            valid &= ~np.isnan(data).any(axis=0)
        image = info.radiometry.apply(np.nan_to_num(data))
        if len(info.bands) == 1:
            image = np.repeat(image, 3, axis=0)
        pads = ((r0 - row, row + size - r1), (c0 - col, col + size - c1))
        if any(p for pair in pads for p in pair):
            image = np.pad(image, ((0, 0), *pads), mode="reflect" if min(image.shape[1:]) > 1 else "edge")
            valid = np.pad(valid, pads, mode="constant", constant_values=False)
        return image, valid

    def read_mask(self, row0: int, row1: int) -> np.ndarray:
        """Validity mask (row1 - row0, width) bool for finished output rows."""
        window = Window(0, row0, self.info.width, row1 - row0)
        return self._src.dataset_mask(window=window) > 0


def scene_statistics(ds, bands: list[int], src=None) -> Radiometry:
    """One stretch for the whole scene: 2-98 % percentiles per band of a decimated read, masked pixels excluded."""
    src = src or ds
    factor = max(1, math.ceil(max(src.width, src.height) / STATS_MAX_SIDE))
    shape = (len(bands), max(1, src.height // factor), max(1, src.width // factor))
    data = src.read(bands, out_shape=shape, resampling=Resampling.nearest).astype(np.float64)
    mask = src.dataset_mask(out_shape=shape[1:], resampling=Resampling.nearest) > 0
    mask &= np.isfinite(data).all(axis=0)
    if not mask.any():
        raise CLIError(f"{ds.name}: every pixel is nodata; nothing to segment")
    low, high = [], []
    for band in data:
        lo, hi = np.percentile(band[mask], STRETCH_PERCENTILES)
        if hi <= lo:
            hi = lo + 1.0
        low.append(float(lo))
        high.append(float(hi))
    return Radiometry(low, high, f"percentile {STRETCH_PERCENTILES[0]:g}-{STRETCH_PERCENTILES[1]:g} (scene-wide)")


def inspect_scene(
    path: Path,
    bands: list[int] | None,
    scale: tuple[float, float] | None,
    target_gsd: float | None,
    allow_ungeoreferenced: bool,
) -> SceneInfo:
    """Check a scene and fix everything about reading it before any window is read."""
    with open_dataset(path) as ds:
        if not is_georeferenced(ds) and not allow_ungeoreferenced:
            raise UsageError(
                f"{path}: no CRS or geotransform; the output could not be placed on a map "
                "(use --allow-ungeoreferenced to segment it in pixel coordinates)"
            )
        if bands is None:
            bands = [1, 2, 3] if ds.count >= 3 else [1]
        bad = [b for b in bands if not 1 <= b <= ds.count]
        if bad:
            names = ", ".join(f"{i}={d or ds.colorinterp[i - 1].name}" for i, d in enumerate(ds.descriptions, start=1))
            raise UsageError(f"{path}: band {bad[0]} out of range; the scene has {ds.count} band(s): {names}")
        dtype = ds.dtypes[bands[0] - 1]
        width, height, transform, factor = ds.width, ds.height, ds.transform, 1.0
        notes = []
        if target_gsd is not None:
            if not is_georeferenced(ds) or ds.crs.is_geographic:
                raise UsageError("--target-gsd needs a projected CRS (metres per pixel)")
            gsd = abs(ds.transform.a)
            factor = gsd / target_gsd
            width, height = max(1, round(ds.width * factor)), max(1, round(ds.height * factor))
            transform = ds.transform @ Affine.scale(ds.width / width, ds.height / height)
            notes.append(f"resampled from {gsd:g} to {target_gsd:g} map units per pixel (output on that grid)")
        src = None
        if factor != 1.0:
            src = WarpedVRT(ds, crs=ds.crs, transform=transform, width=width, height=height)
        if scale is not None:
            radiometry = Radiometry([scale[0]] * len(bands), [scale[1]] * len(bands), "user --scale")
        elif dtype == "uint8":
            radiometry = Radiometry([0.0] * len(bands), [255.0] * len(bands), "uint8")
        else:
            radiometry = scene_statistics(ds, bands, src)
        if src is not None:
            src.close()
        return SceneInfo(
            path=path,
            width=width,
            height=height,
            crs=ds.crs,
            transform=transform,
            bands=bands,
            dtype=dtype,
            nodata=ds.nodata,
            radiometry=radiometry,
            scale=factor,
            notes=notes,
        )
