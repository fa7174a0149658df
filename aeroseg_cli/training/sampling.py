"""Training samples and the seeded stream that orders them.

Every random choice of a sample (crop, jitter, flip) comes from a seed fixed by the sample's position in a seeded
stream, not from worker state, so an interrupted and resumed run sees exactly the data of an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from aeroseg_cli.datasets.readers import SegmentationDataset
from aeroseg_cli.datasets.specs import IGNORE
from aeroseg_cli.training.augment import train_augment


class TrainSamples(Dataset):
    """(index, seed) -> image (3, crop, crop) float in [0, 1], mask (crop, crop) of seen-class ids / 255."""

    def __init__(self, data: SegmentationDataset, crop: int, seen: list[str], max_category_area: float) -> None:
        self.data, self.crop, self.max_area = data, crop, max_category_area
        self.lut = np.full(256, IGNORE, np.int64)
        for i, name in enumerate(data.spec.classes):
            if name in seen:
                self.lut[i] = seen.index(name)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key
        image, mask = self.data.load(index)
        image, mask = train_augment(image, mask, self.crop, np.random.default_rng(seed), self.max_area)
        mask = self.lut[np.clip(mask, 0, 255)]
        return torch.from_numpy(image).permute(2, 0, 1) / 255.0, torch.from_numpy(mask)


class SeededStream(Sampler):
    """An endless stream of (index, seed): epoch-wise permutations from ``seed``; rank r takes every world-th item.

    Starting at any position reproduces exactly the items an uninterrupted stream would give there.
    """

    def __init__(self, n: int, seed: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.start, self.rank, self.world = n, seed, start, rank, world

    def item(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.n)
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return int(perm[offset]), int(np.random.default_rng([self.seed, 1_000_003, position]).integers(2**31))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        position = self.start + self.rank
        while True:
            yield self.item(position)
            position += self.world

    def __len__(self) -> int:  # endless; DataLoader only needs a number
        return 2**62
