"""PoseHRNet against the official pose_hrnet: key names, shapes, dtypes, parameter and FLOP counts, fusion maths."""

import os
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hrpose_cli.errors import HrposeError
from hrpose_cli.model.hrnet import ARCHS, HighResolutionModule, HRNetConfig, PoseHRNet, count_parameters, fold_batchnorm

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HRPOSE_SHARED", REPO.parent / "shared"))
W32_KEYS = REPO / "tests" / "data" / "hrnet_w32_keys.txt"  # copy of shared/reference/hrnet_w32_keys.txt


def read_reference(path: Path) -> list[tuple[str, list[int], str]]:
    """Rows of 'key<TAB>[shape]<TAB>dtype' as dumped from the official PoseHighResolutionNet."""
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        rows.append((key, [int(v) for v in shape.strip("[]").split(",") if v.strip()], dtype))
    return rows


def meta_model(arch: str, **kw) -> PoseHRNet:
    """Shapes without memory or init time: enough for key, shape, parameter and FLOP checks."""
    with torch.device("meta"):
        return PoseHRNet(HRNetConfig.from_arch(arch, **kw))


def as_rows(model: nn.Module) -> list[tuple[str, list[int], str]]:
    return [(k, list(v.shape), str(v.dtype)) for k, v in model.state_dict().items()]


def test_w32_state_dict_equals_official_key_for_key():
    ref = read_reference(W32_KEYS)
    assert len(ref) == 1754
    assert as_rows(meta_model("w32")) == ref  # same keys, same order, same shapes, same dtypes


@pytest.mark.parametrize("arch", ["w32", "w48"])
def test_state_dict_equals_shared_reference(arch):
    path = SHARED / "reference" / f"hrnet_{arch}_keys.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found (set HRPOSE_SHARED to the shared folder to run this test)")
    assert as_rows(meta_model(arch)) == read_reference(path)


def test_parameter_counts_equal_official():
    assert count_parameters(meta_model("w32")) == 28_536_113
    assert count_parameters(meta_model("w48")) == 63_595_745
    # count_parameters on something countable by hand: 3*4*3*3 weights + 4 biases.
    assert count_parameters(nn.Conv2d(3, 4, 3)) == 112


def test_w32_flops_equal_official():
    """FlopCounterMode of the official network on 1x3x256x192 (reference header): every conv in place."""
    model = meta_model("w32")
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 256, 192, device="meta"))
    assert counter.get_total_flops() == 15_290_007_552


def test_official_structure_details():
    model = meta_model("w32")
    # Last stage-4 module keeps only the highest-resolution output; earlier ones fuse all four.
    assert len(model.stage4[-1].fuse_layers) == 1 and len(model.stage4[0].fuse_layers) == 4
    # Up-path: 1x1 conv + BN + nearest upsample by 2**(j-i).
    up = model.stage4[0].fuse_layers[0][3]
    assert isinstance(up[2], nn.Upsample) and up[2].mode == "nearest" and up[2].scale_factor == 8
    # Down-path from branch 0 to 3: conv+BN+ReLU twice, then conv+BN without ReLU.
    down = model.stage4[0].fuse_layers[3][0]
    assert [[type(m).__name__ for m in step] for step in down] == [
        ["Conv2d", "BatchNorm2d", "ReLU"],
        ["Conv2d", "BatchNorm2d", "ReLU"],
        ["Conv2d", "BatchNorm2d"],
    ]
    assert [tuple(step[0].stride) for step in down] == [(2, 2)] * 3
    assert model.stage4[0].fuse_layers[2][2] is None
    assert model.transition2[0] is None and model.transition2[1] is None
    assert model.final_layer.bias is not None and model.final_layer.kernel_size == (1, 1)
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_fusion_by_hand():
    """Two branches with identity blocks: y0 = relu(x0 - up2(x1[:, :1])), y1 = relu(x1 - x0[::2, ::2] in channel 0)."""
    module = HighResolutionModule([1, 2], num_blocks=1).eval()
    with torch.no_grad():
        for branch in module.branches:  # zero convs: BasicBlock(x) = relu(0 + x)
            for m in branch.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.zero_()
        up_conv = module.fuse_layers[0][1][0]
        up_conv.weight.copy_(torch.tensor([-1.0, 0.0]).view(1, 2, 1, 1))  # minus channel 0 of x1
        down_conv = module.fuse_layers[1][0][0][0]
        down_conv.weight.zero_()
        down_conv.weight[0, 0, 1, 1] = -1.0  # centre tap: minus x0 at even rows/cols, into channel 0
    x0 = torch.arange(16.0).view(1, 1, 4, 4)
    x1 = torch.tensor([[[[1.0, -20.0], [3.0, 4.0]], [[-5.0, 6.0], [-100.0, 8.0]]]])
    with torch.no_grad():
        y0, y1 = module([x0, x1])
    bn = 1 / (1 + 1e-5) ** 0.5  # eval BN with running stats (0, 1)
    up = torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [3, 3, 4, 4], [3, 3, 4, 4]])  # relu(x1[0]) upsampled (nearest)
    torch.testing.assert_close(y0[0, 0], (x0[0, 0] - bn * up).clamp(min=0))
    assert y0[0, 0, 0, 0] == 0  # 0 - 1 passed the final ReLU
    # relu(x1[0]) = [[1, 0], [3, 4]] minus x0[::2, ::2] = [[0, 2], [8, 10]] -> [[1, -2], [-5, -6]] -> ReLU
    expected1 = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 6.0], [0.0, 8.0]]])
    torch.testing.assert_close(y1[0], expected1)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_broadcast_fusion_is_the_upsampled_one_bit_for_bit(layout):
    """The eager fusion adds lower branches by broadcasting, the compiled one (upsampled_fuse) upsamples them
    first, as the official code: the same sums in the same order, and the layout kept."""
    torch.manual_seed(0)
    module = HighResolutionModule([4, 8, 16, 32], num_blocks=1).eval()
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial running statistics, so the BatchNorms count
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    xs = [torch.randn(2, 4 * 2**k, 32 // 2**k, 24 // 2**k).contiguous(memory_format=layout) for k in range(4)]
    with torch.no_grad():
        ours = module.fuse([x.clone() for x in xs])
        reference = module.upsampled_fuse([x.clone() for x in xs])
    for y, expected in zip(ours, reference, strict=True):
        assert torch.equal(y, expected)
        assert y.is_contiguous(memory_format=layout)


def test_forward_sums_upsampled_under_autograd_and_by_broadcast_without():
    """Under autograd the eager fusion upsamples (the broadcast sums' gradient is a slow generic reduction on
    the GPU); without autograd it broadcasts. Both give the same outputs."""
    torch.manual_seed(0)
    module = HighResolutionModule([4, 8], num_blocks=1).train()
    xs = [torch.randn(2, 4, 16, 12), torch.randn(2, 8, 8, 6)]

    def backward_ops(y: torch.Tensor) -> set[str]:
        seen, todo = set(), [y.grad_fn]
        while todo:
            fn = todo.pop()
            if fn is not None and fn.name() not in seen:
                seen.add(fn.name())
                todo.extend(next_fn for next_fn, _ in fn.next_functions)
        return seen

    with_grad = module(xs)
    assert any("UpsampleNearest2D" in name for name in backward_ops(with_grad[0]))
    with torch.no_grad():
        without = module(xs)
    for y, expected in zip(without, with_grad, strict=True):
        assert torch.equal(y, expected.detach())


def test_official_init():
    model = PoseHRNet(HRNetConfig.from_arch("w32"))
    w = model.layer1[0].conv2.weight  # 36,864 draws
    assert abs(w.std().item() - 0.001) < 0.00005 and abs(w.mean().item()) < 0.00005
    assert torch.all(model.final_layer.bias == 0)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in bns)


@pytest.mark.parametrize("size", [(256, 192), (384, 288)])
def test_w32_and_w48_output_shapes(size):
    for arch in ("w32", "w48"):
        out = meta_model(arch, input_size=size)(torch.empty(2, 3, *size, device="meta"))
        assert tuple(out.shape) == (2, 17, size[0] // 4, size[1] // 4)


def test_w32_forward_runs_on_cpu():
    model = PoseHRNet().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 192))
    assert out.shape == (1, 17, 64, 48) and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["w18-small", "w16-small"])
@pytest.mark.parametrize("size", [(256, 192), (384, 288)])
def test_small_variants_forward(arch, size):
    config = HRNetConfig.from_arch(arch, input_size=size, num_joints=14)
    model = PoseHRNet(config).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 14, *config.heatmap_size)
    assert count_parameters(model) < count_parameters(meta_model(arch.split("-")[0])) < 28_536_113


def _lively_model(arch: str = "w16-small") -> PoseHRNet:
    """Kaiming weights so activations are O(1) and precision differences are visible."""
    torch.manual_seed(0)
    model = PoseHRNet(HRNetConfig.from_arch(arch)).eval()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
    return model


def test_channels_last_and_bf16_autocast():
    model = _lively_model()
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out_cl = model_cl(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(out_cl, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_bf16 = model_cl(x.to(memory_format=torch.channels_last))
    assert out_bf16.dtype == torch.bfloat16 and out_bf16.shape == ref.shape
    corr = torch.corrcoef(torch.stack([out_bf16.float().flatten(), ref.flatten()]))[0, 1]
    assert corr > 0.99


def test_compiles_without_graph_breaks():
    model = _lively_model()
    compiled = torch.compile(model, backend="eager", fullgraph=True)  # fullgraph: any graph break raises
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


def test_config_dict_roundtrip_and_heatmap_size():
    config = HRNetConfig.from_arch("w48", input_size=(384, 288))
    d = config.to_dict()
    assert d == {"width": 48, "stage_modules": [1, 4, 3], "num_blocks": 4, "num_joints": 17, "input_size": [384, 288]}
    assert HRNetConfig.from_dict(d) == config
    assert config.heatmap_size == (96, 72) and HRNetConfig().heatmap_size == (64, 48)
    assert config.arch == "w48" and HRNetConfig(width=40).arch.startswith("w40")


def test_named_variants():
    assert HRNetConfig.from_arch("W32") == HRNetConfig()
    small = HRNetConfig.from_arch("w18-small")
    assert (small.width, small.stage_modules, small.num_blocks) == (18, (1, 2, 1), 2)
    assert HRNetConfig.from_arch("w18").stage_modules == (1, 4, 3)
    assert HRNetConfig.from_arch("w16").width == 16
    assert {"w32", "w48", "w18", "w18-small", "w16"} <= set(ARCHS)


def test_bad_configs_raise_hrpose_error():
    with pytest.raises(HrposeError, match=r"unknown architecture 'w99'.*w32, w48"):
        HRNetConfig.from_arch("w99")
    with pytest.raises(HrposeError, match="multiples of 32"):
        HRNetConfig(input_size=(250, 192))
    with pytest.raises(HrposeError, match="unknown HRNet config keys: depth"):
        HRNetConfig.from_dict({"depth": 3})


def test_folded_batchnorm_gives_the_same_heatmaps():
    model = _lively_model("w16")
    generator = torch.Generator().manual_seed(1)
    for m in model.modules():  # statistics and affine terms far from the identity, so a wrong fold shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5, generator=generator)
            m.running_var.uniform_(0.5, 2.0, generator=generator)
            m.weight.data.uniform_(0.5, 1.5, generator=generator)
            m.bias.data.normal_(0, 0.2, generator=generator)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 100  # the original keeps its own
    x = torch.randn(2, 3, 256, 192, generator=generator)
    with torch.no_grad():
        expected, got = model(x), folded(x)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_cpu_predictor_runs_the_folded_default_model():
    from hrpose_cli.engine.inference import load_predictor

    predictor = load_predictor(None, "cpu")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in predictor.model.modules())



def test_fusion_upsampling_is_nn_upsample():
    from hrpose_cli.model.hrnet import NearestUpsample

    z = torch.randn(1, 2, 3, 3)
    assert torch.equal(NearestUpsample(scale_factor=4, mode="nearest")(z), torch.nn.Upsample(scale_factor=4, mode="nearest")(z))


def test_fused_blocks_need_a_folded_network():
    from hrpose_cli.model.hrnet import fuse_blocks

    with pytest.raises(ValueError, match="folded"):
        fuse_blocks(PoseHRNet(HRNetConfig.from_arch("w16-small")))


def test_fused_network_keeps_its_keys_and_fuses_the_stem_and_every_transition_step():
    """What cuDNN runs as single calls (numerically checked against the folded network in tests/test_gpu.py):
    the stem's second conv and the 4 conv + ReLU steps of W32's transitions, with the state dict unchanged.
    The first conv reads the 3-channel fp32 image, which cuDNN's fused call refuses on the GPU."""
    from hrpose_cli.model.hrnet import BasicBlock, Bottleneck, FusedConvReLU, fold_batchnorm, fuse_blocks

    folded = fold_batchnorm(PoseHRNet(HRNetConfig.from_arch("w32")))
    keys = {k: v.shape for k, v in folded.state_dict().items()}
    fused = fuse_blocks(folded)
    assert {k: v.shape for k, v in fused.state_dict().items()} == keys
    assert fused.cudnn_fused and sum(isinstance(m, FusedConvReLU) for m in fused.modules()) == 4
    assert all(m.cudnn_fused for m in fused.modules() if isinstance(m, (BasicBlock, Bottleneck)))


@pytest.mark.parametrize("width", [32, 18])
def test_widening_keeps_the_function_and_breaks_the_copies_symmetry(width):
    """By an integer factor (w16 -> w32) and not (w16 -> w18: channels 0 and 1 of every 16 get a twin)."""
    from hrpose_cli.model.widen import widen_state_dict

    torch.manual_seed(0)
    narrow = PoseHRNet(HRNetConfig.from_arch("w16-small")).eval()
    with torch.no_grad():  # BatchNorms that do something, so that their tiling is tested too
        for module in narrow.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    state_dict, config = widen_state_dict(narrow.state_dict(), narrow.config, width)
    assert config.width == width and config.stage_modules == narrow.config.stage_modules
    wide = PoseHRNet(config, random_init=False)
    wide.load_state_dict(state_dict)  # strict: every key and shape of a wider w16-small
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        assert torch.allclose(wide.eval()(x), narrow(x), atol=1e-5)
    split = state_dict["stage2.0.branches.0.0.conv1.weight"]  # width x width: both dimensions grew
    twins = width - 16  # new input channels 16.. copy old channels 0..twins-1
    assert not torch.equal(split[:, 16:], split[:, :twins])  # the copies differ...
    old = narrow.state_dict()["stage2.0.branches.0.0.conv1.weight"]
    summed = split[:16, :16].clone()
    summed[:, :twins] += split[:16, 16:]
    assert torch.allclose(summed, old, atol=1e-6)  # ...and sum to the old weight
    assert torch.equal(split[:16, twins:16], old[:, twins:])  # a channel without a twin keeps its weight
    with pytest.raises(HrposeError, match="larger"):
        widen_state_dict(narrow.state_dict(), narrow.config, 16)


def test_deepening_keeps_the_function_and_the_new_blocks_can_learn(tmp_path):
    """Zero-scaled residuals: a w16-small with 3 blocks per branch instead of 2 computes what it computed, and
    the new blocks' second BatchNorm scales get gradients. The script path too, and a shallower ask fails."""
    import subprocess
    import sys

    from hrpose_cli.model.checkpoints import load_model, save_checkpoint
    from hrpose_cli.model.widen import deepen_state_dict

    torch.manual_seed(0)
    shallow = PoseHRNet(HRNetConfig.from_arch("w16-small")).eval()
    for p in shallow.parameters():
        p.data.normal_(0, 0.05)  # an output that is not near zero
    state_dict, config = deepen_state_dict(shallow.state_dict(), shallow.config, 3)
    assert config.num_blocks == 3 and config.width == 16
    deep = PoseHRNet(config, random_init=False)
    deep.load_state_dict(state_dict)  # strict
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        want = shallow(x)
        assert torch.allclose(deep.eval()(x), want, atol=1e-5 * want.abs().max().item())
    deep.train()(x).square().mean().backward()
    new_scale = deep.stage2[0].branches[0][2].bn2.weight
    assert torch.equal(new_scale.detach(), torch.zeros_like(new_scale)) and new_scale.grad.abs().sum() > 0
    with pytest.raises(HrposeError, match="must be more"):
        deepen_state_dict(shallow.state_dict(), shallow.config, 2)
    save_checkpoint(tmp_path / "s.pt", shallow, shallow.config, half=False, meta={"run": "test"})
    done = subprocess.run([sys.executable, "benchmarks/widen_model.py", str(tmp_path / "s.pt"), str(tmp_path / "d.pt"),
                           "--blocks", "3"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert load_model(tmp_path / "d.pt")[1] == config


def test_widen_and_int8_scripts_round_trip(tmp_path):
    """benchmarks/widen_model.py then int8_weights.py pack/unpack: the device-call path of a wider student."""
    import subprocess
    import sys

    from hrpose_cli.model.checkpoints import load_model, save_checkpoint

    def script(*args):
        return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True)

    torch.manual_seed(0)
    narrow = PoseHRNet(HRNetConfig.from_arch("w16-small"))
    save_checkpoint(tmp_path / "w16.pt", narrow, narrow.config, half=True, meta={"run": "test"})
    assert script("benchmarks/widen_model.py", tmp_path / "w16.pt", tmp_path / "w32.pt", "--width", 32).returncode == 0
    assert script("benchmarks/int8_weights.py", "pack", tmp_path / "w32.pt", tmp_path / "q.pt").returncode == 0
    assert script("benchmarks/int8_weights.py", "unpack", tmp_path / "q.pt", tmp_path / "back.pt").returncode == 0
    assert (tmp_path / "q.pt").stat().st_size < 0.6 * (tmp_path / "w32.pt").stat().st_size / 2  # under fp16's size
    wide, config = load_model(tmp_path / "w32.pt")
    back, back_config = load_model(tmp_path / "back.pt")
    assert back_config == config and config.width == 32
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        want = wide.eval()(x)
        assert ((back.eval()(x) - want).norm() / want.norm()) < 0.05
    bad = script("benchmarks/int8_weights.py", "unpack", tmp_path / "w32.pt", tmp_path / "x.pt")
    assert bad.returncode != 0 and "not a file written by" in bad.stderr and "Traceback" not in bad.stderr
