"""The benchmark datasets' class lists and seen/unseen splits (the paper's Table 1), and their training lengths.

Class ids are 0-based in the dataset's full class order; 255 is ignore.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE = 255
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    classes: tuple[str, ...]
    unseen: tuple[str, ...]
    iters: int  # the paper's training length (where each dataset's files lie: ``layouts``)

    @property
    def seen(self) -> tuple[str, ...]:
        return tuple(c for c in self.classes if c not in self.unseen)


ISAID = DatasetSpec(
    "isaid",
    (
        "ship",
        "storage tank",
        "baseball diamond",
        "tennis court",
        "basketball court",
        "ground track field",
        "bridge",
        "large vehicle",
        "small vehicle",
        "helicopter",
        "swimming pool",
        "roundabout",
        "soccer ball field",
        "plane",
        "harbor",
    ),
    ("tennis court", "bridge", "small vehicle", "helicopter", "soccer ball field", "harbor"),
    10_000,
)
DLRSD = DatasetSpec(
    "dlrsd",
    (
        "airplane",
        "bare soil",
        "buildings",
        "cars",
        "chaparral",
        "court",
        "dock",
        "field",
        "grass",
        "mobile home",
        "pavement",
        "sand",
        "sea",
        "ship",
        "tanks",
        "trees",
        "water",
    ),
    ("airplane", "bare soil", "buildings", "cars", "pavement", "sea", "trees"),
    5_000,
)
OPENEARTHMAP = DatasetSpec(
    "openearthmap",
    ("bareland", "rangeland", "developed space", "road", "tree", "water", "agriculture land", "building"),
    ("developed space", "tree", "water", "agriculture land"),
    15_000,
)
DUBAI = DatasetSpec(
    "dubai",
    ("building", "land", "road", "vegetation", "water"),
    (),
    2_000,
)
SPECS = {s.name: s for s in (ISAID, DLRSD, OPENEARTHMAP, DUBAI)}
DATASETS = (*SPECS, "folder")

# Dubai masks are RGB-coded (the upstream classes.json is wrong; this table is verified on every mask)
DUBAI_COLORS = {
    (60, 16, 152): 0,  # building
    (132, 41, 246): 1,  # land (unpaved area)
    (110, 193, 228): 2,  # road
    (254, 221, 58): 3,  # vegetation
    (226, 169, 41): 4,  # water
}
DUBAI_SPLIT = {"train": (1, 2, 3, 4, 5, 6), "val": (7, 8)}  # fixed split by tile, 54 / 18 images

# The processed splits the AerOSeg paper states (train, val). iSAID: the windows of the iSAID-5i lists (OVRS's
# iSAID_split); DLRSD: OVRS's DLRSD_split (7,002 images, more than the 2,100 of the release); OpenEarthMap: tiles of
# the release without its xBD-sourced images.
PAPER_COUNTS = {
    "isaid": {"train": 18_076, "val": 6_363},
    "dlrsd": {"train": 5_601, "val": 1_401},
    "openearthmap": {"train": 31_154, "val": 5_195},
}
