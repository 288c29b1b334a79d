#!/usr/bin/env bash
# Peak memory and time of `ticket detect` against image size (docs/memory.md): one PNG per size (flat colour
# with noise patches, written with Python's standard library), detected with --score-thresh 0 so that every
# image keeps the full 100 detections (the worst case for masks), measured with /usr/bin/time -v.
#   tools/bench_detect_memory.sh MODEL [WxH ...]     (default sizes: 640x480 2000x1500 4000x3000 8000x6000)
# Knobs: TICKET_BIN (the binary to measure, default target/release/ticket), THREADS (default: one per core),
# AS_LIMIT_KB (an address-space limit for each run, so that a binary that needs too much aborts instead of
# exhausting the machine; default 16000000).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model=${1:?usage: tools/bench_detect_memory.sh MODEL [WxH ...]}
shift
sizes=${*:-640x480 2000x1500 4000x3000 8000x6000}
ticket=${TICKET_BIN:-$root/target/release/ticket}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %7s %12s %8s %13s %6s %s\n' size MP peak_rss_MB wall_s latency_ms dets status
for size in $sizes; do
  w=${size%x*} h=${size#*x}
  python3 - "$w" "$h" "$work/$size.png" <<'EOF'
import os, struct, sys, zlib
w, h, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
flat = bytes([90, 110, 130]) * w
z = zlib.compressobj(6)
data = []
for y in range(h):
    row = bytearray(flat)
    if (y // 400) % 2 == 0 and y % 400 < 80:
        for x0 in range(0, w, 400):
            n = min(80, w - x0) * 3
            row[x0 * 3:x0 * 3 + n] = os.urandom(n)
    data.append(z.compress(b'\0' + bytes(row)))
data.append(z.flush())
png = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IDAT', b''.join(data)) + chunk(b'IEND', b'')
open(path, 'wb').write(png)
EOF
  args=(detect "$model" "$work/$size.png" -o "$work/dets.json" --score-thresh 0 --json)
  if [[ -n ${THREADS:-} ]]; then args+=(--threads "$THREADS"); fi
  status=ok
  bash -c "ulimit -v ${AS_LIMIT_KB:-16000000}; exec /usr/bin/time -v \"\$@\" >'$work/out.json' 2>'$work/time.txt'" _ "$ticket" "${args[@]}" || status="exit $?"
  [[ $status == ok ]] || tail -n 30 "$work/time.txt" | grep -v "^\s" >&2 || true
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt" | awk -F: '{s=0; for (i=1;i<=NF;i++) s=s*60+$i; print s}')
  read -r latency dets < <(python3 -c 'import json,sys
try:
    r=json.load(open(sys.argv[1])); print(round(r["median_latency_ms"]), r["detections"])
except Exception:
    print("-", "-")' "$work/out.json")
  printf '%-10s %7.1f %12.0f %8s %13s %6s %s\n' "$size" "$(echo "$w * $h / 1000000" | bc -l)" "$(echo "${rss_kb:-0} / 1024" | bc -l)" "$wall" "$latency" "$dets" "$status"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
