"""Training losses: per-class BCE against one-hot targets and the semantic back-projection loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255


def bce_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean BCE-with-logits over classes and valid pixels.

    logits (B, K, H, W), target (B, H, W) class ids; ``ignore_index`` pixels are excluded from the mean
    (our decision; CAT-Seg counts them as negatives for every class).
    """
    k = logits.shape[1]
    valid = target != ignore_index
    if (target[valid] >= k).any():
        raise ValueError(f"target holds class ids >= {k} (the number of classes given)")
    onehot = F.one_hot(torch.where(valid, target, 0).long(), k).permute(0, 3, 1, 2).to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits.float(), onehot.float(), reduction="none")
    mask = valid.unsqueeze(1).expand_as(loss)
    count = mask.sum()
    if count == 0:
        return logits.sum() * 0.0
    return loss[mask].sum() / count


def backprojection_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between the reconstruction (B, C, h, w) and the stop-gradient target resized to (h, w)."""
    target = target.detach().float()
    if target.shape[-2:] != reconstruction.shape[-2:]:
        target = F.interpolate(target, size=reconstruction.shape[-2:], mode="bilinear", align_corners=False)
    return F.mse_loss(reconstruction.float(), target)


def total_loss(out, target: torch.Tensor, backproj_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """Weighted sum of the terms from a training-mode ``AerOSegOutput``: {"loss", "bce", "backproj"?}."""
    terms = {"bce": bce_loss(out.logits, target)}
    loss = terms["bce"]
    if out.backproj is not None:
        terms["backproj"] = backprojection_loss(out.backproj, out.backproj_target)
        loss = loss + backproj_weight * terms["backproj"]
    terms["loss"] = loss
    return terms
