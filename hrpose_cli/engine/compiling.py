"""torch.compile for HRNet by regions, with the compiled code kept on disk between runs.

Compiling the whole network as one graph took minutes for W32 (every module traced, lowered and tuned
again), and compiling each HighResolutionModule still took 38 s from an empty cache and 18 s with a warm
one for `hrpose eval` of W32 on an H200 (tracing a module of 16 blocks and 12 fusion paths is slow even
when its kernels come from the cache). HRNet is two block kinds repeated, and a fusion step per module:
each BasicBlock and Bottleneck is compiled in place (``module.compile``), and each HighResolutionModule's
fusion (the 1x1 conv + upsampling or strided convs into every branch, the sums and their ReLU) through one
compiled function. Dynamo lifts a module's parameters to graph inputs, so all blocks of one width share one
compiled graph, and all modules of one stage one fusion graph: W32 compiles six block graphs (BasicBlocks of
four widths, Bottlenecks with and without their downsample) and four fusion graphs per mode for its 108
blocks and 8 modules. The stem (one graph) and each transition step with a BatchNorm (four for W32) are
compiled too, so that their BatchNorms and ReLUs are not left as separate eager kernels (the stem's run at
twice the resolution of the rest): with them the training form compiled by regions runs level with the official
network compiled whole (0.999x, bf16 b256, one H100, benchmarks/speed/h100_compile_probe_regions.json), without
them 0.96x (h100_compile_probe_bf16.json). The fusions matter most: compiled blocks alone
left the fusions' upsampling, sums and BatchNorms as separate eager kernels and ran below the eager network
(benchmarks/compile_probe.py). Blocks that model.hrnet.fuse_blocks made one cuDNN call per convolution (CUDA
inference) are not compiled again: there only the fusions are.

The fusion compiled is HighResolutionModule.upsampled_fuse, the same sums as the eager network's broadcast
ones with each lower branch upsampled first: Inductor fuses that upsampling into the sums by itself and ran the
broadcast form's 6-D views slower (the method's docstring has the numbers).

Shapes are static (``dynamic=False``): every batch of inference is padded to one shape and training runs
one batch size, so there is one graph per block kind and mode, and no slower symbolic-shape code.

Inductor's FX graph cache and the AOTAutograd cache go to one persistent folder, so a later run loads the
kernels instead of compiling them: ``$HRPOSE_COMPILE_CACHE``, else ``~/.cache/hrpose/torch-compile``
(``$XDG_CACHE_HOME/hrpose/torch-compile`` where that is set).
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from hrpose_cli.errors import HrposeError

CACHE_ENV = "HRPOSE_COMPILE_CACHE"
RECOMPILE_LIMIT = 64  # graphs per block class: widths x train/eval x batch shapes of one process stay below this


def compile_cache_dir() -> Path:
    """Where compiled kernels are kept: $HRPOSE_COMPILE_CACHE, else the user's cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hrpose" / "torch-compile"


def configure_compile_cache() -> Path:
    """Point inductor's caches (FX graphs, AOTAutograd, Triton kernels) at compile_cache_dir() and turn them on."""
    path = compile_cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HrposeError(f"{path}: cannot create the compile cache folder ({err.strerror}); set {CACHE_ENV}") from None
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)  # read when inductor first asks, so set before compiling
    import torch._dynamo.config as dynamo_config
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    for name in ("recompile_limit", "cache_size_limit"):  # the name changed across torch versions
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), RECOMPILE_LIMIT))
    return path


REGION_UNITS = ("block", "branch")


def compile_regions(model: nn.Module, unit: str = "block") -> nn.Module:
    """Compile ``model``'s repeated HRNet blocks and fusions in place and return it (its state dict keys do not
    change). A network without HRNet blocks (the person detector) is compiled whole, as one small graph.

    ``unit="branch"`` compiles each run of blocks (a branch of a module, layer1) as one graph instead of each
    block: 27 compiled calls per W32 forward instead of 108, for a forward that compiled by blocks spent more
    host time than GPU time (31.8 against 26.5 ms, bf16 b256, one H100). benchmarks/compile_probe.py times both."""
    import torch

    from hrpose_cli.model.hrnet import BasicBlock, Bottleneck, HighResolutionModule, PoseHRNet

    if unit not in REGION_UNITS:
        raise ValueError(f"unit must be one of {REGION_UNITS}, not {unit!r}")
    configure_compile_cache()
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    if not blocks:
        return torch.compile(model)
    if unit == "block":
        regions = [block for block in blocks if not block.cudnn_fused]
    else:
        regions = [m for m in model.modules() if type(m) is nn.Sequential and len(m)
                   and all(isinstance(b, (BasicBlock, Bottleneck)) and not b.cudnn_fused for b in m)]
    for region in regions:
        region.compile(dynamic=False)
    fuse = torch.compile(HighResolutionModule.upsampled_fuse, dynamic=False)  # why not fuse: its docstring
    for module in model.modules():
        if isinstance(module, HighResolutionModule) and module.fuse_layers is not None:
            module.compiled_fuse = fuse
    stem = torch.compile(PoseHRNet.stem, dynamic=False)
    for network in [m for m in model.modules() if isinstance(m, PoseHRNet)]:
        if not network.cudnn_fused:  # fused, its BatchNorms are folded and its second conv's ReLU is cuDNN's
            network.compiled_stem = stem
        for transition in (network.transition1, network.transition2, network.transition3):
            for step in transition.modules():  # conv + BatchNorm + ReLU steps; cuDNN-fused ones stay as they are
                if type(step) is nn.Sequential and any(isinstance(m, nn.Conv2d) for m in step.children()):
                    step.compile(dynamic=False)
    return model
