"""CLIP vision-language backbone (open_clip): dense patch embeddings, rotations, prompt-ensembled text.

The dense path follows CAT-Seg: in the last visual block the attention is replaced by its value path (no token
mixing) with the CLS token as the residual, so every patch gets an embedding in CLIP's joint space.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from torch import nn

from .config import AerOSegConfig, CLIPConfig
from .correlation import autocast_on

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (images - mean) / std per channel."""
    m = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - m) / s


def build_open_clip(cfg: CLIPConfig, image_size: int) -> CLIP:
    """An open_clip ``CLIP`` of the given sizes, with QuickGELU as the OpenAI checkpoints need."""
    vision = CLIPVisionCfg(
        layers=cfg.vision_layers,
        width=cfg.vision_width,
        head_width=cfg.vision_width // cfg.vision_heads,
        patch_size=cfg.patch_size,
        image_size=image_size,
    )
    text = CLIPTextCfg(
        context_length=cfg.context_length,
        vocab_size=cfg.vocab_size,
        width=cfg.text_width,
        heads=cfg.text_heads,
        layers=cfg.text_layers,
    )
    return CLIP(embed_dim=cfg.embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True)


def resize_pos_embed(pos: torch.Tensor, grid: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """CLIP's position embedding (1 + s*s, C), class token first, for a ``grid`` of patches -> (1 + gh*gw, C).

    ``"bicubic"``: bicubic, ``align_corners=False``, no antialiasing, as CAT-Seg, OVRS and SegEarth-OV resize it (at
    run time, ``VisionTransformer.resized_pos_embed``; the embedding is frozen, so resizing once when loading gives
    the same tensor). ``"antialias"``: open_clip's ``resize_pos_embed`` (antialiased bicubic), how checkpoints of
    format 2 and older were built. Computed in at least fp32 (CPUs have no half-precision antialiased kernels, and
    the references resize the fp16 OpenAI weights after casting them to fp32).
    """
    side = int(math.sqrt(pos.shape[0] - 1))
    if (side, side) == tuple(grid):
        return pos
    if mode not in ("bicubic", "antialias"):
        raise ValueError(f"pos_embed_interp must be bicubic or antialias, got {mode!r}")
    work = pos.to(torch.promote_types(pos.dtype, torch.float32))
    img = work[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    img = F.interpolate(img, size=tuple(grid), mode="bicubic", align_corners=False, antialias=mode == "antialias")
    return torch.cat([work[:1], img.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)], dim=0)


def rotate_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (4*B, C, H, W): the input rotated by 0, 90, 180, 270 degrees, rotation-major."""
    return torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)], dim=0)


def rotate_back(maps: torch.Tensor, batch: int) -> torch.Tensor:
    """(4*B, D, h, w) maps of rotated inputs -> (B, 4, D, h, w), each rotated back onto the unrotated grid."""
    parts = maps.unflatten(0, (4, batch)).unbind(0)  # not split(batch): torch.export keeps the batch dynamic
    return torch.stack([torch.rot90(p, -k, dims=(-2, -1)) for k, p in enumerate(parts)], dim=1)


def split_class_name(name: str) -> list[str]:
    """``"water|lake|river"`` -> ``["water", "lake", "river"]`` (synonyms whose embeddings are averaged)."""
    parts = [p.strip() for p in name.split("|")]
    if not name.strip() or any(not p for p in parts):
        raise ValueError(f"empty class name or synonym in {name!r}")
    return parts


class QVGradientMask:
    """Zeroes the key rows of a packed ``in_proj_weight`` gradient, so only q and v learn.

    open_clip packs q, k and v into one (3D, D) parameter; the k rows [D:2D] must stay frozen. The trainer puts these
    parameters in a group without weight decay, so the zero gradient really leaves the k rows untouched.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[self.dim : 2 * self.dim] = 0
        return grad


class CLIPBackbone(nn.Module):
    """Dense CLIP image embeddings and prompt-ensembled class embeddings.

    ``image_features(x)``: x (B, 3, H, W) CLIP-normalised -> dense (B, R, D, H/p, W/p), L2-normalised, R = 4 with
    rotations (rotated back) else 1; plus, for CLIP guidance, maps of the unrotated pass.
    ``text_features(names)``: K class names -> (K, P, D), L2-normalised, P prompt templates.
    With ``cfg.fp32_correlation`` both are normalised and returned in fp32 even under autocast.
    """

    def __init__(self, cfg: AerOSegConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = build_open_clip(cfg.clip, cfg.clip_resolution or cfg.crop_size)
        self.tokenizer = open_clip.tokenize
        self.templates = cfg.templates
        self.rotations = cfg.rotations
        layers = cfg.clip.vision_layers
        # CLIP guidance taps (CAT-Seg uses blocks 4 and 8 of 12): one third and two thirds of the depth.
        self.guidance_taps = (max(1, layers // 3), min(layers - 1, max(1, 2 * layers // 3)))
        self._text_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self.register_load_state_dict_post_hook(lambda module, _keys: module._text_cache.clear())
        self._set_trainable(cfg.finetune_clip_qv)
        if cfg.train_clip_all:
            for p in self.model.parameters():
                p.requires_grad_(True)
            self._qv_masked = False

    # -- parameters -------------------------------------------------------------------------------------------
    def _set_trainable(self, finetune_qv: bool) -> None:
        self._qv_masked = finetune_qv
        for p in self.model.parameters():
            p.requires_grad_(False)
        if not finetune_qv:
            return
        for name, p in self.model.named_parameters():
            if name.endswith("attn.in_proj_weight"):
                p.requires_grad_(True)
                p.register_hook(self._mask_key_rows(QVGradientMask(p.shape[1])))

    def _mask_key_rows(self, mask: QVGradientMask):
        return lambda grad: mask(grad) if self._qv_masked else grad

    @property
    def qv_only(self) -> bool:
        """True when only the q and v rows of the packed q/k/v weights learn (the k rows get a zero gradient)."""
        return self._qv_masked

    def trainable_parameters(self) -> list[nn.Parameter]:
        """CLIP weights that learn: the packed q/k/v weights (k rows masked) or, with train_clip_all, all of them."""
        return [p for p in self.model.parameters() if p.requires_grad]

    @property
    def text_trainable(self) -> bool:
        return self.training and any(p.requires_grad for p in self.model.transformer.parameters())

    def train(self, mode: bool = True) -> CLIPBackbone:
        self._text_cache.clear()  # weights may change in training: never reuse embeddings across it
        return super().train(mode)

    # -- image -------------------------------------------------------------------------------------------------
    def _pos_embed(self, grid: tuple[int, int]) -> torch.Tensor:
        """The embedding for an input of another size than the crop: resized at run time as the references do."""
        return resize_pos_embed(self.model.visual.positional_embedding, grid, "bicubic")

    @staticmethod
    def _dense_last_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Value path only, CLS token as residual, then the MLP residual: x (N, 1+L, C) -> (N, 1+L, C)."""
        attn = block.attn
        c = x.shape[-1]
        y = block.ln_1(x)
        v = F.linear(y, attn.in_proj_weight[2 * c :], attn.in_proj_bias[2 * c :])
        v = attn.out_proj(v)
        v = v + x[:, :1]
        return v + block.mlp(block.ln_2(v))

    def _encode_dense(self, x: torch.Tensor, taps: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (N, 3, H, W) -> dense embeddings (N, D, h, w) and token maps after blocks ``taps`` (N, C, h, w)."""
        visual = self.model.visual
        x = visual.conv1(x)
        n, c, h, w = x.shape
        x = x.reshape(n, c, h * w).permute(0, 2, 1)
        cls = visual.class_embedding.to(x.dtype).expand(n, 1, c)
        x = torch.cat([cls, x], dim=1) + self._pos_embed((h, w)).to(x.dtype)
        x = visual.ln_pre(x)
        blocks = visual.transformer.resblocks
        outputs = {}
        for i, block in enumerate(blocks[:-1], start=1):
            x = block(x)
            if i in taps:
                outputs[i] = x[:, 1:].permute(0, 2, 1).reshape(n, c, h, w)
        tapped = [outputs[t] for t in taps]
        x = self._dense_last_block(blocks[-1], x)
        x = visual.ln_post(x[:, 1:]) @ visual.proj
        return x.permute(0, 2, 1).reshape(n, -1, h, w), tapped

    def _unit(self, dense: torch.Tensor) -> torch.Tensor:
        """L2-normalise over channels (dim 1), in fp32 when the correlation is computed in fp32."""
        return F.normalize(dense.float() if self.cfg.fp32_correlation else dense, dim=1)

    def _resized(self, x: torch.Tensor) -> torch.Tensor:
        """x resized to ``clip_resolution`` (bilinear, no antialiasing, as CAT-Seg's ``clip_images_resized``)."""
        size = self.cfg.clip_resolution
        if not size or tuple(x.shape[-2:]) == (size, size):
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    def image_features(self, x: torch.Tensor, with_guidance: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, 3, H, W) CLIP-normalised, square when rotating -> ((B, R, D, h, w) normalised, guidance maps).

        With ``clip_resolution`` the input is first resized to it (then h = w = clip_resolution / patch).
        Guidance maps (unrotated pass, ``with_guidance`` only): [final features before normalisation (B, D, h, w),
        tokens after block L/3 (B, C, h, w), after block 2L/3 (B, C, h, w)]; else [].
        """
        x = self._resized(x)
        b = x.shape[0]
        taps = self.guidance_taps if with_guidance else ()
        if not self.rotations:
            dense, tapped = self._encode_dense(x, taps)
            return self._unit(dense).unsqueeze(1), ([dense, *tapped] if with_guidance else [])
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"rotations need a square input, got {tuple(x.shape[-2:])}")
        if self.cfg.batch_rotations:
            dense, tapped = self._encode_dense(rotate_batch(x), taps)  # one batched forward for all rotations
        else:  # reference style: one forward per rotation (for benchmarks)
            parts = [self._encode_dense(torch.rot90(x, k, dims=(-2, -1)), taps) for k in range(4)]
            dense = torch.cat([p[0] for p in parts])
            tapped = [torch.cat([p[1][i] for p in parts]) for i in range(len(taps))]
        maps = [dense[:b], *(t[:b] for t in tapped)] if with_guidance else []  # guidance from the unrotated pass
        return rotate_back(self._unit(dense), b), maps

    # -- text --------------------------------------------------------------------------------------------------
    def _encode_prompts(self, names: list[str]) -> torch.Tensor:
        """Embeddings (K, P, D) for K class names (synonyms averaged per prompt, then renormalised)."""
        groups = [split_class_name(n) for n in names]
        flat = [s for g in groups for s in g]
        texts = [t.format(s) for s in flat for t in self.templates]
        device = self.model.token_embedding.weight.device
        tokens = self.tokenizer(texts, context_length=self.cfg.clip.context_length).to(device)
        emb = self.model.encode_text(tokens)
        emb = F.normalize(emb.float() if self.cfg.fp32_correlation else emb, dim=-1)
        emb = emb.reshape(len(flat), len(self.templates), -1)
        out, start = [], 0
        for g in groups:
            out.append(F.normalize(emb[start : start + len(g)].mean(0), dim=-1))
            start += len(g)
        return torch.stack(out)

    def _weights_version(self) -> int:
        """Grows with every in-place change of a CLIP weight (optimizer steps, ``load_state_dict``, edits)."""
        return sum(p._version for p in self.model.parameters())

    def text_features(self, names: list[str]) -> torch.Tensor:
        """(K, P, D) class embeddings; cached while the text tower cannot change (evaluation).

        The cache is dropped by ``train()`` and ``load_state_dict``, and keyed by device, dtype and a weights
        version, so embeddings of other weights are never returned."""
        if self.text_trainable:
            return self._encode_prompts(names)
        weight = self.model.token_embedding.weight
        kind = weight.device.type
        amp = torch.get_autocast_dtype(kind) if autocast_on(kind) else None
        key = (tuple(names), weight.device, weight.dtype, amp, self._weights_version())
        if key not in self._text_cache:
            with torch.no_grad():
                self._text_cache[key] = self._encode_prompts(names)
            while len(self._text_cache) > 8:
                self._text_cache.popitem(last=False)
        return self._text_cache[key]
