"""ONNX against torch on the real crops of a COCO set (coco-real val by default): heatmaps, keypoints and
the ten COCO numbers, for fp32 and fp16 exports of the same weights.

    python benchmarks/onnx_parity.py [--weights W] [--data ../shared/data] [--half]

Each export is made by hrpose export's code into a temporary folder; both runtimes run on the CPU through
the same Predictor (GT boxes, flip test, argmax), the AP through Model.evaluate, as `hrpose eval` does.
Without --weights: the default model. ``--random-w32 FILE`` makes a W32 of the official layout instead
(no official checkpoint is at hand): randomly initialised, its BatchNorm statistics then measured on real
crops of coco-real train and its final layer scaled so that the heatmaps spread like a trained model's
(about 0 to 1; at random initialisation they are of order 1e-13 and every comparison would pass), saved
as a bare official state dict and used as --weights.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from hrpose_cli.api import load
from hrpose_cli.data.coco import CocoKeypoints
from hrpose_cli.engine.inference import load_predictor
from hrpose_cli.engine.model_eval import decode_records, predict_records
from hrpose_cli.engine.onnx_pose import export_pose
from hrpose_cli.engine.predictor import Predictor
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet


def random_official_w32(path: Path, data: Path, crops: int = 32) -> Path:
    """A random W32 whose activations and heatmaps are in a trained model's range (see the module doc)."""
    torch.manual_seed(0)
    config = HRNetConfig.from_arch("w32")
    model = PoseHRNet(config)
    ann = data / "coco-real" / "annotations" / "person_keypoints_train.json"
    records = CocoKeypoints.load(ann).persons(data / "coco-real" / "images")[:crops]
    predictor = Predictor(PoseHRNet(config), config, Runtime.create("cpu"))
    batch = next(iter(decode_records(records, crops, 0)))
    index = [i for i, people in enumerate(batch.items) for _ in people]
    boxes = np.array([p.bbox for people in batch.items for p in people])
    inputs = predictor.crops(batch.images, np.array(index), boxes).inputs
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a plain average over the calibration batch
    with torch.no_grad():
        model.train()(inputs)
        out = model.eval()(inputs)
        model.final_layer.weight.mul_(0.25 / out.std())
        model.final_layer.bias.sub_(model(inputs).mean())
    torch.save(model.state_dict(), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--random-w32", type=Path, help="write a random official-layout W32 here and use it")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--half", action="store_true", help="also measure an fp16 export")
    args = parser.parse_args()
    if args.random_w32:
        args.weights = random_official_w32(args.random_w32, args.data)
    ann = args.data / "coco-real" / "annotations" / "person_keypoints_val.json"
    images = args.data / "coco-real" / "images"
    records = CocoKeypoints.load(ann).persons(images)
    torch_run = predict_records(load_predictor(args.weights, "cpu"), records, 64, 0, keep_heatmaps=True)
    torch_stats = load(args.weights, "cpu", detector=False).evaluate(ann, images, workers=0).stats
    print(f"{args.weights or 'default model'} on {ann.parent.parent.name} val: {len(records)} persons, flip test, "
          f"torch AP {torch_stats['AP']:.4f}")
    with tempfile.TemporaryDirectory() as tmp:
        for half in (False, True) if args.half else (False,):
            path = export_pose(args.weights, Path(tmp) / f"model{'16' if half else ''}.onnx", half=half).path
            run = predict_records(load_predictor(path, "cpu"), records, 64, 0, keep_heatmaps=True)
            stats = load(path, "cpu", detector=False).evaluate(ann, images, workers=0).stats
            heatmaps = np.abs(run.heatmaps - torch_run.heatmaps).max()
            xy = np.abs(run.keypoints[..., :2] - torch_run.keypoints[..., :2])
            scores = np.abs(run.keypoints[..., 2] - torch_run.keypoints[..., 2]).max()
            worst = max(abs(stats[k] - torch_stats[k]) for k in torch_stats)
            print(f"  {'fp16' if half else 'fp32'} ONNX: heatmaps max abs diff {heatmaps:.2e} (torch's peak values up to "
                  f"{torch_run.heatmaps.max():.3f}), keypoints max {xy.max():.4f} px ({(xy.max(-1) > 0.01).sum()} of "
                  f"{xy.shape[0] * xy.shape[1]} joints beyond 0.01 px), scores max {scores:.2e}; AP {stats['AP']:.4f} "
                  f"(diff {stats['AP'] - torch_stats['AP']:+.2e}; largest diff of the ten numbers {worst:.2e})")


if __name__ == "__main__":
    main()
