"""Average the weights of several models of one architecture (a "model soup"), saved as an fp16 inference model.

    python benchmarks/average_weights.py OUT.pt A.pt B.pt [...]

Runs that continue one parent with different seeds stay in one basin, so their mean is a model too, and
usually at least as good as either; the shipped default model is the mean of two. Every floating tensor
(BatchNorm statistics too) is averaged in fp32; counters are taken from the first model.
"""

import sys
from pathlib import Path

import torch

from hrpose_cli.errors import HrposeError
from hrpose_cli.model.checkpoints import load_model, save_checkpoint


def main() -> None:
    if len(sys.argv) < 4:
        raise HrposeError("usage: average_weights.py OUT.pt A.pt B.pt [...]")
    target, sources = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    model, config = load_model(sources[0])
    states = [model.float().state_dict()]
    for source in sources[1:]:
        other, other_config = load_model(source)
        if other_config.to_dict() != config.to_dict():
            raise HrposeError(f"{source}: a different network from {sources[0]} ({other_config.arch} vs {config.arch})")
        states.append(other.float().state_dict())
    mean = {k: torch.stack([s[k] for s in states]).mean(0) if v.is_floating_point() else v for k, v in states[0].items()}
    model.load_state_dict(mean)
    try:
        save_checkpoint(target, model, config, half=True, meta={"averaged": [p.name for p in sources]})
    except OSError as err:
        raise HrposeError(f"{target}: cannot write ({err.strerror or err}: {err.filename})") from None
    print(f"{target}: mean of {len(sources)} models, {target.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    try:
        main()
    except HrposeError as err:
        sys.exit(f"error: {err}")
