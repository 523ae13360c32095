# Sourced at the start of every device run: pycocotools from the carried wheel, the package importable.
# Usage on the device: source benchmarks/device_setup.sh
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export HRPOSE_SHARED_DATA=$PWD/.carry/data
# The device's torch has no bytecode (.pyc) and PYTHONDONTWRITEBYTECODE=1 is set, so every process compiled
# torch's Python sources again: about 6 s of each `--compile` command went to importing dynamo and inductor.
# pip writes the bytecode at install, so a user's machine has it; here it goes under a writable prefix.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX=/tmp/pycache
python3 -c 'import torch._dynamo, torch._inductor.compile_fx, torch.distributed.fsdp' 2>/dev/null
mkdir -p /tmp/bin
printf '#!/bin/sh\nexec python3 -m hrpose_cli "$@"\n' > /tmp/bin/hrpose && chmod +x /tmp/bin/hrpose
export PATH=/tmp/bin:$PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
