# Device call 12 (issue 15), one H200, carry [".carry/fm.zip", ".teacher", ".whl"]: the student width. The
# shipped w16 (call 9's C3) widened to w32 by benchmarks/widen_model.py (the same function, copies split with
# noise), then two arms side by side on the one GPU, TL minutes each, function matching + people/ exactly as
# call 11's control (calls 7-10's data, 3,771 persons):
#   W: w32 from the widened model, lr 0.001 (the control's recipe), seed 23
#   WL: the same at --lr 0.0003, seed 24
# The two fp16 models (57 MB each) come back as one tar in parts of under 16 MiB (8 files at most). As it ran:
# the device returns 64 MiB in all, so the first four parts came back (WL.pt and its log) and W.pt did not.
set -u
source benchmarks/device_setup.sh || exit 1
[ -d .carry/fm ] || (cd .carry && python3 -m zipfile -e fm.zip .) || exit 1
python3 benchmarks/widen_model.py assets/hrpose_default.pt /tmp/w32_init.pt --width 32 || exit 1
D=.carry/fm
L="--train-ann $D/coco/annotations.json --train-images $D/coco/images"
L="$L $L $L $L"
for s in fashion17 pelota badminton; do L="$L --train-ann $D/$s/annotations.json --train-images $D/$s/images"; done
for s in ccp humanseg cctv; do L="$L --unlabelled-ann $D/$s/annotations.json --unlabelled-images $D/$s/images"; done
COMMON="$L --val-ann $D/setaside/annotations.json --val-images $D/setaside/images --recipe strong --ema 0.999
 --epochs 400 --batch 128 --lr 0.001 --warmup-epochs 2 --val-every 10 --workers 7 --log-every 1000
 --teacher .teacher/movenet-thunder.json --teacher-mode match --weights /tmp/w32_init.pt"
R=/tmp/run_$(date +%s)
TL=${TL:-7.6}
arm() {  # name, seed, extra options; a run that fails in its first two minutes runs again without CUDA graphs
  local start=$SECONDS
  hrpose train $COMMON --seed $2 ${3:-} --time-limit $TL --out $R/$1 > $OUT/$1.log 2>&1 && return
  local spent=$((SECONDS - start))
  [ $spent -lt 120 ] || return
  echo "$1 failed after $spent s; again with --no-cuda-graphs" >> $OUT/$1.log
  rm -rf $R/$1
  hrpose train $COMMON --seed $2 ${3:-} --no-cuda-graphs --time-limit $(python3 -c "print(round($TL - $spent / 60 - 0.3, 2))") \
    --out $R/$1 >> $OUT/$1.log 2>&1
}
arm W 23 &
arm WL 24 "--lr 0.0003" &
wait
E=/tmp/export; mkdir -p $E
for r in W WL; do
  python3 benchmarks/export_model.py $R/$r/last.pt $E/$r.pt
  cp $R/$r/metrics.jsonl $E/$r.metrics.jsonl
  grep -v "━" $OUT/$r.log | grep -E "AP|epochs|images/s|data-wait|rror|training|persons|CUDA" | tail -5
  grep -v "━" $OUT/$r.log > $E/$r.log; rm $OUT/$r.log
done
tar -cf - -C $E . | split -b 16000000 - $OUT/call12.tar.part_
ls -la $OUT
