# Issue 17 on the GPU: GPU tests, then the DeepLabCut mouse (4 keypoints) fine-tuned from the default model for 2
# minutes and evaluated with its last weights (val is not used to choose). One H200, carry [".carry/mouse", ".whl"],
# .carry/mouse a copy of ../shared/data/custom/mouse:  bash benchmarks/train_mouse_gpu.sh  (with $OUT set)
source benchmarks/device_setup.sh || exit 1
timeout 150 python3 -m pytest -q -x tests/test_gpu.py tests/test_stage_clock.py -p no:cacheprovider 2>&1 | tail -4
M=.carry/mouse; SIG=0.026,0.035,0.035,0.107
hrpose train --train-ann $M/annotations/train.json --train-images $M/images --val-ann $M/annotations/val.json --val-images $M/images --weights assets/hrpose_default.pt --epochs 300 --batch 16 --lr 1e-3 --val-every 20 --sigmas $SIG --time-limit 2.0 --out /tmp/mouse > $OUT/mouse_train.log 2>&1; echo "train rc $?"
grep -v "━" $OUT/mouse_train.log | grep -E "training|epochs|images/s|head|load|AP" | tail -6
cp /tmp/mouse/metrics.jsonl $OUT/mouse.metrics.jsonl
hrpose eval --ann $M/annotations/val.json --images $M/images --weights /tmp/mouse/last.pt --sigmas $SIG --json $OUT/mouse_eval.json --out /tmp/mouse_eval 2>&1 | grep -v "━" | tail -8
python3 benchmarks/export_model.py /tmp/mouse/last.pt $OUT/mouse.pt
