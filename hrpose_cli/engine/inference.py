"""`predict`'s engine: which persons to estimate in which images or video frames, and running them.

Persons come from explicit boxes (``--bbox``), a COCO detection results file (``--boxes``), the person
detector run on each decoded batch, or (``--detector none``) the whole image as one person. Whole-image
boxes are resolved once the image is decoded.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch

from hrpose_cli.data.coco import PERSON_CATEGORY
from hrpose_cli.data.images import ImageBatch, PackedImages, batch_loader
from hrpose_cli.engine.detector import Detections, PersonDetector
from hrpose_cli.engine.onnx_pose import OnnxPose, cuda_provider_available, is_onnx
from hrpose_cli.engine.predictor import Estimates, PersonBox, Predictor, estimate, group_by_image, per_image
from hrpose_cli.engine.runtime import Runtime, precision_amp, resolve_device
from hrpose_cli.errors import HrposeError
from hrpose_cli.model.checkpoints import checkpoint_schema, default_model_note, load_model
from hrpose_cli.model.hrnet import fold_batchnorm, fuse_blocks


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """'x,y,w,h' in pixels -> a box; a one-line error for anything else or a box of no size."""
    parts = text.replace(" ", "").split(",")
    try:
        box = tuple(float(p) for p in parts)
    except ValueError:
        raise HrposeError(f"--bbox {text!r}: expected four numbers x,y,w,h") from None
    if len(box) != 4 or not all(np.isfinite(box)):
        raise HrposeError(f"--bbox {text!r}: expected four numbers x,y,w,h")
    if box[2] <= 0 or box[3] <= 0:
        raise HrposeError(f"--bbox {text!r}: width and height must be positive")
    return box  # type: ignore[return-value]


def load_predictor(
    weights: Path | None,
    device: str = "auto",
    flip: bool = True,
    decode: str = "argmax",
    compile: bool = False,
    input_size: tuple[int, int] | None = None,
    batch_size: int | None = None,
    precision: str = "auto",
    autotune: bool = False,
) -> Predictor:
    """A Predictor for a checkpoint (hrpose or official), an ONNX model made by `hrpose export` (run by
    onnxruntime), or the embedded default model when ``weights`` is None. ``precision``: auto (bf16 on CUDA,
    fp32 on the CPU), fp32 or bf16 (runtime.PRECISIONS).

    ``autotune`` (cuDNN's, on CUDA) is off by default: on one H100, `hrpose eval` of 8,062 persons spent 1.5-2.3 s
    more warming up with it and won back 0.1-0.2 s of network time, so it pays only from about 64,000 (w16)
    to 161,000 (W32) persons (benchmarks/speed/h100_s36_autotune_*.json)."""
    runtime = Runtime.create(device, compile=compile, amp=precision_amp(precision), autotune=autotune)
    if is_onnx(weights):
        if precision != "auto":
            raise HrposeError(f"{weights}: --precision applies to torch networks; an ONNX model runs as it was "
                              "exported (hrpose export --half for fp16)")
        if (device or "auto").lower() == "auto" and runtime.device.type == "cuda" and not cuda_provider_available():
            runtime = Runtime.create("cpu")  # auto: where onnxruntime has no CUDA provider, it runs on the CPU
        return _onnx_predictor(Path(weights), runtime, flip, decode, compile, input_size)
    model, config = load_model(weights, input_size=input_size)
    # Inference only: each BatchNorm folded into its convolution is one pass over a feature map fewer
    # (CPU: 83-88 ms a person instead of 115-123; the GPU rows of benchmarks/bench_speed.py's network section).
    model = fold_batchnorm(model, inplace=True)
    if runtime.device.type == "cuda":  # --compile then compiles only the fusions (engine/compiling)
        model = fuse_blocks(model)
    if runtime.amp:  # autocast would cast every weight to bf16 at every call; cuDNN's fused calls need them so
        model = model.to(torch.bfloat16)
    # On CUDA every batch is padded to one shape, so --compile compiles (and cuDNN, when asked, autotunes) once,
    # here, while the decoding workers fill their queue, instead of again for every new batch size.
    pad = batch_size if runtime.device.type == "cuda" else None
    predictor = Predictor(model, config, runtime, flip=flip, decode=decode, pad_batches_to=pad,
                          schema=checkpoint_schema(weights))
    if pad:
        predictor.warm_up()
    return predictor


def _onnx_predictor(path: Path, runtime: Runtime, flip: bool, decode: str, compile: bool,
                    input_size: tuple[int, int] | None) -> Predictor:
    """The Predictor with an exported model in onnxruntime as its network; the flip test is the file's."""
    if compile:
        raise HrposeError(f"{path}: --compile compiles torch networks; an ONNX model runs in onnxruntime as it is")
    runner = OnnxPose(path, runtime, input_size)
    if runner.flip != flip:
        made, asked = ("with", "--no-flip") if runner.flip else ("without", "--flip (the default)")
        raise HrposeError(f"{path}: exported {made} the flip test inside, but {asked} was asked: "
                          f"pass {'--flip' if runner.flip else '--no-flip'} or export again")
    return Predictor(runner, runner.config, runtime, flip=flip, decode=decode, schema=runner.schema)


def default_note(predictor: Predictor, weights: Path | None) -> str | None:
    """The default model's caveat when the predictor runs it (as shipped, or exported to ONNX), else None."""
    if weights is None:
        return default_model_note()
    return getattr(predictor.graph, "default_note", None)


def image_id_of(path: Path) -> int | None:
    """COCO-style ids are the trailing digits of the file name (000000397133.jpg -> 397133)."""
    match = re.search(r"(\d+)$", path.stem)
    return int(match.group(1)) if match else None


def match_detections(images: Sequence[Path], detections: Sequence[dict]) -> tuple[dict[Path, list[dict]], list[dict]]:
    """Each person detection's image: by ``file_name`` first (its last part), else by ``image_id`` as the file
    name's trailing digits. Returns the detections per image and those that matched no image."""
    by_name = {path.name: path for path in images}
    by_id: dict[int, list[Path]] = {}
    for path in images:
        if (image_id := image_id_of(path)) is not None:
            by_id.setdefault(image_id, []).append(path)
    matched: dict[Path, list[dict]] = {}
    unmatched: list[dict] = []
    for det in detections:
        if det.get("category_id", PERSON_CATEGORY) != PERSON_CATEGORY:
            continue
        name = Path(str(det["file_name"])).name if "file_name" in det else None
        targets = [by_name[name]] if name in by_name else by_id.get(det.get("image_id"), [])
        for path in targets:
            matched.setdefault(path, []).append(det)
        if not targets:
            unmatched.append(det)
    return matched, unmatched


def boxes_from_detections(
    images: Sequence[Path], detections: Sequence[dict], min_box_score: float = 0.0
) -> tuple[list[np.ndarray], list[np.ndarray], list[dict]]:
    """Per image its detections' boxes (N, 4) and scores scored at least ``min_box_score``; and the detections
    that matched no image (for the summary: they would otherwise vanish without a word)."""
    matched, unmatched = match_detections(images, detections)
    boxes, scores = [], []
    for path in images:
        kept = [det for det in matched.get(path, []) if det.get("score", 1.0) >= min_box_score]
        boxes.append(np.array([[float(v) for v in det["bbox"]] for det in kept], dtype=np.float64).reshape(-1, 4))
        scores.append(np.array([float(det.get("score", 1.0)) for det in kept], dtype=np.float64))
    return boxes, scores, unmatched


def _resolve(people: Sequence[PersonBox], shape: tuple[int, int]) -> list[PersonBox]:
    height, width = shape
    return [p if p.bbox is not None else replace(p, bbox=(0.0, 0.0, float(width), float(height))) for p in people]


def _resolve_inside(paths: Sequence[Path]) -> Callable[[Sequence[PersonBox], tuple[int, int]], list[PersonBox]]:
    """_resolve, and a given box wholly outside its image (paths[person.index]) is an error naming both:
    its crop would be padding only, a score-0 person reported as if it were found."""

    def resolve(people: Sequence[PersonBox], shape: tuple[int, int]) -> list[PersonBox]:
        height, width = shape
        for person in people:
            if person.bbox is None:
                continue
            x, y, w, h = person.bbox
            if x >= width or y >= height or x + w <= 0 or y + h <= 0:
                raise HrposeError(f"{paths[person.index]}: box {x:g},{y:g},{w:g},{h:g} lies wholly outside "
                                  f"the {width}x{height} image")
        return _resolve(people, shape)

    return resolve


def decode_images(
    paths: Sequence[Path], persons: Sequence[PersonBox], batch_size: int, workers: int | None, device: str
) -> Iterator[ImageBatch]:
    """Start decoding in worker processes now, batched across images, so they work while the model loads."""
    batches = group_by_image(list(paths), list(persons), batch_size)
    return iter(batch_loader(batches, workers, pin_memory=resolve_device(device).type == "cuda"))


class DetectedPeople:
    """The persons of each batch as the detector finds them, numbered in the order found (a BoxesOf).

    ``found`` keeps, per person, the caller's item of its image; ``per_item`` every image's detections,
    so that images where nobody was found can be told apart from images that failed to decode.
    """

    stage = "detector"  # estimate() times it as a stage of its own

    def __init__(self, detector: PersonDetector):
        self.detector = detector
        self.per_item: list[tuple[object, Detections]] = []
        self.count = 0

    def __call__(self, batch: ImageBatch, images: PackedImages) -> list[list[PersonBox]]:
        people: list[list[PersonBox]] = []
        for item, found in zip(batch.items, self.detector.detect(images)):
            self.per_item.append((item, found))
            people.append([PersonBox(self.count + k, tuple(float(v) for v in box), float(score))
                           for k, (box, score) in enumerate(zip(found.boxes, found.scores))])
            self.count += len(found.scores)
        return people

    @property
    def found(self) -> list[object]:
        """Per person, in index order, the item of its image."""
        return [item for item, found in self.per_item for _ in found.scores]

    @property
    def scores(self) -> np.ndarray:
        """Per person, in index order, its detection score."""
        return np.concatenate([found.scores for _, found in self.per_item]) if self.per_item else np.zeros(0)


def images_per_detection_batch(batch: int, device_type: str) -> int:
    """Images per batch when the detector finds the persons: ``batch`` on a GPU; on the CPU at most 8, so that
    the first results (and the progress bar) do not wait for 64 photos' worth of detection."""
    return batch if device_type == "cuda" else max(1, min(batch, 8))


def load_detector(predictor: Predictor, threshold: float, detector: str = "nanodet") -> PersonDetector:
    """The shipped person detector on the pose model's runtime (``detector`` a .onnx export: in onnxruntime)."""
    return PersonDetector(predictor.runtime, threshold, onnx=Path(detector) if is_onnx(detector) else None)


def predict_images(
    predictor: Predictor,
    decoded: Iterator[ImageBatch],
    count: int | None,
    keep_heatmaps: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
    people: DetectedPeople | None = None,
    paths: Sequence[Path] = (),
    skip_bad_images: bool = False,
) -> Estimates:
    """Estimate the ``count`` planned persons of decode_images' batches, or with ``people`` whoever the detector finds.

    ``paths`` (per planned person, its image) names the image of a given box that misses it."""
    boxes_of = people if people is not None else per_image(_resolve_inside(paths))
    return estimate(predictor, decoded, boxes_of, count, keep_heatmaps, skip_bad_images, on_batch=on_batch)


@dataclass
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int


def open_video(path: Path) -> tuple[cv2.VideoCapture, VideoInfo]:
    # FFmpeg would print its own complaint about a broken file; our one-line error says it instead.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise HrposeError(f"{path}: cannot open the video (corrupt or unsupported format)")
    info = VideoInfo(
        int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
        capture.get(cv2.CAP_PROP_FPS) or 30.0,
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    return capture, info


def video_frames(capture: cv2.VideoCapture, frames_per_batch: int) -> Iterator[list[np.ndarray]]:
    """Decoded frames in groups, read by a background thread so decoding overlaps the device."""
    chunks: queue.Queue = queue.Queue(maxsize=4)

    def reader() -> None:
        chunk: list[np.ndarray] = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            chunk.append(frame)
            if len(chunk) == frames_per_batch:
                chunks.put(chunk)
                chunk = []
        chunks.put(chunk)
        chunks.put(None)

    threading.Thread(target=reader, daemon=True).start()
    while (chunk := chunks.get()) is not None:
        if chunk:
            yield chunk


def predict_frames(
    predictor: Predictor,
    frames: Sequence[np.ndarray],
    bboxes: Sequence[tuple[float, float, float, float]] = (),
    keep_heatmaps: bool = False,
    detector: PersonDetector | None = None,
) -> tuple[Estimates, list[int], np.ndarray]:
    """Estimate persons in a group of frames: the given boxes, the detector's, or the whole frame.

    Returns the estimates, per person the index of its frame in the group, and per person its box score.
    """
    if detector is not None:
        people = DetectedPeople(detector)
        batch = ImageBatch(PackedImages.pack(frames), list(range(len(frames))))
        estimates = estimate(predictor, [batch], people, None, keep_heatmaps)
        return estimates, [int(f) for f in people.found], people.scores
    per_frame = list(bboxes) or [None]
    persons = [[PersonBox(f * len(per_frame) + k, box) for k, box in enumerate(per_frame)] for f in range(len(frames))]
    batch = ImageBatch(PackedImages.pack(frames), persons)
    estimates = estimate(predictor, [batch], per_image(_resolve), len(frames) * len(per_frame), keep_heatmaps)
    return estimates, [f for f in range(len(frames)) for _ in per_frame], np.ones(len(frames) * len(per_frame))
