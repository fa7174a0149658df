"""Reader: opens and checks a scene, fixes one scene-wide radiometric stretch, and reads blocks of rows in the stored
dtype with their validity mask. The stretch itself is applied on the model's device (``Radiometry.to_unit``).

Every GDAL call on a scene runs under ``files.gdalread.checked``: any error GDAL reports during a read fails that
read, and a handle whose read failed is closed and never read again (GDAL may keep a failed block, or a VRT source
it could not open, and return zeros for it on the next read of the same handle without a word).
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from aeroseg_cli.files.errors import CLIError, UsageError
from aeroseg_cli.files.gdalread import GdalError, checked, exception_cause
from aeroseg_cli.files.identity import scene_identity
from aeroseg_cli.files.safety import check_input_file, is_remote

STRETCH_PERCENTILES = (2.0, 98.0)
STATS_MAX_SIDE = 2048  # decimated read for statistics (rasterio serves it from overviews when present)
MAX_SIDE = 2**31 - 1  # GDAL's limit on a raster's width and height
MAX_GRID_PIXELS = 10**12  # a terapixel: days of work at the fastest measured rates, far beyond any real scene
gdal_cause = exception_cause  # GDAL's words behind a rasterio error (kept under the name callers know)
# GDAL's VRT, read from two threads at once, can skip a source file it failed to open and return zeros for it without
# a word (seen with GDAL 3.10: a missing source); its reads (open, read, close) take turns, one scene at a time
SERIAL_DRIVERS = ("VRT",)
_serial: dict[str, threading.Lock] = {}
_serial_guard = threading.Lock()


def one_at_a_time(path: str, driver: str) -> contextlib.AbstractContextManager:
    """A lock shared by every reader of ``path`` when its driver must not be read from two threads at once."""
    if driver not in SERIAL_DRIVERS:
        return contextlib.nullcontext()
    with _serial_guard:
        return _serial.setdefault(path, threading.Lock())


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
        x = torch.nan_to_num_(x, nan=0.0, posinf=0.0, neginf=0.0)  # NaN and inf are nodata: both look like 0
        return x.sub_(low).div_(span.clamp_min(1e-12)).clamp_(0.0, 1.0)

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
    driver: str = ""
    source_shape: tuple[int, int] = (0, 0)  # the scene's own (height, width), before --target-gsd
    identity: dict = field(default_factory=dict)  # files.identity.scene_identity when the scene was checked

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name else self.name


@contextlib.contextmanager
def quiet_georeferencing() -> Iterator[None]:
    """Opening a raster without CRS warns (``NotGeoreferencedWarning``); callers that check georeferencing
    themselves silence it here, scoped, so the one-line promise holds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def open_dataset(path: str) -> rasterio.io.DatasetReader:
    """Open a raster GDAL can read, or say in one line why not (a local path must be a regular file: a FIFO or a
    device would block or never end)."""
    if not is_remote(path):
        if Path(path).is_dir():
            raise UsageError(f"{path} is a folder, not a raster")
        check_input_file(path, "the raster")
    try:
        with quiet_georeferencing(), checked(path, strict=False):
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
    """Reads blocks of the model grid; one dataset handle per reader (open one reader per thread), opened when first
    needed and reopened after any failed read."""

    def __init__(self, info: SceneInfo, gdal_threads: int | str = 1) -> None:
        """``gdal_threads``: GDAL's own threads decoding the tiles of one read; used for local GeoTIFFs only (GDAL
        hands their decoder errors back to the calling thread; other drivers' worker threads report to no one)."""
        self.info = info
        local_gtiff = info.driver == "GTiff" and not is_remote(info.path)
        self.threads = str(gdal_threads) if local_gtiff else "1"
        self._ds = self._src = None
        self._all_valid = False

    def _open(self) -> None:
        info = self.info
        with quiet_georeferencing(), checked(info.path, strict=False):
            self._ds = rasterio.open(info.path, num_threads=self.threads)
            # a dataset whose every band is all-valid has nothing to mask: skip reading it (5 ms per row of windows)
            self._all_valid = all(MaskFlags.all_valid in flags for flags in self._ds.mask_flag_enums)
            self._src = self._ds
            if info.scale != 1.0:
                self._src = WarpedVRT(self._ds, crs=self._ds.crs, transform=info.transform, width=info.width,
                                      height=info.height, resampling=Resampling.bilinear)  # fmt: skip

    def call(self, fn: Callable, warped: bool = True):
        """``fn(dataset)`` under ``checked`` (on the model grid, or the scene's own with ``warped=False``); any
        failure closes the handle, so that no later read reuses it. Raises ``GdalError``."""
        with one_at_a_time(self.info.path, self.info.driver):
            try:
                if self._ds is None:
                    self._open()
                with checked(self.info.path):
                    return fn(self._src if warped else self._ds)
            except RasterioIOError as exc:
                self._close()
                raise exc if isinstance(exc, GdalError) else GdalError(gdal_cause(exc), self.info.path) from None

    def close(self) -> None:
        with one_at_a_time(self.info.path, self.info.driver):
            self._close()

    def _close(self) -> None:
        with contextlib.suppress(Exception), checked(self.info.path, strict=False):
            if self._src is not None and self._src is not self._ds:
                self._src.close()
            if self._ds is not None:
                self._ds.close()
        self._ds = self._src = None

    def __enter__(self) -> SceneReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows [r0, r1) x columns [c0, c1) (non-negative; may extend past the bottom/right edge) -> data (bands, h, w)
        in the stored dtype, reflected about the scene's edges, and validity (h, w) bool: False outside the scene,
        on nodata and on NaN and +-inf (always nodata, declared or not). Raises ``ReadError`` with GDAL's cause."""
        info = self.info
        ridx, cidx = reflect_index(r0, r1, info.height), reflect_index(c0, c1, info.width)
        lo_r = min(r0, int(ridx.min())) if ridx is not None else r0
        lo_c = min(c0, int(cidx.min())) if cidx is not None else c0
        window = Window(lo_c, lo_r, min(c1, info.width) - lo_c, min(r1, info.height) - lo_r)
        try:
            data, valid = self.call(lambda src: self._window(src, window))
        except GdalError as exc:
            raise ReadError(info.name, r0, c0, exc.cause) from None
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        if ridx is not None or cidx is not None:
            rows = (ridx if ridx is not None else np.arange(r0, r1)) - lo_r
            cols = (cidx if cidx is not None else np.arange(c0, c1)) - lo_c
            data, valid = data[:, rows][:, :, cols], valid[rows][:, cols]
            inside = (np.arange(r0, r1) < info.height)[:, None] & (np.arange(c0, c1) < info.width)[None, :]
            valid &= inside
        else:
            data, valid = data[:, r0 - lo_r :, c0 - lo_c :], valid[r0 - lo_r :, c0 - lo_c :]
        return np.ascontiguousarray(data), np.ascontiguousarray(valid)

    def _window(self, src, window: Window) -> tuple[np.ndarray, np.ndarray]:
        data = src.read(self.info.bands, window=window)
        if self._all_valid:
            return data, np.ones(data.shape[1:], dtype=bool)
        return data, src.dataset_mask(window=window) > 0

    def sample(self, max_side: int) -> tuple[np.ndarray, np.ndarray]:
        """A nearest-neighbour overview read of the scene's own grid, at most ``max_side`` a side (served from
        overviews when present), as float64 with its validity mask (NaN and inf invalid). A damaged block is left
        out of the sample (its windows fail, or become nodata with --on-error skip, when they are read)."""
        ds_h, ds_w = self.info.source_shape
        factor = max(1, math.ceil(max(ds_w, ds_h) / max_side))
        shape = (len(self.info.bands), max(1, ds_h // factor), max(1, ds_w // factor))
        try:
            data, mask = self.call(lambda ds: self._decimated(ds, None, shape), warped=False)
        except GdalError:
            data, mask = self._sample_around_damage(shape)
        data = data.astype(np.float64)
        return data, mask & np.isfinite(data).all(axis=0)

    def _decimated(self, ds, window: Window | None, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        data = ds.read(self.info.bands, window=window, out_shape=shape, resampling=Resampling.nearest)
        return data, ds.dataset_mask(window=window, out_shape=shape[1:], resampling=Resampling.nearest) > 0

    def _sample_around_damage(self, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``sample`` piece by piece (64 x 64 sample pixels each); pieces that cannot be read stay masked out."""
        data, mask = np.zeros(shape, np.float64), np.zeros(shape[1:], bool)
        fy, fx = self.info.source_shape[0] / shape[1], self.info.source_shape[1] / shape[2]
        for r0 in range(0, shape[1], 64):
            for c0 in range(0, shape[2], 64):
                r1, c1 = min(r0 + 64, shape[1]), min(c0 + 64, shape[2])
                window = Window(c0 * fx, r0 * fy, (c1 - c0) * fx, (r1 - r0) * fy)
                piece = (len(self.info.bands), r1 - r0, c1 - c0)
                with contextlib.suppress(GdalError):
                    got = self.call(lambda ds, w=window, p=piece: self._decimated(ds, w, p), warped=False)
                    data[:, r0:r1, c0:c1], mask[r0:r1, c0:c1] = got
        return data, mask


class ReadError(CLIError):
    """A block of the scene could not be read; carries GDAL's cause and where."""

    def __init__(self, scene: str, row: int, col: int, cause: str) -> None:
        super().__init__(f"reading {scene} failed at row {row}, col {col}: {cause}")
        self.scene, self.row, self.col, self.cause = scene, row, col, cause


def scene_statistics(data: np.ndarray, mask: np.ndarray) -> Radiometry:
    """One stretch for the whole scene: 2-98 % percentiles per band of a decimated read, masked pixels excluded."""
    low, high = [], []
    for band in data:
        lo, hi = np.percentile(band[mask], STRETCH_PERCENTILES)
        low.append(float(lo))
        high.append(float(hi if hi > lo else lo + 1.0))
    return Radiometry(low, high, f"percentile {STRETCH_PERCENTILES[0]:g}-{STRETCH_PERCENTILES[1]:g} (scene-wide)")


def no_valid_pixel(info: SceneInfo) -> str:
    """The warning for a scene whose sample holds no valid pixel: its map is all nodata, whatever its dtype."""
    return (
        f"{info.name}: every pixel read for the scene-wide sample is nodata; windows without a valid pixel are "
        "skipped, so its map will be all 255 (nodata)"
        + (" (if it has valid pixels between the samples, give --scale MIN,MAX for them)" if info.dtype != "uint8"
           else "")
    )  # fmt: skip


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
    identity = scene_identity(path)  # before the first read: what the run's reads must still find at the end
    with open_dataset(path) as ds:
        info = _scene_info(ds, path, bands, allow_ungeoreferenced)
        if target_gsd is not None:
            _resample(ds, info, target_gsd)
    info.identity = identity
    check_grid(info, target_gsd)
    with SceneReader(info) as reader:
        data, mask = reader.sample(STATS_MAX_SIDE)
    if not mask.any():
        info.warnings.append(no_valid_pixel(info))
    if scale is not None:
        info.radiometry = Radiometry([scale[0]] * len(info.bands), [scale[1]] * len(info.bands), "user --scale")
    elif info.dtype != "uint8" and mask.any():
        info.radiometry = scene_statistics(data, mask)
    elif info.dtype != "uint8":  # nothing to measure: the dtype's own range (float: 0..1)
        top = float(np.iinfo(info.dtype).max) if np.dtype(info.dtype).kind in "ui" else 1.0
        info.radiometry = Radiometry([0.0] * len(info.bands), [top] * len(info.bands), "dtype range (no valid sample)")
    if scale is None:
        info.warnings += content_warnings(info.name, info.dtype, data, mask)
    return info


def _scene_info(ds, path: str, bands: list[int] | None, allow_ungeoreferenced: bool) -> SceneInfo:
    """The scene's grid, bands and dtype, checked (georeferencing, band numbers)."""
    if not is_georeferenced(ds) and not allow_ungeoreferenced:
        raise UsageError(georeferencing_problem(ds, path))
    bands = bands or ([1, 2, 3] if ds.count >= 3 else [1])
    bad = [b for b in bands if not 1 <= b <= ds.count]
    if bad:
        names = ", ".join(f"{i}={d or ds.colorinterp[i - 1].name}" for i, d in enumerate(ds.descriptions, start=1))
        raise UsageError(f"{path}: band {bad[0]} out of range; the scene has {ds.count} band(s): {names}")
    uint8 = Radiometry([0.0] * len(bands), [255.0] * len(bands), "uint8")
    info = SceneInfo(path, ds.width, ds.height, ds.crs, ds.transform, bands, ds.dtypes[bands[0] - 1], ds.nodata, uint8)
    info.driver, info.source_shape = ds.driver, (ds.height, ds.width)
    return info


def georeferencing_problem(ds, path: str) -> str:
    """Why a scene cannot be placed on a map, and what to do; a scene with ground control points says so."""
    gcps, gcp_crs = ds.gcps
    if gcps and ds.transform == Affine.identity():
        stem = Path(path).stem if not is_remote(path) else "scene"
        return (
            f"{path}: no geotransform, but {len(gcps)} ground control points (GCPs{', ' if gcp_crs else ''}"
            f"{gcp_crs.to_string() if gcp_crs else ''}); warp it onto a map grid first, e.g. "
            f"`gdalwarp -r bilinear {path} {stem}.warped.tif`, and segment that "
            "(or use --allow-ungeoreferenced to segment it in pixel coordinates)"
        )
    return (
        f"{path}: no CRS or geotransform; the output could not be placed on a map "
        "(use --allow-ungeoreferenced to segment it in pixel coordinates)"
    )


def check_grid(info: SceneInfo, target_gsd: float | None) -> None:
    """Refuse a model grid no run could finish (GDAL's raster size limit, a terapixel), before anything is read."""
    pixels = info.width * info.height
    if max(info.width, info.height) <= MAX_SIDE and pixels <= MAX_GRID_PIXELS:
        return
    what = f"{info.width} x {info.height} grid ({pixels:.3g} pixels)"
    limit = f"the limit is {MAX_GRID_PIXELS:.0e} pixels and {MAX_SIDE} a side"
    if target_gsd is not None:
        gsd = abs(info.transform.a) * info.scale
        raise UsageError(
            f"--target-gsd {target_gsd:g} makes a {what} of {info.name}, {info.scale:,.0f}x finer than its own "
            f"{gsd:g} per pixel; {limit}: give a coarser --target-gsd"
        )
    raise UsageError(f"{info.name} is a {what}; {limit}")


def _resample(ds, info: SceneInfo, target_gsd: float) -> None:
    """Put the model grid at ``target_gsd`` map units per pixel, same CRS and origin (the size is only computed
    here; ``check_grid`` refuses a runaway one before any read)."""
    if not is_georeferenced(ds) or ds.crs.is_geographic:
        raise UsageError("--target-gsd needs a projected CRS (metres per pixel)")
    gsd = abs(ds.transform.a)
    factor = gsd / target_gsd
    info.width, info.height = max(1, round(ds.width * factor)), max(1, round(ds.height * factor))
    info.transform = ds.transform @ Affine.scale(ds.width / info.width, ds.height / info.height)
    info.scale = factor
    info.notes.append(f"resampled from {gsd:g} to {target_gsd:g} map units per pixel (output on that grid)")
