"""Image decoding on the CPU, packed for the GPU.

The CPU only decodes: worker processes read JPEGs with OpenCV and pack a batch of images of any sizes into
one flat uint8 tensor (pinned), which the engine copies to the device and crops there in one pass. A person
batch names, for every person, which packed image it sits in, so crops, flips and targets are all built on
the device. Decoding errors travel back as data (never as a worker traceback), so the engine can stop with
a one-line message naming the file, or skip it and count it.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hrpose_cli.data.image_file import read_image
from hrpose_cli.errors import HrposeError

cv2.setNumThreads(1)  # one decoder per worker process; the workers give the parallelism

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclass
class PackedImages:
    """Several decoded images in one flat uint8 tensor: image i is pixels[offsets[i]:][:H*W*3] as HWC BGR."""

    pixels: torch.Tensor
    offsets: torch.Tensor
    shapes: torch.Tensor  # (N, 2) height, width

    @staticmethod
    def pack(images: Sequence[np.ndarray]) -> "PackedImages":
        sizes = np.array([im.size for im in images], dtype=np.int64)
        pixels = torch.empty(int(sizes.sum()), dtype=torch.uint8)
        start = 0
        for image, size in zip(images, sizes):
            pixels[start : start + size] = torch.from_numpy(np.ascontiguousarray(image).reshape(-1))
            start += size
        offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64))
        shapes = torch.tensor([im.shape[:2] for im in images], dtype=torch.int64).reshape(-1, 2)
        return PackedImages(pixels, offsets, shapes)

    def pin_memory(self) -> "PackedImages":
        return PackedImages(self.pixels.pin_memory(), self.offsets.pin_memory(), self.shapes.pin_memory())

    def to(self, device: torch.device) -> "PackedImages":
        nb = device.type == "cuda"
        return PackedImages(
            self.pixels.to(device, non_blocking=nb),
            self.offsets.to(device, non_blocking=nb),
            self.shapes.to(device, non_blocking=nb),
        )

    def image(self, i: int) -> np.ndarray:
        """Image i back as an HxWx3 BGR numpy array (on the CPU)."""
        h, w = (int(v) for v in self.shapes[i])
        start = int(self.offsets[i])
        return self.pixels[start : start + h * w * 3].cpu().numpy().reshape(h, w, 3)


@dataclass
class ImageBatch:
    """One batch as the loader hands it over: the decoded images and what the caller attached to each item."""

    images: PackedImages
    items: list  # the caller's items, in order, one per image that decoded
    failures: list[tuple[object, str]] = field(default_factory=list)  # (item, one-line problem)

    def pin_memory(self) -> "ImageBatch":
        return ImageBatch(self.images.pin_memory(), self.items, self.failures)


class _DecodeBatches(Dataset):
    """Each index is one batch: a list of (path, item) pairs, decoded and packed in a worker."""

    def __init__(self, batches: list[list[tuple[Path, object]]]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> ImageBatch:
        images, items, failures = [], [], []
        for path, item in self.batches[index]:
            try:
                images.append(read_image(path))
                items.append(item)
            except HrposeError as err:
                failures.append((item, str(err)))
        packed = PackedImages.pack(images) if images else PackedImages.pack([np.zeros((1, 1, 3), np.uint8)])
        return ImageBatch(packed, items, failures)


def default_workers() -> int:
    """Decoding processes: every core but one, at most 16 (enough to feed an H100, see HRNET_SPEC.md)."""
    return max(0, min(16, (os.cpu_count() or 1) - 1))


def batch_loader(
    batches: list[list[tuple[Path, object]]], workers: int | None = None, pin_memory: bool = False
) -> Iterable[ImageBatch]:
    """Decode batches of (path, item) pairs in worker processes, in order, a few batches ahead."""
    workers = default_workers() if workers is None else workers
    workers = min(workers, len(batches) - 1)  # one batch decodes faster inline than through a worker
    return DataLoader(
        _DecodeBatches(batches),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
        persistent_workers=False,
        collate_fn=_identity,
        worker_init_fn=_ignore_interrupts,
    )


def _ignore_interrupts(worker_id: int) -> None:
    """Ctrl-C reaches every process of the terminal's group: a worker that died of it under the pin-memory
    thread made that thread print a traceback. The main process alone handles it and shuts the workers down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _identity(batch: ImageBatch) -> ImageBatch:
    return batch


def expand_inputs(inputs: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """Image and video files named by paths, folders (not recursive) and globs, in a stable order."""
    images: list[Path] = []
    videos: list[Path] = []
    for text in inputs:
        path = Path(text)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path().glob(text)) if not path.is_absolute() else sorted(Path(path.anchor).glob(str(path.relative_to(path.anchor))))
            if not matches:
                raise HrposeError(f"{text}: no file matches this pattern")
            candidates = matches
        elif path.is_dir():
            candidates = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not candidates:
                raise HrposeError(f"{path}: no images or videos in this folder")
        elif path.exists():
            candidates = [path]
        else:
            raise HrposeError(f"{path}: no such file or folder")
        for candidate in candidates:
            suffix = candidate.suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                videos.append(candidate)
            elif suffix in IMAGE_SUFFIXES or candidate == path:
                images.append(candidate)
    return images, videos
