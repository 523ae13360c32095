# One device call that checks and times the GPU side before an issue is closed (carry [".carry/video", ".whl"],
# .carry/video/vtest.avi copied from ../shared/data/video):
#   the GPU tests; the detector alone (bench_detector.py, bf16, batch 64, on the fixture and sample photos);
#   vtest.avi through `hrpose predict --out`, its tracks counted, the drawn video shrunk to 384x288 and six
#   frames tiled into one PNG, so that both come back (16 MiB a file) to be looked at.
set -u
source benchmarks/device_setup.sh || exit 1
python3 -m pytest -q tests/test_gpu.py ${EXTRA_TESTS:-} 2>&1 | tail -3
P=/tmp/photos; mkdir -p $P; cp tests/data/images/*.jpg assets/sample/images/*.jpg $P/
python3 benchmarks/bench_detector.py $P --device cuda --batch 64
S=$(date +%s.%N)
hrpose predict .carry/video/vtest.avi --json /tmp/vtest.json --out /tmp/vtest_out > /tmp/vtest.log 2>&1; echo "predict rc $?"
echo "vtest wall $(python3 -c "print(round($(date +%s.%N) - $S, 1))") s (start-up included)"
grep -v "│" /tmp/vtest.log | tail -3
cp /tmp/vtest_out/vtest.jsonl $OUT/
python3 - <<'PY'
import collections, json, os
import cv2, numpy as np
records = json.load(open("/tmp/vtest.json"))
frames = collections.defaultdict(set)
for r in records:
    frames[r["track_id"]].add(r["frame"])
lengths = sorted((len(f) for f in frames.values()), reverse=True)
print(f"{len(records)} person records, {len(lengths)} tracks; frames per track: longest {lengths[:8]}, "
      f">= 50 frames: {sum(n >= 50 for n in lengths)}, >= 200: {sum(n >= 200 for n in lengths)}, "
      f"1-4 frames: {sum(n < 5 for n in lengths)}")
capture = cv2.VideoCapture("/tmp/vtest_out/vtest.mp4")
out = cv2.VideoWriter(os.environ["OUT"] + "/vtest_small.mp4", cv2.VideoWriter_fourcc(*"mp4v"), 10, (384, 288))
stills, index = [], 0
while True:
    ok, frame = capture.read()
    if not ok:
        break
    out.write(cv2.resize(frame, (384, 288)))
    if index in (0, 150, 300, 450, 600, 750):
        stills.append(cv2.putText(frame.copy(), f"frame {index}", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2))
    index += 1
out.release()
rows = [np.hstack(stills[i:i + 3]) for i in (0, 3)]
cv2.imwrite(os.environ["OUT"] + "/vtest_stills.png", cv2.resize(np.vstack(rows), (1536, 768)))
print(f"{index} frames read back from the drawn video")
PY
ls -la $OUT
