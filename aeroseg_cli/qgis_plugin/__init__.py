"""The QGIS plugin ``aeroseg_qgis`` (a Processing provider that runs this CLI) and its installer.

``aeroseg_qgis/`` is copied as it is into a QGIS profile; it imports only QGIS and the standard library, never
aeroseg or torch: every algorithm runs the ``aeroseg`` that installed it (recorded in ``aeroseg.json``) as a separate
process, so QGIS's Python needs nothing installed.
"""
