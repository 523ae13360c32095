"""HRNet for top-down pose (Sun et al., CVPR 2019), laid out exactly as the official pose_hrnet.

Module and attribute names, nesting and the places where the official code keeps ``None`` entries are copied
from deep-high-resolution-net.pytorch (lib/models/pose_hrnet.py) so that the official checkpoints load with
strict=True; only the configuration is ours (a frozen dataclass instead of a yacs tree).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from hrpose_cli.errors import HrposeError

BN_MOMENTUM = 0.1
STEM_CHANNELS = 64  # fixed in the official network whatever the width


@dataclass(frozen=True)
class HRNetConfig:
    """Everything needed to rebuild the network; stored in hrpose checkpoints as ``to_dict()``."""

    width: int = 32  # branch i has width * 2**i channels
    stage_modules: tuple[int, int, int] = (1, 4, 3)  # HighResolutionModules in stages 2, 3, 4
    num_blocks: int = 4  # BasicBlocks per branch in every module
    num_joints: int = 17
    input_size: tuple[int, int] = field(default=(256, 192))  # (height, width) of the crop

    def __post_init__(self) -> None:
        # Normalise lists (from JSON / checkpoints) to tuples so configs compare and hash equal.
        object.__setattr__(self, "stage_modules", tuple(int(v) for v in self.stage_modules))
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        if self.width < 1 or self.num_blocks < 1 or self.num_joints < 1 or len(self.stage_modules) != 3:
            raise HrposeError(f"invalid HRNet configuration: {self}")
        if min(self.stage_modules) < 1:
            raise HrposeError(f"invalid HRNet configuration: every stage needs a module: {self}")
        if len(self.input_size) != 2:
            raise HrposeError(f"input size must be (height, width), got {self.input_size}")
        h, w = self.input_size
        if h % 32 or w % 32 or h <= 0 or w <= 0:
            # Four stride-2 levels with nearest x2/x4/x8 upsampling need sizes divisible by 32 (as the official).
            raise HrposeError(f"input size {h}x{w}: height and width must be positive multiples of 32")

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(height, width) of the output heatmaps: the network has stride 4."""
        return (self.input_size[0] // 4, self.input_size[1] // 4)

    @property
    def arch(self) -> str:
        """The named variant this config is (input size and joints aside), else a descriptive name."""
        for name, kwargs in ARCHS.items():
            if all(getattr(self, k) == v for k, v in kwargs.items()):
                return name
        return f"w{self.width} (stage modules {self.stage_modules}, {self.num_blocks} blocks)"

    def to_dict(self) -> dict[str, Any]:
        """Plain ints and lists only, so it survives JSON and torch.load(weights_only=True)."""
        d = asdict(self)
        d["stage_modules"] = list(self.stage_modules)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HRNetConfig:
        known = {"width", "stage_modules", "num_blocks", "num_joints", "input_size"}
        unknown = set(d) - known
        if unknown:
            raise HrposeError(f"unknown HRNet config keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def from_arch(cls, name: str, input_size: tuple[int, int] = (256, 192), num_joints: int = 17) -> HRNetConfig:
        """``w32``, ``w48`` (official) or one of the smaller variants in ARCHS."""
        key = name.strip().lower()
        if key not in ARCHS:
            raise HrposeError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}")
        return cls(**ARCHS[key], num_joints=num_joints, input_size=tuple(input_size))


# Named variants. w32/w48 are the paper's; the others trade accuracy for speed (the "-small" ones use
# HRNet-W18-small-v2's depth: stages of 1/2/1 modules with 2 blocks per branch).
ARCHS: dict[str, dict[str, Any]] = {
    "w32": dict(width=32, stage_modules=(1, 4, 3), num_blocks=4),
    "w48": dict(width=48, stage_modules=(1, 4, 3), num_blocks=4),
    "w18": dict(width=18, stage_modules=(1, 4, 3), num_blocks=4),
    "w18-small": dict(width=18, stage_modules=(1, 2, 1), num_blocks=2),
    "w16": dict(width=16, stage_modules=(1, 4, 3), num_blocks=4),
    "w16-small": dict(width=16, stage_modules=(1, 2, 1), num_blocks=2),
}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """ReLU(conv(x) + bias) as one cuDNN call."""
    return torch.cudnn_convolution_relu(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _conv_add_relu(conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """ReLU(conv(x) + bias + residual) as one cuDNN call."""
    return torch.cudnn_convolution_add_relu(x, conv.weight, residual, 1.0, conv.bias, conv.stride, conv.padding,
                                            conv.dilation, conv.groups)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; the blocks of every HRNet branch."""

    expansion = 1
    cudnn_fused = False  # set by fuse_blocks, for CUDA inference of a folded network

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        if self.cudnn_fused:
            return _conv_add_relu(self.conv2, _conv_relu(self.conv1, x), residual)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += residual  # in place, as the official: a new sum tensor per block cost ~10% on the GPU
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1-3x3-1x1 residual block (x4 expansion); only in layer1, as in the official network."""

    expansion = 4
    cudnn_fused = False  # set by fuse_blocks

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        if self.cudnn_fused:
            return _conv_add_relu(self.conv3, _conv_relu(self.conv2, _conv_relu(self.conv1, x)), residual)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += residual
        return self.relu(out)


class FusedConvReLU(nn.Sequential):
    """A transition's conv, folded BatchNorm and ReLU as one cuDNN call (fuse_blocks); the same children as the
    Sequential it replaces, so its state dict keys stay the official ones."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _conv_relu(self[0], x)


class NearestUpsample(nn.Upsample):
    """nn.Upsample in its input's dtype. Autocast runs upsample_nearest2d in fp32, and with it every fusion
    sum that it starts: in a bf16 W32 forward on an H200 those took 3.6 + 2.6 ms of 42 (the kernel table of
    benchmarks/bench_speed.py --sections profile). Copying pixels is exact in any dtype. HighResolutionModule.fuse
    adds by broadcasting and reads only the scale factor; its compiled form (upsampled_fuse) runs this."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and torch.is_autocast_enabled("cuda"):  # CPU autocast leaves it in bf16 already
            with torch.autocast("cuda", enabled=False):
                return super().forward(x)
        return super().forward(x)


class HighResolutionModule(nn.Module):
    """Parallel branches followed by all-to-all fusion (the exchange unit of the paper).

    Fusion into branch i: from a lower-resolution j > i, 1x1 conv + BN + nearest x2**(j-i) upsample; from a
    higher-resolution j < i, i-j 3x3 stride-2 conv+BN with ReLU between them but not after the last; identity
    for j == i (a ``None`` entry, as the official keeps); the sum passes a ReLU. With
    ``multi_scale_output=False`` only the highest-resolution output is fused and returned.
    """

    def __init__(self, num_channels: list[int], num_blocks: int, multi_scale_output: bool = True) -> None:
        super().__init__()
        self.num_branches = len(num_channels)
        self.num_inchannels = list(num_channels)
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(c, c) for _ in range(num_blocks))) for c in num_channels
        )
        self.fuse_layers = self._make_fuse_layers()

    def _make_fuse_layers(self) -> nn.ModuleList | None:
        if self.num_branches == 1:
            return None
        ch = self.num_inchannels
        fuse_layers = []
        for i in range(self.num_branches if self.multi_scale_output else 1):
            fuse_layer: list[nn.Module | None] = []
            for j in range(self.num_branches):
                if j > i:
                    fuse_layer.append(
                        nn.Sequential(
                            nn.Conv2d(ch[j], ch[i], 1, 1, 0, bias=False),
                            nn.BatchNorm2d(ch[i], momentum=BN_MOMENTUM),
                            NearestUpsample(scale_factor=2 ** (j - i), mode="nearest"),
                        )
                    )
                elif j == i:
                    fuse_layer.append(None)
                else:
                    steps: list[nn.Module] = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out = ch[i] if last else ch[j]
                        layers: list[nn.Module] = [conv3x3(ch[j], out, 2), nn.BatchNorm2d(out, momentum=BN_MOMENTUM)]
                        if not last:
                            layers.append(nn.ReLU(inplace=True))
                        steps.append(nn.Sequential(*layers))
                    fuse_layer.append(nn.Sequential(*steps))
            fuse_layers.append(nn.ModuleList(fuse_layer))
        return nn.ModuleList(fuse_layers)

    # HighResolutionModule.upsampled_fuse compiled (engine.compiling.compile_regions), shared by all modules: a
    # plain function, not a bound method, so that a deep copy of a compiled network fuses its own layers.
    compiled_fuse: Callable[["HighResolutionModule", list[torch.Tensor]], list[torch.Tensor]] | None = None

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(xi) for branch, xi in zip(self.branches, x)]
        if self.fuse_layers is None:
            return xs
        if self.compiled_fuse is not None:
            return self.compiled_fuse(self, xs)
        # Broadcast sums save a copy per lower branch in a forward, but autograd gives their gradient back
        # through a generic reduction: an eager W32 training step (bf16, batch 128, one H100) ran 858 and 909
        # images/s with them against 923 and 972 upsampled, the official network's 907 and 888, in two runs
        # (benchmarks/train_step_probe.py).
        return self.upsampled_fuse(xs) if torch.is_grad_enabled() else self.fuse(xs)

    def fuse(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every output branch's sum of all inputs brought to its resolution, through a ReLU.

        A lower branch is added by broadcasting instead of being upsampled first: the (B, C, H, W) sum seen as
        (B, C, H/s, s, W/s, s) takes its 1x1 conv's (B, C, H/s, 1, W/s, 1) output, so no upsampled copy is
        written and read again. The sums are the official ones in the official order (bit-exact on the CPU).
        """
        out = []
        for i, fuse_layer in enumerate(self.fuse_layers):
            y: torch.Tensor | None = None
            # Branch 0 starts from the first lower branch with xs[0] added in the same step; the others from the
            # strided path out of branch 0. xs[i] is read again by the other outputs' fusions, so it is only ever
            # added, never written: every sum goes into a fresh tensor, then the ReLU in place.
            for j in range(1, self.num_branches) if i == 0 else range(self.num_branches):
                if j == i:
                    y.add_(xs[j])
                elif j > i:
                    conv, batchnorm, upsample = fuse_layer[j]
                    low = batchnorm(conv(xs[j]))
                    f = int(upsample.scale_factor)
                    b, c, h, w = xs[i].shape
                    low = low.view(b, c, h // f, 1, w // f, 1)
                    # A new tensor in the layout of the sum so far, which comes first. Not in place: the ONNX
                    # export loses an in-place sum into a view (the base tensor never sees it).
                    y = ((xs[i] if y is None else y).view(b, c, h // f, f, w // f, f) + low).view(b, c, h, w)
                else:
                    term = fuse_layer[j](xs[j])
                    y = term if y is None else y.add_(term)
            out.append(torch.relu_(y))
        return out

    def upsampled_fuse(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """fuse's sums in the same order, each lower branch upsampled into a tensor of its own first: the form
        engine.compiling compiles, and the eager one under autograd (forward). Inductor fuses that upsampling into
        the sums by itself, and ran the broadcast form's 6-D views slower: a compiled W32 training step (bf16,
        batch 128, no CUDA graph, one H100, 2026-12-06) took 835 images/s this way against 680-703 broadcast.
        Eager without autograd, broadcasting is the faster: 11,217 against 10,154 images/s for the inference form
        (benchmarks/speed/h100_onerun_probe_bf16.json)."""
        out = []
        for i, fuse_layer in enumerate(self.fuse_layers):
            # Start from a fresh tensor (the first converted input), then sum and ReLU in place: xs[i] itself
            # is read again by the other outputs' fusions, so it is only ever added, never written.
            first = 1 if i == 0 else 0
            y = fuse_layer[first](xs[first])
            for j in range(self.num_branches):
                if j != first:
                    y += xs[j] if j == i else fuse_layer[j](xs[j])
            out.append(torch.relu_(y))
        return out


class PoseHRNet(nn.Module):
    """HRNet pose network: (B, 3, H, W) image crops -> (B, joints, H/4, W/4) heatmaps (no sigmoid).

    ``random_init=False`` skips the official init for a network whose weights are loaded right after
    (load_model builds it on the meta device): on the meta device ``normal_`` imports torch._dynamo, which
    alone cost a one-photo predict about 2 s on 2 CPU cores.
    """

    def __init__(self, config: HRNetConfig | None = None, *, random_init: bool = True) -> None:
        super().__init__()
        self.config = config = config or HRNetConfig()
        c = STEM_CHANNELS
        # Stem: two stride-2 3x3 convs bring the input to 1/4 resolution, where the whole network works.
        self.conv1 = nn.Conv2d(3, c, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(c, c, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer1(c, c, 4)

        widths = [config.width * 2**i for i in range(4)]
        pre = [c * Bottleneck.expansion]
        self.transition1 = self._make_transition_layer(pre, widths[:2])
        self.stage2 = self._make_stage(widths[:2], config.stage_modules[0], config.num_blocks)
        self.transition2 = self._make_transition_layer(widths[:2], widths[:3])
        self.stage3 = self._make_stage(widths[:3], config.stage_modules[1], config.num_blocks)
        self.transition3 = self._make_transition_layer(widths[:3], widths[:4])
        self.stage4 = self._make_stage(widths, config.stage_modules[2], config.num_blocks, multi_scale_output=False)
        self.final_layer = nn.Conv2d(widths[0], config.num_joints, kernel_size=1, stride=1, padding=0)
        if random_init:
            self.init_weights()

    @staticmethod
    def _make_layer1(inplanes: int, planes: int, blocks: int) -> nn.Sequential:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=1, bias=False),
            nn.BatchNorm2d(planes * Bottleneck.expansion, momentum=BN_MOMENTUM),
        )
        layers = [Bottleneck(inplanes, planes, 1, downsample)]
        layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    @staticmethod
    def _make_transition_layer(pre: list[int], cur: list[int]) -> nn.ModuleList:
        """Adapts existing branches (None where the width already matches) and spawns the new, halved one."""
        layers: list[nn.Module | None] = []
        for i, out_ch in enumerate(cur):
            if i < len(pre):
                if out_ch != pre[i]:
                    layers.append(
                        nn.Sequential(
                            conv3x3(pre[i], out_ch), nn.BatchNorm2d(out_ch, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)
                        )
                    )
                else:
                    layers.append(None)
            else:
                steps = []
                for j in range(i + 1 - len(pre)):
                    inc = pre[-1]
                    outc = out_ch if j == i - len(pre) else inc
                    steps.append(
                        nn.Sequential(conv3x3(inc, outc, 2), nn.BatchNorm2d(outc, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))
                    )
                layers.append(nn.Sequential(*steps))
        return nn.ModuleList(layers)

    @staticmethod
    def _make_stage(
        channels: list[int], num_modules: int, num_blocks: int, multi_scale_output: bool = True
    ) -> nn.Sequential:
        modules = [
            HighResolutionModule(channels, num_blocks, multi_scale_output or i < num_modules - 1)
            for i in range(num_modules)
        ]
        return nn.Sequential(*modules)

    @staticmethod
    def _transition(transition: nn.ModuleList, ys: list[torch.Tensor]) -> list[torch.Tensor]:
        # Official rule: a non-None transition reads the lowest-resolution output (only the new branch has one).
        return [ys[i] if t is None else t(ys[-1]) for i, t in enumerate(transition)]

    def init_weights(self) -> None:
        """The official from-scratch init: conv weights N(0, 0.001), conv biases 0, BN weight 1 and bias 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    cudnn_fused = False  # set by fuse_blocks: the stem's second conv + ReLU as one cuDNN call
    # PoseHRNet.stem compiled (engine.compiling.compile_regions), a plain function as HighResolutionModule's
    # compiled_fuse: the stem's BatchNorms and ReLUs run at twice the resolution of everything after it.
    compiled_stem: Callable[["PoseHRNet", torch.Tensor], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.features(x))

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Two stride-2 convs with their BatchNorms and ReLUs: the image at 1/4 resolution."""
        if self.cudnn_fused:
            # conv1 stays a plain conv (autocast casts the fp32 image for it; its ReLU runs in place): as a
            # fused cuDNN call on the 3-channel image it failed on an H100 ("FIND was unable to find an
            # engine"), through bf16 weights on an fp32 input or through its 3 channels.
            return _conv_relu(self.conv2, self.relu(self.conv1(x)))
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The highest-resolution branch's output (B, width, H/4, W/4): what the final 1x1 conv reads."""
        x = (self.compiled_stem or PoseHRNet.stem)(self, x)
        x = self.layer1(x)
        ys = [x if t is None else t(x) for t in self.transition1]
        ys = self.stage2(ys)
        ys = self.stage3(self._transition(self.transition2, ys))
        ys = self.stage4(self._transition(self.transition3, ys))
        return ys[0]


def count_parameters(model: nn.Module) -> int:
    """All parameters (trainable or not), as the official "total parameters" counts them."""
    return sum(p.numel() for p in model.parameters())


def fold_batchnorm(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """The network in eval mode with every BatchNorm folded into the convolution before it.

    The same outputs to float rounding, one pass over each feature map fewer: on the CPU (2 cores) one
    prediction of the w16 default model takes 83-88 ms instead of 115-123 (benchmarks/cpu_latency.py). HRNet puts each BatchNorm right
    after its convolution, either as siblings ``convN``/``bnN`` or as neighbours in a Sequential; each is
    folded and becomes an Identity. For frozen weights only: training, and the validation that shares its
    weights, keep their BatchNorms. By default a copy is folded and ``model`` is left as it was;
    ``inplace=True`` folds ``model`` itself, for a caller that no longer needs it unfolded (the deep copy
    costs a one-photo CPU predict about 0.3 s).
    """
    folded = (model if inplace else copy.deepcopy(model)).eval()
    for module in list(folded.modules()):
        if isinstance(module, nn.Sequential):
            pairs = [(str(i), str(i + 1)) for i in range(len(module) - 1)]
        else:
            pairs = [(name.replace("bn", "conv", 1), name) for name, _ in module.named_children() if name.startswith("bn")]
        for conv_name, bn_name in pairs:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                # What fuse_conv_bn_eval computes, on this conv rather than on a deep copy of it.
                conv.weight, conv.bias = fuse_conv_bn_weights(
                    conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
                )
                setattr(module, bn_name, nn.Identity())
    return folded


def fuse_blocks(folded: nn.Module) -> nn.Module:
    """A folded network (fold_batchnorm) for CUDA inference, in place: every BasicBlock and Bottleneck runs
    each convolution with its bias, ReLU and residual sum as one cuDNN call instead of three or four kernels,
    and so do the stem's second conv and the transitions' conv + ReLU steps (their ReLUs were 5 of the 6
    clamp kernels left in a compiled bf16 W32 forward on an H200, 0.28 ms of 18:
    benchmarks/speed/h200_compile_probe_fusions.log).

    Most of an eager HRNet forward is those small kernels, not the convolutions: in a bf16 W32 forward on an
    H200, 27 of 42 ms (the profile of benchmarks/bench_speed.py). Fused, the network ran 10,999 images/s
    against 6,073 folded and 5,525 for the official network (bf16 weights, channels_last, batch 256; the
    outputs within 4e-3 of the unfused ones, bf16 rounding). cuDNN takes one dtype for input and weights:
    run it with bf16 weights under bf16 autocast, or all in fp32.
    """
    blocks = [m for m in folded.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    for block in blocks:
        if any(isinstance(m, nn.BatchNorm2d) for m in block.children()):
            raise ValueError("fuse_blocks needs a network whose BatchNorms are folded (fold_batchnorm)")
    for block in blocks:
        block.cudnn_fused = True
    for network in [m for m in folded.modules() if isinstance(m, PoseHRNet)]:
        network.cudnn_fused = True
        for transition in (network.transition1, network.transition2, network.transition3):
            for holder in list(transition.modules()):
                for name, step in list(holder.named_children()):
                    if _is_conv_relu(step):
                        setattr(holder, name, FusedConvReLU(*step))
    return folded


def _is_conv_relu(module: nn.Module) -> bool:
    """A Sequential of a conv, a folded (Identity) BatchNorm and a ReLU."""
    return (type(module) is nn.Sequential and len(module) == 3 and isinstance(module[0], nn.Conv2d)
            and isinstance(module[1], nn.Identity) and isinstance(module[2], nn.ReLU))
