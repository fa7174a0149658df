"""Class colours: the user's, else conventional ones for well-known names, else a stable distinct one per name.

A colour never depends on a class's position in the list: "water" is blue in every run, whatever else is asked for.
Conventional colours follow the habits of land-cover maps (water blue, vegetation green, buildings red, roads grey,
bare ground tan); other names get a colour of a fixed maximum-contrast palette picked by a hash of the name. When
two classes of one list would share a colour, the later one in alphabetical order gets a shade of it (conventional)
or the next free palette colour (hashed), so the result depends on the set of names only.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from aeroseg_cli.files.errors import UsageError

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
    "#deebf7": ("snow", "ice", "glacier"),
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
    "#f0f0f0": ("cloud",),
    "#252525": ("shadow",),
    "#d9d9d9": ("background", "other", "others", "clutter", "unclassified", "misc"),
}
# fmt: on
CONVENTIONAL: dict[str, str] = {name: color for color, names in _FAMILIES.items() for name in names}

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


def conventional_color(name: str) -> RGB | None:
    """The conventional colour of a class name or of any of its ``|`` synonyms: the whole phrase first ("low
    vegetation"), then its words from the last ("small vehicle" -> vehicle, "tree canopy" -> canopy), plurals too."""
    for synonym in name.split("|"):
        phrase = _normal(synonym)
        words = phrase.split(" ")
        for candidate in [phrase, *reversed(words)]:
            for form in _singular(candidate):
                if form in CONVENTIONAL:
                    return parse_color(CONVENTIONAL[form])
    return None


def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.sha256(_normal(name).encode()).digest()[:8], "big")


def _shade(rgb: RGB, step: int) -> RGB:
    """A lighter or darker shade of ``rgb`` (step 1: darker, 2: lighter, 3: darker still, ...), same hue."""
    h, lightness, s = colorsys.rgb_to_hls(*(c / 255 for c in rgb))
    delta = 0.14 * ((step + 1) // 2) * (-1 if step % 2 else 1)
    r, g, b = colorsys.hls_to_rgb(h, min(0.92, max(0.08, lightness + delta)), s)
    return round(r * 255), round(g * 255), round(b * 255)


def _hashed_color(name: str, used: set[RGB]) -> RGB:
    """The palette colour the name hashes to, or the next free one; beyond the palette, a hue from the hash."""
    start = _name_hash(name)
    for k in range(len(DISTINCT)):
        rgb = parse_color(DISTINCT[(start + k) % len(DISTINCT)])
        if rgb not in used:
            return rgb
    for k in range(1024):
        x = _name_hash(f"{name}#{k}")
        r, g, b = colorsys.hsv_to_rgb((x % 3600) / 3600, 0.45 + (x >> 12) % 50 / 100, 0.55 + (x >> 20) % 45 / 100)
        rgb = round(r * 255), round(g * 255), round(b * 255)
        if rgb not in used:
            return rgb
    return rgb


def user_color(palette: Mapping[str, RGB], name: str) -> RGB | None:
    """The user's colour for a class: by its whole name, else by any of its synonyms (case-insensitive)."""
    for key in [name, *name.split("|")]:
        if _normal(key) in palette:
            return palette[_normal(key)]
    return None


def class_colors(names: Sequence[str], palette: Mapping[str, RGB] | None = None) -> list[RGB]:
    """One colour per class (see the module's docstring); ``palette``: the user's, keys as from ``load_palette``."""
    palette = {_normal(k): v for k, v in (palette or {}).items()}
    out: list[RGB | None] = [user_color(palette, n) for n in names]
    used = {c for c in out if c is not None}
    order = sorted(range(len(names)), key=lambda i: (_normal(names[i]), i))
    for i in order:  # conventional colours, shaded where two classes would share one
        if out[i] is None and (rgb := conventional_color(names[i])) is not None:
            step, shaded = 0, rgb
            while shaded in used and step < 8:
                step += 1
                shaded = _shade(rgb, step)
            out[i] = shaded
            used.add(shaded)
    for i in order:
        if out[i] is None:
            out[i] = _hashed_color(names[i], used)
            used.add(out[i])
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
