"""What a training run starts from: its persons (and validation set), its keypoint set, and its network (a fresh
HRNet, --weights of this set or of another one, where every layer but the final one loads, or the run's own
last.pt on --resume)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from hrpose_cli.core.schema import KeypointSchema, checked_values, parse_joint_list, parse_pairs
from hrpose_cli.data.train_data import PersonTable, load_person_table, missing_images
from hrpose_cli.engine.train_config import TrainConfig, is_movenet
from hrpose_cli.errors import HrposeError
from hrpose_cli.model.hrnet import ARCHS, HRNetConfig, PoseHRNet

HEAD_PREFIX = "final_layer."  # the 1x1 convolution from features to one heatmap per joint


def load_run_data(config: TrainConfig) -> tuple[PersonTable, KeypointSchema, list[str], tuple | None]:
    """The training persons, their keypoint set (with the command line's overrides), the images skipped as
    missing (--skip-bad-images; without it a missing image is an error) and the validation set with its
    person records, or None."""
    pairs = list(zip(config.train_ann, config.train_images))
    table = load_person_table(pairs, list(zip(config.unlabelled_ann, config.unlabelled_images)))
    schema = resolve_schema(table.schema, config)
    if config.teacher:
        from hrpose_cli.engine.distill import teacher_schema

        taught = teacher_schema(config.teacher)
        if not schema.same_set(taught):
            what = "MoveNet labels COCO's 17 keypoints" if is_movenet(config.teacher) else \
                f"the teacher predicts {taught.num_joints} keypoints ({', '.join(taught.names[:3])}, ...)"
            raise HrposeError(f"{config.teacher}: {what}; {config.train_ann[0]} has {schema.num_joints} others "
                              f"({', '.join(schema.names[:3])}, ...)")
    skipped: list[str] = []
    absent = missing_images(table)
    if absent:
        names = [table.image_paths[i] for i in absent]
        if not config.skip_bad_images:
            more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
            raise HrposeError(f"{names[0]}: image not found{more}; add --skip-bad-images to train without them")
        skipped += [f"{n}: image not found" for n in names]
        table = table.without_images(set(absent))
        if len(table) == 0:
            raise HrposeError("no training person left: every image is missing")
    val = None
    if config.val_ann:
        from hrpose_cli.data.coco import CocoKeypoints
        from hrpose_cli.engine.model_eval import person_records

        if not Path(config.val_images).is_dir():
            raise HrposeError(f"{config.val_images}: images folder not found (paired with {config.val_ann})")
        val_dataset = CocoKeypoints.load(Path(config.val_ann))
        if not val_dataset.schema.same_set(schema):
            raise HrposeError(f"{config.val_ann}: its keypoints ({', '.join(val_dataset.keypoint_names)}) differ from "
                              f"the training set's ({', '.join(schema.names)})")
        val = (val_dataset, person_records(val_dataset, Path(config.val_images), "gt"))
    return table, schema, skipped, val


def resolve_schema(found: KeypointSchema, config: TrainConfig) -> KeypointSchema:
    """The training files' set with the command line's overrides (--sigmas, --flip-pairs, --upper-body,
    --joint-weights LIST) applied; each is checked against the set's keypoints."""
    sigmas = weights = pairs = upper = None
    if config.sigmas is not None:
        sigmas = checked_values(config.sigmas, found, "--sigmas", "sigmas")
    if isinstance(config.joint_weights, list):
        weights = checked_values(config.joint_weights, found, "--joint-weights", "joint weights", positive=False)
    if config.flip_pairs is not None:
        pairs = parse_pairs(config.flip_pairs, found)
    if config.upper_body is not None:
        upper = parse_joint_list(config.upper_body, found, "--upper-body")
    return found.with_options(sigmas=sigmas, flip_pairs=pairs, joint_weights=weights, upper_body=upper)


def build_model(config: TrainConfig, checkpoint: dict | None, schema: KeypointSchema,
                say: Callable[[str], None]) -> tuple[nn.Module, HRNetConfig]:
    """The network to train, with one heatmap per keypoint of ``schema``; ``say`` tells the user what loaded."""
    from hrpose_cli.model.checkpoints import checkpoint_schema, load_model

    torch.manual_seed(config.seed)  # the same initial weights on every rank and in every repeat
    k = schema.num_joints
    if checkpoint is not None:
        model_config = HRNetConfig.from_dict(checkpoint["config"])
        model = PoseHRNet(model_config)
        model.load_state_dict(checkpoint["state_dict"], strict=True)
        return model, model_config
    if config.weights:
        if config.arch is not None and config.arch.lower() not in ARCHS:
            raise HrposeError(f"--arch {config.arch}: unknown; known: {', '.join(ARCHS)}")
        loaded, loaded_config = load_model(Path(config.weights), input_size=config.input_size, arch=config.arch)
        theirs = checkpoint_schema(Path(config.weights))
        if theirs.same_set(schema):
            return loaded.float(), loaded_config
        model_config = HRNetConfig.from_dict({**loaded_config.to_dict(), "num_joints": k})
        model = PoseHRNet(model_config)  # its head freshly initialised, seeded as above
        body = {key: v for key, v in loaded.state_dict().items() if not key.startswith(HEAD_PREFIX)}
        missing, unexpected = model.load_state_dict(body, strict=False)
        if unexpected or any(not key.startswith(HEAD_PREFIX) for key in missing):
            raise HrposeError(f"{config.weights}: its layers do not fit the network ({len(missing)} missing, {len(unexpected)} unexpected)")
        say(f"--weights {config.weights}: trained for {theirs.num_joints} other keypoints ({', '.join(theirs.names[:4])}"
            f"{', ...' if theirs.num_joints > 4 else ''}); loaded every layer but the final one, which starts fresh "
            f"for the {k} keypoints of the training set")
        return model.float(), model_config
    size = config.input_size or (256, 192)
    if config.model is not None:
        data = {**dict(config.model), "num_joints": k}
        if config.input_size is not None:
            data["input_size"] = list(size)
        model_config = HRNetConfig.from_dict(data)
    else:
        model_config = HRNetConfig.from_arch(config.arch or "w32", input_size=size, num_joints=k)
    return PoseHRNet(model_config), model_config
