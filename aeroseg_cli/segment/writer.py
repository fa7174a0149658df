"""Writer: labelled GeoTIFF (and per-class probabilities) written in chunks to a hidden partial file, renamed into
place only when complete. A JSON sidecar records the finished rows so ``--resume`` can continue a broken run."""

from __future__ import annotations

import colorsys
import json
import os
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from aeroseg_cli.files.atomic import atomic_output
from aeroseg_cli.files.errors import CLIError
from aeroseg_cli.segment.blender import NODATA, FinishedRows

BLOCK = 512  # GeoTIFF tile size; chunks are written in multiples of it so no tile is written twice
GTIFF_OPTIONS = {
    "driver": "GTiff",
    "tiled": True,
    "blockxsize": BLOCK,
    "blockysize": BLOCK,
    "compress": "zstd",
    "predictor": 2,
    "BIGTIFF": "IF_SAFER",
    "SPARSE_OK": "TRUE",
}


def class_colors(n: int) -> list[tuple[int, int, int]]:
    """Distinct colours by golden-ratio hue steps (stable for a class id across runs)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.95)
        out.append((round(r * 255), round(g * 255), round(b * 255)))
    return out


def partial_paths(output: Path) -> tuple[Path, Path]:
    stem = output.parent / f".{output.name}.partial"
    return stem.with_name(stem.name + ".tif"), stem.with_name(stem.name + ".json")


def aux_xml(class_names: Sequence[str]) -> str:
    """GDAL PAM sidecar with category names: QGIS shows them as the legend of the paletted band."""
    cats = [escape(n) for n in class_names] + [""] * (NODATA - len(class_names)) + ["nodata/unknown"]
    items = "".join(f"      <Category>{c}</Category>\n" for c in cats)
    return (
        '<PAMDataset>\n  <PAMRasterBand band="1">\n    <Description>class</Description>\n'
        f"    <CategoryNames>\n{items}    </CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n"
    )


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


class LabelWriter:
    """Chunked writes of finished rows; ``commit()`` moves the finished files into place."""

    def __init__(
        self,
        output: Path,
        width: int,
        height: int,
        crs,
        transform,
        class_names: Sequence[str],
        tags: dict[str, str],
        fingerprint: str,
        probabilities: Path | None = None,
        cog: bool = False,
        resume: bool = False,
        chunk_rows: int = 2 * BLOCK,
        row_offset: int = 0,
    ) -> None:
        """``row_offset``: this file holds scene rows [row_offset, row_offset + height) (one rank's band)."""
        self.output, self.width, self.height, self.row_offset = output, width, height, row_offset
        self.transform = transform
        self.class_names = list(class_names)
        self.cog, self.probabilities = cog, probabilities
        self.chunk_rows = max(BLOCK, chunk_rows // BLOCK * BLOCK)
        self.fingerprint = fingerprint
        self.partial, self.sidecar = partial_paths(output)
        self.prob_partial = partial_paths(probabilities)[0] if probabilities else None
        self.rows_done = row_offset  # absolute scene row
        self._pending: list[FinishedRows] = []
        if resume and self._load_progress():
            return
        profile = dict(
            GTIFF_OPTIONS,
            width=width,
            height=height,
            count=1,
            dtype="uint8",
            crs=crs,
            transform=transform,
            nodata=NODATA,
        )
        colors = class_colors(len(self.class_names))
        with rasterio.open(self.partial, "w", **profile) as dst:
            dst.write_colormap(1, {**{i: (*c, 255) for i, c in enumerate(colors)}, NODATA: (0, 0, 0, 0)})
            dst.set_band_description(1, "class")
            dst.update_tags(**tags, CLASS_NAMES=json.dumps(self.class_names))
            dst.update_tags(1, **{f"class_{i}": n for i, n in enumerate(self.class_names)})
        if self.prob_partial:
            pprofile = dict(profile, count=len(self.class_names), nodata=None)
            with rasterio.open(self.prob_partial, "w", **pprofile) as dst:
                for i, name in enumerate(self.class_names, start=1):
                    dst.set_band_description(i, f"p({name}) x 255")
                dst.update_tags(**tags, CLASS_NAMES=json.dumps(self.class_names))
        self._save_progress()

    # -- resume ------------------------------------------------------------------------------------------------
    def _load_progress(self) -> bool:
        if not (self.partial.exists() and self.sidecar.exists()):
            return False
        try:
            state = json.loads(self.sidecar.read_text())
        except (OSError, ValueError):
            return False
        if state.get("fingerprint") != self.fingerprint:
            raise CLIError(f"{self.partial} belongs to a run with other settings; remove it or rerun those settings")
        if self.prob_partial and not self.prob_partial.exists():
            return False
        self.rows_done = int(state["rows_done"])
        return True

    def _save_progress(self) -> None:
        atomic_write_text(self.sidecar, json.dumps({"fingerprint": self.fingerprint, "rows_done": self.rows_done}))

    # -- writing -----------------------------------------------------------------------------------------------
    def write(self, rows: FinishedRows) -> None:
        self._pending.append(rows)
        pending = sum(r.labels.shape[0] for r in self._pending)
        if pending >= self.chunk_rows or self.rows_done + pending >= self.row_offset + self.height:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        row0 = self._pending[0].row0
        if row0 != self.rows_done:
            raise RuntimeError(f"rows arrive out of order ({row0} after {self.rows_done})")
        labels = np.concatenate([r.labels for r in self._pending], axis=0)
        n = labels.shape[0]
        window = Window(0, row0 - self.row_offset, self.width, n)
        with rasterio.open(self.partial, "r+") as dst:  # closing makes the chunk durable before progress is saved
            dst.write(labels, 1, window=window)
        if self.prob_partial:
            probs = np.concatenate([r.probabilities for r in self._pending], axis=1)
            with rasterio.open(self.prob_partial, "r+") as dst:
                dst.write(probs, window=window)
        self._pending = []
        self.rows_done = row0 + n
        self._save_progress()

    def commit(self, overwrite: bool) -> list[Path]:
        """Finish: flush, convert to COG if asked, rename into place, add the legend sidecar."""
        self._flush()
        if self.rows_done != self.row_offset + self.height:
            raise RuntimeError(f"only {self.rows_done - self.row_offset} of {self.height} rows were written")
        written = [self._place(self.partial, self.output, self.cog, overwrite)]
        atomic_write_text(self.output.with_name(self.output.name + ".aux.xml"), aux_xml(self.class_names))
        if self.prob_partial:
            written.append(self._place(self.prob_partial, self.probabilities, self.cog, overwrite))
        self.sidecar.unlink(missing_ok=True)
        return written

    @staticmethod
    def _place(partial: Path, target: Path, cog: bool, overwrite: bool) -> Path:
        if target.exists() and not overwrite:
            raise CLIError(f"{target} appeared during the run; not replaced (use --overwrite)")
        if cog:
            with atomic_output(target, suffix=".cog.tif") as tmp:
                rasterio.shutil.copy(
                    partial,
                    tmp,
                    driver="COG",
                    compress="zstd",
                    predictor="YES",
                    blocksize=BLOCK,
                    overview_resampling="nearest",
                    BIGTIFF="IF_SAFER",
                )
            partial.unlink()
        else:
            os.replace(partial, target)
        return target

    def discard(self) -> None:
        """Remove the partial files (a failed run that cannot be resumed)."""
        for p in (self.partial, self.sidecar, self.prob_partial):
            if p is not None:
                p.unlink(missing_ok=True)
