"""CUDA paths: the same numbers as the CPU within the precision of each path. Skipped without CUDA."""

import numpy as np
import pytest
import torch

from hrpose_cli.core import codec, geometry
from hrpose_cli.data.augment import PIXEL_COLUMNS, AugmentConfig, apply_pixel_params, sample_pixel_params
from hrpose_cli.data.images import PackedImages
from hrpose_cli.engine.predictor import Predictor
from hrpose_cli.engine.runtime import Runtime
from hrpose_cli.model.hrnet import BasicBlock, HRNetConfig, PoseHRNet, fold_batchnorm, fuse_blocks

pytestmark = pytest.mark.gpu


def _images(rng):
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(480, 640), (333, 500), (720, 1280)]]


def test_warp_on_cuda_equals_cpu():
    rng = np.random.default_rng(0)
    packed = PackedImages.pack(_images(rng))
    boxes = rng.uniform(0, 300, (64, 4)) + np.array([0, 0, 20, 20])
    index = torch.from_numpy(rng.integers(0, 3, 64))
    center, scale = geometry.box_to_center_scale(boxes, 0.75)
    inv = torch.from_numpy(geometry.crop_matrices(center, scale, (192, 256), rng.uniform(-45, 45, 64), inverse=True))
    cpu = geometry.warp_crops(packed.pixels, packed.offsets, packed.shapes, index, inv, (192, 256))
    gpu_packed = packed.to(torch.device("cuda"))
    gpu = geometry.warp_crops(gpu_packed.pixels, gpu_packed.offsets, gpu_packed.shapes, index.cuda(), inv.cuda(), (192, 256))
    assert (gpu.cpu() - cpu).abs().max() < 1e-2


def test_strong_recipe_pixels_on_cuda_equal_cpu():
    rng = np.random.default_rng(2)
    crops = torch.from_numpy(rng.uniform(0, 255, (16, 3, 64, 48))).float()
    params = sample_pixel_params(rng, 16, AugmentConfig("strong"))
    values = torch.from_numpy(params.values).float()
    values[:, PIXEL_COLUMNS.index("noise")] = 0  # the noise streams of the two devices differ
    cpu = apply_pixel_params(crops, values, params.noise_seed)
    gpu = apply_pixel_params(crops.cuda(), values.cuda(), params.noise_seed)
    assert (gpu.cpu() - cpu).abs().max() < 1e-2


def peaked_heatmaps(generator: torch.Generator) -> torch.Tensor:
    """Heatmaps as a network gives them: one Gaussian peak per joint (away from the border) plus a little noise.

    DARK's Newton step is only defined at a peak; on pure noise the Hessian is near singular and the step
    amplifies any rounding (TF32 convolutions on the GPU) without bound, which made an earlier version of this
    test, on torch.randn maps, fail at random.
    """
    joints = torch.rand(32, 17, 2, generator=generator) * torch.tensor([160.0, 224.0]) + 16
    maps, _ = codec.encode(joints, torch.ones(32, 17), (64, 48), 2.0, 4.0)
    return maps + 0.01 * torch.rand(maps.shape, generator=generator)


def test_encode_decode_on_cuda_equal_cpu():
    generator = torch.Generator().manual_seed(0)
    joints = torch.rand(32, 17, 2, generator=generator) * torch.tensor([192.0, 256.0])
    visible = (torch.rand(32, 17, generator=generator) > 0.2).float()
    t_cpu, w_cpu = codec.encode(joints, visible, (64, 48), 2.0, 4.0)
    t_gpu, w_gpu = codec.encode(joints.cuda(), visible.cuda(), (64, 48), 2.0, 4.0)
    assert torch.allclose(t_gpu.cpu(), t_cpu, atol=1e-6) and torch.equal(w_gpu.cpu(), w_cpu)
    hm = peaked_heatmaps(generator)
    # DARK's blur is a convolution, which cuDNN may run in TF32 (an offset then moves by a few hundredths of
    # a pixel): compared here in full fp32, the same arithmetic as the CPU's.
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        for method, atol in (("argmax", 1e-5), ("dark", 2e-3)):
            c_cpu, s_cpu = codec.decode(hm, method)
            c_gpu, s_gpu = codec.decode(hm.cuda(), method)
            assert torch.allclose(c_gpu.cpu(), c_cpu, atol=atol) and torch.allclose(s_gpu.cpu(), s_cpu)
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def test_predictor_bf16_cuda_agrees_with_fp32_cpu():
    torch.manual_seed(0)
    config = HRNetConfig.from_arch("w18-small")
    model = PoseHRNet(config)
    # A trained-looking model is not needed: compare heatmaps, not keypoints of near-flat maps.
    rng = np.random.default_rng(1)
    packed = PackedImages.pack(_images(rng))
    boxes = np.array([[50, 40, 200, 300], [10, 10, 300, 200], [400, 100, 300, 500]], dtype=float)
    index = np.array([0, 1, 2])
    cpu = Predictor(model, config, Runtime.create("cpu"), flip=True)
    crop_cpu = cpu.crops(packed, index, boxes)
    hm_cpu = cpu.heatmaps(crop_cpu.inputs)
    gpu = Predictor(model, config, Runtime.create("cuda"), flip=True)  # moves the same weights to CUDA
    crop_gpu = gpu.crops(packed.to(torch.device("cuda")), index, boxes)
    hm_gpu = gpu.heatmaps(crop_gpu.inputs).cpu()
    rel = (hm_gpu - hm_cpu).norm() / hm_cpu.norm()
    assert rel < 3e-2, rel  # bf16 autocast against fp32


def test_compiled_predictor_pads_to_one_shape():
    config = HRNetConfig.from_arch("w18-small")
    runtime = Runtime.create("cuda", compile=True)
    predictor = Predictor(PoseHRNet(config), config, runtime, flip=True, pad_batches_to=8)
    for n in (8, 3):
        out = predictor.heatmaps(torch.randn(n, 3, 256, 192, device="cuda"))
        assert out.shape == (n, 17, 64, 48) and torch.isfinite(out).all()


def test_inference_leaves_cudnn_autotuning_off_unless_asked(tiny_weights, monkeypatch):
    """Inference skips cuDNN's autotuning (seconds of warm-up that an eval of 8,000 persons never wins back);
    a training runtime and autotune=True turn it on. The flag is the process's, so it is restored after."""
    from hrpose_cli.engine.inference import load_predictor

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    Runtime.create("cuda")
    assert torch.backends.cudnn.benchmark
    load_predictor(tiny_weights, "cuda")
    assert not torch.backends.cudnn.benchmark
    load_predictor(tiny_weights, "cuda", autotune=True)
    assert torch.backends.cudnn.benchmark


@pytest.mark.gpu
def test_detector_bf16_cuda_agrees_with_fp32_cpu(fixture_data):
    """The detector's CUDA path (bf16 autocast, channels_last, device NMS) finds the CPU's confident people."""
    from hrpose_cli.core.tracking import box_iou
    from hrpose_cli.data.images import read_image
    from hrpose_cli.engine.detector import PersonDetector

    images = [read_image(p) for p in sorted((fixture_data / "images").glob("*.jpg"))]
    cpu = PersonDetector(Runtime.create("cpu"), threshold=0.5).detect(PackedImages.pack(images))
    cuda_detector = PersonDetector(Runtime.create("cuda"), threshold=0.3)
    cuda = cuda_detector.detect(PackedImages.pack(images).to(cuda_detector.runtime.device))
    assert sum(len(found.boxes) for found in cpu) >= 10  # 16 people at score 0.5 in the four photos on the CPU
    for on_cpu, on_cuda in zip(cpu, cuda):
        if len(on_cpu.boxes):
            best = box_iou(on_cpu.boxes, on_cuda.boxes).max(axis=1)
            assert (best > 0.9).all(), best


def test_cuda_graph_replays_the_eager_network():
    torch.manual_seed(0)
    config = HRNetConfig.from_arch("w16-small")
    model = PoseHRNet(config)
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    eager_runtime = Runtime.create("cuda")
    eager_runtime.cuda_graphs = False
    eager = Predictor(model, config, eager_runtime, flip=True, pad_batches_to=8)
    graphed = Predictor(model, config, Runtime.create("cuda"), flip=True, pad_batches_to=8)
    assert type(graphed.graph).__name__ == "GraphedPose" and type(eager.graph).__name__ == "PoseGraph"
    x = torch.randn(8, 3, 256, 192, device="cuda")
    first = graphed.outputs(x)
    kept = [t.clone() for t in first]
    for n in (8, 3, 11):  # the padded shape replays; more persons than the pad run eagerly
        inputs = x[:n] if n <= 8 else torch.cat([x, x[: n - 8]])
        want, got = eager.outputs(inputs), graphed.outputs(inputs)
        rel = (got[0] - want[0]).norm() / want[0].norm()
        assert got[0].shape == (n, 17, 64, 48) and rel < 1e-2, (n, rel)
    assert all(torch.equal(a, b) for a, b in zip(first, kept))  # results are copies, not the graph's buffers


def test_compiled_regions_agree_with_eager_in_inference_and_training(monkeypatch):
    from hrpose_cli.engine.compiling import compile_regions

    # fp32 proper: with TF32 the two paths' rounding, amplified through train-mode BatchNorm, differed 14%
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.manual_seed(0)
    config = HRNetConfig.from_arch("w16-small")
    eager = PoseHRNet(config).cuda().to(memory_format=torch.channels_last)
    for p in eager.parameters():
        p.data.normal_(0, 0.05)
    compiled = PoseHRNet(config).cuda().to(memory_format=torch.channels_last)
    compiled.load_state_dict(eager.state_dict())
    compile_regions(compiled)
    x = torch.randn(4, 3, 256, 192, device="cuda").contiguous(memory_format=torch.channels_last)
    for model in (eager, compiled):
        model(x).square().mean().backward()
    want = torch.cat([p.grad.flatten() for p in eager.parameters()])
    got = torch.cat([p.grad.flatten() for p in compiled.parameters()])
    assert (got - want).norm() / want.norm() < 1e-3  # on the CPU (no TF32) the worst parameter differed 2.5e-5
    eager.eval(), compiled.eval()
    with torch.inference_mode():
        want, got = eager(x), compiled(x)
    assert (got - want).norm() / want.norm() < 1e-3
    # As `hrpose eval --compile` runs it: BatchNorms folded, blocks cuDNN-fused, only the fusions compiled.
    inference = compile_regions(fuse_blocks(fold_batchnorm(eager)))
    assert not any(m._compiled_call_impl for m in inference.modules() if isinstance(m, BasicBlock))
    with torch.inference_mode():
        got = inference(x)
    assert (got - want).norm() / want.norm() < 1e-3


def test_eval_on_cuda_graphed_and_compiled_gives_the_cpu_numbers(fixture_data, tiny_weights, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from hrpose_cli.cli.app import app

    monkeypatch.setenv("HRPOSE_COMPILE_CACHE", str(tmp_path / "cache"))
    results = {}
    for name, extra in {"cpu": ["--device", "cpu"], "cuda": ["--device", "cuda"],
                        "cuda_fp32": ["--device", "cuda", "--precision", "fp32"],
                        "compiled": ["--device", "cuda", "--compile"]}.items():
        out = tmp_path / f"{name}.json"
        result = CliRunner().invoke(app, ["eval", "--ann", str(fixture_data / "person_keypoints.json"), "--images",
                                          str(fixture_data / "images"), "--weights", str(tiny_weights), "--batch", "16",
                                          "--json", str(out), "--out", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
        results[name] = json.loads(out.read_text())
    assert (results["cuda"]["precision"], results["cuda_fp32"]["precision"]) == ("bf16", "fp32")
    assert abs(results["cuda_fp32"]["AP"] - results["cpu"]["AP"]) < 0.005  # the same arithmetic, bar TF32
    for name in ("cuda", "compiled"):
        assert abs(results[name]["AP"] - results["cpu"]["AP"]) < 0.02, (name, results[name]["AP"], results["cpu"]["AP"])
        assert {"load_model", "warm_up", "upload", "warps", "network", "decode"} <= set(results[name]["stage_seconds"])
    assert any((tmp_path / "cache").iterdir())  # the compiled kernels were kept


def test_train_with_compile_on_cuda_validates_through_the_cuda_graph(fixture_data, tmp_path, monkeypatch):
    from hrpose_cli.engine import trainer
    from hrpose_cli.engine.train_config import TrainConfig

    monkeypatch.setenv("HRPOSE_COMPILE_CACHE", str(tmp_path / "cache"))
    ann = fixture_data / "person_keypoints.json"
    config = TrainConfig(train_ann=[str(ann)], train_images=[str(fixture_data / "images")], arch="w16-small",
                         device="cuda", workers=0, epochs=2, batch=8, compile=True, val_ann=str(ann),
                         val_images=str(fixture_data / "images"), val_every=1, out=str(tmp_path / "run"))
    result = trainer.run(config)
    assert len(result.history) == 2 and all(np.isfinite(m["loss"]) for m in result.history)
    assert all("AP" in m and "validation" in m["stage_seconds"] for m in result.history)


def test_graphed_train_step_takes_the_eager_steps(monkeypatch):
    """The recorded step gives the weights of the same eager steps: its warm-up leaves no trace, the
    learning rate moves through its device tensor, and Adam's state starts from zero."""
    from hrpose_cli.engine.train_step import GraphedTrainStep, plain_optimizer_state

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    torch.manual_seed(0)
    config = HRNetConfig.from_arch("w16-small")
    models = [PoseHRNet(config).cuda().train() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [torch.optim.Adam(m.parameters(), lr=1e-3, fused=True, capturable=True) for m in models]

    from hrpose_cli.engine.optim import joints_mse_loss

    def loss_fn(model):
        return lambda x, t, w: joints_mse_loss(model(x), t, w)

    step = GraphedTrainStep(models[1], optimizers[1], loss_fn(models[1]), torch.device("cuda"))
    generator = torch.Generator("cuda").manual_seed(1)
    for i, lr in enumerate((1e-3, 5e-4, 2e-4, 1e-4)):
        x = torch.randn(4, 3, 256, 192, device="cuda", generator=generator)
        t = torch.rand(4, 17, 64, 48, device="cuda", generator=generator)
        w = torch.rand(4, 17, device="cuda", generator=generator)
        optimizers[0].param_groups[0]["lr"] = lr
        optimizers[0].zero_grad(set_to_none=True)
        want = loss_fn(models[0])(x, t, w)
        want.backward()
        optimizers[0].step()
        step.set_lr(lr)
        got = step(x, t, w)
        assert torch.allclose(got, want.detach(), rtol=1e-4), (i, got.item(), want.item())
    for (name, a), b in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-6), name
    assert isinstance(plain_optimizer_state(optimizers[1])["param_groups"][0]["lr"], float)


def test_train_on_cuda_records_the_step_and_resumes(fixture_data, tmp_path):
    import json
    import math

    from typer.testing import CliRunner

    from hrpose_cli.cli.app import app
    from hrpose_cli.engine import trainer
    from hrpose_cli.engine.train_config import TrainConfig

    class _StopAfter(trainer.TrainReporter):
        def __init__(self, epoch: int):
            self.epoch = epoch

        def epoch_end(self, metrics):
            if metrics["epoch"] == self.epoch:
                raise KeyboardInterrupt

    ann, images = fixture_data / "person_keypoints.json", fixture_data / "images"
    common = dict(train_ann=[str(ann)], train_images=[str(images)], arch="w16-small", device="cuda", workers=0,
                  epochs=3, batch=8, ema=0.99, val_ann=str(ann), val_images=str(images))
    whole = trainer.run(TrainConfig(out=str(tmp_path / "whole"), **common))
    lines = [json.loads(line) for line in (tmp_path / "whole/metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(m["loss"]) and "network_step" in m["stage_seconds"] for m in lines)
    assert "forward" not in lines[0]["stage_seconds"] and lines[-1]["loss"] < lines[0]["loss"]
    with pytest.raises(KeyboardInterrupt):  # stopped after epoch 1, resumed: the step is recorded again
        trainer.run(TrainConfig(out=str(tmp_path / "parts"), **common), _StopAfter(1))
    trainer.run(TrainConfig(out=str(tmp_path / "parts"), resume=True, device="cuda", workers=0))
    resumed = [json.loads(line) for line in (tmp_path / "parts/metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in resumed] == [1, 2, 3]
    for a, b in zip(whole.history, resumed):
        assert abs(a["loss"] - b["loss"]) < 0.02 * a["loss"], (a["loss"], b["loss"])
    result = CliRunner().invoke(app, ["train", "--train-ann", str(ann), "--train-images", str(images), "--arch", "w16-small",
                                      "--device", "cuda", "--workers", "0", "--batch", "8", "--epochs", "1",
                                      "--no-cuda-graphs", "--out", str(tmp_path / "eager")])
    assert result.exit_code == 0, result.output
    assert "CUDA graphs" not in result.output
    eager = json.loads((tmp_path / "eager/metrics.jsonl").read_text().splitlines()[0])
    assert "network_step" not in eager["stage_seconds"] and "forward" in eager["stage_seconds"]
    assert abs(eager["loss"] - lines[0]["loss"]) < 0.02 * lines[0]["loss"]


def test_fusion_upsampling_keeps_the_autocast_dtype():
    """CUDA autocast runs nn.Upsample in fp32 (and the fusion sums after it); the fusion layers' upsampling
    stays in bf16 and copies pixels exactly."""
    from hrpose_cli.model.hrnet import NearestUpsample

    x = torch.randn(2, 3, 4, 5, device="cuda").bfloat16()
    with torch.autocast("cuda", torch.bfloat16):
        plain = torch.nn.Upsample(scale_factor=2, mode="nearest")(x)
        y = NearestUpsample(scale_factor=2, mode="nearest")(x)
    assert plain.dtype == torch.float32
    assert y.dtype == torch.bfloat16 and torch.equal(y[:, :, ::2, ::2], x) and torch.equal(y[:, :, 1::2, 1::2], x)


def test_cudnn_fused_blocks_compute_the_folded_network(monkeypatch):
    from hrpose_cli.model.hrnet import fold_batchnorm, fuse_blocks

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    config = HRNetConfig.from_arch("w16-small")
    model = PoseHRNet(config)
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    folded = fold_batchnorm(model).cuda().to(memory_format=torch.channels_last)
    fused = fuse_blocks(fold_batchnorm(model)).cuda().to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 256, 192, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        want, got = folded(x), fused(x)
        assert (got - want).norm() / want.norm() < 1e-4
        with torch.autocast("cuda", torch.bfloat16):
            got16 = fused.to(torch.bfloat16)(x)
    assert got16.dtype == torch.bfloat16 and (got16.float() - want).norm() / want.norm() < 2e-2


def test_hrnet_teacher_on_cuda_gives_the_cpu_targets_and_trains(fixture_data, tiny_weights, tmp_path):
    """An HRNet teacher (--teacher MODEL.pt --teacher-mode match) on the GPU: bf16 autocast and channels_last
    give the CPU's heatmaps within bf16 rounding, and a run through the recorded train step finishes."""
    import contextlib

    from hrpose_cli.engine import trainer
    from hrpose_cli.engine.distill import PoseTeacher
    from hrpose_cli.engine.train_config import TrainConfig
    from test_distill import _student_crops

    crops, _ = _student_crops(fixture_data, 10.0, False)
    cpu = PoseTeacher(tiny_weights, torch.device("cpu"), (64, 48), flip=True, channels_last=False)
    gpu = PoseTeacher(tiny_weights, torch.device("cuda"), (64, 48), flip=True, channels_last=True)
    want = cpu.heatmaps(crops, contextlib.nullcontext)
    got = gpu.heatmaps(crops.cuda(), lambda: torch.autocast("cuda", torch.bfloat16)).cpu()
    assert got.dtype == torch.float32 and (got - want).norm() / want.norm() < 2e-2
    ann = fixture_data / "person_keypoints.json"
    config = TrainConfig(train_ann=[str(ann)], train_images=[str(fixture_data / "images")], arch="w16-small",
                         device="cuda", workers=0, epochs=2, batch=8, teacher=str(tiny_weights), teacher_mode="match",
                         teacher_flip=True, gt_weight=0.5, out=str(tmp_path / "run"))
    result = trainer.run(config)
    assert len(result.history) == 2 and all(np.isfinite(m["loss"]) and m["loss"] > 0 for m in result.history)


def test_ctrl_c_ends_a_cuda_run_with_one_word(tmp_path, fixture_data):
    """On CUDA the batches come through a pin-memory thread: the one that printed a traceback (call 22)."""
    from test_train import interrupt_a_cli_run

    interrupt_a_cli_run(tmp_path, fixture_data, "cuda")
