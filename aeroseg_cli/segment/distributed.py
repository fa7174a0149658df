"""``segment`` across the ranks of torch.distributed: several scenes are shared out whole (each exactly once); one
scene is cut into row bands, each rank segments its band into its own hidden files, and rank 0 copies the bands
into the final GeoTIFF (GeoTIFF writers are not multi-process safe)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.windows import Window

from aeroseg_cli.segment.blender import FinishedRows
from aeroseg_cli.segment.engine import SegmentResult, check_unchanged
from aeroseg_cli.segment.reader import SceneInfo
from aeroseg_cli.segment.tiler import BLOCK
from aeroseg_cli.segment.writer import LabelWriter, label_sidecars, probability_sidecars


@dataclass(frozen=True)
class RowBand:
    """Rank ``rank``'s share of one scene: scene rows [r0, r1), written to the hidden ``labels`` file (and
    ``probabilities``, when kept) beside the final outputs."""

    rank: int
    r0: int
    r1: int
    labels: Path
    probabilities: Path | None = None

    @property
    def rows(self) -> tuple[int, int]:
        return self.r0, self.r1

    @property
    def empty(self) -> bool:
        """More ranks than 512-row tiles: this rank has no rows."""
        return self.r1 <= self.r0

    def files(self) -> list[Path]:
        """The band's files and their style sidecars (removed once rank 0 has assembled the scene)."""
        probs = (self.probabilities, *probability_sidecars(self.probabilities)) if self.probabilities else ()
        return [self.labels, *label_sidecars(self.labels), *probs]


def shares(scenes: int, rank: int, world: int) -> tuple[list[int], bool]:
    """This rank's scenes (indices), and whether one scene is split into row bands over the ranks."""
    indices = list(range(scenes))
    banded = world > 1 and scenes == 1
    if world > 1 and not banded:
        indices = indices[rank::world]  # explicit: every scene exactly once, no padding
    return indices, banded


def row_ranges(height: int, world: int) -> list[tuple[int, int]]:
    """Contiguous row ranges, one per rank, aligned to the 512-row GeoTIFF tiles (the last may be empty)."""
    size = max(BLOCK, math.ceil(height / world / BLOCK) * BLOCK)
    return [(min(r * size, height), min((r + 1) * size, height)) for r in range(world)]


def band_path(output: Path, rank: int) -> Path:
    return output.parent / f".{output.name}.rank{rank}.tif"


def row_bands(output: Path, probabilities: Path | None, height: int, world: int) -> list[RowBand]:
    """Every rank's band of a scene of ``height`` rows whose labels (and probabilities) go to these outputs."""
    return [
        RowBand(rank, r0, r1, band_path(output, rank), band_path(probabilities, rank) if probabilities else None)
        for rank, (r0, r1) in enumerate(row_ranges(height, world))
    ]


def assemble(bands: list[RowBand], writer: LabelWriter, chunk: int = 2 * BLOCK) -> None:
    """Copy the ranks' band files, top to bottom, into ``writer`` (one full-width block; labels and, when kept,
    probabilities)."""
    for band in bands:
        with rasterio.open(band.labels) as src:
            probs_src = rasterio.open(band.probabilities) if band.probabilities else None
            try:
                row0 = round((src.transform.f - writer.spec.transform.f) / src.transform.e)
                for r in range(0, src.height, chunk):
                    window = Window(0, r, src.width, min(chunk, src.height - r))
                    probs = probs_src.read(window=window) if probs_src else None
                    writer.write(FinishedRows(row0 + r, 0, src.read(1, window=window), probs))
            finally:
                if probs_src:
                    probs_src.close()


def assemble_scene(info: SceneInfo, bands: list[RowBand], writer: LabelWriter, overwrite: bool) -> list[Path]:
    """Rank 0: the bands copied into the final outputs, checked against the scene, placed; the band files removed."""
    written = [b for b in bands if not b.empty]
    assemble(written, writer)
    check_unchanged(info, writer)
    outputs = writer.commit(overwrite)
    for band in written:
        for path in band.files():
            path.unlink(missing_ok=True)
    return outputs


def merge_results(parts: list[SegmentResult], outputs: list[Path], bands: list[RowBand]) -> SegmentResult:
    """One scene's result from its bands' results: counts summed, the slowest band's time, the largest memory."""
    first = parts[0]
    return dataclasses.replace(
        first,
        outputs=[str(p) for p in outputs],
        windows={k: sum(p.windows[k] for p in parts) for k in first.windows},
        seconds=max(p.seconds for p in parts),
        model_seconds=sum(p.model_seconds for p in parts),
        blender_mb=max(p.blender_mb for p in parts),
        peak_rss_mb=max(p.peak_rss_mb for p in parts),
        resumed_from_row=min(p.resumed_from_row for p in parts),
        notes=[f"{len(bands)} processes, row bands {[b.rows for b in bands]}"],
    )
