"""Why hrpose's network compiled by blocks is slower than its own eager one (issue 20), in one device call.

    source benchmarks/device_setup.sh && python3 benchmarks/compile_probe.py --official .carry/official/pose_hrnet.py \\
        --out $OUT/compile_probe.json [--precisions bf16,fp32]

Prepared after stop 27, whose table had ours compiled by blocks at 0.51x/0.55x of the official network compiled
whole (and below ours eager). Each hypothesis gets a row, W32 256x192, network alone, same random weights,
timed in turns (bench_speed.interleaved) beside ours eager in each group (rows seen in
several groups give their mean):
  - by blocks, recorded as one CUDA graph: if that closes the gap, the cost is the host's per-block calls
    (guards and wrappers of 108 compiled blocks), not the kernels;
  - by blocks with inductor's layout_optimization off: if that closes it, each block's graph converts its
    input and output layouts;
  - ours compiled whole, beside the official compiled whole: whether the whole-graph fusions across blocks
    (fusion layers' upsampling and sums) are the difference;
  - the inference form (BN folded, cuDNN-fused blocks), eager, as hrpose's CUDA inference runs it.
Then the kernels of one forward by blocks (GPU ms per kernel name) and the host's milliseconds per call.
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
from bench_speed import PRECISIONS, cuda_graph, forward, interleaved, kernel_table, official_network  # noqa: E402

from hrpose_cli.engine.compiling import compile_regions  # noqa: E402
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet, fold_batchnorm, fuse_blocks  # noqa: E402


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


def probe(official: Path, config: HRNetConfig, precision: str) -> dict[str, float]:
    import torch._inductor.config as inductor_config

    label, bf16, batch = PRECISIONS[precision]
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    weights = PoseHRNet(config).state_dict()

    def ours() -> nn.Module:
        model = PoseHRNet(config)
        model.load_state_dict(weights)
        return model.cuda().eval().to(memory_format=fmt)

    theirs = official_network(official, config)
    theirs.load_state_dict(weights, strict=True)
    theirs = theirs.cuda().eval().to(memory_format=fmt)
    x = torch.randn(batch, 3, *config.input_size, device="cuda").contiguous(memory_format=fmt)
    print(f"[{label}]", flush=True)
    seconds: dict[str, float] = {}
    eager = forward(ours(), bf16)  # in every group: dynamo resets between groups, and eager is the yardstick

    def timed(group: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> dict[str, float]:
        return interleaved({name: (lambda f=fn: f(x)) for name, fn in {"ours eager": eager, **group}.items()}, batch)

    group = {}
    if bf16:
        group["ours inference form (folded, cuDNN-fused), eager"] = forward(
            fuse_blocks(fold_batchnorm(ours())).to(torch.bfloat16), bf16)
    group["ours by blocks"] = compiled("ours by blocks", lambda: forward(compile_regions(ours()), bf16), x, seconds)
    group["ours by blocks, one CUDA graph"] = cuda_graph(group["ours by blocks"], x)
    rates = {name: [rate] for name, rate in timed(group).items()}
    graphed = group["ours by blocks, one CUDA graph"]  # a recording: it outlives dynamo's reset
    torch._dynamo.reset()
    inductor_config.layout_optimization = False
    try:
        group = {"ours by blocks, layout_optimization off": compiled(
            "ours by blocks, layout_optimization off", lambda: forward(compile_regions(ours()), bf16), x, seconds),
            "ours by blocks, one CUDA graph": graphed}
        for name, rate in timed(group).items():
            rates.setdefault(name, []).append(rate)
    finally:
        inductor_config.layout_optimization = True
    torch._dynamo.reset()
    group = {"ours whole graph": compiled("ours whole graph", lambda: forward(torch.compile(ours()), bf16), x, seconds),
             "official whole graph": compiled("official whole graph", lambda: forward(torch.compile(theirs), bf16), x,
                                              seconds)}
    for name, rate in timed(group).items():
        rates.setdefault(name, []).append(rate)
    torch._dynamo.reset()
    rows = {f"{label}, {name}: images/s": sum(r) / len(r) for name, r in rates.items()}
    rows.update({f"{label}, {name}: compile + first forward s": s for name, s in seconds.items()})
    rows.update(kernels(label, forward(compile_regions(ours()), bf16), x))
    for key, value in rows.items():
        print(f"{key}: {value:.2f}", flush=True)
    torch._dynamo.reset()
    return rows


def kernels(label: str, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, steps: int = 10,
            top: int = 15) -> dict[str, float]:
    """GPU ms per kernel name of one forward by blocks, and the host's ms per call (launch side only)."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(3):
        fn(x)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn(x)
    host_ms = (time.perf_counter() - start) / steps * 1000  # before the queue fills, the host's own pace
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            fn(x)
        torch.cuda.synchronize()
    print(f"  by blocks: host {host_ms:.2f} ms per call", flush=True)
    gpu_ms = kernel_table(prof, steps, top, f"{label}, by blocks")
    return {f"{label}, by blocks: host ms per call": host_ms, f"{label}, by blocks: GPU ms per forward": gpu_ms}


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
