"""Cloud-Optimized GeoTIFF (``--cog``): a finished partial copied into place as a COG with overviews, and verified
pixel for pixel before the partial is let go."""

from __future__ import annotations

from pathlib import Path

import rasterio
import rasterio.shutil
from rasterio.errors import RasterioIOError

from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.files.errors import WriteError, diagnose
from aeroseg_cli.files.gdalread import public_errors
from aeroseg_cli.segment.tiler import BLOCK

COG_OPTIONS = {
    "driver": "COG",
    "compress": "zstd",
    "predictor": "YES",
    "blocksize": BLOCK,
    "overview_resampling": "nearest",
    "BIGTIFF": "IF_SAFER",
}


def place_as_cog(partial: Path, target: Path) -> Path:
    """Copy ``partial`` to ``target`` as a COG (atomically: the target appears whole or not at all), check the copy,
    then remove the partial. A failure leaves the partial (the finished rows stay resumable) and nothing at
    ``target``."""
    with atomic_output(target, suffix=".cog.tif") as tmp:
        try:
            with public_errors():
                rasterio.shutil.copy(partial, tmp, **COG_OPTIONS)
            verify_copy(partial, tmp)
        except (RasterioIOError, OSError, WriteError) as exc:
            reason = diagnose(tmp, str(exc), needs=partial.stat().st_size * 4 // 3)  # tiles and overviews
            for leftover in tmp.parent.glob(f"{tmp.name}.*"):  # GDAL's .ovr.tmp and .aux.xml beside it
                leftover.unlink(missing_ok=True)
            raise WriteError(
                f"writing {target} as a COG failed: {reason}; the finished rows are kept: free space and rerun "
                "with --resume"
            ) from None
    partial.unlink()
    return target


def verify_copy(src_path: Path, dst_path: Path) -> None:
    """The copy holds the same pixels: same shape and a GDAL checksum per band (reads every block of both)."""
    with rasterio.open(src_path) as a, rasterio.open(dst_path) as b:
        if (a.count, a.shape) != (b.count, b.shape):
            raise WriteError("the copy has another shape")
        for band in range(1, a.count + 1):
            if a.checksum(band) != b.checksum(band):
                raise WriteError("the copy's pixels differ from the original")
