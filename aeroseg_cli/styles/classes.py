"""The classes a label raster holds, as every reader of one needs them (vectorize, preview): names from aeroseg's
tags, colours from the raster's own colour table, and the palette's colours where the raster has none."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from aeroseg_cli.styles.palette import RGB, UNKNOWN, class_colors

UNSET = (0, 0, 0, 255)  # what GDAL fills a palette's unused entries with


@dataclass
class ClassTable:
    """Class id -> name and id -> colour; ids without either get ``class_<id>`` and the palette's colour."""

    names: dict[int, str]
    colors: dict[int, RGB] = field(default_factory=dict)

    def name_of(self, value: int) -> str:
        return self.names.get(value, f"class_{value}")

    def color_of(self, value: int) -> RGB:
        if value not in self.colors:
            self.colors[value] = class_colors([self.name_of(value)], taken=self.colors.values())[0]
        return self.colors[value]

    def style_rows(self, ids: Iterable[int]) -> list[tuple[int, str, RGB]]:
        """(id, name, colour) for ``ids`` in id order, the unknown value left out."""
        return [(i, self.name_of(i), self.color_of(i)) for i in sorted(set(ids)) if i != UNKNOWN]


def class_names(ds) -> dict[int, str]:
    """Names from the ``CLASS_NAMES`` tag (a JSON list), completed by per-band ``class_<id>`` tags."""
    names: dict[int, str] = {}
    with contextlib.suppress(ValueError, TypeError):
        listed = json.loads(ds.tags().get("CLASS_NAMES", "[]"))
        names = {i: str(n) for i, n in enumerate(listed)}
    for key, value in ds.tags(1).items():
        if key.startswith("class_") and key[6:].isdigit():
            names.setdefault(int(key[6:]), value)
    return names


def raster_classes(ds) -> ClassTable:
    """The label raster's classes and colours. aeroseg's own colour table is taken as it is; in another tool's,
    black entries count as unused (GDAL fills a palette with them), and those classes get the palette's colours."""
    names = class_names(ds)
    table: dict[int, tuple[int, ...]] = {}
    with contextlib.suppress(ValueError):
        table = ds.colormap(1)
    ours = "AEROSEG_VERSION" in ds.tags()
    colors = {i: (c[0], c[1], c[2]) for i, c in table.items() if ours or tuple(c) != UNSET}
    missing = sorted(i for i in names if i not in colors)
    colors |= dict(zip(missing, class_colors([names[i] for i in missing], taken=colors.values()), strict=True))
    return ClassTable({i: n for i, n in names.items() if i != UNKNOWN}, colors)
