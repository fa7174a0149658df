"""QGIS plugin entry point: QGIS (and ``qgis_process``) call ``classFactory`` and then ``initProcessing``."""


def classFactory(iface):  # the name QGIS looks for
    from .provider import AerosegPlugin

    return AerosegPlugin(iface)
