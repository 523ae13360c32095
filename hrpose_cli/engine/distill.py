"""Distillation: a teacher that labels every augmented training crop on the device. The teacher is MoveNet
(its TensorFlow.js graph, ``Distiller``) or a trained HRNet of any width and input size (``PoseTeacher``).

The teacher sees a square crop around the student's crop (same center, rotation and mirror; side = the
student crop's height), so its joints map into the student's crop by one scale and shift, and its stride-4
feature map lines up cell for cell with the student's heatmap grid. Where the annotation labels a joint the
annotation wins; the teacher fills in the joints it does not label, when confident enough, and only in crops
where it found the annotated person: MoveNet takes the person nearest the crop's middle, which in a crowd or
a turned crop is sometimes a neighbour, so at least half of the labelled joints must lie within a tenth of the
crop's height of the teacher's. With a feature
weight, the student's highest-resolution features (through a 1x1 adapter, dropped after training) also learn
to predict the teacher's FPN features.

Function matching (``--teacher-mode match``; Beyer et al., CVPR 2022, "Knowledge distillation: a good teacher
is patient and consistent") instead gives the teacher exactly the crop the student sees, after every
augmentation (occluding patches, colour, blur, noise, mixup), padded to a square with black as an
out-of-image border, and teaches every joint of every crop: the teacher's decoded single-person answer is
rendered as Gaussians whose peak is the teacher's joint score, so the student learns where the joints are
and how sure the teacher is. Decoded keypoints are used rather than MoveNet's raw heatmaps, which hold every
person's joints. Where the annotation labels a joint, the target is ``gt_weight`` x the GT Gaussian +
(1 - ``gt_weight``) x the teacher's; in crops where the teacher picked someone else (the agreement test
above) or where the crop was mixed with another (its annotation no longer describes it alone), only one
source teaches: the annotation in the first case, the teacher in the second. Persons with a box and no
keypoints (``--unlabelled-ann``) are taught by the teacher alone.

With ``--teacher-flip`` the teacher answers with its flip test in either mode (its heads averaged over the crop
and its mirror image): better targets for twice the teacher's cost.

An HRNet teacher (``--teacher MODEL.pt``: an hrpose checkpoint or an official one) teaches by function matching
only, and more directly: it is a top-down model like the student, so on the student's own crop it answers for
the same person, and its whole output, the heatmaps (with its flip test when asked), is the target of every
joint; annotated joints mix in the GT by ``gt_weight`` as above. It must predict the training set's keypoints
(any set, not only COCO-17), so a large model trained on a custom set can teach a small one.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hrpose_cli.core import codec, geometry
from hrpose_cli.core.schema import COCO17, KeypointSchema
from hrpose_cli.engine.predictor import PoseGraph
from hrpose_cli.engine.train_config import is_movenet
from hrpose_cli.errors import HrposeError
from hrpose_cli.model.checkpoints import checkpoint_schema, load_model
from hrpose_cli.model.hrnet import HRNetConfig, fold_batchnorm
from hrpose_cli.model.movenet import MoveNetTeacher, decode_heads


def teacher_schema(teacher: str | Path) -> KeypointSchema:
    """The keypoints a teacher predicts: MoveNet's are COCO's 17, an HRNet checkpoint's are its own."""
    return COCO17 if is_movenet(teacher) else checkpoint_schema(teacher)


def load_teacher(teacher: str | Path, device: torch.device, student: HRNetConfig, min_score: float,
                 feature_weight: float, flip: bool, channels_last: bool) -> "Distiller | PoseTeacher":
    """The training run's teacher on ``device``: MoveNet's Distiller or an HRNet PoseTeacher."""
    if not is_movenet(teacher):
        return PoseTeacher(Path(teacher), device, student.heatmap_size, flip, channels_last)
    distiller = Distiller(Path(teacher), device, student.input_size, student.heatmap_size, student.width, min_score,
                          feature_weight, flip=flip)
    if channels_last:
        distiller.teacher.to(memory_format=torch.channels_last)
    return distiller


def annotated_joints(visible: torch.Tensor, valid: torch.Tensor, mixed: torch.Tensor | None) -> torch.Tensor:
    """(B, J) True where a crop's joint has an annotation to learn: labelled, its image read, the crop not
    blended with another (mixup: its annotation no longer describes the pixels alone)."""
    labelled = (visible > 0) & (valid > 0)[:, None]
    return labelled if mixed is None else labelled & ~mixed[:, None]


class StudentWithAdapter(nn.Module):
    """The student network plus a training-only 1x1 conv from its features to the teacher's."""

    def __init__(self, student: nn.Module, adapter: nn.Module):
        super().__init__()
        self.student = student
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.student.features(x)
        return self.student.final_layer(features), self.adapter(features)


class Distiller:
    def __init__(self, teacher_json: Path, device: torch.device, input_hw: tuple[int, int],
                 heatmap_hw: tuple[int, int], student_width: int, min_score: float, feature_weight: float,
                 flip: bool = False):
        self.teacher = MoveNetTeacher.load(Path(teacher_json)).to(device)
        self.flip = flip  # the teacher's flip test (MoveNetTeacher.heads_of)
        self.size = self.teacher.input_size
        h, w = input_hw
        self.heatmap_hw = heatmap_hw
        self.min_score = min_score
        self.agree_px = 0.1 * h
        self.feature_weight = feature_weight
        # teacher crop pixel -> student crop pixel: the square of side h centered on the student's crop
        k = h / self.size
        self.teacher_to_student = torch.tensor([[k, 0.0, w / 2 - k * self.size / 2], [0.0, k, h / 2 - k * self.size / 2]],
                                               device=device)
        hm_h, hm_w = heatmap_hw
        if (hm_h - hm_w) % 2:
            raise HrposeError(f"feature distillation needs an even heatmap height - width difference, not {hm_h}x{hm_w}")
        self.column_offset = (hm_h - hm_w) // 2
        self.adapter = None
        if feature_weight > 0:  # zero-initialised: the feature loss starts at exactly 1 x its weight
            self.adapter = nn.Conv2d(student_width, self.teacher.feature_channels, 1).to(device)
            nn.init.zeros_(self.adapter.weight)
            nn.init.zeros_(self.adapter.bias)

    def teach(self, pixels: torch.Tensor, offsets: torch.Tensor, shapes: torch.Tensor, index: torch.Tensor,
              crop_to_image: torch.Tensor, autocast) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The teacher's joints (B, J, 3) as x, y in student crop pixels and score, and its raw head maps."""
        a = self.teacher_to_student
        to_image = torch.cat([crop_to_image[:, :, :2] @ a[:, :2], crop_to_image[:, :, :2] @ a[:, 2:] + crop_to_image[:, :, 2:]], 2)
        crops = geometry.warp_crops(pixels, offsets, shapes, index, to_image, (self.size, self.size))
        with torch.no_grad(), autocast():
            heads = self.teacher.heads_of(crops, self.flip)
        taught = decode_heads(heads, self.teacher.center_weight, self.teacher.distance_bias, self.size)
        return torch.cat([taught[..., :2] @ a[:, :2].T + a[:, 2], taught[..., 2:]], -1), heads

    def label(self, pixels: torch.Tensor, offsets: torch.Tensor, shapes: torch.Tensor, index: torch.Tensor,
              crop_to_image: torch.Tensor, joints: torch.Tensor, visible: torch.Tensor, valid: torch.Tensor,
              autocast) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Joints (B, J, 2) and visibility (B, J) with the teacher's confident joints added, and its features."""
        taught, heads = self.teach(pixels, offsets, shapes, index, crop_to_image, autocast)
        taught_xy = taught[..., :2]
        labelled = visible > 0
        near = (torch.linalg.vector_norm(taught_xy - joints, dim=-1) < self.agree_px) & labelled
        found = (near.sum(1) * 2 >= labelled.sum(1)) & labelled.any(1) & (valid > 0)
        fill = ~labelled & (taught[..., 2] >= self.min_score) & found[:, None]
        joints = torch.where(fill[..., None], taught_xy, joints)
        visible = torch.where(fill, torch.ones_like(visible), visible)
        features = None
        if self.adapter is not None:
            features = heads["features"]
            hm_h, hm_w = self.heatmap_hw
            if features.shape[-2:] != (hm_h, hm_h):
                features = F.interpolate(features, size=(hm_h, hm_h), mode="bilinear", align_corners=False)
            features = features[..., self.column_offset : self.column_offset + hm_w]
        return joints, visible, features

    def feature_loss(self, predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Weighted squared error relative to the teacher features' own energy, over the valid crops."""
        w = valid.view(-1, 1, 1, 1)
        error = (w * (predicted.float() - target).pow(2)).sum()
        energy = (w * target.pow(2)).sum().clamp_min(1e-6)
        return self.feature_weight * error / energy

    # -- function matching ----------------------------------------------------------------------------
    def teach_crops(self, crops: torch.Tensor, autocast) -> torch.Tensor:
        """The teacher's joints (B, J, 3) on the student's own crops (B, 3, H, W), RGB in [0, 255].

        Each crop is padded to a square (black, centered) and resized to the teacher's input; the answer is
        mapped back to the student's crop pixels (x, y) with its score.
        """
        h, w = crops.shape[-2:]
        side = max(h, w)
        left, top = (side - w) // 2, (side - h) // 2
        square = F.pad(crops, (left, side - w - left, top, side - h - top))
        if side != self.size:
            square = F.interpolate(square, size=(self.size, self.size), mode="bilinear", align_corners=False)
        with torch.no_grad(), autocast():
            heads = self.teacher.heads_of(square.contiguous(), self.flip)
        taught = decode_heads(heads, self.teacher.center_weight, self.teacher.distance_bias, self.size)
        k = side / self.size  # pixel centers at integers on both sides, as F.interpolate's align_corners=False
        x = (taught[..., 0] + 0.5) * k - 0.5 - left
        y = (taught[..., 1] + 0.5) * k - 0.5 - top
        return torch.stack([x, y, taught[..., 2]], -1)

    def match_targets(self, crops: torch.Tensor, joints: torch.Tensor, visible: torch.Tensor, valid: torch.Tensor,
                      mixed: torch.Tensor | None, gt_weight: float, sigma: float, stride: float,
                      autocast) -> tuple[torch.Tensor, torch.Tensor]:
        """Function-matching targets (B, J, H, W) and weights (B, J) for the student's augmented crops.

        ``joints``/``visible`` are the annotation in crop pixels, ``valid`` 0 for crops whose image failed,
        ``mixed`` True for crops blended with another (None: none were).
        """
        taught = self.teach_crops(crops, autocast)
        taught_xy, score = taught[..., :2], taught[..., 2]
        labelled = annotated_joints(visible, valid, mixed)
        near = (torch.linalg.vector_norm(taught_xy - joints, dim=-1) < self.agree_px) & labelled
        found = (near.sum(1) * 2 >= labelled.sum(1)) & (valid > 0)  # persons without labels: trusted
        gt_target, gt_w = codec.encode(joints, labelled.to(joints.dtype), self.heatmap_hw, sigma, stride)
        ones = torch.ones_like(score)
        t_target, t_w = codec.encode(taught_xy, ones, self.heatmap_hw, sigma, stride)
        t_target = t_target * score.clamp(0, 1)[..., None, None]
        t_w = t_w * found[:, None].to(t_w.dtype)
        a = torch.where(found, torch.full_like(score[:, 0], gt_weight), torch.ones_like(score[:, 0]))[:, None]
        mix_gt = a[..., None, None] * gt_target + (1 - a[..., None, None]) * t_target
        target = torch.where(labelled[..., None, None], mix_gt, t_target)
        weight = torch.where(labelled, gt_w, t_w)
        return target, weight


class PoseTeacher:
    """A trained HRNet teaching a student by function matching: its heatmaps on the student's own crops.

    The crops are resized to the teacher's input size and its heatmaps to the student's grid where the two
    differ (a 384x288 W48 can teach a 256x192 w16; the aspect ratios must match); the teacher runs with its BatchNorms folded, through the
    test-time network rules (PoseGraph: the flip test, when asked, exactly as `hrpose eval` runs it).
    """

    adapter = None  # no feature distillation from an HRNet

    def __init__(self, weights: Path, device: torch.device, heatmap_hw: tuple[int, int], flip: bool,
                 channels_last: bool):
        network, config = load_model(weights)
        (h, w), (hm_h, hm_w) = config.input_size, heatmap_hw
        if h * hm_w != w * hm_h:  # resizing its crops to another shape would stretch the person it sees
            raise HrposeError(f"{weights}: the teacher's input {h}x{w} has another aspect ratio than the student's "
                              f"(heatmaps {hm_h}x{hm_w}); train the student at the teacher's ratio (--input-size)")
        network = fold_batchnorm(network, inplace=True).to(device)
        if channels_last:
            network = network.to(memory_format=torch.channels_last)
        flip_perm = torch.from_numpy(checkpoint_schema(weights).flip_permutation()).to(device)
        self.graph = PoseGraph(network, flip_perm, flip, channels_last)
        self.input_hw = config.input_size
        self.heatmap_hw = heatmap_hw

    def heatmaps(self, crops: torch.Tensor, autocast) -> torch.Tensor:
        """The teacher's heatmaps (B, J, h, w) on the student's grid for crops (B, 3, H, W), RGB in [0, 255]."""
        x = geometry.normalize(crops)
        if tuple(x.shape[-2:]) != self.input_hw:
            x = F.interpolate(x, size=self.input_hw, mode="bilinear", align_corners=False)
        with torch.no_grad(), autocast():
            out = self.graph(x)[0]
        if tuple(out.shape[-2:]) != self.heatmap_hw:
            out = F.interpolate(out, size=self.heatmap_hw, mode="bilinear", align_corners=False)
        return out.float()

    def match_targets(self, crops: torch.Tensor, joints: torch.Tensor, visible: torch.Tensor, valid: torch.Tensor,
                      mixed: torch.Tensor | None, gt_weight: float, sigma: float, stride: float,
                      autocast) -> tuple[torch.Tensor, torch.Tensor]:
        """Targets (B, J, H, W) and weights (B, J), as Distiller.match_targets: the teacher's heatmaps for
        every joint of every valid crop, mixed with the GT's Gaussian by ``gt_weight`` where annotated."""
        taught = self.heatmaps(crops, autocast)
        labelled = annotated_joints(visible, valid, mixed)
        gt_target, gt_w = codec.encode(joints, labelled.to(joints.dtype), self.heatmap_hw, sigma, stride)
        target = torch.where(labelled[..., None, None], gt_weight * gt_target + (1 - gt_weight) * taught, taught)
        weight = torch.where(labelled, gt_w, (valid > 0)[:, None].to(gt_w.dtype).expand_as(gt_w))
        return target, weight
