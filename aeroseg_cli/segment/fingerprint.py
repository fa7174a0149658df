"""What a scene's output is made with, computed once per scene when the model is loaded: the settings that can
change a pixel (the ``--resume`` fingerprint, compared key by key with a partial's: ``segment/resume.py``) and the
tags written into the output GeoTIFF (model, classes, tile, stretch, the weights files used)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aeroseg_cli.files.identity import RESUME_KEYS
from aeroseg_cli.version import __version__

if TYPE_CHECKING:
    from aeroseg_cli.segment.plan import Plan
    from aeroseg_cli.segment.reader import SceneInfo
    from aeroseg_cli.segment.request import SegmentRequest


@dataclass(frozen=True)
class Fingerprint:
    """One scene's ``settings`` (everything that can change a pixel) and ``tags`` (the output's metadata)."""

    settings: dict
    tags: dict[str, str]

    def of_rows(self, r0: int, r1: int) -> dict:
        """The settings of one rank's band of rows [r0, r1) (its partial is resumable only as that band)."""
        return self.settings | {"rows": [r0, r1]}


def fingerprints(
    plan: Plan, names: list[str], tile: int, batch: int, model_label: str, runtime: dict
) -> list[Fingerprint]:
    """Each scene's fingerprint, in the plan's order; ``runtime``: the model's identity, precision and device."""
    weights = weights_used(plan.request.model)  # read once: which CLIP/SAM files (official or not) made the maps
    return [
        Fingerprint(
            scene_settings(plan, info, names, tile, batch, runtime),
            scene_tags(info, names, tile, model_label, plan.request, weights),
        )
        for info in plan.infos
    ]


def scene_settings(plan: Plan, info: SceneInfo, names: list[str], tile: int, batch: int, runtime: dict) -> dict:
    """Everything that can change a pixel of this scene's output: the resume fingerprint, compared key by key with
    the one a partial's sidecar holds, so every value is what JSON gives back (no tuples)."""
    req = plan.request
    identity = {"scene": info.path} | {k: v for k, v in info.identity.items() if k in RESUME_KEYS}
    return (
        identity
        | runtime
        | {
            "classes": names,
            "tile": tile,
            "overlap": req.overlap,
            "batch_size": batch,
            "bands": info.bands,
            "scale": None if req.scale is None else ",".join(f"{v:g}" for v in req.scale),  # as typed: "0,200"
            "target_gsd": req.target_gsd,
            "unknown_threshold": req.unknown_threshold,
            "probabilities": req.probabilities is not None,
            "aoi": plan.aois[info.path].digest if info.path in plan.aois else None,
            "version": __version__,
        }
    )


def scene_tags(info: SceneInfo, names: list[str], tile: int, model_label: str, req: SegmentRequest,
               weights: list[dict[str, str]]) -> dict[str, str]:  # fmt: skip
    """The output GeoTIFF's tags; ``weights``: the registry files the model is built from (``weights_used``)."""
    return {
        "AEROSEG_VERSION": __version__,
        "AEROSEG_MODEL": model_label,
        "AEROSEG_CLASSES": json.dumps(names),
        "AEROSEG_TILE": str(tile),
        "AEROSEG_OVERLAP": str(req.overlap),
        "AEROSEG_BANDS": ",".join(map(str, info.bands)),
        "AEROSEG_RADIOMETRY": info.radiometry.as_tag(),
        "AEROSEG_UNKNOWN_THRESHOLD": str(req.unknown_threshold),
        "AEROSEG_SOURCE": info.name,
        **({"AEROSEG_AOI": req.aoi.name} if req.aoi is not None else {}),
        **({"AEROSEG_WEIGHTS": json.dumps(weights)} if weights else {}),
    }


def model_identity(spec: str) -> str:
    """What makes a model the same model for ``--resume``: a checkpoint's SHA-256 (a converted released model's
    too), a preset's name and version with each registry file it is built from (``weights_used``)."""
    from models.hub import converted_model, sha256_file

    path = Path(spec).expanduser()
    converted = converted_model(spec) if not path.is_file() else None
    if converted:
        return f"{spec} checkpoint sha256 {sha256_file(converted)}"
    if not path.is_file():
        files = "".join(f"; {w['name']} sha256 {w['sha256']} ({w['trust']})" for w in weights_used(spec))
        return f"preset {spec} (aeroseg {__version__}){files}"
    return f"checkpoint sha256 {sha256_file(path)}"


def weights_used(spec: str) -> list[dict[str, str]]:
    """The registry files preset ``spec`` is built from, each with the SHA-256 its cache record holds and what that
    hash is (published, recorded, accepted): nothing is hashed, loading verified each file against exactly this
    hash. [] for a checkpoint: its own SHA-256 identifies it (a lean one's rebuilt weights match its digest)."""
    from models.hub import converted_model, identity, required_weights
    from models.presets import list_presets, preset_config

    if Path(spec).expanduser().is_file() or converted_model(spec) or spec not in list_presets():
        return []
    return [identity(name) for name in required_weights(preset_config(spec))]
