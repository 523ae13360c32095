"""`visualize-heatmaps`' engine: per person, the network's input crop, GT and predicted heatmaps, peaks, OKS terms.

Two steps, so every input error surfaces before anything is drawn or written:

``plan_views`` loads the annotations, chooses the persons (``--ids``, else the first ``--max`` labelled persons
in annotation order), resolves the shown joints and loads the model (or, with none at all, plans a GT-only
view); ``iter_views`` then yields one ``PersonView`` per person, computed in batches on the device.

Everything is the evaluation path's own: the box is the person's GT box cleaned as ``CocoKeypoints.persons``
(what ``hrpose eval`` crops), the crop is ``Predictor.crops``' (so the picture is exactly what the network
sees, un-normalised back to RGB), predicted heatmaps are ``Predictor.heatmaps`` (flip test when on), image
keypoints ``Predictor.decode``, GT heatmaps ``codec.encode`` with the training sigma and stride, and the OKS
terms pycocotools' computeOks per joint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from hrpose_cli.core import codec, geometry
from hrpose_cli.core.oks import mean_keypoint_similarity, oks_matrix
from hrpose_cli.data.coco import PERSON_CATEGORY, CocoKeypoints, PersonRecord, sample_dataset
from hrpose_cli.data.images import PackedImages, read_image
from hrpose_cli.engine.predictor import CropBatch, Predictor
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.errors import HrposeError
from hrpose_cli.model import checkpoints
from hrpose_cli.viz.heatmaps import DEFAULT_MAX_PERSONS



@dataclass
class PersonView:
    """One person's sheet contents. Joint arrays are in crop pixels; heatmaps (J, h, w) float32.

    ``pred_*`` and ``oks*`` are None in GT-only mode. ``oks_terms`` holds exp(-e) per joint as computeOks
    (NaN for joints the GT does not label); ``oks`` is their mean over the labelled joints, computeOks' OKS.
    """

    record: PersonRecord  # image, cleaned GT box, GT joints in image pixels, area, annotation id
    center: np.ndarray  # (2,) crop center/scale as geometry.box_to_center_scale gives them
    scale: np.ndarray  # (2,)
    crop: np.ndarray  # (H, W, 3) uint8 RGB: the network input, un-normalised
    gt_joints: np.ndarray  # (J, 3) x, y in crop pixels, COCO visibility
    gt_heatmaps: np.ndarray  # (J, h, w) codec.encode targets (zero for unlabelled or off-map joints)
    pred_heatmaps: np.ndarray | None = None  # (J, h, w) after flip averaging when flip is on
    pred_joints: np.ndarray | None = None  # (J, 3) decoded peaks x stride in crop pixels, peak score
    pred_keypoints: np.ndarray | None = None  # (J, 3) the same peaks in image pixels, as `hrpose eval` reports them
    oks_terms: np.ndarray | None = None  # (J,)
    oks: float | None = None

    @property
    def ann_id(self) -> int:
        return self.record.ann_id


@dataclass
class HeatmapPlan:
    """What ``iter_views`` will compute: the chosen persons and how."""

    ann: Path
    images: Path
    dataset: CocoKeypoints
    records: list[PersonRecord]  # the chosen persons, in drawing order
    available: int  # labelled persons in the file (what --max chooses from)
    joint_names: tuple[str, ...]
    shown: list[int]  # joint indices to draw, in order
    runtime: Runtime
    input_hw: tuple[int, int]
    heatmap_hw: tuple[int, int]
    sigma: float
    predictor: Predictor | None  # None: GT only
    model_note: str  # one line: which model, or that there is none
    sigmas: np.ndarray | None  # OKS sigmas (None when the file's joints have none and there is no model)

    @property
    def stride(self) -> float:
        return self.input_hw[1] / self.heatmap_hw[1]

    @property
    def gt_only(self) -> bool:
        return self.predictor is None


def parse_ids(values: Sequence[str] | None) -> list[int]:
    """``--ids`` given repeatedly and/or comma-separated -> annotation ids, first occurrence order, no repeats."""
    ids: list[int] = []
    for text in values or ():
        for part in str(text).replace(" ", "").split(","):
            if not part:
                continue
            try:
                value = int(part)
            except ValueError:
                raise HrposeError(f"--ids {text!r}: {part!r} is not an annotation id (an integer)") from None
            if value not in ids:
                ids.append(value)
    return ids


def parse_joints(text: str | None, names: Sequence[str]) -> list[int]:
    """``--joints`` as names or indices, comma-separated (``left_wrist,nose,16``) -> indices; None -> all."""
    if text is None:
        return list(range(len(names)))
    lookup = {name.lower().replace("-", "_").replace(" ", "_"): i for i, name in enumerate(names)}
    chosen: list[int] = []
    unknown: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key = part.lower().replace("-", "_").replace(" ", "_")
        if key in lookup:
            index = lookup[key]
        elif key.isdigit() and int(key) < len(names):
            index = int(key)
        else:
            unknown.append(part)
            continue
        if index not in chosen:
            chosen.append(index)
    if unknown:
        raise HrposeError(
            f"--joints: unknown joint{'s' * (len(unknown) > 1)} {', '.join(repr(u) for u in unknown)}; "
            f"give names ({', '.join(names)}) or indices 0-{len(names) - 1}"
        )
    if not chosen:
        raise HrposeError("--joints: no joint named")
    return chosen


def _why_not_drawable(dataset: CocoKeypoints, ann: dict) -> str:
    """Why an existing annotation is not among the labelled persons ``CocoKeypoints.persons`` keeps."""
    if ann["category_id"] != PERSON_CATEGORY:
        return "is not a person"
    if ann["iscrowd"]:
        return "is a crowd region"
    if not any(v > 0 for v in ann["keypoints"][2::3]):
        return "has no labelled joints"
    return "has an empty box or area"


def choose_persons(
    dataset: CocoKeypoints, images: Path, ids: Sequence[int] | None, max_persons: int | None
) -> tuple[list[PersonRecord], int]:
    """The persons to draw and how many labelled persons the file has.

    With ``ids``: those annotations in the order given (``max_persons`` caps them when given); an id the file
    lacks, or one that is no labelled person, is an error naming it. Without: the first ``max_persons``
    (default 8) labelled persons in annotation order; the others are skipped silently.
    """
    drawable = {r.ann_id: r for r in dataset.persons(images)}
    annotations = dataset.coco.dataset["annotations"]
    if ids:
        by_id = {a["id"]: a for a in annotations}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise HrposeError(
                f"{dataset.path}: no annotation with id{'s' * (len(missing) > 1)} {', '.join(map(str, missing))}"
            )
        unusable = [f"annotation {i} {_why_not_drawable(dataset, by_id[i])}" for i in ids if i not in drawable]
        if unusable:
            raise HrposeError(f"{dataset.path}: nothing to draw for {'; '.join(unusable)}")
        records = [drawable[i] for i in ids]
        return records[:max_persons] if max_persons else records, len(drawable)
    ordered = [drawable[a["id"]] for a in annotations if a["id"] in drawable]
    if not ordered:
        raise HrposeError(f"{dataset.path}: no person with labelled joints to draw")
    return ordered[: max_persons or DEFAULT_MAX_PERSONS], len(drawable)


def plan_views(
    ann: Path | None = None,
    images: Path | None = None,
    weights: Path | None = None,
    ids: Sequence[int] | None = None,
    max_persons: int | None = None,
    joints: str | None = None,
    device: str = "auto",
    flip: bool = True,
    decode: str = "argmax",
    input_size: tuple[int, int] | None = None,
) -> HeatmapPlan:
    """Check every input and load what is needed; nothing is computed per person yet.

    ``ann`` None uses the shipped sample (and its images unless ``images`` is given), as bare `hrpose eval`.
    ``weights`` None uses the embedded default model; when none is installed the plan is GT-only.
    """
    from hrpose_cli.engine.inference import load_predictor

    if ann is None:
        ann, sample_images = sample_dataset()
        images = images or sample_images
    if images is None:
        raise HrposeError("--images is needed with --ann (the folder of the annotation file's images)")
    if not Path(images).is_dir():
        raise HrposeError(f"{images}: images folder not found")
    dataset = CocoKeypoints.load(ann)
    records, available = choose_persons(dataset, Path(images), ids, max_persons)
    for record in records:
        if not record.image_path.is_file():
            raise HrposeError(f"{record.image_path}: image not found (annotation {record.ann_id} of {dataset.path})")

    if weights is None:
        weights = checkpoints.default_weights_path()
        label = "default model"
    else:
        label = str(weights)
    if weights is None:
        predictor = None
        runtime = Runtime.create(device, autotune=False)
        input_hw = tuple(input_size or checkpoints.DEFAULT_INPUT_SIZE)
        heatmap_hw = (input_hw[0] // 4, input_hw[1] // 4)
        sigma = 2.0 * input_hw[0] / 256
        note = "no --weights given and no default model installed: drawing the ground truth alone"
    else:
        predictor = load_predictor(Path(weights), device, flip, decode, input_size=input_size)
        runtime, input_hw, heatmap_hw, sigma = (
            predictor.runtime, predictor.input_hw, predictor.heatmap_hw, predictor.sigma)
        if predictor.config.num_joints != dataset.num_joints:
            raise HrposeError(
                f"{weights}: the model predicts {predictor.config.num_joints} joints but {dataset.path} "
                f"labels {dataset.num_joints}"
            )
        config = predictor.config
        note = (f"model: {label} ({config.arch}, {input_hw[0]}x{input_hw[1]}); flip {'on' if flip else 'off'}; "
                f"decode {decode}; {runtime.device}")
    # The model's own keypoint set names the panels (and gives the OKS sigmas); GT-only, the file's.
    schema = predictor.schema if predictor is not None else dataset.schema
    shown = parse_joints(joints, schema.names)
    return HeatmapPlan(
        ann=Path(ann), images=Path(images), dataset=dataset, records=records, available=available,
        joint_names=schema.names, shown=shown, runtime=runtime, input_hw=tuple(input_hw),
        heatmap_hw=tuple(heatmap_hw), sigma=sigma, predictor=predictor, model_note=note, sigmas=schema.oks_sigmas,
    )


def _gt_only_crops(plan: HeatmapPlan, images: PackedImages, image_index: np.ndarray, boxes: np.ndarray) -> CropBatch:
    """``Predictor.crops`` without a network: the same geometry calls, so GT-only crops equal model-mode ones."""
    aspect = plan.input_hw[1] / plan.input_hw[0]
    centers, scales = geometry.box_to_center_scale(boxes, aspect)
    out_wh = (plan.input_hw[1], plan.input_hw[0])
    crop_to_image = plan.runtime.upload(geometry.crop_matrices(centers, scales, out_wh, inverse=True), torch.float32)
    index = plan.runtime.upload(np.asarray(image_index, dtype=np.int64))
    raw = geometry.warp_crops(images.pixels, images.offsets, images.shapes, index, crop_to_image, out_wh)
    return CropBatch(geometry.normalize(raw), crop_to_image, centers, scales)


def unnormalize(inputs: torch.Tensor) -> np.ndarray:
    """Network inputs (N, 3, H, W), ImageNet-normalised RGB -> (N, H, W, 3) uint8 RGB for drawing."""
    mean = torch.tensor(geometry.IMAGENET_MEAN, device=inputs.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(geometry.IMAGENET_STD, device=inputs.device).view(1, 3, 1, 1) * 255.0
    pixels = (inputs.float() * std + mean).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def oks_terms(
    gt_joints: np.ndarray, area: float, pred_keypoints: np.ndarray, sigmas: np.ndarray | None = None
) -> np.ndarray:
    """Per joint exp(-e) of one prediction against its own GT (image pixels), e as pycocotools' computeOks
    (d^2 / (2 sigma)^2 / (area + eps) / 2); NaN where the GT does not label the joint.

    core.oks has no per-joint function as such; its per-joint mean over (GT i, prediction i) pairs, taken over
    the one pair, is exactly that term.
    """
    return mean_keypoint_similarity(gt_joints[None], np.array([area]), pred_keypoints[None], sigmas)


def iter_views(plan: HeatmapPlan, batch_size: int = 16) -> Iterator[PersonView]:
    """One PersonView per planned person, in order; crops and the network run ``batch_size`` persons at a time."""
    for start in range(0, len(plan.records), batch_size):
        yield from _batch_views(plan, plan.records[start : start + batch_size])


@torch.inference_mode()
def _batch_views(plan: HeatmapPlan, records: Sequence[PersonRecord]) -> list[PersonView]:
    paths: list[Path] = []
    image_index = []
    for record in records:
        if record.image_path not in paths:
            paths.append(record.image_path)
        image_index.append(paths.index(record.image_path))
    packed = PackedImages.pack([read_image(p) for p in paths]).to(plan.runtime.device)
    image_index = np.array(image_index, dtype=np.int64)
    boxes = np.stack([r.bbox for r in records]).astype(np.float64)
    predictor = plan.predictor
    if predictor is not None:
        crop = predictor.crops(packed, image_index, boxes)
    else:
        crop = _gt_only_crops(plan, packed, image_index, boxes)
    crops = unnormalize(crop.inputs)

    # GT: the joints mapped into crop pixels by the crop's forward affine, then the training targets.
    out_wh = (plan.input_hw[1], plan.input_hw[0])
    image_to_crop = geometry.crop_matrices(crop.centers, crop.scales, out_wh)
    gt_image = np.stack([r.joints for r in records])  # (N, J, 3)
    gt_crop_xy = geometry.apply_affine(gt_image[..., :2], image_to_crop)
    gt_joints = np.concatenate([gt_crop_xy, gt_image[..., 2:]], axis=-1)
    gt_heatmaps, _ = codec.encode(
        torch.from_numpy(gt_crop_xy).float(), torch.from_numpy(gt_image[..., 2]).float(),
        plan.heatmap_hw, plan.sigma, plan.stride,
    )
    gt_heatmaps = gt_heatmaps.numpy()

    pred_heatmaps = pred_joints = pred_keypoints = None
    if predictor is not None:
        heatmaps = predictor.heatmaps(crop.inputs)
        pred_keypoints = predictor.decode(heatmaps, crop.crop_to_image).cpu().double().numpy()
        coords, scores = codec.decode(heatmaps, predictor.decode_method, predictor.sigma)
        pred_joints = torch.cat([coords * plan.stride, scores.unsqueeze(-1)], dim=-1).cpu().double().numpy()
        pred_heatmaps = heatmaps.cpu().numpy()

    views = []
    for i, record in enumerate(records):
        view = PersonView(record, crop.centers[i], crop.scales[i], crops[i], gt_joints[i], gt_heatmaps[i])
        if predictor is not None:
            view.pred_heatmaps = pred_heatmaps[i]
            view.pred_joints = pred_joints[i]
            view.pred_keypoints = pred_keypoints[i]
            if plan.sigmas is not None:
                view.oks_terms = oks_terms(record.joints, record.area, pred_keypoints[i], plan.sigmas)
                view.oks = float(oks_matrix(record.joints[None], [record.area], [record.bbox], pred_keypoints[i][None],
                                            plan.sigmas)[0, 0])
        views.append(view)
    return views
