"""Export a training checkpoint as a small inference model: fp16 weights and the config, no optimizer state.

    python benchmarks/export_model.py RUN_DIR/best.pt assets/hrpose_default.pt
"""

import sys
from pathlib import Path

from hrpose_cli.model.checkpoints import load_model, read_checkpoint, save_checkpoint


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    model, config = load_model(source)
    meta = read_checkpoint(source).get("meta", {})
    save_checkpoint(target, model, config, half=True, meta={**meta, "exported_from": source.name})
    print(f"{target}: {target.stat().st_size / 2**20:.1f} MiB ({config.arch}, input {config.input_size})")


if __name__ == "__main__":
    main()
