"""One training step's inputs and targets, the trainer's data path after decoding.

The host draws the augmentation parameters of the whole global batch from a generator seeded by (seed, epoch,
step), keeps this rank's share and uploads them in one packed transfer; the device warps the crops, applies
the pixel augmentation and mixup, and encodes the heatmap targets (or asks the teacher for them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hrpose_cli.core import codec, geometry
from hrpose_cli.core.schema import KeypointSchema
from hrpose_cli.data.augment import (AugmentConfig, CropParams, apply_mixup, apply_pixel_params, crop_geometry,
                                     sample_crop_params, sample_mixup, sample_pixel_params)
from hrpose_cli.data.images import ImageBatch, PackedImages
from hrpose_cli.data.train_data import PersonTable, TrainPlan, augment_rng, mixup_rng
from hrpose_cli.engine.distributed import DistInfo
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.engine.stage_clock import StageClock
from hrpose_cli.engine.train_config import TrainConfig
from hrpose_cli.errors import HrposeError
from hrpose_cli.model.hrnet import HRNetConfig


@dataclass
class StepUpload:
    """One step's tensors on the device, before the crops are warped."""

    epoch: int
    step: int
    images: PackedImages
    crop_to_image: torch.Tensor  # (n, 2, 3) affine of each crop
    joints: torch.Tensor  # (n, J, 2) in crop pixels
    visible: torch.Tensor  # (n, J)
    slots: torch.Tensor  # (n,) each crop's image in ``images``
    valid: torch.Tensor  # (n,) 0 for a crop whose image failed to decode
    pixels: tuple[torch.Tensor, int] | None  # pixel augmentation values and noise seed
    mix: torch.Tensor | None  # mixup weights


class StepBatches:
    """Makes each step's input crops, targets and weights for one rank (``skipped`` is the trainer's list of
    images that failed to decode under --skip-bad-images, appended to here)."""

    def __init__(self, config: TrainConfig, table: PersonTable, plan: TrainPlan, schema: KeypointSchema,
                 model_config: HRNetConfig, runtime: Runtime, dist: DistInfo, clock: StageClock, distiller,
                 skipped: list[str]):
        self.config, self.table, self.plan, self.schema = config, table, plan, schema
        self.runtime, self.dist, self.clock, self.distiller, self.skipped = runtime, dist, clock, distiller, skipped
        self.augment = AugmentConfig(recipe=config.recipe)
        h, w = model_config.input_size
        self.out_wh = (w, h)
        self.heatmap_hw = model_config.heatmap_size
        self.stride = w / self.heatmap_hw[1]
        self.sigma = config.sigma_for(h)
        self.aspect = w / h
        self.joint_weights = (torch.from_numpy(schema.weights).to(runtime.device) if config.use_joint_weights
                              else None)
        self.flip_perm = schema.flip_permutation()

    def upload(self, k: int, batch: ImageBatch) -> StepUpload:
        """Host side of step ``k``: augmentation parameters of the global batch, this rank's share, uploads."""
        epoch, step = self.plan.locate(k)
        persons = self.plan.global_indices(epoch, step)
        boxes, joints = self.table.boxes[persons], self.table.joints[persons]
        centers, scales = geometry.box_to_center_scale(boxes, self.aspect)
        pixel_params = None
        if self.config.augment:
            rng = augment_rng(self.config.seed, epoch, step)
            params = sample_crop_params(rng, centers, scales, joints, self.augment, self.aspect, self.schema)
            if self.augment.changes_pixels:
                pixel_params = sample_pixel_params(rng, len(persons), self.augment)
        else:
            params = CropParams(centers, scales, np.zeros(len(persons)), np.zeros(len(persons), dtype=bool))
        mine = slice(self.dist.rank, None, self.dist.world)
        params = CropParams(params.centers[mine], params.scales[mine], params.rotations[mine], params.flips[mine])
        joints = joints[mine]
        n = len(joints)
        slot = np.full(n, -1, dtype=np.int64)
        for s, positions in enumerate(batch.items):
            slot[list(positions)] = s
        bad = slot < 0
        if batch.failures:
            if not self.config.skip_bad_images:
                err = HrposeError(f"{batch.failures[0][1]}; add --skip-bad-images to train without it")
                err.rank_local = True  # only this process saw it: under torchrun it must say so itself
                raise err
            for _, problem in batch.failures:
                if problem not in self.skipped:
                    self.skipped.append(problem)
            slot[bad] = 0  # a real (or the placeholder) image; these crops get weight 0
        widths = batch.images.shapes[:, 1].numpy()[slot].astype(np.float64)
        crop_to_image, crop_joints = crop_geometry(params, joints, widths, self.out_wh, self.flip_perm)
        visible = (crop_joints[..., 2] > 0) & ~bad[:, None]
        j = joints.shape[1]
        host = np.concatenate([crop_to_image.reshape(-1), crop_joints[..., :2].reshape(-1), visible.reshape(-1),
                               slot.astype(np.float64)]).astype(np.float32)
        packed = self.runtime.upload(host)
        m, rest = packed[: n * 6].view(n, 2, 3), packed[n * 6 :]
        xy, rest = rest[: n * j * 2].view(n, j, 2), rest[n * j * 2 :]
        vis, index = rest[: n * j].view(n, j), rest[n * j :].long()
        pixels = None
        if pixel_params is not None:
            pixels = (self.runtime.upload(pixel_params.values[mine].astype(np.float32)),
                      pixel_params.noise_seed + self.dist.rank)
        mix = None
        if self.config.mixup > 0 and self.config.augment:
            mix = self.runtime.upload(sample_mixup(mixup_rng(self.config.seed, epoch, step), len(persons),
                                                   self.config.mixup)[mine].astype(np.float32))
        return StepUpload(epoch, step, batch.images.to(self.runtime.device), m, xy, vis, index,
                          self.runtime.upload((~bad).astype(np.float32)), pixels, mix)

    def inputs_targets(self, up: StepUpload):
        """The step's input crops, heatmap targets and weights (and the teacher's features, when distilled)."""
        images = up.images
        raw = geometry.warp_crops(images.pixels, images.offsets, images.shapes, up.slots, up.crop_to_image,
                                  self.out_wh)
        if up.pixels is not None:
            raw = apply_pixel_params(raw, *up.pixels)
        mixed = None
        if up.mix is not None:
            raw, mixed = apply_mixup(raw, up.mix)
        inputs = self.runtime.input(geometry.normalize(raw))
        self.clock.lap("warps")
        xy, vis = up.joints, up.visible
        with torch.no_grad():
            taught = None
            if self.config.teacher_mode == "match":
                target, weight = self.distiller.match_targets(raw, xy, vis, up.valid, mixed, self.config.gt_weight,
                                                              self.sigma, self.stride, self.runtime.autocast)
            else:
                if self.distiller is not None:
                    xy, vis, taught = self.distiller.label(images.pixels, images.offsets, images.shapes, up.slots,
                                                           up.crop_to_image, xy, vis, up.valid, self.runtime.autocast)
                target, weight = codec.encode(xy, vis, self.heatmap_hw, self.sigma, self.stride)
            if self.joint_weights is not None:
                weight = weight * self.joint_weights
        self.clock.lap("targets")
        return inputs, target, weight, (taught, up.valid)
