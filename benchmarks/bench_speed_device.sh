#!/bin/bash
# bench_speed.py on the device, one section per process so that one section's failure or time-out keeps the
# others: carry [".carry/official", ".carry/speed", ".whl"] (.carry/speed: coco-real at JPEG quality 75).
#   SECTIONS="profile network:--no-compile:--precisions=bf16 train-step train" bash benchmarks/bench_speed_device.sh
# Each entry is a section, optionally with options of bench_speed.py after colons; TIMEOUT caps each. Three more
# entries run the other GPU scripts: "probe" (compile_probe.py, options after colons as well),
# "compile-time" (compile_time.py twice on one new cache: empty, then warm) and "tests" (the GPU tests, the
# stage clock's and the teacher's: add ".teacher" to the carry).
source benchmarks/device_setup.sh || exit 1
OUT=${OUT:-/tmp/bench_out}; mkdir -p "$OUT"
for entry in ${SECTIONS:-profile network train-step eval train}; do
  section=${entry%%:*}; extra=""; [[ $entry == *:* ]] && extra=${entry#*:} && extra=${extra//:/ }
  echo "=== $section $extra ($(date +%T))"
  start=$SECONDS
  case $section in
    probe) cmd=(python3 benchmarks/compile_probe.py --official .carry/official/pose_hrnet.py --out "$OUT/compile_probe.json" $extra) ;;
    tests) cmd=(python3 -m pytest -q tests/test_gpu.py tests/test_stage_clock.py tests/test_distill.py $extra) ;;
    compile-time) cache=$(mktemp -d); cmd=(bash -c "python3 benchmarks/compile_time.py --cache $cache $extra && python3 benchmarks/compile_time.py --cache $cache $extra") ;;
    *) cmd=(python3 benchmarks/bench_speed.py --official .carry/official/pose_hrnet.py --data .carry/speed --sections "$section" $extra --out "$OUT/speed_$section.json") ;;
  esac
  timeout "${TIMEOUT:-300}" "${cmd[@]}" 2>&1 | grep -v "Warning\|_warn_once\|warnings.warn" | tee "$OUT/speed_$section.log" | tail -n 45
  echo "=== $section: exit ${PIPESTATUS[0]}, $((SECONDS - start)) s"
done
