"""Where hrpose's eager W32 training step loses to the official network's (issue 20): kernels and host time.

    source benchmarks/device_setup.sh && python3 benchmarks/train_step_probe.py --official .carry/official/pose_hrnet.py \\
        --out $OUT/train_step_probe.json

bench_speed.py --sections train-step timed hrpose's eager step (forward, MSE loss, backward, fused Adam; bf16
autocast, channels_last, batch 128) at 0.91x the official network's on one H100 (1,027 against 1,133 images/s,
2026-12-06). This times the same step for hrpose as it runs (HighResolutionModule.forward takes the upsampled sums,
upsampled_fuse, under autograd), for hrpose with its broadcast sums forced (HighResolutionModule.fuse, what it
runs without autograd), and for the official network, in turns; then, per form, the GPU time of one step by
kernel name (torch.profiler) and the host's milliseconds to issue one step.

The first run (one H100, 2026-12-06, before forward chose by autograd: both eager forms forced) gave broadcast
858, upsampled 923 and official 907 images/s, 91.3 / 87.9 / 91.6 ms of GPU time and 174 / 190 / 183 ms of host
time per step: the eager step is bound by the host (5,600 kernels), and the broadcast sums' gradient (a generic
reduction, 2.7 ms) costs more than the upsampling's (0.7 ms). benchmarks/speed/h100_train_step_probe.log.
Both runs had cuDNN's autotuning off (torch.backends.cudnn.benchmark, which hrpose train turns on); it is on
from the next run on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import host_ms, interleaved, kernel_table, pair, training_step  # noqa: E402
from compile_probe import fusing_by  # noqa: E402

from hrpose_cli.model.hrnet import HighResolutionModule, HRNetConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="leoxiaobin's pose_hrnet.py")
    parser.add_argument("--out", type=Path, required=True, help="JSON of the rows")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("error: train_step_probe.py needs CUDA")
    torch.backends.cudnn.benchmark = True  # as hrpose train and bench_speed.py run
    from torch.profiler import ProfilerActivity, profile

    config = HRNetConfig.from_arch("w32")
    x = torch.randn(args.batch, 3, *config.input_size, device="cuda").contiguous(memory_format=torch.channels_last)
    target = torch.rand(args.batch, config.num_joints, *config.heatmap_size, device="cuda")
    ours, theirs = pair(args.official, config)
    broadcast, _ = pair(args.official, config)
    steps = {"ours eager (upsampled sums under autograd)": training_step(ours, x, target),
             "ours eager, broadcast sums forced": training_step(fusing_by(broadcast, HighResolutionModule.fuse), x, target),
             "official eager": training_step(theirs, x, target)}
    rows: dict[str, float] = {}
    for name, value in interleaved(steps, args.batch, 7, 10).items():
        rows[f"train step w32 bf16+channels_last b{args.batch}, {name}: images/s"] = value
        print(f"{name}: {value:.0f} images/s", flush=True)
    for name, step in steps.items():
        rows[f"{name}: host ms per step"] = host_ms(step)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                step()
            torch.cuda.synchronize()
        rows[f"{name}: GPU ms per step"] = kernel_table(prof, 5, 25, name)
        print(f"  host {rows[f'{name}: host ms per step']:.1f} ms per step", flush=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
