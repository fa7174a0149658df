"""How outputs look in a GIS: one home for the class colours and the style documents written beside the files.

``palette`` gives every class a colour (conventional ones for well-known names, a stable distinct one for the rest,
the user's own from ``--colors`` or ``--classes "water:#1f78b4"``); ``documents`` turns names and colours into what
QGIS and GDAL read (QML styles, the PAM ``.aux.xml`` with a raster attribute table); ``gpkg`` stores a vector style
as a GeoPackage's default ``layer_styles`` row. The raster writer, the vector writer and ``aeroseg preview`` all take
their colours from here, so a class has one colour everywhere.
"""
