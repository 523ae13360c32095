"""The Python API: ``load`` a pose model, ``Model.predict`` keypoints in images, ``Model.evaluate`` it on a
COCO keypoint set, ``evaluate`` results against one.

`hrpose predict` runs images through ``Model.run`` and `hrpose eval` through ``Model.evaluate`` (itself on
``Model.run``): the commands and a script take one path through the engine. Torch is imported here, so
``hrpose_cli`` exposes these names lazily (see its ``__getattr__``).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

import numpy as np

from hrpose_cli.core.oks import rescore
from hrpose_cli.core.schema import COCO17, KeypointSchema
from hrpose_cli.data.images import IMAGE_SUFFIXES, ImageBatch, PackedImages, expand_inputs
from hrpose_cli.engine import inference
from hrpose_cli.engine.detector import PersonDetector
from hrpose_cli.engine.model_eval import RESCORE_THRESHOLD, keypoint_results, person_records
from hrpose_cli.engine.predictor import PersonBox, Predictor, Timing, group_by_image
from hrpose_cli.engine.runtime import precision_amp
from hrpose_cli.engine.stage_clock import StageClock, merge
from hrpose_cli.engine.thresholds import EVAL_THRESHOLD, PREDICT_THRESHOLD, check_det_threshold
from hrpose_cli.errors import HrposeError

Source = Union[str, Path, np.ndarray, Sequence[Union[str, Path, np.ndarray]]]


@dataclass
class Result:
    """The people in one image: boxes (N, 4: x, y, w, h pixels), keypoints (N, K, 3: x, y, score), and scores
    (box score x mean confident joint score, as COCO evaluation ranks them)."""

    path: Path | None
    boxes: np.ndarray
    box_scores: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    heatmaps: np.ndarray | None = None  # (N, K, h, w) when predict(heatmaps=True)
    image: np.ndarray | None = field(default=None, repr=False)  # the BGR array given, for draw()
    schema: KeypointSchema = COCO17  # the model's keypoint set
    best_candidate: float | None = None  # the detector's best box score in the image, kept or not (None: no detector)

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return self.schema.names

    @property
    def skeleton(self) -> tuple[tuple[int, int], ...]:
        """Limbs as 0-based pairs of keypoint indices."""
        return self.schema.skeleton

    def __len__(self) -> int:
        return len(self.scores)

    def to_coco(self, image_id: int | None = None) -> list[dict]:
        """COCO keypoint results records; ``image_id`` defaults to the file name's trailing digits."""
        if image_id is None:
            image_id = inference.image_id_of(self.path) if self.path is not None else None
            if image_id is None:
                raise HrposeError(f"{self.path or 'an in-memory image'}: no image id in its name; pass to_coco(image_id)")
        return [
            {"image_id": int(image_id), "category_id": 1, "bbox": [round(float(v), 2) for v in box],
             "keypoints": [round(float(v), 3) for v in kp.reshape(-1)], "score": float(score)}
            for box, kp, score in zip(self.boxes, self.keypoints, self.scores)
        ]

    def draw(self, score_threshold: float = 0.3) -> np.ndarray:
        """The image (RGB) with every person's box and skeleton drawn."""
        from hrpose_cli.data.images import read_image
        from hrpose_cli.viz.draw import draw_poses

        bgr = self.image if self.image is not None else read_image(self.path)
        return draw_poses(bgr[:, :, ::-1], self.keypoints, self.boxes, self.scores, score_threshold, schema=self.schema)


@dataclass
class Run:
    """What Model.run did: a Result per image that decoded (in input order), and what the command reports."""

    results: list[Result]
    failures: list[str]  # one line per image skipped (skip_bad_images)
    timing: Timing
    device: str


@dataclass
class Evaluation:
    """What Model.evaluate measured on a COCO keypoint set: the ten COCO numbers (AP, AP50, ..., ARl), the
    results records scored, and with boxes="detector" the detector's person boxes and their box AP."""

    stats: dict[str, float]
    results: list[dict] = field(repr=False)  # COCO keypoint results, rescored and OKS-NMS'd per image
    images: int  # in the annotation file
    people: int  # people it annotates
    boxes: str  # "gt", "detector" or the detections file
    det_threshold: float | None  # the detector's score threshold (boxes="detector")
    detections: list[dict] | None = field(repr=False)  # the detector's boxes as COCO detection results
    box_stats: dict[str, float] | None  # their person box AP (pycocotools, iouType bbox), keyed as stats
    failures: list[str]  # one line per image skipped (skip_bad_images); its people count as missed
    timing: Timing
    device: str
    sigmas: np.ndarray | None = None  # the OKS sigmas used (the model's keypoint set's unless given)
    sigma_warning: str | None = None  # why AP with them is not comparable to COCO's (uniform sigmas), if so


class Model:
    """A pose model on a device, with the person detector in front of it (unless loaded with detector=False)."""

    def __init__(self, loader: Callable[[], Predictor], device: str, detector: str | None, det_threshold: float,
                 weights: Path | None = None):
        self._loader = loader
        self.weights = weights  # None: the embedded default model
        self._predictor: Predictor | None = None
        self.load_s = 0.0  # seconds the predictor took to load (compiling and the CUDA graph's recording included)
        self._detector: PersonDetector | None = None
        self.device_name = device
        self.detector_name = detector
        self.det_threshold = det_threshold

    @property
    def predictor(self) -> Predictor:
        """The engine's Predictor, loaded on first use (so the command can start decoding images first)."""
        if self._predictor is None:
            start = time.perf_counter()
            self._predictor = self._loader()
            self.load_s = time.perf_counter() - start
        return self._predictor

    @property
    def detector(self) -> PersonDetector | None:
        if self._detector is None and self.detector_name is not None:
            self._detector = inference.load_detector(self.predictor, self.det_threshold, self.detector_name)
        return self._detector

    def predict(self, source: Source, boxes=None, flip: bool | None = None, batch: int = 64, *,
                rgb: bool = False, heatmaps: bool = False) -> list[Result]:
        """Keypoints of the people in each image of ``source`` (a path, folder, glob, list of paths, or
        H x W x 3 uint8 arrays, BGR unless ``rgb``). ``boxes``: per image an (N, 4) x, y, w, h array (or one
        array for a single image); without them the detector finds the people (or, with no detector, the
        whole image is one person). ``flip`` (default: as loaded) averages in the mirrored image."""
        return self.run(source, boxes, flip=flip, batch=batch, rgb=rgb, heatmaps=heatmaps).results

    def run(self, source: Source, boxes=None, box_scores=None, *, flip: bool | None = None, batch: int = 64,
            rgb: bool = False, heatmaps: bool = False, workers: int | None = None, skip_bad_images: bool = False,
            on_batch: Callable[[int, int], None] | None = None) -> Run:
        """predict, with what the command needs too: box scores per image (from a detections file), decoding
        workers, skipping unreadable images, a progress callback and the timing."""
        keys, arrays = _images(source, rgb)
        per_image_boxes = _per_image(boxes, len(keys))
        detect_at = self.det_threshold if per_image_boxes is None and self.detector_name is not None else None
        return self._run(keys, arrays, per_image_boxes, box_scores, detect_at, flip=flip, batch=batch,
                         heatmaps=heatmaps, workers=workers, skip_bad_images=skip_bad_images, on_batch=on_batch)

    def evaluate(self, ann: str | Path, images: str | Path, boxes: str | Path = "gt", *, flip: bool | None = None,
                 batch: int = 64, workers: int | None = None, det_threshold: float | None = None,
                 sigmas: np.ndarray | None = None, skip_bad_images: bool = False,
                 on_batch: Callable[[int, int], None] | None = None) -> Evaluation:
        """The model on every person of the COCO keypoint set ``ann`` (its images in the folder ``images``),
        scored by pycocotools as `hrpose eval` scores it. ``boxes``: "gt" (the annotations' boxes, cleaned as
        the official code), "detector" (the shipped one at ``det_threshold``, default 0.05, on every image),
        or a COCO detection results file. ``sigmas``: OKS sigmas, one per keypoint (default: the model's keypoint
        set's: COCO's for COCO-17, the ones it was trained with, or a uniform value with ``sigma_warning``)."""
        from hrpose_cli.data.coco import PERSON_CATEGORY, CocoKeypoints
        from hrpose_cli.engine.evaluator import coco_stats, person_box_stats

        images = Path(images)
        if not images.is_dir():
            raise HrposeError(f"{images}: images folder not found")
        dataset = CocoKeypoints.load(Path(ann))
        if sigmas is not None:
            sigmas = dataset.oks_sigmas(sigmas)  # one per keypoint of the file, checked before the model runs
        detect = str(boxes) == "detector"
        threshold = check_det_threshold(det_threshold, EVAL_THRESHOLD) if detect else None
        image_ids, per_image_boxes, box_scores = _eval_persons(dataset, images, None if detect else str(boxes))
        loads_now = self._predictor is None  # lazily, inside the run: then load_model is one of its stages

        def check(predictor: Predictor) -> None:
            if predictor.config.num_joints != dataset.num_joints:
                raise HrposeError(f"{self.weights or 'the default model'}: the model predicts "
                                  f"{predictor.config.num_joints} keypoints, {dataset.path} labels {dataset.num_joints}")

        run = self._run(list(image_ids), None, per_image_boxes, box_scores, threshold, flip=flip, batch=batch,
                        workers=workers, skip_bad_images=skip_bad_images, on_batch=on_batch, check=check)
        ids = [image_ids[r.path] for r in run.results for _ in range(len(r))]
        boxes_used = np.concatenate([r.boxes for r in run.results] or [np.zeros((0, 4))])
        keypoints = np.concatenate([r.keypoints for r in run.results] or [np.zeros((0, dataset.num_joints, 3))])
        scores = np.concatenate([r.scores for r in run.results] or [np.zeros(0)])
        warning = None
        if sigmas is None:
            sigmas, warning = self.predictor.schema.oks_sigmas, self.predictor.schema.uniform_sigma_warning()
        clock = StageClock()
        with clock.host("nms"):
            results = keypoint_results(ids, keypoints, scores, boxes_used, self.predictor.aspect_ratio, sigmas)
        detections = box_stats = None
        with clock.host("evaluation"):
            if detect:
                detections = [{"image_id": image_ids[r.path], "category_id": 1, "bbox": [float(v) for v in box],
                               "score": float(score)} for r in run.results for box, score in zip(r.boxes, r.box_scores)]
                box_stats = person_box_stats(dataset, detections)
            stats = coco_stats(dataset, results, sigmas)
        if dataset.file_category_id != PERSON_CATEGORY:  # the records name the keypoint category as the file numbers it
            results = [{**r, "category_id": dataset.file_category_id} for r in results]
        warm = self.predictor.warm_up_s
        loading = {"load_model": self.load_s - warm, **({"warm_up": warm} if warm else {})} if loads_now else {}
        run.timing.stages = merge(loading, run.timing.stages, clock.seconds())
        return Evaluation(stats, results, len(dataset.image_ids), dataset.num_people,
                          str(boxes), threshold, detections, box_stats, run.failures, run.timing, run.device,
                          sigmas, warning)

    def _run(self, keys: list, arrays: dict | None, per_image_boxes: list[np.ndarray] | None, box_scores,
             detect_at: float | None, *, flip: bool | None, batch: int, heatmaps: bool = False,
             workers: int | None = None, skip_bad_images: bool = False,
             on_batch: Callable[[int, int], None] | None = None,
             check: Callable[[Predictor], None] | None = None) -> Run:
        """run, on image keys already found: the given boxes, or the detector at ``detect_at`` (None: no
        detection, whole images without boxes). ``check`` vets the predictor once it is loaded."""
        detect = detect_at is not None
        paths, persons = _plan(keys, per_image_boxes, box_scores)
        device_type = inference.resolve_device(self.device_name).type
        per_batch = inference.images_per_detection_batch(batch, device_type) if detect else batch
        if arrays is None:  # decoding starts in worker processes now, while the model loads
            decoded: Iterator[ImageBatch] = inference.decode_images(paths, persons, per_batch, workers, self.device_name)
        else:
            decoded = iter([ImageBatch(PackedImages.pack([arrays[key] for key, _ in chunk]), [item for _, item in chunk])
                            for chunk in group_by_image(paths, persons, per_batch)])
        if check is not None:
            check(self.predictor)
        predictor = _with_flip(self.predictor, flip)
        people = inference.DetectedPeople(self._detector_at(detect_at)) if detect else None
        estimates = inference.predict_images(predictor, decoded, None if people else len(persons), heatmaps,
                                             on_batch=on_batch, people=people, paths=paths,
                                             skip_bad_images=skip_bad_images)
        best: dict[object, float] = {}
        if people is not None:
            owner = [paths[item[0].index] for item in people.found]
            scores_in = people.scores
            decoded_keys = [paths[item[0].index] for item, _ in people.per_item]
            best = dict(zip(decoded_keys, (found.best_candidate for _, found in people.per_item)))
        else:
            owner, scores_in = paths, np.array([p.score for p in persons], dtype=np.float64)
            failed = {paths[i] for i in range(len(paths)) if not np.isfinite(estimates.keypoints[i]).all()}
            decoded_keys = [key for key in keys if key not in failed]
        scores = rescore(estimates.keypoints, scores_in, RESCORE_THRESHOLD)
        rows: dict[object, list[int]] = {key: [] for key in decoded_keys}
        for i, key in enumerate(owner):
            if key in rows:
                rows[key].append(i)
        results = []
        for key in keys:
            if key not in rows:
                continue  # an unreadable image, skipped
            i = np.array(rows[key], dtype=np.int64)
            results.append(Result(
                key if arrays is None else None, estimates.boxes[i].reshape(-1, 4), np.asarray(scores_in)[i],
                estimates.keypoints[i], scores[i],
                None if estimates.heatmaps is None else estimates.heatmaps[i],
                None if arrays is None else arrays[key], predictor.schema, best.get(key),
            ))
        return Run(results, estimates.failures, estimates.timing, str(predictor.runtime.device))

    def _detector_at(self, threshold: float) -> PersonDetector:
        """The detector with the score threshold ``threshold``: the same network, another cut-off."""
        detector = self.detector
        if detector is None:
            raise HrposeError("this model was loaded with detector=False: load(..., detector=True) to detect people")
        if detector.threshold == threshold:
            return detector
        other = copy.copy(detector)
        other.threshold = threshold
        return other


def load(weights: str | Path | None = None, device: str = "auto", detector: bool | str = True, *, flip: bool = True,
         decode: str = "argmax", compile: bool = False, input_size: tuple[int, int] | None = None, batch: int = 64,
         det_threshold: float = PREDICT_THRESHOLD, lazy: bool = False, precision: str = "auto",
         autotune: bool = False) -> Model:
    """A pose model: the embedded default, a checkpoint or an `hrpose export` ONNX file (``weights``), on
    ``device`` ("auto", "cpu", "cuda"), with the shipped person detector unless ``detector`` is False (or the
    path of a detector exported to ONNX). ``lazy`` defers loading to the first prediction. ``precision`` of
    the pose network: "auto" (bf16 on CUDA, fp32 on the CPU), "fp32" or "bf16". ``autotune`` lets cuDNN time
    its algorithms at the first batch: seconds of start-up that a long-lived model serving ~100,000 persons
    or more wins back."""
    detector_name = None if detector is False else "nanodet" if detector is True else str(detector)
    weights_path = None if weights is None else Path(weights)
    precision_amp(precision)  # a bad name fails here, even when lazy
    model = Model(lambda: inference.load_predictor(weights_path, device, flip, decode, compile, input_size, batch,
                                                   precision, autotune),
                  device, detector_name, det_threshold, weights_path)
    if not lazy:  # load both now, so that a bad weights or detector file fails here, not at the first image
        _ = (model.predictor, model.detector)
    return model


def evaluate(ann: str | Path, results) -> dict[str, float]:
    """The ten COCO keypoint numbers (AP, AP50, ..., ARl) of ``results`` (predict's Results, COCO results
    records, or a results file) against the annotation file ``ann``."""
    from hrpose_cli.data.coco import CocoKeypoints, load_results
    from hrpose_cli.engine.evaluator import coco_stats

    dataset = CocoKeypoints.load(Path(ann))
    if isinstance(results, (str, Path)):
        return coco_stats(dataset, load_results(Path(results), dataset))
    by_name = {Path(image["file_name"]).name: image_id for image_id, image in dataset.coco.imgs.items()}
    records: list[dict] = []
    for result in results:
        if isinstance(result, Result):
            records.extend(result.to_coco(by_name.get(result.path.name) if result.path is not None else None))
        else:
            records.append({"category_id": 1, **result})
    if not records:
        raise HrposeError(f"{ann}: no results to evaluate (nobody was found)")
    unknown = sorted({r["image_id"] for r in records} - set(dataset.coco.imgs))
    if unknown:
        raise HrposeError(f"image ids not in {ann}: {', '.join(map(str, unknown[:5]))}")
    return coco_stats(dataset, records)


def _images(source: Source, rgb: bool) -> tuple[list, dict | None]:
    """Keys of the images in order: Paths (decoded by workers), or for arrays names with the BGR arrays."""
    items = [source] if isinstance(source, (str, Path, np.ndarray)) else list(source)
    if items and all(isinstance(item, np.ndarray) for item in items):
        arrays = {}
        for i, image in enumerate(items):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise HrposeError(f"image {i}: expected an H x W x 3 uint8 array, got {image.dtype} {image.shape}")
            arrays[f"image {i}"] = np.ascontiguousarray(image[:, :, ::-1] if rgb else image)
        return list(arrays), arrays
    if any(isinstance(item, np.ndarray) for item in items):
        raise HrposeError("give either image paths or image arrays, not both")
    images: list[Path] = []
    for item in items:  # a Path to a file is taken as it is (the command's, already expanded); text is expanded
        if isinstance(item, Path) and item.is_file():
            images.append(item)
            continue
        found, videos = expand_inputs([str(item)])
        if videos:
            raise HrposeError(f"{videos[0]}: videos go through `hrpose predict`; predict() takes images "
                              f"({', '.join(IMAGE_SUFFIXES)})")
        images.extend(found)
    if not images:
        raise HrposeError("predict: no images given")
    return images, None


def _eval_persons(dataset, images: Path, boxes: str | None) -> tuple[dict[Path, int], list[np.ndarray] | None,
                                                                     list[list[float]] | None]:
    """Evaluation's images (path -> image id, in order) with their boxes and box scores: every image for the
    detector (``boxes`` None), else the images of person_records (GT boxes or a detections file), grouped."""
    if boxes is None:
        return {dataset.image_path(i, images): i for i in dataset.image_ids}, None, None
    by_image: dict[Path, list] = {}
    for record in person_records(dataset, images, boxes):
        by_image.setdefault(record.image_path, []).append(record)
    return ({key: people[0].image_id for key, people in by_image.items()},
            [np.array([r.bbox for r in people]) for people in by_image.values()],
            [[r.score for r in people] for people in by_image.values()])


def _per_image(boxes, count: int) -> list[np.ndarray] | None:
    """Boxes as one (N, 4) array per image, or None (the detector, or the whole image)."""
    if boxes is None:
        return None
    if count == 1 and _ndim(boxes) <= 2:  # one image's (N, 4) boxes (or one box), not a list per image
        boxes = [boxes]
    if len(boxes) != count:
        raise HrposeError(f"boxes: {len(boxes)} entries for {count} images (give one (N, 4) array per image)")
    out = []
    for i, entry in enumerate(boxes):
        array = np.asarray(entry, dtype=np.float64).reshape(-1, 4) if np.size(entry) else np.zeros((0, 4))
        if not np.isfinite(array).all() or (array[:, 2:] <= 0).any():
            raise HrposeError(f"boxes of image {i}: x, y, w, h must be finite, with w and h positive")
        out.append(array)
    return out


def _ndim(boxes) -> int:
    """Dimensions of a box array; 3 for a ragged list (one entry per image, of different lengths)."""
    try:
        return np.ndim(np.asarray(boxes, dtype=np.float64))
    except ValueError:
        return 3


def _plan(keys: list, boxes: list[np.ndarray] | None, box_scores) -> tuple[list, list[PersonBox]]:
    """Per person its image key and PersonBox: the given boxes, or one whole-image box per image."""
    paths: list = []
    persons: list[PersonBox] = []
    for k, key in enumerate(keys):
        for j, box in enumerate(boxes[k] if boxes is not None else [None]):
            score = float(box_scores[k][j]) if box_scores is not None else 1.0
            paths.append(key)
            persons.append(PersonBox(len(persons), None if box is None else tuple(float(v) for v in box), score))
    return paths, persons


def _with_flip(predictor: Predictor, flip: bool | None) -> Predictor:
    """The predictor with the flip test on or off: the same network, another graph around it."""
    if flip is None or flip == predictor.flip:
        return predictor
    if predictor.model is None:
        raise HrposeError("this ONNX model has its flip setting built in: load(..., flip=...) as it was exported")
    from hrpose_cli.engine.predictor import PoseGraph

    other = copy.copy(predictor)
    other.flip = flip
    other.graph = PoseGraph(predictor.model, predictor.flip_perm, flip, predictor.runtime.channels_last)
    return other
