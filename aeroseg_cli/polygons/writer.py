"""The vector output: which format a path gets, and a writer that streams features into it and publishes the file
(with a shapefile's siblings) only when it is complete."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import geopandas as gpd
import pyogrio

from aeroseg_cli.files.errors import CLIError, diagnose
from aeroseg_cli.polygons.formats import FORMATS

NO_CRS_WARNING = "'crs' was not provided"  # pyogrio's, for a layer without CRS: expected with --allow-ungeoreferenced


class VectorWriter:
    """Streams frames into a temporary folder beside the target; ``commit`` moves the file (and a shapefile's
    siblings) into place, ``discard`` removes everything: never a half-written file at the target."""

    def __init__(self, target: Path, fmt: str, layer: str, crs) -> None:
        self.target, self.fmt, self.layer, self.crs = target, fmt, layer, crs
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        self.tmp = self.tmpdir / target.name
        self.count = 0
        self._parquet_frames: list[gpd.GeoDataFrame] = []

    def write(self, gdf: gpd.GeoDataFrame) -> None:
        """Append ``gdf`` (an empty frame still creates the layer with its schema)."""
        try:
            self._write(gdf)
        except Exception as exc:  # pyogrio's DataSourceError/FeatureError, OSError: a full disk, a file-size limit
            raise self._failed(exc, gdf) from exc
        self.count += len(gdf)

    def _write(self, gdf: gpd.GeoDataFrame) -> None:
        if self.fmt == "parquet":  # no append in (Geo)Parquet: collected, written once
            self._parquet_frames.append(gdf)
        else:
            driver = FORMATS[self.fmt][0]
            extra = {"geometry_type": "Polygon"} if len(gdf) == 0 else {}
            with warnings.catch_warnings():
                if self.crs is None:  # pixel coordinates were asked for; the summary says so
                    warnings.filterwarnings("ignore", message=NO_CRS_WARNING, category=UserWarning)
                pyogrio.write_dataframe(gdf, self.tmp, layer=self.layer, driver=driver, append=self.count > 0, **extra)

    def _failed(self, exc: Exception, gdf: gpd.GeoDataFrame | None = None) -> CLIError:
        """One line naming the target and the OS reason. GDAL's messages lose errno ("Failed to commit
        transaction") and SQLite deletes the journal that hit a limit, so the least the file needed (what is on
        disk plus the batch's geometries) tells a file-size limit apart."""
        import shapely

        files = [p for p in self.tmpdir.iterdir() if p.is_file()] if self.tmpdir.is_dir() else []
        needs = sum(p.stat().st_size for p in files)
        if gdf is not None and self.fmt != "parquet":  # (Parquet compresses; pyarrow's own message has errno)
            needs += int(sum(len(b) for b in shapely.to_wkb(gdf.geometry.values)))
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CLIError(f"writing {self.target} failed: {diagnose(self.tmp, cause, needs)}")

    def commit(self, overwrite: bool) -> None:
        """Finish the file and move it into place; refuses to replace a file that appeared meanwhile."""
        if self.fmt == "parquet":
            frames = [f for f in self._parquet_frames if len(f)] or self._parquet_frames[:1]
            try:
                gpd.GeoDataFrame(gpd.pd.concat(frames, ignore_index=True), crs=self.crs).to_parquet(self.tmp)
            except Exception as exc:
                raise self._failed(exc) from exc
        for src in sorted(self.tmpdir.iterdir()):
            dest = self.target.parent / src.name
            if dest.exists() and not overwrite:
                raise CLIError(f"{dest} appeared during the run; not replaced (use --overwrite)")
            os.replace(src, dest)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)
