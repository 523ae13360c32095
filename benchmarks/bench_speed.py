"""hrpose against the official HRNet on one GPU: the network, a training step, `hrpose eval` and `hrpose train`.

The official network is leoxiaobin's deep-high-resolution-net.pytorch, file lib/models/pose_hrnet.py (MIT
licence; https://github.com/leoxiaobin/deep-high-resolution-net.pytorch/blob/master/lib/models/pose_hrnet.py).
It is not shipped with hrpose: save that one file anywhere and pass its path with --official. The GPU machine
reaches no web site, so copy it into the repository first, in an ignored folder that the call carries, e.g.
.carry/official/pose_hrnet.py with carry [".carry", ".whl"]. It needs only torch (no yacs: the configuration it
reads is built here from hrpose's own, and hrpose's random weights are loaded into it with strict=True, which
also checks that the two state dicts have the same layout).

Sections (--sections, comma-separated; all by default):
  profile     torch.profiler of one bf16 + channels_last b256 forward loop, ours and official eager: the GPU
              time per kernel name (top rows) and in all, to see where the two networks differ.
  network     images/s of the network alone on synthetic input, ours and official in turn (medians of
              interleaved windows): fp32 b128; bf16 autocast + channels_last b256; each eager, compiled
              (ours: by regions, engine/compiling.py; official: torch.compile of the whole model) and as a
              CUDA graph (both); and ours with its BatchNorms folded into the convolutions, and in bf16 also
              with cuDNN-fused blocks (model.hrnet.fuse_blocks) as hrpose's inference runs it on CUDA.
  train-step  images/s of forward + backward + fused Adam, bf16 + channels_last b128, synthetic input,
              per arch of --step-archs: ours eager, compiled by regions and the whole step as one CUDA graph
              (capturable Adam); official eager (W32 only: the official file has no w16).
  eval        `hrpose eval` with GT boxes and flip test on coco-real train repeated to >= --eval-persons
              persons (needs --data), per arch of --eval-archs: without --compile, with --compile from an
              empty compile cache, and again with the cache warm. Whole-command wall time, the pipeline's
              persons/s and its stage_seconds.
  train       `hrpose train` for 2 epochs (coco-real train x8, batch 128, needs --data): without --compile
              (the step as a CUDA graph, and with --no-cuda-graphs), --compile from an empty cache and warm; whole-command wall time, first-epoch time, second-epoch
              images/s and stage_seconds.

On the device (benchmarks/README.md), for example:
  source benchmarks/device_setup.sh && python3 benchmarks/bench_speed.py --official .carry/official/pose_hrnet.py \\
      --data .carry/data --out $OUT/speed.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from hrpose_cli.engine.compiling import compile_regions
from hrpose_cli.model.hrnet import HRNetConfig, PoseHRNet, fold_batchnorm, fuse_blocks

SECTIONS = ("profile", "network", "train-step", "eval", "train")


class _Cfg(dict):
    """The yacs-like node the official code reads: both cfg.MODEL.EXTRA and cfg['MODEL']['EXTRA']."""

    __getattr__ = dict.__getitem__


def official_network(path: Path, config: HRNetConfig) -> nn.Module:
    """The official PoseHighResolutionNet from its file, configured as ``config``."""
    if not path.is_file():
        sys.exit(f"{path}: the official pose_hrnet.py is not there (see --help for where to get it)")
    spec = importlib.util.spec_from_file_location("official_pose_hrnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]

    def stage(branches: int, modules: int) -> _Cfg:
        return _Cfg(NUM_MODULES=modules, NUM_BRANCHES=branches, NUM_BLOCKS=[config.num_blocks] * branches,
                    NUM_CHANNELS=[config.width * 2**i for i in range(branches)], BLOCK="BASIC", FUSE_METHOD="SUM")

    extra = _Cfg(FINAL_CONV_KERNEL=1, PRETRAINED_LAYERS=["*"], STAGE2=stage(2, config.stage_modules[0]),
                 STAGE3=stage(3, config.stage_modules[1]), STAGE4=stage(4, config.stage_modules[2]))
    cfg = _Cfg(MODEL=_Cfg(NUM_JOINTS=config.num_joints, EXTRA=extra, INIT_WEIGHTS=False, PRETRAINED=""))
    return module.get_pose_net(cfg, is_train=False)


def pair(official: Path, config: HRNetConfig) -> tuple[nn.Module, nn.Module]:
    """(ours, official) with the same random weights, on the GPU."""
    ours = PoseHRNet(config)
    theirs = official_network(official, config)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours.cuda(), theirs.cuda()


def cuda_graph(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``fn`` on ``x``'s shape recorded as a CUDA graph (warmed up on a side stream first)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn(x)
    return lambda _x: graph.replay()


def interleaved(runs: dict[str, Callable[[], None]], batch: int, windows: int = 7, steps: int = 20) -> dict[str, float]:
    """Images/s of each run: median over windows, the runs taking turns so that clocks and heat are shared."""
    for run in runs.values():
        for _ in range(3):
            run()
    torch.cuda.synchronize()
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(windows):
        for name, run in runs.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(steps):
                run()
            end.record()
            end.synchronize()
            rates[name].append(batch * steps / (start.elapsed_time(end) / 1000))
    return {name: statistics.median(r) for name, r in rates.items()}


def forward(model: nn.Module, bf16: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` as inference runs it: no autograd, bf16 autocast where ``bf16``."""
    def run(inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=bf16, cache_enabled=False):
            return model(inputs)
    return run


def kernel_table(prof, steps: int, top: int, title: str) -> float:
    """GPU ms per step in all (returned) from a torch.profiler run of ``steps`` steps; prints the ``top`` kernels."""
    timed = sorted(((e.key, e.self_device_time_total / 1000 / steps, e.count // steps)
                    for e in prof.key_averages() if e.self_device_time_total > 0), key=lambda k: -k[1])
    total = sum(ms for _, ms, _ in timed)
    print(f"[{title}] GPU time per forward {total:.2f} ms in {sum(c for *_, c in timed)} kernels", flush=True)
    for key, ms, count in timed[:top]:
        print(f"  {ms:7.3f} ms  x{count:<4d} {key[:110]}", flush=True)
    return total


def profile_rows(official: Path, config: HRNetConfig, batch: int = 256, top: int = 12) -> dict[str, float]:
    """GPU milliseconds per forward, in all and per kernel name, of ours and the official network."""
    from torch.profiler import ProfilerActivity, profile

    ours, theirs = pair(official, config)
    x = torch.randn(batch, 3, *config.input_size, device="cuda").contiguous(memory_format=torch.channels_last)
    rows: dict[str, float] = {}
    for name, model in (("ours", ours), ("official", theirs)):
        model = model.eval().to(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, cache_enabled=False):
            for _ in range(3):
                model(x)
            torch.cuda.synchronize()
            steps = 10
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(steps):
                    model(x)
                torch.cuda.synchronize()
        rows[f"profile bf16+channels_last b{batch}, {name}: GPU ms per forward"] = kernel_table(prof, steps, top,
                                                                                              f"profile {name}")
    return rows


PRECISIONS = {"fp32": ("fp32 b128", False, 128), "bf16": ("bf16+channels_last b256", True, 256)}


def network_rows(official: Path, config: HRNetConfig, compile_: bool = True,
                 precisions: tuple[str, ...] = tuple(PRECISIONS)) -> dict[str, float]:
    rows: dict[str, float] = {}
    for label, bf16, batch in (PRECISIONS[p] for p in precisions):
        ours, theirs = pair(official, config)
        ours.eval(), theirs.eval()
        fmt = torch.channels_last if bf16 else torch.contiguous_format
        ours, theirs = ours.to(memory_format=fmt), theirs.to(memory_format=fmt)
        x = torch.randn(batch, 3, *config.input_size, device="cuda").contiguous(memory_format=fmt)

        with torch.inference_mode():
            same = (forward(ours, bf16)(x) - forward(theirs, bf16)(x)).abs().max().item()
        print(f"[{label}] max |ours - official| on the same weights: {same:.2e}", flush=True)
        folded = fold_batchnorm(ours).to(memory_format=fmt)
        eager = {"ours": forward(ours, bf16), "official": forward(theirs, bf16), "ours folded": forward(folded, bf16)}
        if bf16:  # as hrpose's inference runs it on CUDA (engine/inference.load_predictor)
            fused = fuse_blocks(fold_batchnorm(ours)).to(torch.bfloat16)
            with torch.inference_mode():
                want = forward(ours, bf16)(x).float()
                rel = ((forward(fused, bf16)(x).float() - want).norm() / want.norm()).item()
            print(f"[{label}] cuDNN-fused blocks against ours: relative difference {rel:.2e}", flush=True)
            eager["ours folded, cuDNN-fused blocks"] = forward(fused, bf16)
        graphs = {name: cuda_graph(fn, x) for name, fn in eager.items()}
        timed = {f"{name} eager": (lambda f=fn: f(x)) for name, fn in eager.items()}
        timed.update({f"{name} CUDA graph": (lambda g=g: g(x)) for name, g in graphs.items()})
        for name, rate in interleaved(timed, batch).items():
            rows[f"network {label}, {name}"] = rate
        del graphs, folded, eager
        compiled = {}
        for name, model in (("ours", ours), ("official", theirs)) if compile_ else ():
            start = time.perf_counter()
            model = compile_regions(model) if name == "ours" else torch.compile(model)
            fn = forward(model, bf16)
            fn(x)
            torch.cuda.synchronize()
            print(f"[{label}] {name} compile + first forward: {time.perf_counter() - start:.1f} s", flush=True)
            compiled[f"{name} compiled"] = lambda f=fn: f(x)
        for name, rate in interleaved(compiled, batch).items() if compiled else ():
            rows[f"network {label}, {name}"] = rate
        torch._dynamo.reset()
        for key in [k for k in rows if k.startswith(f"network {label}")]:
            print(f"{key}: {rows[key]:.0f} images/s", flush=True)
    return rows


def graphed_step(step: Callable[[], None], warm_up: int = 3) -> Callable[[], None]:
    """``step`` (forward, backward and a capturable optimizer's step on static tensors) as one CUDA graph."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warm_up):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def training_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, graphed: bool = False) -> Callable[[], None]:
    """One step of ``model`` (channels_last, training mode): forward in bf16 autocast, MSE loss, backward and fused
    Adam; ``graphed``: capturable Adam and uncached casts, for recording as a CUDA graph (graphed_step)."""
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True, capturable=graphed)

    def step() -> None:
        with torch.autocast("cuda", torch.bfloat16, cache_enabled=not graphed):
            out = model(x)
        loss = (out.float() - target).square().mean()
        optimizer.zero_grad(set_to_none=not graphed)
        loss.backward()
        optimizer.step()
    return step


def host_ms(call: Callable[[], None], calls: int = 10) -> float:
    """Milliseconds of the host's own pace per call: issued without a sync inside, before the queue fills."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    issued = time.perf_counter() - start
    torch.cuda.synchronize()
    return issued / calls * 1000


def train_step_rows(official: Path, archs: list[str], batch: int = 128) -> dict[str, float]:
    """Forward, MSE loss, backward and fused Adam in bf16 autocast and channels_last, synthetic data."""
    rows: dict[str, float] = {}
    for arch in archs:
        config = HRNetConfig.from_arch(arch)
        x = torch.randn(batch, 3, *config.input_size, device="cuda").contiguous(memory_format=torch.channels_last)
        target = torch.rand(batch, config.num_joints, *config.heatmap_size, device="cuda")
        models = {"ours eager": PoseHRNet(config).cuda(), "ours CUDA graph": PoseHRNet(config).cuda()}
        if arch == "w32":
            models["official eager"] = pair(official, config)[1]
        start = time.perf_counter()
        models["ours compiled"] = compile_regions(PoseHRNet(config).cuda())
        steps: dict[str, Callable[[], None]] = {}
        for name, model in models.items():
            graphed = name.endswith("CUDA graph")
            step = training_step(model, x, target, graphed)
            if name == "ours compiled":
                step()
                torch.cuda.synchronize()
                print(f"[train step {arch}] compile by regions + first step: {time.perf_counter() - start:.1f} s", flush=True)
            steps[name] = graphed_step(step) if graphed else step
        for key, value in interleaved(steps, batch, 5, 10).items():
            rows[f"train step {arch} bf16+channels_last b{batch}, {key}"] = value
            print(f"train step {arch} bf16+channels_last b{batch}, {key}: {value:.0f} images/s", flush=True)
        torch._dynamo.reset()
    return rows


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}")
    return time.perf_counter() - start


def _modes(work: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    """No compile; --compile with an empty cache; --compile with the cache the previous run filled."""
    cache = work / f"cache_{time.time_ns()}"
    env = {**os.environ, "HRPOSE_COMPILE_CACHE": str(cache)}
    return [("eager", [], env), ("--compile, empty cache", ["--compile"], env), ("--compile, warm cache", ["--compile"], env)]


def persons_in(ann: Path) -> int:
    """Non-crowd persons with labelled joints: those that eval (GT boxes) and train use."""
    return sum(1 for a in json.loads(ann.read_text())["annotations"] if not a["iscrowd"] and a["num_keypoints"])


def eval_rows(data: Path, archs: list[str], persons: int, batch: int, work: Path,
              modes: tuple[str, ...] = ("eager", "cold", "warm")) -> dict[str, float]:
    from bench_infer import replicated_set

    from hrpose_cli.model.checkpoints import save_checkpoint

    ann = data / "coco-real/annotations/person_keypoints_train.json"
    copies = math.ceil(persons / persons_in(ann))
    rep_ann, rep_images = replicated_set(ann, data / "coco-real/images", copies, work / "set")
    rows: dict[str, float] = {}
    for arch in archs:
        config = HRNetConfig.from_arch(arch)
        weights = work / f"{arch}.pt"
        save_checkpoint(weights, PoseHRNet(config), config)
        for (mode, extra, env), short in zip(_modes(work), ("eager", "cold", "warm")):
            if short not in modes:  # warm needs cold before it: it is the cache that cold filled
                continue
            out = work / f"eval_{arch}.json"
            cmd = ["hrpose", "eval", "--ann", str(rep_ann), "--images", str(rep_images), "--weights", str(weights),
                   "--batch", str(batch), "--json", str(out), "--out", str(work / "eval"), *extra]
            wall = _timed(cmd, env)
            result = json.loads(out.read_text())
            key = f"hrpose eval {arch} flip, {result['persons_evaluated']} persons, {mode}"
            rows[key + ": whole command s"] = wall
            rows[key + ": persons/s in the pipeline"] = result["persons_per_s"]
            print(f"{key}: whole command {wall:.1f} s; {result['persons_per_s']:.0f} persons/s in the pipeline; "
                  f"stages {result['stage_seconds']}", flush=True)
    return rows


def train_rows(data: Path, arch: str, work: Path) -> dict[str, float]:
    ann = data / "coco-real/annotations/person_keypoints_train.json"
    sets = ["--train-ann", str(ann), "--train-images", str(data / "coco-real/images")] * 8
    rows: dict[str, float] = {}
    modes = _modes(work)
    modes.insert(1, ("eager, --no-cuda-graphs", ["--no-cuda-graphs"], modes[0][2]))
    for i, (mode, extra, env) in enumerate(modes):
        run = work / f"train_{arch}_{i}"
        cmd = ["hrpose", "train", *sets, "--arch", arch, "--batch", "128", "--epochs", "2", "--out", str(run), *extra]
        wall = _timed(cmd, env)
        epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        key = f"hrpose train {arch} b128, 2 epochs of {8 * persons_in(ann)} persons, {mode}"
        rows[key + ": whole command s"] = wall
        rows[key + ": first epoch s"] = epochs[0]["time_s"]
        rows[key + ": second epoch images/s"] = epochs[1]["images_per_s"]
        print(f"{key}: whole command {wall:.1f} s, first epoch {epochs[0]['time_s']:.1f} s, second epoch "
              f"{epochs[1]['images_per_s']:.0f} images/s; stages of the second {epochs[1]['stage_seconds']}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, help="the official lib/models/pose_hrnet.py (network, train-step)")
    parser.add_argument("--data", type=Path, help="a folder with coco-real/ as in ../shared/data (eval, train)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of: {', '.join(SECTIONS)}")
    parser.add_argument("--arch", default="w32", help="network, train-step and train sections [w32]")
    parser.add_argument("--step-archs", default="w32,w16", help="train-step section, comma-separated [w32,w16]")
    parser.add_argument("--eval-archs", default="w32,w16", help="eval section, comma-separated [w32,w16]")
    parser.add_argument("--eval-persons", type=int, default=8000, help="eval section: at least this many persons")
    parser.add_argument("--eval-batch", type=int, default=256, help="eval section: --batch of hrpose eval [256]")
    parser.add_argument("--no-compile", action="store_true",
                        help="network section: leave out the compiled rows (the official whole-graph compile takes minutes)")
    parser.add_argument("--eval-modes", default="eager,cold,warm",
                        help="eval section: of eager, cold (--compile, empty cache), warm (after cold) [all three]")
    parser.add_argument("--precisions", default="fp32,bf16", help="network section: fp32, bf16 or both [fp32,bf16]")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"--sections: unknown {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
    if {"profile", "network", "train-step"} & set(sections) and args.official is None:
        parser.error("--official PATH is needed for the profile, network and train-step sections (see the text above)")
    if "warm" in args.eval_modes.split(",") and "cold" not in args.eval_modes.split(","):
        parser.error("--eval-modes: warm is the run after cold (the cache that cold filled); name cold too")
    if {"eval", "train"} & set(sections) and args.data is None:
        parser.error("--data DIR is needed for the eval and train sections")
    if not torch.cuda.is_available():
        sys.exit("bench_speed.py measures the GPU: CUDA is not available here")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    config = HRNetConfig.from_arch(args.arch)
    work = Path(tempfile.mkdtemp(prefix="bench_speed_"))
    rows: dict[str, float] = {}
    if "profile" in sections:
        rows.update(profile_rows(args.official, config))
    if "network" in sections:
        rows.update(network_rows(args.official, config, not args.no_compile, tuple(args.precisions.split(","))))
    if "train-step" in sections:
        rows.update(train_step_rows(args.official, args.step_archs.split(",")))
    if "eval" in sections:
        rows.update(eval_rows(args.data, args.eval_archs.split(","), args.eval_persons, args.eval_batch, work,
                              tuple(args.eval_modes.split(","))))
    if "train" in sections:
        rows.update(train_rows(args.data, args.arch, work))
    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}\n| measurement | value |\n| --- | --- |")
    for key, value in rows.items():
        print(f"| {key} | {value:.1f} |" if value < 100 else f"| {key} | {value:.0f} |")
    if args.out:
        args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
