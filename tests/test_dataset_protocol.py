"""The paper's data protocol and the one layout per dataset.

Every count expected here is computed in the test from the windowing rule as iSAID_Devkit's ``split.py`` states it
(``for x in range(0, W, stride)``, a window running past the edge shifted back) and from the synthetic files' known
sizes and labelled rectangles, never read back from the code under test. The layout tests check that ``datasets
check``, the readers (``train``, ``evaluate``) and ``datasets prepare`` find the same files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import from_origin

from aeroseg_cli.datasets.check import list_split, run_check
from aeroseg_cli.datasets.isaid import prepare_isaid
from aeroseg_cli.datasets.openearthmap import prepare_openearthmap
from aeroseg_cli.datasets.readers import load_dataset
from aeroseg_cli.files.errors import UsageError
from tests.support.cli import run_cli

SHIP = (0, 0, 63)  # iSAID's colour of class 1 (ship), written out here rather than imported


def devkit_starts(length: int, patch: int, stride: int) -> list[int]:
    """iSAID_Devkit's loop: starts every ``stride`` px, a window past the edge moved back to end at it."""
    return sorted({min(x, max(length - patch, 0)) for x in range(0, length, stride)})


def kept_windows(h: int, w: int, box: tuple[int, int], patch: int, stride: int, share: float) -> int:
    """Windows whose labelled pixels (the rectangle [0, box[0]) x [0, box[1])) cover at least ``share`` of them."""
    n = 0
    for y in devkit_starts(h, patch, stride):
        for x in devkit_starts(w, patch, stride):
            ph, pw = min(patch, h), min(patch, w)
            labelled = max(0, min(y + ph, box[0]) - y) * max(0, min(x + pw, box[1]) - x)
            n += labelled >= share * ph * pw
    return n


def isaid_release(root: Path, images: dict[str, tuple[str, int, int, int, int]]) -> None:
    """Extracted official files: name -> (split, height, width, labelled rows, labelled columns)."""
    for name, (split, h, w, fy, fx) in images.items():
        rng = np.random.default_rng(h * w)
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "Semantic_masks" / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / split / "images" / f"{name}.png")
        colours = np.zeros((h, w, 3), np.uint8)
        colours[:fy, :fx] = SHIP
        Image.fromarray(colours).save(root / split / "Semantic_masks" / "images" / f"{name}_instance_color_RGB.png")


ISAID_IMAGES = {
    "P0001": ("train", 700, 900, 300, 500),
    "P0002": ("train", 600, 256, 600, 40),  # a side equal to the patch; a thin labelled strip
    "P0003": ("train", 300, 1000, 0, 0),  # nothing labelled: no patch in the paper's protocol
    "P1527": ("train", 300, 300, 300, 300),  # left out by default, as iSAID_Devkit does
    "P0100": ("val", 520, 470, 200, 470),
}


@pytest.fixture(scope="module")
def isaid_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("isaid") / "raw"
    isaid_release(raw, ISAID_IMAGES)
    return raw


def expected_isaid(patch: int, stride: int, share: float, skip: tuple[str, ...]) -> dict[str, int]:
    out = {"train": 0, "val": 0}
    for name, (split, h, w, fy, fx) in ISAID_IMAGES.items():
        if name not in skip:
            out[split] += kept_windows(h, w, (fy, fx), patch, stride, share)
    return out


def test_isaid_default_is_the_papers_windows_and_counts_are_exact(isaid_raw: Path, tmp_path: Path) -> None:
    r = run_cli("datasets", "prepare", "isaid", "--from", isaid_raw, "-o", tmp_path / "paper", "--json", "-q")
    assert r.code == 0, r.stderr
    s = json.loads(r.stdout)
    want = expected_isaid(256, 206, 0.1, ("P1527", "P1530"))
    assert {k: v["patches"] for k, v in s["splits"].items()} == want and want["train"] > 0
    assert s["splits"]["train"]["images"] == 3 and s["paper"] == {"train": 18_076, "val": 6_363}
    written = json.loads((tmp_path / "paper" / "aeroseg-prepare.json").read_text())["splits"]
    assert {k: v["patches"] for k, v in written.items()} == want
    assert len(load_dataset("isaid", tmp_path / "paper", "train")) == want["train"]  # what train reads
    assert not list((tmp_path / "paper").rglob("P0003_*")) and not list((tmp_path / "paper").rglob("P1527_*"))
    text = run_cli("datasets", "prepare", "isaid", "--from", isaid_raw, "-o", tmp_path / "paper").stdout
    assert f"patches: train {want['train']} / val {want['val']} (the paper: 18,076 / 6,363)" in text


def test_isaid_skip_takes_image_names_and_removes_exactly_their_patches(isaid_raw: Path, tmp_path: Path) -> None:
    """Review 1, finding 8: ``--skip 'P*'`` deleted every patch of a finished output (a glob), kept the markers,
    and the summary counted patches that were gone."""
    out = tmp_path / "isaid"
    assert run_cli("datasets", "prepare", "isaid", "--from", isaid_raw, "-o", out, "-q").code == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    for pattern in ("P*", "P000?", "P0001.png", "0001"):
        r = run_cli("datasets", "prepare", "isaid", "--from", isaid_raw, "-o", out, "-q", "--skip", pattern)
        assert r.code == 2 and f"--skip {pattern!r} is not an iSAID image name" in r.stderr, r.stderr
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == before
    r = run_cli("datasets", "prepare", "isaid", "--from", isaid_raw, "-o", out, "-q", "--json", "--skip", "P0001,P1527")
    assert r.code == 0, r.stderr
    train = json.loads(r.stdout)["splits"]["train"]
    want = expected_isaid(256, 206, 0.1, ("P0001", "P1527"))["train"]
    assert train["patches"] == want == len(list((out / "train" / "imgs").glob("*.png"))) and train["images"] == 2
    after = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert after == [p for p in before if not p.name.startswith("P0001_")] and len(after) < len(before)
    assert not (out / ".aeroseg-prepare" / "done" / "train" / "P0001.json").exists()
    assert len(load_dataset("isaid", out, "train")) == want


def test_prepare_warns_of_an_empty_split_and_names_the_images_that_gave_nothing(
    isaid_raw: Path, tmp_path: Path
) -> None:
    """Review 1, finding 9: an empty val split was reported as success, then `datasets check` failed."""
    want = expected_isaid(256, 206, 0.9, ("P1527", "P1530"))
    assert want["val"] == 0 and want["train"] > 0  # P0100's labelled rows cover 200 of a window's 256
    out = tmp_path / "isaid"
    args = ["datasets", "prepare", "isaid", "--from", isaid_raw, "-o", out, "--min-foreground", "0.9", "-q"]
    r = run_cli(*args)
    assert r.code == 0, r.stderr
    assert (
        r.stderr.count("\n") == 1 and "aeroseg: warning: isaid val: 0 patches from its 1 image(s) (P0100)" in r.stderr
    )
    assert "90% of its pixels in the 15 classes" in r.stderr and "--splits" in r.stderr
    next_line = f"next: aeroseg datasets check isaid --data-root {out} --splits train"
    assert next_line in r.stdout and "P0003" in json.loads((out / "aeroseg-prepare.json").read_text())["splits"][
        "train"]["images_without_patches"]  # fmt: skip
    assert run_cli(*next_line.removeprefix("next: aeroseg ").split()).code == 0  # what it says to run works


def test_damaged_prepare_state_is_redone_or_refused_in_one_line(tmp_path: Path) -> None:
    """Review 1, finding 13: a damaged marker or settings file ended in "JSONDecodeError: Expecting property name",
    naming no file."""
    oem_release(tmp_path / "raw")
    out = tmp_path / "tiles"
    first = prepare_openearthmap(tmp_path / "raw", out, quiet=True)
    marker = out / ".aeroseg-prepare" / "done" / "train" / "aachen_1.tif.json"
    marker.write_text('{"region": "aachen", "tiles": [')  # a torn write, a bad disk
    again = prepare_openearthmap(tmp_path / "raw", out, quiet=True)
    assert again["resumed_images"] == 3 and again["splits"] == first["splits"] and json.loads(marker.read_text())
    settings = out / ".aeroseg-prepare" / "settings.json"
    settings.write_text("{'dataset': ")
    r = run_cli("datasets", "prepare", "openearthmap", "--from", tmp_path / "raw", "-o", out, "-q")
    assert r.code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{settings} is damaged" in r.stderr and "delete the folder and rerun, or choose a new -o" in r.stderr


def test_isaid_other_windowings_stay_options(isaid_raw: Path, tmp_path: Path) -> None:
    s = prepare_isaid(isaid_raw, tmp_path / "mmseg", patch=896, stride=512, min_foreground=0, skip=(), quiet=True)
    assert {k: v["patches"] for k, v in s["splits"].items()} == expected_isaid(896, 512, 0.0, ())
    s = prepare_isaid(isaid_raw, tmp_path / "devkit", patch=800, stride=600, min_foreground=0, quiet=True)
    assert {k: v["patches"] for k, v in s["splits"].items()} == expected_isaid(800, 600, 0.0, ("P1527",))
    s = prepare_isaid(isaid_raw, tmp_path / "half", min_foreground=0.5, quiet=True)
    assert {k: v["patches"] for k, v in s["splits"].items()} == expected_isaid(256, 206, 0.5, ("P1527",))


def test_isaid_keep_lists_take_exactly_the_listed_windows(isaid_raw: Path, tmp_path: Path) -> None:
    """The iSAID-5i fold lists name windows with a class suffix (``P1092_1648_1904_824_1080__04``)."""
    listed = ["P0001_206_462_412_668__01", "P0001_444_700_644_900__01", "P0003_0_256_744_1000__02", "P9999_0_1_0_1"]
    lists = tmp_path / "fold0.txt"
    lists.write_text("\n".join(listed) + "\n\n")
    s = prepare_isaid(isaid_raw, tmp_path / "listed", keep_lists=(lists,), quiet=True)
    names = sorted(p.stem for p in (tmp_path / "listed" / "train" / "imgs").glob("*.png"))
    assert names == sorted(n.split("__")[0] for n in listed[:3])  # P0003's unlabelled window too: the list rules
    assert s["keep_list"] == {"windows_listed": 4, "of_images_prepared": 3} and s["splits"]["val"]["patches"] == 0
    lists.write_text("P0001_0_256_0_250\n")
    with pytest.raises(UsageError, match=r"P0001_0_256_0_250 is not a window of the 256/206 grid of P0001 \(900x700"):
        prepare_isaid(isaid_raw, tmp_path / "bad", keep_lists=(lists,), quiet=True)
    assert not (tmp_path / "bad").exists()


# ---------------------------------------------------------------------------------------------------- OpenEarthMap


def geotiff(path: Path, data: np.ndarray, x0: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"driver": "GTiff", "height": data.shape[1], "width": data.shape[2], "count": data.shape[0]}
    meta.update(dtype="uint8", crs="EPSG:32651", transform=from_origin(x0, 9_000_000.0, 0.5, 0.5))
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(data)


OEM_SIZES = {"aachen_1": (600, 520), "aachen_2": (256, 300), "aachen_3": (200, 300), "kyoto_1": (520, 780)}


def oem_release(root: Path, no_extension: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A release with images of several sizes (one smaller than a tile); palu_1 is xBD-sourced (listed in
    xbd_files.csv, its image compiled into the release)."""
    sizes = {**OEM_SIZES, "palu_1": (300, 512)}
    truth = {}
    for i, (stem, (h, w)) in enumerate(sizes.items()):
        rng = np.random.default_rng(i)
        image, label = rng.integers(0, 255, (3, h, w), dtype=np.uint8), rng.integers(0, 9, (1, h, w), dtype=np.uint8)
        region = stem.rsplit("_", 1)[0]
        geotiff(root / region / "images" / f"{stem}.tif", image, 500_000.0 + 1000 * i)
        geotiff(root / region / "labels" / f"{stem}.tif", label, 500_000.0 + 1000 * i)
        truth[stem] = (image, label[0])
    ext = "" if no_extension else ".tif"
    (root / "train.txt").write_text("".join(f"{n}{ext}\n" for n in ("aachen_1", "aachen_2", "aachen_3", "palu_1")))
    (root / "val.txt").write_text(f"kyoto_1{ext}\n")
    (root / "xbd_files.csv").write_text("palu-tsunami_00000001_pre_disaster.png,palu_1.tif\n")
    return truth


def test_openearthmap_train_and_val_are_cut_into_the_papers_tiles(tmp_path: Path) -> None:
    truth = oem_release(tmp_path / "raw")
    out = tmp_path / "tiles"
    r = run_cli("datasets", "prepare", "openearthmap", "--from", tmp_path / "raw", "-o", out, "--json", "-q")
    assert r.code == 0, r.stderr
    s = json.loads(r.stdout)

    def whole(stems: list[str], tile: int = 256) -> int:  # a grid of whole tiles: the remainder left out
        return sum((OEM_SIZES[n][0] // tile) * (OEM_SIZES[n][1] // tile) for n in stems)

    train, val = whole(["aachen_1", "aachen_2", "aachen_3"]), whole(["kyoto_1"])
    assert (train, val) == (2 * 2 + 1 + 0, 2 * 3)  # the arithmetic above, spelled out for these sizes
    small = {"aachen_3.tif": [200, 300]}  # smaller than a tile: no whole tile, said by name (review 1, finding 9)
    assert s["splits"]["train"] == {"images": 3, "tiles": train, "xbd_left_out": 1, "images_without_tiles": small}
    assert s["splits"]["val"] == {"images": 1, "tiles": val, "xbd_left_out": 0, "images_without_tiles": {}}
    warning = "aeroseg: warning: openearthmap train: 1 of 3 image(s) gave no tile, a side shorter than --tile 256"
    assert r.stderr.count("\n") == 1 and warning in r.stderr and "aachen_3.tif (300x200)" in r.stderr, r.stderr
    assert len((out / "train.txt").read_text().split()) == train and s["paper"] == {"train": 31_154, "val": 5_195}
    data = load_dataset("openearthmap", out, "train")  # the tiles in the release's own layout
    assert len(data) == train
    for sample in data.samples:
        stem, y0, y1, x0, x1 = sample.image.stem.rsplit("_", 4)
        image, label = truth[stem]
        with rasterio.open(sample.image) as im, rasterio.open(sample.mask) as lb:
            assert (im.read() == image[:, int(y0) : int(y1), int(x0) : int(x1)]).all()
            assert (lb.read(1) == label[int(y0) : int(y1), int(x0) : int(x1)]).all()
            with rasterio.open(tmp_path / "raw" / stem.rsplit("_", 1)[0] / "labels" / f"{stem}.tif") as src:
                assert lb.transform == src.window_transform(((int(y0), int(y1)), (int(x0), int(x1))))
    check = run_check("openearthmap", out)
    assert check.errors == [] and check.splits["val"].pairs == val
    s = prepare_openearthmap(tmp_path / "raw", tmp_path / "shift", edge="shift", with_xbd=True, quiet=True)
    ceil = sum(math.ceil(h / 256) * math.ceil(w / 256) for h, w in (*OEM_SIZES.values(), (300, 512)))
    assert sum(v["tiles"] for v in s["splits"].values()) == ceil and s["xbd_images_tiled"] == 1


# ------------------------------------------------------------------------------------------ one layout per dataset


def test_openearthmap_lists_without_extension_are_read_alike_by_check_readers_and_prepare(tmp_path: Path) -> None:
    """Failed before the layout objects: `datasets check` passed, then `train` said none of the files were found."""
    raw = tmp_path / "raw"
    oem_release(raw, no_extension=True)
    r = run_cli("datasets", "check", "openearthmap", "--data-root", raw, "--json")
    assert r.code == 0 and json.loads(r.stdout)["splits"]["train"]["pairs"] == 4, r.stderr
    train = load_dataset("openearthmap", raw, "train")
    assert [(s.image, s.mask) for s in train.samples] == list_split("openearthmap", raw, "train").pairs
    assert sorted(s.image.stem for s in train.samples) == ["aachen_1", "aachen_2", "aachen_3", "palu_1"]
    s = prepare_openearthmap(raw, tmp_path / "tiles", quiet=True)
    assert s["splits"]["train"]["images"] == 3 and s["splits"]["val"]["images"] == 1


def ovrs_download(root: Path) -> dict[Path, np.ndarray]:
    """OVRS's published OVS_datasets, in miniature: iSAID_split with PNG images, DLRSD_split with JPEG ones, class
    index masks (0-based, 255 ignore) named as the images."""
    masks = {}
    for folder, ext, k in (("iSAID_split", ".png", 15), ("DLRSD_split", ".jpg", 17)):
        for split, names in (("train", ["P0000_0_256_0_256", "P0000_0_256_206_462"]), ("val", ["P0100_0_256_0_256"])):
            for name in names if folder == "iSAID_split" else [f"airplane{n:02d}" for n in range(len(names))]:
                rng = np.random.default_rng(len(masks))
                mask = rng.integers(0, k, (32, 32), dtype=np.uint8)
                mask[:4] = 255
                for sub, arr in (("imgs", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)), ("D2masks", mask)):
                    (root / folder / split / sub).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(arr).save(root / folder / split / sub / f"{name}{ext if sub == 'imgs' else '.png'}")
                masks[root / folder / split / "D2masks" / f"{name}.png"] = mask
    return masks


def test_ovrs_published_splits_are_read_as_they_are(tmp_path: Path) -> None:
    masks = ovrs_download(tmp_path / "OVS_datasets")
    for dataset, folder in (("isaid", "iSAID_split"), ("dlrsd", "DLRSD_split")):
        root = tmp_path / "OVS_datasets" / folder
        check = run_check(dataset, root)
        assert check.layout == "ovrs" and check.errors == [] and check.warnings == [], check.errors
        for split in ("train", "val"):
            data = load_dataset(dataset, root, split)
            assert [(s.image, s.mask) for s in data.samples] == list_split(dataset, root, split).pairs
            for i, sample in enumerate(data.samples):
                assert (data.load(i)[1] == masks[sample.mask]).all()
        assert {s.image.suffix for s in load_dataset(dataset, root, "train").samples} == {
            ".png" if dataset == "isaid" else ".jpg"
        }
    r = run_cli("datasets", "check", "isaid", "--data-root", tmp_path / "OVS_datasets")
    assert r.code == 2 and f"use --data-root {tmp_path / 'OVS_datasets' / 'iSAID_split'}" in r.stderr


def test_check_and_readers_find_the_same_pairs_in_every_layout(tmp_path: Path, shared_dubai: Path) -> None:
    ovrs_download(tmp_path / "ovrs")
    folder = tmp_path / "folder"
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
        for n in ("a-1", "a", "b"):
            shape = (8, 8, 3) if sub == "images" else (8, 8)
            Image.fromarray(np.zeros(shape, np.uint8)).save(folder / sub / f"{n}.png")
    (folder / "classes.txt").write_text("x\n*y\n")
    (folder / "val.txt").write_text("a.png\nb\n")
    cases = [("isaid", tmp_path / "ovrs" / "iSAID_split", "train"), ("dubai", shared_dubai, "val")]
    cases += [("folder", folder, "train"), ("folder", folder, "val")]
    for name, root, split in cases:
        samples = [(s.image, s.mask) for s in load_dataset(name, root, split).samples]
        assert samples and samples == list_split(name, root, split).pairs, (name, split)
    assert [p.stem for p, _ in list_split("folder", folder, "val").pairs] == ["a", "b"]
    (folder / "images" / "c.png").write_bytes((folder / "images" / "a.png").read_bytes())
    assert list_split("folder", folder, "train").unpaired_images == ["c.png"]
    with pytest.raises(UsageError, match=r"1 image\(s\) in .*images have no mask in .*masks \(first: c.png\)"):
        load_dataset("folder", folder, "train")


def test_check_names_both_layouts_as_the_layouts_describe_themselves(tmp_path: Path, shared_dubai: Path) -> None:
    from aeroseg_cli.datasets.layouts import DUBAI_LAYOUT, ISAID_LAYOUT, OPENEARTHMAP_LAYOUT

    oem_release(tmp_path / "oem")
    for name, root, expected, found in (("isaid", shared_dubai, ISAID_LAYOUT, DUBAI_LAYOUT),
                                        ("dubai", tmp_path / "oem", DUBAI_LAYOUT, OPENEARTHMAP_LAYOUT)):  # fmt: skip
        with pytest.raises(UsageError) as refused:
            run_check(name, root)
        assert f"expected {expected.description} under {root}, found {found.description}" in str(refused.value)


def test_openearthmap_tiles_resume_and_refuse_other_settings(tmp_path: Path) -> None:
    oem_release(tmp_path / "raw")
    out = tmp_path / "tiles"
    first = prepare_openearthmap(tmp_path / "raw", out, quiet=True)
    files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.tif")}
    marker = out / ".aeroseg-prepare" / "done" / "train" / "aachen_1.tif.json"
    marker.unlink()  # as if killed after aachen_1's tiles were published, before its marker
    (out / "aachen" / "images" / "aachen_1_0_256_0_256.tif").unlink()
    again = prepare_openearthmap(tmp_path / "raw", out, quiet=True)
    assert again["resumed_images"] == 3 and again["splits"] == first["splits"]
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.tif")} == files
    with pytest.raises(UsageError, match=r"other settings \(edge='drop'\)"):
        prepare_openearthmap(tmp_path / "raw", out, edge="shift", quiet=True)
