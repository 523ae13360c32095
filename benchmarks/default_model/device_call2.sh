# Device call 2: a second lr cycle from call 1's arm B (strong + EMA, no teacher), DDP over both GPUs (64 per GPU).
set -u
source benchmarks/device_setup.sh || exit 1
D=.carry/data
python3 benchmarks/split_fashion17.py $D/fashion17/annotations/person_keypoints.json /tmp/splits
COCO="--train-ann $D/coco-real/annotations/person_keypoints_train.json --train-images $D/coco-real/images"
R=/tmp/run_$(date +%s)
python3 -m torch.distributed.run --nproc-per-node 2 -m hrpose_cli train $COCO $COCO $COCO $COCO \
 --train-ann /tmp/splits/fashion17_train.json --train-images $D/fashion17/images \
 --train-ann $D/pelota/annotations/person_keypoints.json --train-images $D/pelota/images \
 --train-ann $D/badminton/annotations/person_keypoints.json --train-images $D/badminton/images \
 --val-ann $D/coco-real/annotations/person_keypoints_val.json --val-images $D/coco-real/images \
 --weights .carry/B.pt --recipe strong --ema 0.999 --epochs 400 --batch 64 --lr 0.001 --warmup-epochs 2 \
 --val-every 10 --seed 1 --log-every 1000 --time-limit ${TL:-7.8} --out $R/C > $OUT/C.log 2>&1
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
VAL="--ann $D/coco-real/annotations/person_keypoints_val.json --images $D/coco-real/images"
python3 benchmarks/export_model.py $R/C/last.pt $OUT/C.pt
python3 benchmarks/export_model.py $R/C/last.pt $R/C_raw.pt --raw-weights
cp $R/C/metrics.jsonl $OUT/C.metrics.jsonl
grep -v "━" $OUT/C.log | grep -E "AP|epochs|images/s|data-wait|rror" | tail -8
echo "== C raw weights (no EMA):"; hrpose eval $VAL --weights $R/C_raw.pt --out $R/ev 2>&1 | grep -E "AP @|persons/s"
grep -v "━" $OUT/C.log > $OUT/logs.txt; rm $OUT/C.log
