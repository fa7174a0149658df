"""Class colours: the user's, else conventional ones for well-known names, else a stable distinct one per name.

Conventional colours follow the habits of land-cover maps (water blue, vegetation green, buildings red, roads grey,
bare ground tan); other names get a colour of a fixed maximum-contrast palette picked by a hash of the name. No two
classes of one list look alike and none fades into a white or black background (``distance``: CIE L*a*b*
differences): where a colour would come too close to one already given, the class gets the nearest shade of its
family's colour that stands apart, else a palette colour that does. Who keeps a family's colour itself is decided by
the names, never by their positions: the family's own name ("road") first, then its other names ("street"), then
names found by a word ("dirt road"), so "water" is the same blue in every run whatever else is asked for, and the
result depends on the set of names only.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from aeroseg_cli.files.errors import UsageError
from aeroseg_cli.styles.distance import Spacing

RGB = tuple[int, int, int]
UNKNOWN = 255  # the label value of nodata / unknown pixels (segment.blender.NODATA)
UNKNOWN_LABEL = "unknown / nodata"

# fmt: off
_FAMILIES: dict[str, tuple[str, ...]] = {
    # water
    "#1f78b4": ("water", "water body", "waterbody", "open water"),
    "#08519c": ("sea", "ocean", "sea water", "seawater", "bay"),
    "#4292c6": ("river", "stream", "canal", "channel", "waterway", "creek"),
    "#2171b5": ("lake", "pond", "reservoir", "lagoon"),
    "#00bcd4": ("swimming pool", "pool"),
    "#66c2a5": ("wetland", "marsh", "swamp", "mangrove"),
    "#c6dbef": ("snow", "ice", "glacier"),
    # vegetation
    "#33a02c": ("vegetation", "green", "greenery", "plant", "greenspace", "green space", "park", "garden"),
    "#1b7837": ("tree", "forest", "woodland", "wood", "canopy", "tree canopy", "orchard", "plantation"),
    "#a6d96a": ("grass", "grassland", "lawn", "meadow", "low vegetation", "pasture", "turf"),
    "#d9ef8b": ("field", "farmland", "cropland", "crop", "agriculture", "agricultural", "agricultural land",
                "arable land", "paddy", "rice"),
    "#78c679": ("shrub", "bush", "shrubland", "scrub", "hedge"),
    "#c2e699": ("rangeland", "herbaceous"),
    # built
    "#e31a1c": ("building", "house", "roof", "rooftop", "residential building", "structure"),
    "#fb6a4a": ("built-up", "built up", "urban", "settlement", "residential", "developed", "city"),
    "#7f7f7f": ("road", "street", "highway", "motorway", "lane", "roadway", "roundabout"),
    "#b0b0b0": ("pavement", "sidewalk", "impervious", "impervious surface", "paved", "concrete", "asphalt",
                "developed space", "plaza"),
    "#5a5a5a": ("parking", "parking lot", "car park", "parking area"),
    "#3f3f3f": ("railway", "rail", "railroad", "train track", "track"),
    "#969696": ("runway", "airport", "taxiway", "airfield"),
    "#a6611a": ("bridge", "dam"),
    # bare ground
    "#d2b48c": ("bare soil", "soil", "bare land", "bareland", "bare ground", "barren", "barren land", "land",
                "dirt", "earth", "bare", "unpaved"),
    "#f3e1a6": ("sand", "beach", "desert", "dune"),
    "#9e8b7e": ("rock", "cliff", "gravel", "stone", "quarry", "mine"),
    # objects
    "#ff7f00": ("ship", "boat", "vessel"),
    "#6a3d9a": ("plane", "airplane", "aeroplane", "aircraft"),
    "#ffd92f": ("vehicle", "car", "small vehicle", "automobile"),
    "#e6ab02": ("large vehicle", "truck", "bus", "lorry"),
    "#cab2d6": ("helicopter",),
    "#f781bf": ("storage tank", "tank", "oil tank"),
    "#b15928": ("harbor", "harbour", "port", "dock", "pier", "wharf"),
    "#fdbf6f": ("tennis court", "basketball court", "court"),
    "#b2df8a": ("soccer ball field", "soccer field", "football field", "ground track field", "sports field",
                "baseball diamond", "playground", "stadium"),
    # other
    "#d0d0d0": ("cloud",),
    "#252525": ("shadow",),
    "#d9d9d9": ("background", "other", "others", "clutter", "unclassified", "misc"),
}
# fmt: on
CONVENTIONAL: dict[str, str] = {name: color for color, names in _FAMILIES.items() for name in names}
# name -> (family, position in it): who gets a family's colour itself when several of its names are in one list
FAMILY_OF: dict[str, tuple[int, int]] = {
    name: (family, member) for family, names in enumerate(_FAMILIES.values()) for member, name in enumerate(names)
}

# Kelly's colours of maximum contrast (without white and black): the palette of names with no conventional colour
DISTINCT = (
    "#f3c300", "#875692", "#f38400", "#a1caf1", "#be0032", "#c2b280", "#848482", "#008856", "#e68fac", "#0067a5",
    "#f99379", "#604e97", "#f6a600", "#b3446c", "#dcd300", "#882d17", "#8db600", "#654522", "#e25822", "#2b3d26",
)  # fmt: skip


RGB_TRIPLE = re.compile(r"\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}")


def hex_color(rgb: Sequence[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


def parse_color(text: str) -> RGB:
    """``#rgb``, ``#rrggbb``, ``r,g,b``, ``rgb(r, g, b)``, ``hsl(...)`` or a CSS colour name ("red", "steelblue");
    alpha is ignored (class colours are opaque). Raises ValueError."""
    from PIL import ImageColor

    text = text.strip()
    if RGB_TRIPLE.fullmatch(text):
        text = f"rgb({text})"
    value = ImageColor.getrgb(text)
    return value[0], value[1], value[2]


def _normal(name: str) -> str:
    return re.sub(r"[\s_/]+", " ", name.strip().lower())


def _singular(word: str) -> list[str]:
    """The forms to look a word up by: itself, then without a plural ending."""
    forms = [word]
    if word.endswith("ies"):
        forms.append(word[:-3] + "y")
    if word.endswith("es"):
        forms.append(word[:-2])
    if word.endswith("s"):
        forms.append(word[:-1])
    return forms


def _conventional(name: str) -> tuple[tuple[int, int, int], RGB] | None:
    """The conventional colour of a class name or of any of its ``|`` synonyms, and its claim to it: the whole
    phrase first ("low vegetation"), then its words from the last ("small vehicle" -> vehicle, "tree canopy" ->
    canopy), plurals too. The claim orders who gets a family's colour itself: the family's own name (0: "road"),
    another name of the family (1: "street"), a name found by one of its words (2: "dirt road"); then table order."""
    for synonym in name.split("|"):
        phrase = _normal(synonym)
        words = phrase.split(" ")
        for by_word, candidate in [(False, phrase), *((True, w) for w in reversed(words))]:
            for form in _singular(candidate):
                if form in CONVENTIONAL:
                    family, member = FAMILY_OF[form]
                    claim = 2 if by_word else int(member > 0)
                    return (claim, family, member), parse_color(CONVENTIONAL[form])
    return None


def conventional_color(name: str) -> RGB | None:
    """The conventional colour of a class name (see ``_conventional``), or None."""
    found = _conventional(name)
    return found[1] if found else None


def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(_normal(name).encode()).digest()[:8], "big")


def _rgb(r: float, g: float, b: float) -> RGB:
    return round(r * 255), round(g * 255), round(b * 255)


def _shades(rgb: RGB) -> list[RGB]:
    """Darker and lighter shades of ``rgb``, same hue and saturation, nearest first; none past the ends of the
    lightness range (never clamped there, so two steps cannot collapse into one colour)."""
    h, lightness, s = colorsys.rgb_to_hls(*(c / 255 for c in rgb))
    steps = [lightness + sign * 0.05 * k for k in range(1, 19) for sign in (-1, 1)]
    return [_rgb(*colorsys.hls_to_rgb(h, x, s)) for x in steps if 0.06 <= x <= 0.94]


def _hues(name: str, first: int, count: int) -> list[RGB]:
    """Hues (and saturation, value) from the hash of the name, beyond Kelly's palette."""
    key, out = _normal(name), []
    for k in range(first, first + count):
        x = int.from_bytes(hashlib.sha256(f"{key}#{k}".encode()).digest()[:8], "big")
        out.append(_rgb(*colorsys.hsv_to_rgb((x % 3600) / 3600, 0.45 + (x >> 12) % 50 / 100,
                                             0.55 + (x >> 20) % 45 / 100)))  # fmt: skip
    return out


def _pick(candidates: Sequence[RGB], spacing: Spacing) -> RGB | None:
    k = spacing.first_fit(candidates)
    return None if k is None else candidates[k]


def _hashed_color(name: str, spacing: Spacing) -> RGB:
    """Kelly's palette from the entry the name's hash picks, then hues from the hash: the first that stands apart
    from the colours in use; in a list too long for any to, the one farthest from them."""
    start = _name_hash(name)
    tried = [parse_color(DISTINCT[(start + k) % len(DISTINCT)]) for k in range(len(DISTINCT))]
    if rgb := _pick(tried, spacing):
        return rgb
    for first in range(0, 1024, 128):
        hues = _hues(name, first, 128)
        if rgb := _pick(hues, spacing):
            return rgb
        tried += hues
    return tried[spacing.farthest(tried)]


def user_color(palette: Mapping[str, RGB], name: str) -> RGB | None:
    """The user's colour for a class: by its whole name, else by any of its synonyms (case-insensitive)."""
    for key in [name, *name.split("|")]:
        if _normal(key) in palette:
            return palette[_normal(key)]
    return None


def class_colors(
    names: Sequence[str], palette: Mapping[str, RGB] | None = None, taken: Iterable[RGB] = ()
) -> list[RGB]:
    """One colour per class (see the module's docstring); ``palette``: the user's, keys as from ``load_palette``;
    ``taken``: colours other classes already have (a raster's own colour table)."""
    palette = {_normal(k): v for k, v in (palette or {}).items()}
    out: list[RGB | None] = [user_color(palette, n) for n in names]
    spacing = Spacing([*taken, *(c for c in out if c is not None)])
    claims = {i: found for i, n in enumerate(names) if out[i] is None and (found := _conventional(n)) is not None}
    for i in sorted(claims, key=lambda i: (claims[i][0], _normal(names[i]), i)):
        base = claims[i][1]
        out[i] = _pick([base, *_shades(base)], spacing) or _hashed_color(names[i], spacing)
        spacing.add(out[i])
    for i in sorted((i for i, c in enumerate(out) if c is None), key=lambda i: (_normal(names[i]), i)):
        out[i] = _hashed_color(names[i], spacing)
        spacing.add(out[i])
    return [c for c in out if c is not None]


def split_class_colors(names: Sequence[str], where: str = "--classes") -> tuple[list[str], dict[str, RGB]]:
    """``["water:#1f78b4", "tree|forest:green", "road"]`` -> the names and the colours given with them."""
    plain, colors = [], {}
    for item in names:
        name, sep, color = item.rpartition(":")
        if not sep:
            plain.append(item)
            continue
        try:
            colors[_normal(name.strip())] = parse_color(color)
        except ValueError:
            raise UsageError(
                f"{where}: {color.strip()!r} in {item!r} is not a colour (use #rrggbb or a CSS colour name)"
            ) from None
        plain.append(name.strip())
    return plain, colors


QGIS_EXPORT_LINE = re.compile(r"^\s*-?[\d.]+\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*\d+\s*,(.*)$")


def load_palette(path: Path) -> dict[str, RGB]:
    """``--colors FILE``: a JSON object {"water": "#1f78b4", ...}, lines ``NAME: COLOUR`` (``=``, a tab or the first
    comma also separate; # starts a comment), or a colour map exported from QGIS (``value,r,g,b,a,label``)."""
    if not path.is_file():
        raise UsageError(f"--colors {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--colors {path}: not a text file") from None
    if text.lstrip().startswith("{"):
        return _json_palette(path, text)
    colors: dict[str, RGB] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#") or line.upper().startswith("INTERPOLATION:"):
            continue
        if m := QGIS_EXPORT_LINE.match(line):
            colors[_normal(m.group(4))] = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
            continue
        sep = re.search(r"[:=\t]", line) or re.search(",", line)
        if sep is None:
            raise UsageError(f"--colors {path}, line {number}: expected NAME: COLOUR, got {line!r}")
        name, color = line[: sep.start()].strip(), line[sep.end() :].strip()
        colors[_normal(name)] = _checked(path, color, f"line {number}")
    return colors


def _json_palette(path: Path, text: str) -> dict[str, RGB]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--colors {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f'--colors {path}: expected a JSON object {{"class": "#rrggbb", ...}}')
    out = {}
    for name, color in data.items():
        if isinstance(color, list) and len(color) in (3, 4) and all(isinstance(c, int) for c in color):
            color = "rgb({},{},{})".format(*color[:3])
        out[_normal(name)] = _checked(path, str(color), repr(name))
    return out


def _checked(path: Path, color: str, where: str) -> RGB:
    try:
        return parse_color(color)
    except ValueError:
        raise UsageError(
            f"--colors {path}, {where}: {color!r} is not a colour (use #rrggbb, r,g,b or a CSS colour name)"
        ) from None
