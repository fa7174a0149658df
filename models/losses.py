"""Training losses: per-class BCE against one-hot targets and the semantic back-projection loss (both in fp32)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255
IGNORE_PIXELS = ("negative", "exclude")


def bce_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX, ignore_pixels: str = "negative"
) -> torch.Tensor:
    """Mean BCE-with-logits of logits (B, K, H, W) against one-hot targets from class ids (B, H, W), in fp32.

    ``ignore_pixels="negative"`` (CAT-Seg's training branch, inherited by OVRS): ``ignore_index`` pixels (unseen
    classes remapped for training, dataset ignore/unknown, crop padding) are negatives for every seen class and the
    mean runs over every pixel, so the model learns not to fire a seen class on unseen regions.
    ``"exclude"`` (this project's v1): those pixels are left out of the mean and get no gradient.
    """
    if ignore_pixels not in IGNORE_PIXELS:
        raise ValueError(f"ignore_pixels must be one of {', '.join(IGNORE_PIXELS)}, got {ignore_pixels!r}")
    k = logits.shape[1]
    valid = target != ignore_index
    if ((target >= k) & valid).any():
        raise ValueError(f"target holds class ids >= {k} (the number of classes given)")
    onehot = F.one_hot(torch.where(valid, target, 0).long(), k).permute(0, 3, 1, 2).float()
    mask = valid.unsqueeze(1).expand_as(onehot)
    if ignore_pixels == "negative":
        return F.binary_cross_entropy_with_logits(logits.float(), onehot * mask)
    loss = F.binary_cross_entropy_with_logits(logits.float(), onehot, reduction="none")
    count = mask.sum()
    if count == 0:
        return logits.sum() * 0.0
    return loss[mask].sum() / count


def backprojection_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between the reconstruction (B, C, h, w) and the stop-gradient target (resized to (h, w) if it is not)."""
    target = target.detach().float()
    if target.shape[-2:] != reconstruction.shape[-2:]:
        target = F.interpolate(target, size=reconstruction.shape[-2:], mode="bilinear", align_corners=False)
    return F.mse_loss(reconstruction.float(), target)


def total_loss(
    out, target: torch.Tensor, backproj_weight: float = 1.0, ignore_pixels: str | None = None
) -> dict[str, torch.Tensor]:
    """Weighted sum of the terms from a training-mode ``AerOSegOutput``: {"loss", "bce", "backproj"?}.

    ``ignore_pixels`` defaults to the switch the output carries from its model's config.
    """
    mode = ignore_pixels or getattr(out, "ignore_pixels", "negative")
    terms = {"bce": bce_loss(out.logits, target, ignore_pixels=mode)}
    loss = terms["bce"]
    if out.backproj is not None:
        terms["backproj"] = backprojection_loss(out.backproj, out.backproj_target)
        loss = loss + backproj_weight * terms["backproj"]
    terms["loss"] = loss
    return terms
