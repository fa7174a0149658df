"""``aeroseg qgis-plugin install``: copy ``aeroseg_qgis/`` into a QGIS profile and record which aeroseg it runs."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import aeroseg_cli
from aeroseg_cli.files.errors import CLIError, UsageError

PLUGIN = "aeroseg_qgis"
SOURCE = Path(__file__).with_name(PLUGIN)


def default_profile_root() -> Path:
    """QGIS's own settings folder (the one holding ``profiles/``): ``QGIS_CUSTOM_CONFIG_PATH`` when set, as QGIS
    reads it, else QGIS 3's per-user folder on this system."""
    custom = os.environ.get("QGIS_CUSTOM_CONFIG_PATH")
    if custom:
        return Path(custom)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "QGIS" / "QGIS3"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "QGIS" / "QGIS3"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "QGIS" / "QGIS3"


def launcher() -> dict:
    """How the plugin starts this very aeroseg: this interpreter (not resolved: a venv's python is a link whose
    target knows nothing of the venv) with ``-m aeroseg_cli``, and the folder this package is imported from."""
    return {
        "command": [os.path.abspath(sys.executable), "-m", "aeroseg_cli"],
        "pythonpath": str(Path(aeroseg_cli.__file__).resolve().parents[1]),
        "version": aeroseg_cli.__version__,
    }


def plugin_folder(profile_root: Path, profile: str) -> Path:
    return profile_root / "profiles" / profile / "python" / "plugins" / PLUGIN


def _is_ours(folder: Path) -> bool:
    """A folder this command installed (it records a launcher), so replacing it loses nothing of the user's."""
    return (folder / "aeroseg.json").is_file() and (folder / "metadata.txt").is_file()


def install(profile_root: Path, profile: str = "default") -> Path:
    """Copy the plugin into ``profile_root/profiles/PROFILE/python/plugins/aeroseg_qgis`` (replacing an earlier
    install whole: a copy beside it is renamed into place) and return that folder."""
    if profile_root.exists() and not profile_root.is_dir():
        raise UsageError(f"--profile-root {profile_root} is not a folder")
    target = plugin_folder(profile_root, profile)
    if target.exists() and not _is_ours(target):
        raise UsageError(f"{target} exists and was not installed by aeroseg; move it away first")
    staging, old = (target.with_name(f".{PLUGIN}.{kind}-{os.getpid()}") for kind in ("new", "old"))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(SOURCE, staging, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (staging / "aeroseg.json").write_text(json.dumps(launcher(), indent=2) + "\n")
        if target.exists():
            target.rename(old)
        staging.rename(target)
    except OSError as exc:
        raise CLIError(f"could not install the QGIS plugin into {target.parent}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target
