"""Person boxes in decoded images -> keypoints in image pixels: crops, network, flip test and decoding on the device.

The CPU decodes images (data.images workers); everything after the upload runs batched on the device:
the affine crops of all persons of a batch in one pass, one forward over the plain and mirrored crops
together, flip-back, decoding and the inverse affine. Only the final keypoints (and heatmaps, when asked)
come back to the host, one batch behind, so the host never waits on the device while work is queued.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from hrpose_cli.core import codec, geometry
from hrpose_cli.core.schema import KeypointSchema, for_joints
from hrpose_cli.data.images import ImageBatch, PackedImages
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.engine.stage_clock import StageClock
from hrpose_cli.errors import HrposeError
from hrpose_cli.model.hrnet import HRNetConfig


@dataclass(frozen=True)
class PersonBox:
    """One person to estimate: its index in the caller's list, its box (x, y, w, h; None for the whole
    image, resolved once the image is decoded) and the box's score."""

    index: int
    bbox: tuple[float, float, float, float] | None
    score: float = 1.0


@dataclass
class CropBatch:
    """Crops of one batch on the device, with the geometry needed to map heatmap peaks back to the image."""

    inputs: torch.Tensor  # (N, 3, H, W) normalised
    crop_to_image: torch.Tensor  # (N, 2, 3)
    centers: np.ndarray
    scales: np.ndarray


@dataclass
class Timing:
    """Where the wall time went: waiting for decoded images vs. everything else, and seconds per stage
    (StageClock: data_wait, upload, detector where it runs, warps, network, decode)."""

    persons: int = 0
    images: int = 0
    data_wait_s: float = 0.0
    total_s: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def persons_per_s(self) -> float:
        return self.persons / self.total_s if self.total_s else 0.0

    @property
    def data_wait_fraction(self) -> float:
        return self.data_wait_s / self.total_s if self.total_s else 0.0


@dataclass
class Estimates:
    """Outputs for a list of person boxes, in their order (rows of failed images stay NaN)."""

    keypoints: np.ndarray  # (N, J, 3): x, y in image pixels, score
    boxes: np.ndarray  # (N, 4): the person boxes used, x, y, w, h
    centers: np.ndarray  # (N, 2)
    scales: np.ndarray  # (N, 2), in units of 200 pixels, padded as the crop was
    heatmaps: np.ndarray | None  # (N, J, h, w) float32 when kept
    failures: list[str] = field(default_factory=list)
    timing: Timing = field(default_factory=Timing)


class PoseGraph(nn.Module):
    """The network with the flip test and argmax decoding folded in: normalised crops (N, 3, H, W) ->
    heatmaps (N, J, h, w) float32, peaks (N, J, 2) in heatmap pixels and their scores (N, J).

    The one home of the test-time network rules: Predictor runs it in torch and `hrpose export` writes
    this same module to ONNX, so both give the same keypoints.
    """

    def __init__(self, net: nn.Module, flip_perm: torch.Tensor, flip: bool = True, channels_last: bool = False):
        super().__init__()
        self.net = net
        self.flip = flip
        self.channels_last = channels_last
        self.register_buffer("flip_perm", flip_perm.long(), persistent=False)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = inputs.shape[0]
        batch = torch.cat([inputs, inputs.flip(-1)]) if self.flip else inputs
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        out = self.net(batch).float()
        if self.flip:  # the mirrored half, flipped back with the official one-column shift, averaged
            out = (out[:n] + codec.flip_back(out[n:], self.flip_perm, shift=True)) * 0.5
        coords, scores = codec.decode_argmax(out)
        return out, coords, scores


class PoseRunner(Protocol):
    """What Predictor calls for the network outputs: a PoseGraph, or an ONNX model through onnxruntime."""

    flip: bool

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


class Predictor:
    """A model on a device with its test-time rules: crop, (flip) forward, decode, map back."""

    def __init__(
        self,
        model: nn.Module | PoseRunner,
        config: HRNetConfig,
        runtime: Runtime,
        flip: bool = True,
        decode: str = "argmax",
        sigma: float | None = None,
        pad_batches_to: int | None = None,
        schema: KeypointSchema | None = None,
    ):
        """``model`` is the torch network, or a PoseRunner with the flip test already inside (an ONNX model,
        whose ``flip`` must be ``flip``). ``pad_batches_to`` pads every batch to that many persons: the network
        then sees one shape, so torch.compile compiles (and cuDNN autotunes) once, not again for every new batch
        size, and on CUDA (runtime.cuda_graphs) the forward is replayed as one recorded CUDA graph. ``schema`` is
        the model's keypoint set (its flip pairs drive the flip test); None: that of a file carrying none
        (COCO-17 for 17 joints)."""
        self.config = config
        self.warm_up_s = 0.0  # set by warm_up
        self.schema = schema if schema is not None else for_joints(config.num_joints)
        if self.schema.num_joints != config.num_joints:
            raise HrposeError(f"the network predicts {config.num_joints} keypoints, its set names {self.schema.num_joints}")
        self.pad_batches_to = pad_batches_to
        self.runtime = runtime
        self.flip = flip
        self.decode_method = decode
        self.input_hw = config.input_size
        self.heatmap_hw = config.heatmap_size
        self.stride = self.input_hw[1] / self.heatmap_hw[1]
        self.sigma = sigma if sigma is not None else 2.0 * self.input_hw[0] / 256
        self.flip_perm = torch.from_numpy(self.schema.flip_permutation()).to(runtime.device)
        if isinstance(model, nn.Module):
            self.model: nn.Module | None = runtime.prepare(model.eval())
            self.graph: PoseRunner = PoseGraph(self.model, self.flip_perm, flip, runtime.channels_last)
            if pad_batches_to and runtime.cuda_graphs and runtime.device.type == "cuda":
                from hrpose_cli.engine.graphed import GraphedPose

                self.graph = GraphedPose(self.graph, runtime, (pad_batches_to, 3, *self.input_hw))
        else:
            if model.flip != flip:
                raise ValueError("the runner's flip test setting differs from the predictor's")
            self.model, self.graph = None, model

    @property
    def aspect_ratio(self) -> float:
        return self.input_hw[1] / self.input_hw[0]

    def crops(self, images: PackedImages, image_index: np.ndarray, boxes: np.ndarray) -> CropBatch:
        """Normalised input crops for person boxes (N, 4) in packed images already on the device."""
        centers, scales = geometry.box_to_center_scale(boxes, self.aspect_ratio)
        out_wh = (self.input_hw[1], self.input_hw[0])
        crop_to_image = self.runtime.upload(geometry.crop_matrices(centers, scales, out_wh, inverse=True), torch.float32)
        index = self.runtime.upload(np.asarray(image_index, dtype=np.int64))
        raw = geometry.warp_crops(images.pixels, images.offsets, images.shapes, index, crop_to_image, out_wh)
        return CropBatch(geometry.normalize(raw), crop_to_image, centers, scales)

    def warm_up(self) -> None:
        """One forward of the padded batch shape: compile, autotune (if asked) and record the CUDA graph before
        any timed work; its seconds are kept as ``warm_up_s`` (what --compile costs a command is most of them)."""
        start = time.perf_counter()
        h, w = self.input_hw
        self.heatmaps(torch.zeros((self.pad_batches_to or 1, 3, h, w), device=self.runtime.device))
        self.runtime.synchronize()
        self.warm_up_s = time.perf_counter() - start

    @torch.inference_mode()
    def outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Heatmaps (N, J, h, w) float32 (with flip test, averaged with the flipped-back mirror's), peaks
        (N, J, 2) in heatmap pixels and scores (N, J) by the predictor's decoding method."""
        n = len(inputs)
        if self.pad_batches_to and n < self.pad_batches_to:
            inputs = torch.cat([inputs, inputs.new_zeros((self.pad_batches_to - n, *inputs.shape[1:]))])
        with self.runtime.autocast():
            heatmaps, coords, scores = self.graph(inputs)
        heatmaps, coords, scores = heatmaps[:n].float(), coords[:n], scores[:n]
        if self.decode_method != "argmax":  # the graph decodes argmax; others decode its heatmaps here
            coords, scores = codec.decode(heatmaps, self.decode_method, self.sigma)
        return heatmaps, coords, scores

    def heatmaps(self, inputs: torch.Tensor) -> torch.Tensor:
        """Network heatmaps (N, J, h, w) float32; with flip test, averaged with the flipped-back mirror's."""
        return self.outputs(inputs)[0]

    @torch.inference_mode()
    def decode(self, heatmaps: torch.Tensor, crop_to_image: torch.Tensor) -> torch.Tensor:
        """Heatmaps -> keypoints (N, J, 3) in image pixels with peak scores, on the device."""
        coords, scores = codec.decode(heatmaps, self.decode_method, self.sigma)
        return self.to_image(coords, scores, crop_to_image)

    def to_image(self, coords: torch.Tensor, scores: torch.Tensor, crop_to_image: torch.Tensor) -> torch.Tensor:
        """Peaks in heatmap pixels and their scores -> keypoints (N, J, 3) in image pixels."""
        image_xy = geometry.apply_affine(coords * self.stride, crop_to_image)
        return torch.cat([image_xy, scores.unsqueeze(-1)], dim=-1)

    def run(self, images: PackedImages, image_index: np.ndarray, boxes: np.ndarray, keep_heatmaps: bool = False,
            clock: StageClock | None = None):
        """One batch, left on the device: (keypoints (N, J, 3), heatmaps or None, crop batch). ``clock``
        times its stages: warps, network (flip test and argmax peaks included), decode."""
        clock = clock or StageClock(enabled=False)
        crop = self.crops(images, image_index, boxes)
        clock.lap("warps")
        heatmaps, coords, scores = self.outputs(crop.inputs)
        clock.lap("network")
        keypoints = self.to_image(coords, scores, crop.crop_to_image)
        clock.lap("decode")
        return keypoints, (heatmaps if keep_heatmaps else None), crop


BoxesOf = Callable[[ImageBatch, PackedImages], Sequence[Sequence[PersonBox]]]


def per_image(boxes_of: Callable[[object, tuple[int, int]], Sequence[PersonBox]]) -> BoxesOf:
    """A BoxesOf from a function of one image's item and (height, width): persons known before decoding."""

    def of_batch(batch: ImageBatch, _images: PackedImages) -> list[Sequence[PersonBox]]:
        shapes = batch.images.shapes
        return [boxes_of(item, (int(shapes[i, 0]), int(shapes[i, 1]))) for i, item in enumerate(batch.items)]

    return of_batch


def estimate(
    predictor: Predictor,
    batches: Iterable[ImageBatch],
    boxes_of: BoxesOf,
    count: int | None = None,
    keep_heatmaps: bool = False,
    skip_bad_images: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> Estimates:
    """Run ``predictor`` over decoded image batches; ``boxes_of(batch, images on the device)`` names each
    image's persons (given boxes, or a detector's).

    ``count`` is the number of person indices (None: as many as boxes_of named). A batch's results are
    fetched after the next batch has been queued on the device, so decoding, the upload and the network
    overlap. ``on_batch(images, persons)`` is called as each batch completes (for progress bars).
    """
    j = predictor.config.num_joints
    h, w = predictor.heatmap_hw
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, CropBatch, np.ndarray | None]] = []
    timing = Timing()
    failures: list[str] = []
    pending = None
    clock = StageClock(predictor.runtime.device)

    def collect(done) -> None:
        indices, used_boxes, kps, hms, crop, n_images = done
        chunks.append((indices, used_boxes, kps.cpu().numpy(), crop, None if hms is None else hms.cpu().numpy()))
        timing.persons += len(indices)
        timing.images += n_images
        if on_batch:
            on_batch(n_images, len(indices))

    start = time.perf_counter()
    iterator: Iterator[ImageBatch] = iter(batches)
    while True:
        wait_start = time.perf_counter()
        batch = next(iterator, None)
        waited = time.perf_counter() - wait_start
        timing.data_wait_s += waited
        clock.add("data_wait", waited)
        clock.mark()
        if batch is None:
            break
        for item, problem in batch.failures:
            if not skip_bad_images:
                raise HrposeError(f"{problem}; add --skip-bad-images to go on without it")
            failures.append(problem)
        if not batch.items:
            continue
        images = batch.images.to(predictor.runtime.device)
        clock.lap("upload")
        indices, image_index, boxes = [], [], []
        for i, people in enumerate(boxes_of(batch, images)):
            for person in people:
                indices.append(person.index)
                image_index.append(i)
                boxes.append(person.bbox)
        if getattr(boxes_of, "stage", None):  # a BoxesOf that runs a network (the detector) is a stage of its own
            clock.lap(boxes_of.stage)  # type: ignore[attr-defined]
        if not indices:
            timing.images += len(batch.items)
            continue
        boxes_array = np.array(boxes, dtype=np.float64)
        kps, hms, crop = predictor.run(images, np.array(image_index), boxes_array, keep_heatmaps, clock)
        if pending is not None:
            collect(pending)
        pending = (np.array(indices), boxes_array, kps, hms, crop, len(batch.items))
    if pending is not None:
        collect(pending)
    predictor.runtime.synchronize()
    timing.total_s = time.perf_counter() - start
    timing.stages = clock.seconds()

    if count is None:
        count = max((int(c[0].max()) + 1 for c in chunks), default=0)
    keypoints = np.full((count, j, 3), np.nan, dtype=np.float64)
    person_boxes = np.full((count, 4), np.nan)
    centers = np.zeros((count, 2))
    scales = np.zeros((count, 2))
    heatmaps = np.zeros((count, j, h, w), dtype=np.float32) if keep_heatmaps else None
    for indices, used_boxes, kps, crop, hms in chunks:
        keypoints[indices] = kps
        person_boxes[indices] = used_boxes
        centers[indices] = crop.centers
        scales[indices] = crop.scales
        if heatmaps is not None:
            heatmaps[indices] = hms
    return Estimates(keypoints, person_boxes, centers, scales, heatmaps, failures, timing)


def group_by_image(paths: Sequence, persons: Sequence[PersonBox], batch_size: int) -> list[list[tuple[object, list[PersonBox]]]]:
    """Batches of (image path, its persons) holding at most ``batch_size`` persons (or one image), in order."""
    by_image: dict = {}
    for path, person in zip(paths, persons):
        by_image.setdefault(path, []).append(person)
    batches: list[list[tuple[object, list[PersonBox]]]] = []
    current: list[tuple[object, list[PersonBox]]] = []
    filled = 0
    for path, people in by_image.items():
        if current and filled + len(people) > batch_size:
            batches.append(current)
            current, filled = [], 0
        current.append((path, people))
        filled += len(people)
    if current:
        batches.append(current)
    return batches
