"""Where each dataset's files lie under ROOT: one layout object per dataset, asked alike by the readers (``train``,
``evaluate``), ``datasets check`` and ``datasets prepare``.

A layout lists a split as pairs of files (``listing``, which collects every problem) and refuses a split that cannot
be trained on (``samples``, one ``UsageError`` naming the problem), so what the check passes is exactly what the
readers open (torchgeo's pattern: the dataset class owns its layout).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aeroseg_cli.datasets.specs import DLRSD, DUBAI, DUBAI_SPLIT, IMAGE_EXTS, ISAID, OPENEARTHMAP, DatasetSpec
from aeroseg_cli.files.errors import UsageError

Pair = tuple[Path, Path]  # (image, mask)


@dataclass
class Listing:
    """A split's files as found on disk, before any pixel is read."""

    pairs: list[Pair] = field(default_factory=list)
    unpaired_images: list[str] = field(default_factory=list)
    unpaired_masks: list[str] = field(default_factory=list)
    listed_missing: list[str] = field(default_factory=list)  # in the split list, image absent (OpenEarthMap)
    absent: str = ""  # why the split has no files at all
    missing_folder: Path | None = None  # the folder whose absence ``absent`` reports
    folders: tuple[Path, Path] | None = None  # (images, masks) of the first unpaired image


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def match(images_dir: Path, masks_dir: Path, wanted: set[str] | None = None) -> Listing:
    """Images paired with masks by stem, in image-name order; ``wanted`` (stems) filters both sides."""
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            return Listing(absent=f"no folder {d}", missing_folder=d)
    images = [p for p in _files(images_dir) if wanted is None or p.stem in wanted]
    masks = {p.stem: p for p in _files(masks_dir) if wanted is None or p.stem in wanted}
    out, stems = Listing(folders=(images_dir, masks_dir)), {p.stem for p in images}
    out.pairs = [(p, masks[p.stem]) for p in images if p.stem in masks]
    out.unpaired_images = [p.name for p in images if p.stem not in masks]
    out.unpaired_masks = sorted(p.name for s, p in masks.items() if s not in stems)
    return out


def refuse_unpaired(listing: Listing) -> None:
    """The readers' refusal of an image without its mask."""
    if listing.unpaired_images:
        images, masks = listing.folders or (Path("?"), Path("?"))
        n, first = len(listing.unpaired_images), listing.unpaired_images[0]
        raise UsageError(f"{n} image(s) in {images} have no mask in {masks} (first: {first})")


def pairs_or_raise(listing: Listing) -> list[Pair]:
    """The readers' refusals: a missing folder, an image without its mask, nothing to read."""
    if listing.missing_folder is not None:
        raise UsageError(f"expected folder {listing.missing_folder} (not found)")
    refuse_unpaired(listing)
    if not listing.pairs and listing.folders is not None:
        raise UsageError(f"no images found in {listing.folders[0]}")
    return listing.pairs


def read_names(path: Path) -> list[str]:
    """A split list: one name per line, blank lines skipped."""
    return [x.strip() for x in path.read_text().splitlines() if x.strip()]


class Layout:
    """The files of one dataset under ROOT. Subclasses say where they are."""

    dataset: str = ""
    key: str = ""  # the layout's name in `datasets check` ("ovrs", "openearthmap", ...)
    decode: str = "index"  # how masks are read: "index", "oem" (0 -> ignore, k -> k-1), "dubai_rgb"
    description: str = ""  # the layout in one line, for messages (`datasets check` names a folder's layout by it)

    def spec(self, root: Path) -> DatasetSpec:
        raise NotImplementedError

    def listing(self, root: Path, split: str) -> Listing:
        raise NotImplementedError

    def samples(self, root: Path, split: str) -> list[Pair]:
        raise NotImplementedError

    def looks_like(self, root: Path) -> bool:
        raise NotImplementedError


class SplitFolders(Layout):
    """OVRS's layout (iSAID, DLRSD): ``ROOT/<split>/imgs/*`` with ``ROOT/<split>/D2masks/*.png`` of the same stem.
    OVRS's published ``iSAID_split`` and ``DLRSD_split`` are in it, and ``datasets prepare`` writes it."""

    key = "ovrs"
    description = "OVRS's layout (ROOT/{train,val}/imgs/* with ROOT/{train,val}/D2masks/*.png of the same names)"
    IMAGES = "imgs"
    MASKS = "D2masks"

    def __init__(self, dataset_spec: DatasetSpec) -> None:
        self.dataset, self.dataset_spec = dataset_spec.name, dataset_spec

    def spec(self, root: Path) -> DatasetSpec:
        return self.dataset_spec

    def images_dir(self, root: Path, split: str) -> Path:
        return root / split / self.IMAGES

    def masks_dir(self, root: Path, split: str) -> Path:
        return root / split / self.MASKS

    def listing(self, root: Path, split: str) -> Listing:
        return match(self.images_dir(root, split), self.masks_dir(root, split))

    def samples(self, root: Path, split: str) -> list[Pair]:
        if not (root / split).is_dir():
            raise UsageError(f"{self.dataset}: expected {root / split} ({self.description})")
        return pairs_or_raise(self.listing(root, split))

    def looks_like(self, root: Path) -> bool:
        return any((root / s / self.IMAGES).is_dir() or (root / s / self.MASKS).is_dir() for s in ("train", "val"))


@dataclass
class RegionFiles:
    """Every ``<region>/images/*`` and ``<region>/labels/*`` file by name, and the region it is in."""

    region: dict[str, str] = field(default_factory=dict)
    image: dict[str, Path] = field(default_factory=dict)
    label: dict[str, Path] = field(default_factory=dict)


class OpenEarthMapRegions(Layout):
    """OpenEarthMap's release layout: ``ROOT/<region>/images/*.tif``, ``ROOT/<region>/labels/*.tif`` (same names)
    and ``ROOT/{train,val,test}.txt``. ``datasets prepare openearthmap`` writes its tiles in it too."""

    dataset = "openearthmap"
    key = "openearthmap"
    decode = "oem"
    description = "OpenEarthMap's layout (ROOT/<region>/images/*.tif, ROOT/<region>/labels/*.tif, ROOT/{train,val}.txt)"
    LISTS = ("train", "val", "test")

    def spec(self, root: Path) -> DatasetSpec:
        return OPENEARTHMAP

    @staticmethod
    def file_name(entry: str) -> str:
        """A split-list entry as a file name: the release lists ``aachen_1.tif``, some copies ``aachen_1``."""
        return entry if Path(entry).suffix.lower() in IMAGE_EXTS else f"{entry}.tif"

    def list_path(self, root: Path, split: str) -> Path:
        return root / f"{split}.txt"

    def split_names(self, root: Path, split: str) -> list[str] | None:
        """The file names the split list holds, or None without a list."""
        path = self.list_path(root, split)
        return [self.file_name(n) for n in read_names(path)] if path.is_file() else None

    def regions(self, root: Path) -> list[Path]:
        return sorted(d for d in root.iterdir() if d.is_dir()) if root.is_dir() else []

    def index(self, root: Path) -> RegionFiles:
        """Every image and label file of every region (one level below ROOT)."""
        files = RegionFiles()
        for region in self.regions(root):
            for kind, table in (("images", files.image), ("labels", files.label)):
                if (region / kind).is_dir():
                    for f in _files(region / kind):
                        table[f.name] = f
                        files.region.setdefault(f.name, region.name)
        return files

    def listing(self, root: Path, split: str) -> Listing:
        names = self.split_names(root, split)
        if names is None:
            return Listing(absent=f"no {split}.txt")
        files, out = self.index(root), Listing()
        for n in sorted(set(names), key=lambda n: (files.region.get(n, ""), n)):
            if n in files.image and n in files.label:
                out.pairs.append((files.image[n], files.label[n]))
            elif n in files.image:
                out.unpaired_images.append(n)
                out.folders = out.folders or (files.image[n].parent, files.image[n].parent.parent / "labels")
            else:
                out.listed_missing.append(n)
        return out

    def samples(self, root: Path, split: str) -> list[Pair]:
        path = self.list_path(root, split)
        if not path.is_file():
            raise UsageError(f"openearthmap: expected the split list {path} ({self.description})")
        if not any((d / "images").is_dir() for d in self.regions(root)):
            raise UsageError(f"openearthmap: no ROOT/<region>/images folders in {root}")
        listing = self.listing(root, split)
        refuse_unpaired(listing)
        if not listing.pairs:
            n = len(read_names(path))
            raise UsageError(f"openearthmap: none of the {n} files of {path.name} were found")
        return listing.pairs

    def looks_like(self, root: Path) -> bool:
        return (root / "train.txt").is_file() and any((d / "labels").is_dir() for d in self.regions(root))


class DubaiTiles(Layout):
    """The CC0 Dubai set: ``ROOT/Tile N/images/*.jpg`` with ``ROOT/Tile N/masks/*.png``, split by tile."""

    dataset = "dubai"
    key = "dubai"
    decode = "dubai_rgb"
    description = "the Dubai layout (ROOT/Tile N/images/*.jpg with ROOT/Tile N/masks/*.png)"

    def spec(self, root: Path) -> DatasetSpec:
        return DUBAI

    def listing(self, root: Path, split: str) -> Listing:
        if split not in DUBAI_SPLIT:
            return Listing(absent=f"dubai has splits {', '.join(DUBAI_SPLIT)}")
        out = Listing()
        for t in DUBAI_SPLIT[split]:
            part = match(root / f"Tile {t}" / "images", root / f"Tile {t}" / "masks")
            if part.absent:
                return part
            out.pairs += part.pairs
            out.unpaired_images += part.unpaired_images
            out.unpaired_masks += part.unpaired_masks
        return out

    def samples(self, root: Path, split: str) -> list[Pair]:
        if split not in DUBAI_SPLIT:
            raise UsageError(f"dubai has splits {', '.join(DUBAI_SPLIT)}, not {split!r}")
        pairs = []
        for t in DUBAI_SPLIT[split]:
            if not (root / f"Tile {t}").is_dir():
                raise UsageError(f"dubai: expected {root / f'Tile {t}'} ({self.description})")
            pairs += pairs_or_raise(match(root / f"Tile {t}" / "images", root / f"Tile {t}" / "masks"))
        return pairs

    def looks_like(self, root: Path) -> bool:
        return (root / "Tile 1").is_dir()


class GenericFolder(Layout):
    """Any dataset: ``ROOT/images/*``, ``ROOT/masks/*`` (class ids), ``ROOT/classes.txt`` (``*name`` = unseen) and
    an optional ``ROOT/<split>.txt`` of names."""

    dataset = "folder"
    key = "folder"
    description = "the generic folder layout (ROOT/images, ROOT/masks, ROOT/classes.txt)"

    def __init__(self, classes_file: Path | None = None) -> None:
        self.classes_file = classes_file

    def spec(self, root: Path, iters: int = 2_000) -> DatasetSpec:
        path = self.classes_file or root / "classes.txt"
        if not path.is_file():
            raise UsageError(f"folder dataset: expected a classes file {path} (one class per line)")
        lines = read_names(path)
        unseen = tuple(c.lstrip("*").strip() for c in lines if c.startswith("*"))
        return DatasetSpec("folder", tuple(c.lstrip("*").strip() for c in lines), unseen, iters)

    def _wanted(self, root: Path, split: str) -> set[str] | None:
        path = root / f"{split}.txt"
        return {Path(n).stem for n in read_names(path)} if path.is_file() else None

    def listing(self, root: Path, split: str) -> Listing:
        return match(root / "images", root / "masks", self._wanted(root, split))

    def samples(self, root: Path, split: str) -> list[Pair]:
        return pairs_or_raise(self.listing(root, split))

    def looks_like(self, root: Path) -> bool:
        return (root / "images").is_dir() and (root / "masks").is_dir()


ISAID_LAYOUT = SplitFolders(ISAID)
DLRSD_LAYOUT = SplitFolders(DLRSD)
OPENEARTHMAP_LAYOUT = OpenEarthMapRegions()
DUBAI_LAYOUT = DubaiTiles()
LAYOUTS: dict[str, Layout] = {
    "isaid": ISAID_LAYOUT,
    "dlrsd": DLRSD_LAYOUT,
    "openearthmap": OPENEARTHMAP_LAYOUT,
    "dubai": DUBAI_LAYOUT,
    "folder": GenericFolder(),
}


def layout_for(name: str, classes_file: Path | None = None) -> Layout:
    """The layout of dataset ``name`` (``classes_file`` only for the generic folder)."""
    if name not in LAYOUTS:
        raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(LAYOUTS)}")
    return GenericFolder(classes_file) if name == "folder" and classes_file else LAYOUTS[name]


def detect(root: Path) -> tuple[str, str]:
    """(layout key, description) of a folder: one the readers read, an official download, or unknown."""
    if not root.is_dir():
        return "missing", "no folder"
    for layout in (ISAID_LAYOUT, LAYOUTS["folder"], OPENEARTHMAP_LAYOUT, DUBAI_LAYOUT):
        if layout.looks_like(root):
            return layout.key, layout.description
    for name in ("iSAID_split", "DLRSD_split"):
        if (root / name / "train").is_dir():
            return "parent", f"a folder holding {name} (use --data-root {root / name})"
    if any((root / s / d).is_dir() for s in ("train", "val") for d in ("images", "Semantic_masks")):
        return "isaid-official", "the official iSAID download (prepare it: `aeroseg datasets prepare isaid`)"
    if (root / "Images").is_dir() or any((root / c).is_dir() for c in ("airplane", "agricultural")):
        return "dlrsd-official", "UC Merced / DLRSD as downloaded (prepare it: `aeroseg datasets prepare dlrsd`)"
    return "unknown", "no layout aeroseg reads"
