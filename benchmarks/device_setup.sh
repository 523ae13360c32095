# Sourced at the start of every device run: pycocotools from the carried wheel, the package importable.
# Usage on the device: source benchmarks/device_setup.sh
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export HRPOSE_SHARED_DATA=$PWD/.carry/data
mkdir -p /tmp/bin
printf '#!/bin/sh\nexec python3 -m hrpose_cli "$@"\n' > /tmp/bin/hrpose && chmod +x /tmp/bin/hrpose
export PATH=/tmp/bin:$PATH
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
