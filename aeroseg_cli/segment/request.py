"""What to segment and how: the typed input of the segment pipeline. ``aeroseg segment`` builds one from its options
field by field; Python callers build one directly (``aeroseg_cli.segment``). Every default is written here once, and
the command's options read them from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

RGB = tuple[int, int, int]


@dataclass
class SegmentRequest:
    """One run of ``segment``: scenes in, label rasters out (and optionally probabilities and polygons)."""

    scenes: list[str]  # GeoTIFFs or any GDAL raster paths (remote ones included)
    classes: list[str] | None = None  # None: the checkpoint's own classes; "a|b" are synonyms
    class_colors: dict[str, RGB] = field(default_factory=dict)  # colours given with the classes ("water:#1f78b4")
    classes_file: Path | None = None  # the file the classes came from: an input, never replaced by an output
    colors: Path | None = None  # a palette file (NAME: COLOUR lines, JSON, QGIS colour map); class_colors win
    output: Path | None = None  # a .tif for one scene, a folder for several; None: SCENE.labels.tif beside each
    model: str | None = None  # checkpoint, released model or preset; None: the best model on this machine
    tile: int | None = None  # window size fed to the model; None: the model's crop
    overlap: float = 0.25  # overlap between windows, a fraction of the tile in [0, 1)
    batch_size: int | None = 4  # windows per model call; None: the largest that fits the GPU
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    precision: str = "auto"  # auto (bf16 on GPU, fp32 on CPU), fp32, bf16, fp16
    bands: list[int] | None = None  # 1-based R,G,B bands (or one grey band); None: 1,2,3 (or 1)
    scale: tuple[float, float] | None = None  # raw values mapped to 0..1; None: the scene-wide stretch
    target_gsd: float | None = None  # resample to this pixel size (map units) first
    aoi: Path | None = None  # polygons bounding the work: only windows touching them run, outside is 255
    unknown_threshold: float = 0.0  # pixels whose best class probability is below this become 255
    probabilities: Path | None = None  # also write per-class probabilities (p x 255), one band per class
    vector: Path | None = None  # also polygonise the labels (gpkg, geojson, shp, parquet)
    cog: bool = False  # Cloud-Optimized GeoTIFFs with overviews
    overwrite: bool = False  # replace existing outputs
    resume: bool = False  # continue an interrupted run from its finished rows
    on_error: str = "fail"  # fail: a failed window fails the run; skip: it is written as nodata
    io_threads: int | None = None  # decode threads; None: auto, 0: inline
    max_memory: int | None = None  # bytes for blending and finished rows; None: 25 % of free GPU memory / 512 MiB
    allow_ungeoreferenced: bool = False  # accept scenes without CRS or transform
    quiet: bool = False  # no progress display
