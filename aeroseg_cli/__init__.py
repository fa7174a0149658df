"""aeroseg command line and geospatial pipeline (reader -> tiler -> model -> blender -> writer)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aeroseg")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.1.0"
