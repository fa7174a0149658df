"""How far apart two colours look: CIE L*a*b* (sRGB, D65) and the CIE76 colour difference, which the palette uses so
that no two classes of one list look alike and no class fades into a white or a black map background.

A difference of about 2.3 is just noticeable; the palette asks for ``MIN_APART`` between classes (Kelly's
maximum-contrast colours are at least 15 apart) and ``MIN_BACKGROUND`` from white and from black (a light grey
#d9d9d9 is 13 from white; the (235, 235, 235) an old palette gave is 7, invisible on white).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

MIN_APART = 12.0
MIN_BACKGROUND = 12.0
# sRGB (D65) linear RGB -> XYZ, and the D65 white point (IEC 61966-2-1)
_RGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS = (6 / 29) ** 3


def lab(colors: Iterable[Sequence[int]]) -> np.ndarray:
    """(n, 3) CIE L*a*b* of sRGB colours (0..255)."""
    c = np.asarray(list(colors), dtype=np.float64).reshape(-1, 3) / 255
    linear = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _EPS, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


BACKGROUNDS = lab([(255, 255, 255), (0, 0, 0)])


class Spacing:
    """The colours a list already uses; which candidates stand apart from them and from the backgrounds."""

    def __init__(self, used: Iterable[Sequence[int]] = ()) -> None:
        self.used: set[tuple[int, int, int]] = set()
        self._lab = np.zeros((0, 3))
        for rgb in used:
            self.add(rgb)

    def add(self, rgb: Sequence[int]) -> None:
        self.used.add((int(rgb[0]), int(rgb[1]), int(rgb[2])))
        self._lab = np.concatenate([self._lab, lab([rgb])])

    def margins(self, candidates: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Per candidate: the difference to the nearest colour in use (inf when none), and to the nearer of white
        and black."""
        c = lab(candidates)
        background = np.linalg.norm(c[:, None] - BACKGROUNDS[None], axis=-1).min(axis=1)
        if not len(self._lab):
            return np.full(len(c), np.inf), background
        return np.linalg.norm(c[:, None] - self._lab[None], axis=-1).min(axis=1), background

    def first_fit(self, candidates: Sequence[Sequence[int]]) -> int | None:
        """The index of the first candidate at least ``MIN_APART`` from every colour in use and ``MIN_BACKGROUND``
        from the backgrounds, or None."""
        if not candidates:
            return None
        apart, background = self.margins(candidates)
        fits = np.flatnonzero((apart >= MIN_APART) & (background >= MIN_BACKGROUND))
        return int(fits[0]) if len(fits) else None

    def farthest(self, candidates: Sequence[Sequence[int]]) -> int:
        """The index of the candidate farthest from every colour in use among those that are not in use and stand
        out from the backgrounds (when a long list leaves no candidate ``MIN_APART`` from all the others)."""
        apart, background = self.margins(candidates)
        new = np.array([tuple(c) not in self.used for c in candidates])
        score = np.where(new & (background >= MIN_BACKGROUND), apart, -np.inf)
        return int(np.argmax(score))
