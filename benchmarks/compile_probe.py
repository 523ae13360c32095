"""hrpose's network compiled by regions against its eager forms and the official network compiled whole (issue 20).

    source benchmarks/device_setup.sh && python3 benchmarks/compile_probe.py --official .carry/official/pose_hrnet.py \\
        --out $OUT/compile_probe.json [--precisions bf16,fp32]

W32 256x192, network alone, the same random weights, rows timed in turns in one group
(bench_speed.interleaved) beside ours eager; ours channels_last at both precisions, as hrpose runs on CUDA:
  - the inference form (BatchNorms folded, blocks cuDNN-fused) eager, and with its fusions compiled
    (engine.compiling.compile_regions, what `hrpose eval --compile` runs), each also as one CUDA graph (what
    `hrpose eval` replays);
  - the folded network without cuDNN fusion compiled by regions (an fp32 inference form), and as a CUDA graph;
  - the training and inference forms eager with HighResolutionModule.upsampled_fuse (each lower branch upsampled
    into a copy, then added: the eager fusion before 2026-12-06), the latter also as a CUDA graph, against the
    model's broadcast sums;
  - the training form compiled by regions (blocks, fusions, stem, transitions), eager and as one CUDA graph;
  - the same with each run of blocks (a module's branch, layer1) compiled as one graph (compile_regions'
    unit="branch": 27 compiled calls for W32's blocks instead of 108), eager and as one CUDA graph;
  - the official network eager and compiled whole (torch.compile of the model): channels_last at bf16; at
    fp32 both NCHW, as the official code runs, and channels_last.
Then the kernels of one forward of the training form compiled by regions and by branches (GPU ms per kernel
name) and the host's milliseconds per call. The first run (2026-12-04, blocks compiled without their fusions) showed why
those fell below eager: 37.6 ms of host time per call for 29.2 ms of GPU work (108 compiled calls), and the
fusions' upsampling, sums and BatchNorms still eager (benchmarks/speed/h200_compile_probe_blocks.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import PRECISIONS, cuda_graph, forward, host_ms, interleaved, kernel_table, official_network  # noqa: E402

from hrpose_cli.engine.compiling import compile_regions  # noqa: E402
from hrpose_cli.model.hrnet import HighResolutionModule, HRNetConfig, PoseHRNet, fold_batchnorm, fuse_blocks  # noqa: E402


BRANCHES = "ours by branches (runs of blocks, fusions, stem, transitions)"


def compiled(name: str, build: Callable[[], Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor,
             seconds: dict[str, float]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``build()``'s function after its first call, timing compile + first forward into ``seconds``."""
    start = time.perf_counter()
    fn = build()
    fn(x)
    torch.cuda.synchronize()
    seconds[name] = time.perf_counter() - start
    print(f"  {name}: compile + first forward {seconds[name]:.1f} s", flush=True)
    return fn


def fusing_by(model: nn.Module, fuse: Callable) -> nn.Module:
    """``model`` with every module fusing eagerly by ``fuse`` (in place), with or without autograd: the
    forward otherwise takes HighResolutionModule.upsampled_fuse under autograd and .fuse (broadcast sums)
    without it. The probe's rows run without autograd; upsampled_fuse there is the eager fusion before
    2026-12-06, which the compiled regions compile."""
    for module in model.modules():
        if isinstance(module, HighResolutionModule) and module.fuse_layers is not None:
            module.compiled_fuse = fuse
    return model


def probe(official: Path, config: HRNetConfig, precision: str) -> dict[str, float]:
    label, bf16, batch = PRECISIONS[precision]
    weights = PoseHRNet(config).state_dict()

    def ours() -> nn.Module:  # channels_last at both precisions, as hrpose runs every CUDA network
        model = PoseHRNet(config)
        model.load_state_dict(weights)
        return model.cuda().eval().to(memory_format=torch.channels_last)

    def theirs(fmt: torch.memory_format) -> nn.Module:
        model = official_network(official, config)
        model.load_state_dict(weights, strict=True)
        return model.cuda().eval().to(memory_format=fmt)

    x = torch.randn(batch, 3, *config.input_size, device="cuda")
    inputs = {torch.channels_last: x.contiguous(memory_format=torch.channels_last), torch.contiguous_format: x}
    # The official code runs NCHW; at fp32 it is also timed channels_last, so that its better layout is beside ours.
    official_formats = {"": torch.channels_last} if bf16 else {"": torch.contiguous_format, ", channels_last": torch.channels_last}
    print(f"[{label}]", flush=True)
    seconds: dict[str, float] = {}
    eager = forward(ours(), bf16)  # the yardstick

    def inference_form() -> nn.Module:
        folded = fuse_blocks(fold_batchnorm(ours()))
        return folded.to(torch.bfloat16) if bf16 else folded  # as engine.inference.load_predictor

    # One group, no dynamo reset in between: a CUDA graph recorded from compiled code must not outlive its
    # kernels (replaying one after torch._dynamo.reset() crashed the process, 2026-12-04).
    group = {"ours eager": (eager, torch.channels_last),
             "ours eager, upsampled fusions (before)": (forward(fusing_by(ours(), HighResolutionModule.upsampled_fuse), bf16), torch.channels_last),
             "ours inference form, eager": (forward(inference_form(), bf16), torch.channels_last),
             "ours inference form, upsampled fusions (before)": (forward(fusing_by(inference_form(), HighResolutionModule.upsampled_fuse), bf16),
                                                                 torch.channels_last)}
    same_input = inputs[torch.channels_last]
    fusion_diff = (group["ours inference form, upsampled fusions (before)"][0](same_input).float()
                   - group["ours inference form, eager"][0](same_input).float()).abs().max().item()
    print(f"  upsampled fusions: max |diff| from the broadcast ones {fusion_diff:.2e}", flush=True)
    builds = {"ours inference form, compiled fusions": lambda: forward(compile_regions(inference_form()), bf16),
              "ours folded, unfused, by regions": lambda: forward(compile_regions(fold_batchnorm(ours())), bf16),
              "ours by regions (blocks, fusions, stem, transitions)": lambda: forward(compile_regions(ours()), bf16),
              BRANCHES: lambda: forward(compile_regions(ours(), unit="branch"), bf16)}
    for name, build in builds.items():
        group[name] = (compiled(name, build, inputs[torch.channels_last], seconds), torch.channels_last)
    for suffix, fmt in official_formats.items():
        network = theirs(fmt)
        group[f"official eager{suffix}"] = (forward(network, bf16), fmt)
        name = f"official whole graph{suffix}"
        group[name] = (compiled(name, lambda n=network: forward(torch.compile(n), bf16), inputs[fmt], seconds), fmt)
    for name in [*builds, "ours inference form, eager", "ours inference form, upsampled fusions (before)",
                 *(f"official whole graph{s}" for s in official_formats)]:
        fn, fmt = group[name]
        group[f"{name}, one CUDA graph"] = (cuda_graph(fn, inputs[fmt]), fmt)
    start = time.perf_counter()
    rates = interleaved({name: (lambda f=fn, i=inputs[fmt]: f(i)) for name, (fn, fmt) in group.items()}, batch)
    print(f"  (timed in {time.perf_counter() - start:.1f} s)", flush=True)
    kernel_rows = kernels(label, group["ours by regions (blocks, fusions, stem, transitions)"][0],
                          inputs[torch.channels_last], "by regions")
    kernel_rows.update(kernels(label, group[BRANCHES][0], inputs[torch.channels_last], "by branches"))
    rows = {f"{label}, {name}: images/s": rate for name, rate in rates.items()}
    rows.update({f"{label}, {name}: compile + first forward s": s for name, s in seconds.items()})
    rows.update(kernel_rows)
    rows[f"{label}, inference form, upsampled fusions (before): max abs diff"] = fusion_diff
    for key, value in rows.items():
        print(f"{key}: {value:.2f}", flush=True)
    torch._dynamo.reset()
    return rows


def kernels(label: str, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, form: str, steps: int = 10,
            top: int = 15) -> dict[str, float]:
    """GPU ms per kernel name of one forward of ``fn``, and the host's ms per call (launch side only)."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn(x)
    host = host_ms(lambda: fn(x), steps)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            fn(x)
        torch.cuda.synchronize()
    print(f"  {label}, {form}: host {host:.2f} ms per call", flush=True)
    gpu_ms = kernel_table(prof, steps, top, f"{label}, {form}")
    return {f"{label}, {form}: host ms per call": host, f"{label}, {form}: GPU ms per forward": gpu_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="leoxiaobin's pose_hrnet.py")
    parser.add_argument("--out", type=Path, required=True, help="JSON of the rows")
    parser.add_argument("--precisions", default="bf16", help="of bf16, fp32 [bf16]")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("error: compile_probe.py needs CUDA")
    torch.backends.cudnn.benchmark = True
    rows: dict[str, float] = {}
    for precision in args.precisions.split(","):
        if precision not in PRECISIONS:
            sys.exit(f"error: --precisions {precision}: expected bf16 or fp32")
        rows.update(probe(args.official, HRNetConfig.from_arch("w32"), precision))
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
