# A w32 chain within the device's limits (issue 15): one H200, one arm alone for TL minutes,
# continuing from the last w32 (call 12's WL first) carried as int8, on one of three mixed data shards in turn.
# Here, before the call (SHARD = m1, m2, m3 in turn: mixed shards, every source's K-th third, coco-real train
# whole; call 13 ran the by-source shard a and fell back, see README.md; PREV the last w32's exported model):
#   python benchmarks/mixed_shard.py .carry/fm .carry/w32_m1.zip --part 0   (m2: --part 1, m3: --part 2)
#   python benchmarks/int8_weights.py pack PREV.pt .carry/w32.int8.pt
#   mv assets/hrpose_default.pt /tmp/   (14 MiB of the working tree; put it back after the call)
# carry [".carry/w32_$SHARD.zip", ".carry/w32.int8.pt", ".teacher", ".whl"]: 6.5 + 28 + 12 + 0.4 MiB, with the
# working tree's 13 MiB under the 64 MiB. Run as (call 14): SHARD=m1 SEED=26 LR=0.0001 TL=6.5 OUT=$OUT bash benchmarks/default_model/device_call_w32.sh
# Back: the run's model as int8 in two parts under 16 MiB (cat w32.int8.pt.part_* > w32.int8.pt; then
# int8_weights.py unpack), its metrics and log. The rule is measured here: python benchmarks/choice_rule.py W.pt
set -u
source benchmarks/device_setup.sh || exit 1
S=${SHARD:?SHARD=m1, m2, m3 or f1: the .carry/w32_SHARD.zip carried}
D=.carry/shard; mkdir -p $D
(cd $D && python3 -m zipfile -e ../w32_$S.zip .) || exit 1
python3 benchmarks/int8_weights.py unpack .carry/w32.int8.pt /tmp/w32.pt || exit 1
L=""
for i in 1 2 3 4; do L="$L --train-ann $D/coco/annotations.json --train-images $D/coco/images"; done
for s in fashion17 pelota badminton; do
  [ -d $D/$s ] && L="$L --train-ann $D/$s/annotations.json --train-images $D/$s/images"; done
for s in ccp humanseg cctv; do
  [ -d $D/$s ] && L="$L --unlabelled-ann $D/$s/annotations.json --unlabelled-images $D/$s/images"; done
R=/tmp/run_$(date +%s)
hrpose train $L --recipe strong --ema 0.999 --epochs 400 --batch 128 --lr ${LR:-0.0003} --warmup-epochs 2 \
  --workers 14 --log-every 1000 --save-every ${SAVE_EVERY:-50} --time-limit ${TL:-8.0} --teacher .teacher/movenet-thunder.json --teacher-mode match \
  --weights /tmp/w32.pt --seed ${SEED:?} --out $R/W > $OUT/W.log 2>&1
echo "train rc $?"
python3 benchmarks/export_model.py $R/W/last.pt /tmp/W.pt || exit 1
python3 benchmarks/int8_weights.py pack /tmp/W.pt /tmp/w32.int8.pt || exit 1
split -b 15000000 /tmp/w32.int8.pt $OUT/w32.int8.pt.part_
cp $R/W/metrics.jsonl $OUT/W.metrics.jsonl
grep -v "━" $OUT/W.log | grep -E "epochs|images/s|data-wait|rror|training|persons|CUDA" | tail -6
grep -v "━" $OUT/W.log > $OUT/W.txt; rm $OUT/W.log
ls -la $OUT
