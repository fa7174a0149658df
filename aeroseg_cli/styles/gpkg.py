"""A GeoPackage's default layer style: the ``layer_styles`` table QGIS reads when it opens a layer of the file.

The table and its columns are those QGIS creates itself (``QgsOgrProviderMetadata::saveStyle``, shared with its
SpatiaLite and PostgreSQL providers); QGIS picks the row whose ``f_table_schema`` is empty, whose ``f_table_name``
and ``f_geometry_column`` name the layer, preferring ``useAsDefault``. It is written through OGR like every other
table, so it is registered in ``gpkg_contents`` as an attribute table and GDAL lists it as a layer.
"""

from __future__ import annotations

from pathlib import Path

STYLE_TABLE = "layer_styles"


def add_default_style(path: Path, layer: str, qml: str, description: str) -> None:
    """Add the table with the default style row for ``layer`` to a GeoPackage being written (which has none yet)."""
    import pandas as pd
    import pyogrio

    geometry_column = pyogrio.read_info(path, layer=layer).get("geometry_name") or "geom"
    row = {
        "f_table_catalog": "",
        "f_table_schema": "",
        "f_table_name": layer,
        "f_geometry_column": geometry_column,
        "styleName": layer,
        "styleQML": qml,
        "styleSLD": "",
        "useAsDefault": True,
        "description": description,
        "owner": "",
        "ui": None,
        "update_time": pd.Timestamp.now(tz="UTC").floor("ms"),
    }
    frame = pd.DataFrame({k: [v] for k, v in row.items()})
    pyogrio.write_dataframe(frame, path, layer=STYLE_TABLE, driver="GPKG", layer_options={"FID": "id"})
