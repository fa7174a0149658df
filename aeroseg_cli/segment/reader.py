"""Reader: opens and checks a scene, fixes one scene-wide radiometric stretch, and reads blocks of rows in the stored
dtype with their validity mask. The stretch itself is applied on the model's device (``Radiometry.to_unit``)."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.files.safety import is_remote

STRETCH_PERCENTILES = (2.0, 98.0)
STATS_MAX_SIDE = 2048  # decimated read for statistics (rasterio serves it from overviews when present)


@dataclass
class Radiometry:
    """How raw values become [0, 1]: ``(x - low) / (high - low)`` per band, clipped; identity scale for uint8."""

    low: list[float]
    high: list[float]
    source: str  # "uint8", "percentile 2-98 (scene-wide)", or "user --scale"

    def to_unit(self, raw):
        """raw (N, bands, h, w) tensor in the stored dtype, on any device -> float32 in [0, 1], NaN as 0."""
        import torch

        x = raw.to(torch.float32)
        if self.source == "uint8":  # identity stretch: one pass, already in range
            return x.div_(255.0)
        low = torch.tensor(self.low, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        span = torch.tensor(self.high, dtype=torch.float32, device=x.device).view(1, -1, 1, 1) - low
        return torch.nan_to_num_(x).sub_(low).div_(span.clamp_min(1e-12)).clamp_(0.0, 1.0)

    def as_tag(self) -> str:
        pairs = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in zip(self.low, self.high, strict=True))
        return f"{self.source}: {pairs}"


@dataclass
class SceneInfo:
    path: str  # as GDAL opens it: a local path or a GDAL virtual/remote one
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
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name else self.name


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


def gdal_cause(exc: BaseException) -> str:
    """GDAL's own words behind a rasterio error ("IReadBlock failed at X offset 0 ...") rather than "Read failed. See
    previous exception for details."."""
    messages, e = [], exc
    while e is not None:
        text = str(e).strip()
        if text and "See previous exception" not in text:
            messages.append(text.splitlines()[0])
        e = e.__cause__ or e.__context__
    return "; ".join(dict.fromkeys(messages)) or type(exc).__name__


@contextlib.contextmanager
def quiet_georeferencing() -> Iterator[None]:
    """Opening a raster without CRS warns (``NotGeoreferencedWarning``); callers that check georeferencing
    themselves silence it here, scoped, so the one-line promise holds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def open_dataset(path: str) -> rasterio.io.DatasetReader:
    """Open a raster GDAL can read, or say in one line why not."""
    if not is_remote(path):
        from pathlib import Path

        if not Path(path).exists():
            raise UsageError(f"{path}: no such file")
        if Path(path).is_dir():
            raise UsageError(f"{path} is a folder, not a raster")
    try:
        with quiet_georeferencing():
            return rasterio.open(path)
    except RasterioIOError as exc:
        if is_remote(path):
            raise UsageError(f"{path}: cannot open this remote or virtual raster ({gdal_cause(exc)})") from None
        raise UsageError(f"{path}: not a raster GDAL can read") from None


def is_georeferenced(ds) -> bool:
    return ds.crs is not None and ds.transform != Affine.identity()


def reflect_index(start: int, stop: int, length: int) -> np.ndarray | None:
    """Indices [start, stop) reflected into [0, length) about the last pixel (numpy's "reflect": the edge is not
    repeated); None when no index needs it."""
    if stop <= length:
        return None
    idx = np.arange(start, stop)
    if length == 1:
        return np.zeros_like(idx)
    period = 2 * (length - 1)
    m = idx % period
    return np.where(m < length, m, period - m)


class SceneReader:
    """Reads blocks of the model grid; one dataset handle per reader (open one reader per thread)."""

    def __init__(self, info: SceneInfo, gdal_threads: int | str = 1) -> None:
        """``gdal_threads``: GDAL's own threads decoding the tiles of one read (GTiff; "ALL_CPUS" or a number)."""
        self.info = info
        try:
            with quiet_georeferencing():
                self._ds = rasterio.open(info.path, num_threads=str(gdal_threads))
        except RasterioIOError as exc:
            raise CLIError(f"cannot open {info.path}: {gdal_cause(exc)}") from None
        self._src = self._ds
        # a dataset whose every band is all-valid has nothing to mask: skip reading it (5 ms per row of windows)
        self._all_valid = all(MaskFlags.all_valid in flags for flags in self._ds.mask_flag_enums)
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

    def read(self, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows [r0, r1) x columns [c0, c1) (non-negative; may extend past the bottom/right edge) -> data (bands, h, w)
        in the stored dtype, reflected about the scene's edges, and validity (h, w) bool: False outside the scene,
        on nodata and on NaN (always nodata, declared or not). Raises ``ReadError`` with GDAL's cause."""
        info = self.info
        ridx, cidx = reflect_index(r0, r1, info.height), reflect_index(c0, c1, info.width)
        lo_r = min(r0, int(ridx.min())) if ridx is not None else r0
        lo_c = min(c0, int(cidx.min())) if cidx is not None else c0
        window = Window(lo_c, lo_r, min(c1, info.width) - lo_c, min(r1, info.height) - lo_r)
        try:
            data = self._src.read(info.bands, window=window)
            if self._all_valid:
                valid = np.ones(data.shape[1:], dtype=bool)
            else:
                valid = self._src.dataset_mask(window=window) > 0
        except RasterioIOError as exc:
            raise ReadError(info.name, r0, c0, gdal_cause(exc)) from None
        if data.dtype.kind == "f":
            valid &= ~np.isnan(data).any(axis=0)
        if ridx is not None or cidx is not None:
            rows = (ridx if ridx is not None else np.arange(r0, r1)) - lo_r
            cols = (cidx if cidx is not None else np.arange(c0, c1)) - lo_c
            data, valid = data[:, rows][:, :, cols], valid[rows][:, cols]
            inside = (np.arange(r0, r1) < info.height)[:, None] & (np.arange(c0, c1) < info.width)[None, :]
            valid &= inside
        else:
            data, valid = data[:, r0 - lo_r :, c0 - lo_c :], valid[r0 - lo_r :, c0 - lo_c :]
        return np.ascontiguousarray(data), np.ascontiguousarray(valid)


class ReadError(CLIError):
    """A block of the scene could not be read; carries GDAL's cause and where."""

    def __init__(self, scene: str, row: int, col: int, cause: str) -> None:
        super().__init__(f"reading {scene} failed at row {row}, col {col}: {cause}")
        self.scene, self.row, self.col, self.cause = scene, row, col, cause


def decimated(src, bands: list[int], max_side: int) -> tuple[np.ndarray, np.ndarray]:
    """A nearest-neighbour overview read (served from overviews when present) and its validity mask. A damaged
    block is left out of the sample (its windows fail, or become nodata with --on-error skip, when they are read)."""
    factor = max(1, math.ceil(max(src.width, src.height) / max_side))
    shape = (len(bands), max(1, src.height // factor), max(1, src.width // factor))
    try:
        data = src.read(bands, out_shape=shape, resampling=Resampling.nearest).astype(np.float64)
        mask = src.dataset_mask(out_shape=shape[1:], resampling=Resampling.nearest) > 0
    except RasterioIOError:
        data, mask = _decimated_around_damage(src, bands, shape)
    return data, mask & np.isfinite(data).all(axis=0)


def _decimated_around_damage(src, bands: list[int], shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``decimated`` piece by piece (64 x 64 sample pixels each); pieces that cannot be read stay masked out."""
    data, mask = np.zeros(shape, np.float64), np.zeros(shape[1:], bool)
    fy, fx = src.height / shape[1], src.width / shape[2]
    for r0 in range(0, shape[1], 64):
        for c0 in range(0, shape[2], 64):
            r1, c1 = min(r0 + 64, shape[1]), min(c0 + 64, shape[2])
            window = Window(c0 * fx, r0 * fy, (c1 - c0) * fx, (r1 - r0) * fy)
            with contextlib.suppress(RasterioIOError):
                piece = src.read(bands, window=window, out_shape=(len(bands), r1 - r0, c1 - c0))
                valid = src.dataset_mask(window=window, out_shape=(r1 - r0, c1 - c0)) > 0
                data[:, r0:r1, c0:c1], mask[r0:r1, c0:c1] = piece, valid
    return data, mask


def scene_statistics(name: str, data: np.ndarray, mask: np.ndarray) -> Radiometry:
    """One stretch for the whole scene: 2-98 % percentiles per band of a decimated read, masked pixels excluded."""
    if not mask.any():
        raise CLIError(f"{name}: every pixel is nodata; nothing to segment")
    low, high = [], []
    for band in data:
        lo, hi = np.percentile(band[mask], STRETCH_PERCENTILES)
        low.append(float(lo))
        high.append(float(hi if hi > lo else lo + 1.0))
    return Radiometry(low, high, f"percentile {STRETCH_PERCENTILES[0]:g}-{STRETCH_PERCENTILES[1]:g} (scene-wide)")


def content_warnings(name: str, dtype: str, data: np.ndarray, mask: np.ndarray) -> list[str]:
    """Rasters that are not imagery: one float band with a metre-like range (elevation, surface height), or only two
    distinct values (a mask or hillshade threshold). Said once, with what --bands / --scale would change."""
    values = data[:, mask]
    if values.size == 0:
        return []
    distinct = np.unique(values[:, :200_000])
    if len(distinct) <= 2:
        shown = " and ".join(f"{v:g}" for v in distinct)
        return [
            f"{name} looks like a mask, not imagery (only the values {shown}); the model will see a flat two-tone "
            "image. If the scene has image bands, pick them with --bands"
        ]
    lo, hi = float(values.min()), float(values.max())
    if data.shape[0] == 1 and np.dtype(dtype).kind == "f" and lo >= -500 and hi <= 9000 and hi - lo > 1:
        return [
            f"{name} looks like an elevation or height raster (1 {dtype} band, values {lo:g} to {hi:g} m?), not "
            "imagery; it will be segmented as a grey image stretched to its 2-98 % range. Use --bands to pick image "
            "bands, or --scale MIN,MAX to fix the stretch"
        ]
    return []


def inspect_scene(
    path: str,
    bands: list[int] | None,
    scale: tuple[float, float] | None,
    target_gsd: float | None,
    allow_ungeoreferenced: bool,
) -> SceneInfo:
    """Check a scene and fix everything about reading it (grid, bands, stretch) before any window is read."""
    path = str(path)
    with open_dataset(path) as ds:
        if not is_georeferenced(ds) and not allow_ungeoreferenced:
            raise UsageError(
                f"{path}: no CRS or geotransform; the output could not be placed on a map "
                "(use --allow-ungeoreferenced to segment it in pixel coordinates)"
            )
        bands = bands or ([1, 2, 3] if ds.count >= 3 else [1])
        bad = [b for b in bands if not 1 <= b <= ds.count]
        if bad:
            names = ", ".join(f"{i}={d or ds.colorinterp[i - 1].name}" for i, d in enumerate(ds.descriptions, start=1))
            raise UsageError(f"{path}: band {bad[0]} out of range; the scene has {ds.count} band(s): {names}")
        info = SceneInfo(
            path,
            ds.width,
            ds.height,
            ds.crs,
            ds.transform,
            bands,
            ds.dtypes[bands[0] - 1],
            ds.nodata,
            Radiometry([0.0] * len(bands), [255.0] * len(bands), "uint8"),
        )
        if target_gsd is not None:
            _resample(ds, info, target_gsd)
        src = (
            WarpedVRT(ds, crs=ds.crs, transform=info.transform, width=info.width, height=info.height)
            if info.scale != 1.0
            else ds
        )
        try:
            data, mask = decimated(src, bands, STATS_MAX_SIDE)
        except RasterioIOError as exc:
            raise CLIError(f"reading {info.name} failed: {gdal_cause(exc)}") from None
        finally:
            if src is not ds:
                src.close()
    if scale is not None:
        info.radiometry = Radiometry([scale[0]] * len(bands), [scale[1]] * len(bands), "user --scale")
    elif info.dtype != "uint8":
        info.radiometry = scene_statistics(info.name, data, mask)
    if scale is None:
        info.warnings += content_warnings(info.name, info.dtype, data, mask)
    return info


def _resample(ds, info: SceneInfo, target_gsd: float) -> None:
    """Put the model grid at ``target_gsd`` map units per pixel, same CRS and origin."""
    if not is_georeferenced(ds) or ds.crs.is_geographic:
        raise UsageError("--target-gsd needs a projected CRS (metres per pixel)")
    gsd = abs(ds.transform.a)
    factor = gsd / target_gsd
    info.width, info.height = max(1, round(ds.width * factor)), max(1, round(ds.height * factor))
    info.transform = ds.transform @ Affine.scale(ds.width / info.width, ds.height / info.height)
    info.scale = factor
    info.notes.append(f"resampled from {gsd:g} to {target_gsd:g} map units per pixel (output on that grid)")
