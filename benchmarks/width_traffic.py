"""Arithmetic and activation traffic of HRNet widths, by part: why w16 cannot be 1.5x W32 on the GPU (issue 20).

    python benchmarks/width_traffic.py [--archs w32,w16,w18] [--input 256x192]

For every convolution of the folded network (one image): its multiply-adds, and the activation elements it
reads and writes (input + output, plus the residual a block's last convolution adds, as the cuDNN-fused
inference form reads it). The stem and layer1 (64 and 256 channels) are the same at every width; the rest
scales with it. Where the forward is bound by memory rather than arithmetic, as a bf16 HRNet on an H100 or
H200 is (its convolutions are small), the ratio of traffic bounds the ratio of speed.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from hrpose_cli.cli.options import parse_input_size
from hrpose_cli.model.hrnet import BasicBlock, Bottleneck, HRNetConfig, PoseHRNet, fold_batchnorm

FRONT = ("conv1", "conv2", "layer1")  # the stem and layer1: width-independent


def count(arch: str, input_size: tuple[int, int]) -> dict[str, float]:
    """Multiply-adds and activation elements (millions) of one image, for the stem + layer1 and the rest."""
    model = fold_batchnorm(PoseHRNet(HRNetConfig.from_arch(arch, input_size=input_size), random_init=False))
    totals = {"front MMACs": 0.0, "rest MMACs": 0.0, "front Melems": 0.0, "rest Melems": 0.0}

    def part(name: str) -> str:
        return "front" if name.startswith(FRONT) else "rest"

    def on_conv(name: str):
        def hook(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            macs = output.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            totals[f"{part(name)} MMACs"] += macs / 1e6
            totals[f"{part(name)} Melems"] += (inputs[0].numel() + output.numel()) / 1e6
        return hook

    def on_block(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            totals[f"{part(name)} Melems"] += output.numel() / 1e6  # the residual the last conv adds
        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(on_conv(name))
        elif isinstance(module, (BasicBlock, Bottleneck)):
            module.register_forward_hook(on_block(name))
    with torch.inference_mode():
        model(torch.zeros(1, 3, *input_size))
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="w32,w16,w18")
    parser.add_argument("--input", default="256x192", help="HxW [256x192]")
    args = parser.parse_args()
    input_size = parse_input_size(args.input)
    rows = {arch: count(arch, input_size) for arch in args.archs.split(",")}
    first = args.archs.split(",")[0]
    base_macs = rows[first]["front MMACs"] + rows[first]["rest MMACs"]
    base_elems = rows[first]["front Melems"] + rows[first]["rest Melems"]
    print(f"| arch | GMACs: stem + layer1 / rest / all | activation Melems: stem + layer1 / rest / all | "
          f"{first} / arch: MACs | {first} / arch: traffic |")
    print("| --- | --- | --- | --- | --- |")
    for arch, r in rows.items():
        macs, elems = r["front MMACs"] + r["rest MMACs"], r["front Melems"] + r["rest Melems"]
        print(f"| {arch} | {r['front MMACs'] / 1e3:.2f} / {r['rest MMACs'] / 1e3:.2f} / {macs / 1e3:.2f} | "
              f"{r['front Melems']:.1f} / {r['rest Melems']:.1f} / {elems:.1f} | {base_macs / macs:.2f}x | "
              f"{base_elems / elems:.2f}x |")


if __name__ == "__main__":
    main()
