"""Writer: the labelled GeoTIFF (and per-class probabilities) written chunk by chunk into a hidden partial file that
belongs to this run, styled and placed (renamed, or copied as a COG: ``segment/cog.py``) with its style files only
when complete.

Every chunk is read back after it is closed and compared with what was written: GDAL reports some write failures
(a full disk while it rewrites a tile index on close) only on stderr, and a file that reads back is the only proof.
After each chunk the partial's sidecar records the rows that are safely on disk (the protocol of
``segment/resume.py``), so ``--resume`` continues exactly there.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from aeroseg_cli.files.atomic import default_permissions
from aeroseg_cli.files.errors import CLIError, WriteError, diagnose
from aeroseg_cli.files.gdalread import public_errors
from aeroseg_cli.files.sidecars import aux_xml_path, qml_path
from aeroseg_cli.runtime.host import silence_libtiff
from aeroseg_cli.segment.blender import NODATA, PROBABILITY_NODATA, FinishedRows
from aeroseg_cli.segment.cog import place_as_cog
from aeroseg_cli.segment.resume import BlockProgress, check_compatible, partial_paths, read_state, write_state
from aeroseg_cli.segment.tiler import BLOCK
from aeroseg_cli.styles.documents import label_aux_xml, label_qml, probability_qml
from aeroseg_cli.styles.palette import RGB, class_colors

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


@dataclass
class RasterSpec:
    """The grid of a file being written: scene rows [row_offset, row_offset + height) (a rank's band, or all)."""

    width: int
    height: int
    crs: object
    transform: object
    row_offset: int = 0


def label_sidecars(output: Path) -> tuple[Path, Path]:
    """The files written beside a label raster: GDAL's PAM ``.aux.xml`` (names, attribute table) and the QGIS style."""
    return aux_xml_path(output), qml_path(output)


def probability_sidecars(output: Path) -> tuple[Path, Path]:
    """The files beside a probability raster: its QGIS style, and GDAL's PAM ``.aux.xml``, which aeroseg does not
    write (the GeoTIFF holds names, scale and offset) but removes when it places a new raster: QGIS and
    ``gdalinfo -stats`` keep band statistics there, which would describe the old raster."""
    return qml_path(output), aux_xml_path(output)


@contextlib.contextmanager
def staged(documents: dict[Path, str]) -> Iterator[dict[Path, Path]]:
    """Each document written to a temporary file beside its path (target -> temporary); the caller renames them into
    place once their raster is there, and whatever is not renamed is removed."""
    staging: dict[Path, Path] = {}
    try:
        for path, text in documents.items():
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            default_permissions(name)
            staging[path] = Path(name)
        yield staging
    finally:
        for tmp in staging.values():
            tmp.unlink(missing_ok=True)


class LabelWriter:
    """Chunked, verified writes of finished rows; ``commit()`` moves the finished files into place."""

    def __init__(
        self,
        output: Path,
        spec: RasterSpec,
        class_names: Sequence[str],
        tags: dict[str, str],
        settings: dict,
        blocks: list[tuple[int, int]],
        probabilities: Path | None = None,
        cog: bool = False,
        resume: bool = False,
        chunk_rows: int = 2 * BLOCK,
        colors: Sequence[RGB] | None = None,
    ) -> None:
        self.output, self.spec, self.class_names = output, spec, list(class_names)
        self.colors = list(colors) if colors is not None else class_colors(self.class_names)
        self.settings, self.cog, self.probabilities = settings, cog, probabilities
        self.chunk_rows = max(BLOCK, chunk_rows // BLOCK * BLOCK)
        self.partial, self.sidecar = partial_paths(output)
        self.prob_partial = partial_paths(probabilities)[0] if probabilities else None
        self.done = {x0: BlockProgress(x0, x1, spec.row_offset) for x0, x1 in blocks}  # by the block's first column
        self._pending: list[FinishedRows] = []
        silence_libtiff()  # GDAL's TIFF driver is running by now (the scene is open)
        if not (resume and self._load_progress()):
            self._create(tags)

    @property
    def blocks(self) -> list[tuple[int, int]]:
        return [(b.x0, b.x1) for b in self.done.values()]

    def rows_done(self, x0: int) -> int:
        """The first scene row of superblock ``x0`` not yet safely written (where a resumed run starts)."""
        return self.done[x0].next_row

    @property
    def finished(self) -> bool:
        end = self.spec.row_offset + self.spec.height
        return all(b.next_row >= end for b in self.done.values())

    # -- creation and resume ----------------------------------------------------------------------------------
    def _profile(self, count: int, nodata) -> dict:
        s = self.spec
        return dict(GTIFF_OPTIONS, width=s.width, height=s.height, count=count, dtype="uint8", crs=s.crs,
                    transform=s.transform, nodata=nodata)  # fmt: skip

    def _create(self, tags: dict[str, str]) -> None:
        for p in (self.partial, self.sidecar, self.prob_partial):
            if p is not None:
                p.unlink(missing_ok=True)  # a stale partial of an earlier run (this run holds the output's lock)
        try:
            with public_errors():
                with rasterio.open(self.partial, "w", **self._profile(1, NODATA)) as dst:
                    dst.update_tags(**tags)
                if self.prob_partial:
                    profile = self._profile(len(self.class_names), PROBABILITY_NODATA)
                    with rasterio.open(self.prob_partial, "w", **profile, photometric="MINISBLACK") as dst:  # not RGB
                        dst.update_tags(**tags)
                for p in (self.partial, self.prob_partial):
                    if p is not None:
                        self._verify_header(p)
        except (RasterioIOError, OSError) as exc:
            raise WriteError(f"creating {self.output} failed: {diagnose(self.partial, str(exc))}") from None
        self._save_progress()

    def _verify_header(self, path: Path) -> None:
        with rasterio.open(path) as ds:
            if (ds.width, ds.height) != (self.spec.width, self.spec.height):
                raise WriteError(f"creating {self.output} failed: {diagnose(path, 'the new file is incomplete')}")

    def _load_progress(self) -> bool:
        """Continue the partial its sidecar describes (same settings, its rows read back), else False: start over."""
        state = read_state(self.sidecar)
        if state is None or not self.partial.exists() or (self.prob_partial and not self.prob_partial.exists()):
            return False
        check_compatible(self.output, state.settings, self.settings)
        done = state.blocks
        try:
            with public_errors():
                for p in (self.partial, self.prob_partial):
                    if p is not None:
                        self._verify_header(p)
                        self._verify_rows(p, done)
        except (RasterioIOError, WriteError):
            return False  # damaged (a torn write, a bad disk): start over rather than publish a broken file
        self.done = done
        return True

    def _verify_rows(self, path: Path, done: dict[int, BlockProgress]) -> None:
        """The rows the sidecar records as written read back, chunk by chunk (bounded memory)."""
        with rasterio.open(path) as ds:
            for b in done.values():
                rows = b.next_row - self.spec.row_offset
                for r in range(0, rows, self.chunk_rows):
                    ds.read(window=Window(b.x0, r, b.x1 - b.x0, min(self.chunk_rows, rows - r)))

    def _save_progress(self) -> None:
        try:
            write_state(self.sidecar, self.settings, self.done.values())
        except OSError as exc:
            reason = diagnose(self.sidecar, exc.strerror or str(exc))
            raise WriteError(f"writing {self.output} failed: {reason}") from None

    # -- writing ----------------------------------------------------------------------------------------------
    def write(self, rows: FinishedRows) -> None:
        if self._pending and self._pending[0].col0 != rows.col0:
            self._flush()
        self._pending.append(rows)
        done = self.done[rows.col0].next_row
        pending = sum(r.labels.shape[0] for r in self._pending)
        if done + pending >= self.spec.row_offset + self.spec.height:
            self._flush()
        elif pending >= self.chunk_rows:
            self._flush(whole_tiles=True)

    def _flush(self, whole_tiles: bool = False) -> None:
        """Write the pending rows as one verified chunk. ``whole_tiles``: only down to the last complete tile row,
        the rest kept for the next chunk. Every tile is then written once and whole, so a chunk that fails (a full
        disk) damages only its own tiles, never finished rows, and the resumed run rewrites them without reading."""
        if not self._pending:
            return
        first = self._pending[0]
        block = self.done[first.col0]
        if first.row0 != block.next_row:
            raise RuntimeError(f"rows arrive out of order ({first.row0} after {block.next_row})")
        labels = np.concatenate([r.labels for r in self._pending], axis=0)
        probs = np.concatenate([r.probabilities for r in self._pending], axis=1) if self.prob_partial else None
        top, n = first.row0 - self.spec.row_offset, labels.shape[0]
        if whole_tiles:
            n = (top + n) // BLOCK * BLOCK - top
            if n <= 0:
                return
        window = Window(block.x0, top, block.x1 - block.x0, n)
        self._write_verified(self.partial, labels[None, :n], window)
        if probs is not None:
            self._write_verified(self.prob_partial, probs[:, :n], window)
        self._pending = []  # the rows kept for the next chunk are copied, so the written chunk is freed (memory.py)
        kept = None if probs is None else probs[:, n:].copy()
        rest = FinishedRows(first.row0 + n, first.col0, labels[n:].copy(), kept)
        self._pending = [rest] if len(rest.labels) else []
        block.next_row = first.row0 + n
        self._save_progress()

    def _write_verified(self, path: Path, data: np.ndarray, window: Window) -> None:
        """Write, close (which flushes), then read back: the chunk counts as written only if it reads back equal (a
        tile row at a time, so the check holds one tile row beside the chunk, not a second chunk: memory.py)."""
        try:
            with public_errors():
                with rasterio.open(path, "r+") as dst:
                    dst.write(data, window=window)
                with rasterio.open(path) as src:
                    rows = tile_rows(window)
                    ok = all(np.array_equal(src.read(window=part), data[:, r : r + BLOCK]) for r, part in rows)
                cause = "the written block did not read back"
        except RasterioIOError as exc:
            ok, cause = False, str(exc.__cause__ or exc)
        if not ok:
            raise WriteError(
                f"writing {self.output} failed: {diagnose(path, cause)}; the finished rows are kept: "
                "free space and rerun with --resume"
            )

    # -- finishing --------------------------------------------------------------------------------------------
    def _apply_style(self) -> None:
        """What a GIS shows, set when the rows are all written (so a resumed run carries this run's colours): the
        colour table, band descriptions and class names (dataset and band metadata) of the labels; class names,
        scale 1/255 and offset 0 (stored p x 255 reads as p) of the probabilities."""
        names = self.class_names
        try:
            with public_errors():
                with rasterio.open(self.partial, "r+") as dst:
                    dst.write_colormap(1, {**{i: (*c, 255) for i, c in enumerate(self.colors)}, NODATA: (0, 0, 0, 0)})
                    dst.set_band_description(1, "class")
                    dst.update_tags(CLASS_NAMES=json.dumps(names))
                    dst.update_tags(1, **{f"class_{i}": n for i, n in enumerate(names)})
                if self.prob_partial:
                    with rasterio.open(self.prob_partial, "r+") as dst:
                        dst.scales, dst.offsets = (1 / 255,) * len(names), (0.0,) * len(names)
                        dst.update_tags(CLASS_NAMES=json.dumps(names))
                        for i, name in enumerate(names, start=1):
                            dst.set_band_description(i, name)
                            dst.update_tags(i, CLASS=name, CLASS_ID=str(i - 1))
        except (RasterioIOError, OSError) as exc:
            raise WriteError(f"writing {self.output} failed: {diagnose(self.partial, str(exc))}") from None
        self._check_style()

    def _check_style(self) -> None:
        """Read the style back: GDAL rewrites the TIFF directory at the end of the file for it and, with the disk
        full or the file-size limit reached, can do so without any error and leave a file that no longer opens
        (measured: a limit one byte below the finished size gave exit 0 and "TIFFReadDirectory: Failed to read
        directory"). The pixels were verified as they were written; this checks what the style step rewrote."""
        names = json.dumps(self.class_names)
        for partial in [self.partial, *([self.prob_partial] if self.prob_partial else [])]:
            try:
                with public_errors(), rasterio.open(partial) as ds:
                    ok = ds.tags().get("CLASS_NAMES") == names
                    if ok and partial == self.partial:
                        ok = ds.colormap(1).get(0, (None,))[:3] == tuple(self.colors[0])[:3]
            except (RasterioIOError, OSError, ValueError) as exc:
                cause = str(exc)
            else:
                if ok:
                    continue
                cause = "its class names and colours did not stay written"
            raise WriteError(
                f"writing {self.output} failed: {diagnose(partial, cause)}; free space and rerun with --resume"
            )

    def documents(self) -> tuple[dict[Path, str], dict[Path, str]]:
        """The style files beside the outputs: the labels' PAM sidecar and QML; the probabilities' QML."""
        aux, qml = label_sidecars(self.output)
        labels = {aux: label_aux_xml(self.class_names, self.colors), qml: label_qml(self.class_names, self.colors)}
        if self.probabilities is None:
            return labels, {}
        return labels, {probability_sidecars(self.probabilities)[0]: probability_qml(1, self.class_names[0])}

    def stale(self) -> list[Path]:
        """Sidecars of the outputs that aeroseg does not write and removes before placing a new raster."""
        return [probability_sidecars(self.probabilities)[1]] if self.probabilities is not None else []

    def commit(self, overwrite: bool) -> list[Path]:
        """Finish: flush, style, convert to COG if asked, rename into place, each raster with its style files."""
        self._flush()
        if not self.finished:
            raise RuntimeError(f"{self.output}: not every row was written")
        self._apply_style()
        label_docs, prob_docs = self.documents()
        with staged(label_docs | prob_docs) as staging:
            for target in [*staging, *self.stale()]:
                if target.exists() and not overwrite:
                    raise CLIError(f"{target} appeared during the run; not replaced (use --overwrite)")
            written = [self._place(self.partial, self.output, overwrite)]
            for target in label_docs:
                os.replace(staging.pop(target), target)
            if self.prob_partial:
                for target in self.stale():  # before the raster: never a new raster with the old statistics
                    target.unlink(missing_ok=True)
                written.append(self._place(self.prob_partial, self.probabilities, overwrite))
                for target in prob_docs:
                    os.replace(staging.pop(target), target)
        self.sidecar.unlink(missing_ok=True)
        return written

    def _place(self, partial: Path, target: Path, overwrite: bool) -> Path:
        if target.exists() and not overwrite:
            raise CLIError(f"{target} appeared during the run; not replaced (use --overwrite)")
        if self.cog:
            return place_as_cog(partial, target)
        os.replace(partial, target)
        return target

    def discard(self) -> None:
        """Remove the partial files (a failed run that cannot be resumed)."""
        for p in (self.partial, self.sidecar, self.prob_partial):
            if p is not None:
                p.unlink(missing_ok=True)


def tile_rows(window: Window) -> Iterator[tuple[int, Window]]:
    """``window`` (its top on a tile boundary) cut into rows of whole tiles: (first row within it, sub-window)."""
    for r in range(0, window.height, BLOCK):
        yield r, Window(window.col_off, window.row_off + r, window.width, min(BLOCK, window.height - r))
