"""The vector output: a writer that streams features into it and publishes the file (with a shapefile's siblings
and its style) only when it is complete.

Every file opens styled in QGIS: a GeoPackage carries its default style in its ``layer_styles`` table, other formats
get ``NAME.qml`` beside them; both categorize the polygons by class id with the raster's names and colours.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pyogrio

from aeroseg_cli.files.errors import CLIError, diagnose
from aeroseg_cli.files.sidecars import qml_path
from aeroseg_cli.polygons.formats import FORMATS
from aeroseg_cli.styles.classes import ClassTable
from aeroseg_cli.styles.documents import polygon_qml
from aeroseg_cli.styles.gpkg import STYLE_TABLE, add_default_style

NO_CRS_WARNING = "'crs' was not provided"  # pyogrio's, for a layer without CRS: expected with --allow-ungeoreferenced
GPKG_VERSION = "1.2"  # what GDAL 3.6 (Debian 12, QGIS 3.22) writes and reads without a warning; newer GDALs write 1.4


@dataclass
class VectorStyle:
    """The classes to style: those named (only ``keep`` when given) and any other id the features hold."""

    classes: ClassTable
    keep: set[int] | None
    description: str

    def qml(self, seen: set[int]) -> str:
        named = {i for i in self.classes.names if self.keep is None or i in self.keep}
        return polygon_qml(self.classes.style_rows(named | seen))


class VectorWriter:
    """Streams frames into a temporary folder beside the target; ``commit`` moves the file (and a shapefile's
    siblings, and the style) into place, ``discard`` removes everything: never a half-written file at the target.
    ``rfc7946``: GeoJSON written as RFC 7946 has it (the frames are in WGS 84 already)."""

    def __init__(
        self, target: Path, fmt: str, layer: str, crs, rfc7946: bool = False, style: VectorStyle | None = None
    ) -> None:
        self.target, self.fmt, self.layer, self.crs = target, fmt, layer, crs
        self.rfc7946, self.style = rfc7946, style
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        self.tmp = self.tmpdir / target.name
        self.count = 0
        self.seen: set[int] = set()
        self._parquet_frames: list[gpd.GeoDataFrame] = []

    @property
    def style_location(self) -> str | None:
        """Where QGIS finds the style: the GeoPackage's table, or the .qml beside the file."""
        if self.style is None:
            return None
        return f"{self.target}:{STYLE_TABLE}" if self.fmt == "gpkg" else str(qml_path(self.target))

    def write(self, gdf: gpd.GeoDataFrame) -> None:
        """Append ``gdf`` (an empty frame still creates the layer with its schema)."""
        try:
            self._write(gdf)
        except Exception as exc:  # pyogrio's DataSourceError/FeatureError, OSError: a full disk, a file-size limit
            raise self._failed(exc, gdf) from exc
        self.count += len(gdf)
        if "class_id" in gdf:
            self.seen.update(int(v) for v in gdf["class_id"].unique())

    def _write(self, gdf: gpd.GeoDataFrame) -> None:
        if self.fmt == "parquet":  # no append in (Geo)Parquet: collected, written once
            self._parquet_frames.append(gdf)
        else:
            driver = FORMATS[self.fmt][0]
            extra = {"geometry_type": "Polygon"} if len(gdf) == 0 else {}
            if self.fmt == "gpkg" and self.count == 0:
                extra["dataset_options"] = {"VERSION": GPKG_VERSION}
            if self.rfc7946:
                extra["layer_options"] = {"RFC7946": "YES"}
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
        self._write_style()
        for src in sorted(self.tmpdir.iterdir()):
            dest = self.target.parent / src.name
            if dest.exists() and not overwrite:
                raise CLIError(f"{dest} appeared during the run; not replaced (use --overwrite)")
            os.replace(src, dest)
        self.discard()

    def _write_style(self) -> None:
        if self.style is None:
            return
        qml = self.style.qml(self.seen)
        try:
            if self.fmt == "gpkg":
                add_default_style(self.tmp, self.layer, qml, self.style.description)
            else:
                qml_path(self.tmp).write_text(qml, encoding="utf-8")
        except Exception as exc:
            raise self._failed(exc) from exc

    def discard(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)
