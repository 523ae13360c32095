"""Where `--compile`'s seconds go when hrpose loads a W32 for inference, as `hrpose eval --compile` does.

    source benchmarks/device_setup.sh && python3 benchmarks/compile_time.py --cache /tmp/cc   # empty cache
    python3 benchmarks/compile_time.py --cache /tmp/cc                                      # again: warm
    python3 benchmarks/compile_time.py --cache /tmp/cc_cpu --device cpu --batch 1           # the CPU's regions

Prints the seconds of load_predictor and the first forward of one padded batch (fold, fuse on CUDA, compile,
the CUDA graph's recording; no cuDNN autotuning, as in hrpose eval) without and with --compile in one process,
and dynamo's own account of the compiled part (torch._dynamo.utils.compile_times: tracing, AOTAutograd,
inductor's lowering and code generation, per graph). Eager goes first, so CUDA's start-up is in its seconds,
not in --compile's. What the --compile seconds hold beyond dynamo's account happens outside dynamo (kernels'
first launches and their autotuning, the recording). --profile N adds the N functions with the most cumulative
time in the --compile load (cProfile, host side): imports, the compile workers' start, dynamo, Triton's
loading.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="HRPOSE_COMPILE_CACHE for this run")
    parser.add_argument("--arch", default="w32")
    parser.add_argument("--batch", type=int, default=256, help="persons per batch, as hrpose eval --batch [256]")
    parser.add_argument("--device", default="cuda", help="cuda or cpu [cuda]")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the N functions with the most cumulative time in the --compile load [0: none]")
    args = parser.parse_args()
    if args.profile < 0:
        sys.exit(f"error: --profile {args.profile}: expected how many functions to print, 0 or more")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: no CUDA here (--device cpu measures the CPU's compile)")
    warm = args.cache.is_dir() and any(args.cache.iterdir())
    os.environ["HRPOSE_COMPILE_CACHE"] = str(args.cache)
    from hrpose_cli.engine.inference import load_predictor
    from hrpose_cli.errors import HrposeError
    from hrpose_cli.model.checkpoints import save_checkpoint
    from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet

    config = HRNetConfig.from_arch(args.arch)
    weights = Path(tempfile.mkdtemp()) / f"{args.arch}.pt"
    save_checkpoint(weights, PoseHRNet(config), config)
    seconds = {}
    try:
        for name, compile_ in (("eager", False), ("--compile", True)):
            profiler = cProfile.Profile() if compile_ and args.profile else None
            start = time.perf_counter()
            if profiler:
                profiler.enable()
            predictor = load_predictor(weights, device=args.device, compile=compile_, batch_size=args.batch)
            predictor.heatmaps(torch.zeros((args.batch, 3, *config.input_size), device=predictor.runtime.device))
            predictor.runtime.synchronize()
            seconds[name] = time.perf_counter() - start
            if profiler:
                profiler.disable()
    except HrposeError as err:  # an unusable --cache folder
        sys.exit(f"error: {err}")
    print(f"{args.arch} on {args.device}, batch {args.batch}, {'warm' if warm else 'empty'} cache: load_predictor and "
          f"one forward {seconds['eager']:.1f} s eager, {seconds['--compile']:.1f} s with --compile", flush=True)
    print(torch._dynamo.utils.compile_times(repr="str"), flush=True)
    if profiler:
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
