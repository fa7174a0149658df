"""The Python API as a notebook uses it: only names exported by ``aeroseg_cli`` (typed arguments, result objects,
errors worded with parameter names, no process setting changed on import)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio

import aeroseg_cli
from tests.support.paths import ROOT
from tests.support.scenes import smooth_scene, write_scene

SCENE = "sample_data/naip_2020_rgbn_utm14n.tif"


def test_import_is_light_and_changes_no_process_setting() -> None:
    """``import aeroseg_cli`` (and resolving the API's names) loads no torch, rasterio or GDAL setting."""
    code = (
        "import os, sys; before = dict(os.environ); import aeroseg_cli; "
        "aeroseg_cli.segment, aeroseg_cli.vectorize, aeroseg_cli.SegmentRequest, aeroseg_cli.AerosegError; "
        "assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items()); "
        "heavy = [m for m in ('torch', 'rasterio', 'geopandas') if m in sys.modules]; assert not heavy, heavy"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    code = (  # nor does the pipeline's reading guard (it once set GDAL_ERROR_ON_LIBJPEG_WARNING when imported)
        "import os; import aeroseg_cli.files.gdalread, aeroseg_cli.segment.runner, aeroseg_cli.runtime.host as h; "
        "ours = [*h.STRICT_READS, 'GDAL_CACHEMAX', 'THP_MEM_ALLOC_ENABLE']; "  # (rasterio sets its CA bundle itself)
        "assert not [k for k in ours if k in os.environ], [k for k in ours if k in os.environ]"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr


def test_vectorize_returns_a_result_and_errors_name_parameters(tmp_path: Path) -> None:
    labels = np.zeros((1, 64, 96), np.uint8)
    labels[0, 10:40, 20:70] = 1
    src = write_scene(tmp_path / "labels.tif", labels)
    result = aeroseg_cli.vectorize(src, tmp_path / "out.gpkg", min_area=0.0)
    assert isinstance(result, aeroseg_cli.VectorizeResult)
    assert result.output == tmp_path / "out.gpkg" and result.format == "gpkg" and result.features == 2
    assert len(gpd.read_file(result.output, layer="labels")) == 2
    with pytest.raises(aeroseg_cli.UsageError) as err:
        aeroseg_cli.vectorize(src, tmp_path / "bad.gpkg", min_area=-1.0)
    assert str(err.value) == "min_area and simplify must not be negative"  # the CLI says --min-area and --simplify
    with pytest.raises(aeroseg_cli.UsageError, match=r"exists \(use overwrite=True to replace it\)"):
        aeroseg_cli.vectorize(src, tmp_path / "out.gpkg")
    with pytest.raises(TypeError):
        aeroseg_cli.vectorize(src, tmp_path / "x.gpkg", min_aera=1.0)  # a misspelt option is not ignored
    with pytest.raises(aeroseg_cli.UsageError, match=r"^simplify must be a number, got '2'$"):
        aeroseg_cli.vectorize(src, tmp_path / "x.gpkg", simplify="2")


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_the_documented_example_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    """docs/python-api.md's first example, run as a notebook runs it (from a checkout: sample_data beside it): the
    bundled NAIP scene through the bundled demo model, then polygons; what it returns is what the page says."""
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    gdal = lambda: {k: v for k, v in os.environ.items() if k.startswith(("GDAL", "CPL_", "THP_"))}  # noqa: E731
    environment = gdal()  # (torch and open_clip set variables of their own when imported)
    with warnings.catch_warnings():
        warnings.simplefilter("error", aeroseg_cli.AerosegWarning)  # the example gives no warning
        exec(compile(python_blocks(ROOT / "docs" / "python-api.md")[0], "python-api.md", "exec"), namespace)
    assert gdal() == environment  # GDAL's strict reads were scoped to the calls, the process's settings untouched
    run, polygons = namespace["run"], namespace["polygons"]
    assert isinstance(run, aeroseg_cli.SegmentRun) and isinstance(polygons, aeroseg_cli.VectorizeResult)
    assert run.classes == ["building", "land", "road", "vegetation", "water"]  # the demo model's own
    (scene,) = run.results
    assert scene.outputs == ["naip_labels.tif"] and scene.windows["done"] == scene.windows["total"] > 0
    assert {"checks", "model_load", "segment"} <= set(run.timings)
    with rasterio.open(tmp_path / "naip_labels.tif") as out, rasterio.open(ROOT / SCENE) as src:
        assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
        labels = out.read(1)
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 4, 255} and len(np.unique(labels)) > 1
    assert polygons.features == len(gpd.read_file(tmp_path / "naip_polygons.gpkg")) > 0
    assert polygons.crs == "EPSG:26914"


def test_the_readme_shows_the_documented_example() -> None:
    """The README's Python example is the one the test above runs."""
    assert python_blocks(ROOT / "README.md")[0] == python_blocks(ROOT / "docs" / "python-api.md")[0]


def test_segment_takes_typed_arguments_and_words_errors_with_parameter_names(tmp_path: Path) -> None:
    scene = write_scene(tmp_path / "s.tif", smooth_scene(64, 64))
    common = {"model": "tiny", "output": str(tmp_path / "o.tif")}
    with pytest.raises(aeroseg_cli.UsageError) as err:
        aeroseg_cli.segment(scene, classes=["a", "b"], overlap=1.5, **common)
    assert str(err.value) == "overlap is a fraction of the tile in [0, 1), got 1.5"
    with pytest.raises(aeroseg_cli.UsageError, match=r"classes must be a list of names.*got 'a,b'"):
        aeroseg_cli.segment(scene, classes="a,b", **common)  # not split as the command line splits it
    with pytest.raises(aeroseg_cli.UsageError, match=r"^scale needs MIN < MAX, got 5,1$"):
        aeroseg_cli.segment(scene, classes=["a"], scale=(5, 1), **common)
    with pytest.raises(TypeError):
        aeroseg_cli.segment(scene, classes=["a"], overlapp=0.5, **common)
    assert not (tmp_path / "o.tif").exists()
    for wrong, words in [({"overlap": "0.3"}, "overlap must be a number, got '0.3'"),
                         ({"tile": "512"}, "tile must be a number, got '512'"),
                         ({"scale": "0,3000"}, "scale must be (min, max), e.g. scale=(0, 3000), got '0,3000'"),
                         ({"overwrite": "yes"}, "overwrite must be True or False, got 'yes'"),
                         ({"aoi": 5}, "aoi must be a path (str or pathlib.Path), got 5")]:  # fmt: skip
        with pytest.raises(aeroseg_cli.UsageError) as err:
            aeroseg_cli.segment(scene, classes=["a"], **{**common, **wrong})
        assert str(err.value) == words
    with pytest.raises(aeroseg_cli.UsageError) as err:
        aeroseg_cli.segment(scene, classes=["a"], vector=tmp_path / "x.docx", **common)
    assert "--" not in str(err.value)  # segment has no format option to suggest
    assert not (tmp_path / "o.tif").exists()
    with pytest.warns(aeroseg_cli.AerosegWarning) as caught:
        run = aeroseg_cli.segment(scene, classes=["a", "b"], tile=64, overlap=0.9, model=Path("tiny"),
                                  output=common["output"])  # fmt: skip
    (warned,) = [str(w.message) for w in caught if issubclass(w.category, aeroseg_cli.AerosegWarning)]
    assert warned.startswith("overlap=0.9 runs every pixel through") and run.warnings == [warned]
    assert run.results[0].outputs == [common["output"]] and run.model_choice == "model"
