#!/bin/bash
# Alternated replays of several vigil builds on several rule sets, pinned to one core: the
# machine's speed drifts within minutes, so builds are compared round by round, not one after
# the other. Prints, per build and rule set, the least and the median user CPU seconds.
#
# usage: benches/peers/alternate.sh ROUNDS ARCHIVE "BIN..." "RULES_DIR..."
#   e.g. benches/peers/alternate.sh 5 /tmp/vigil-peers/city-x1/archive \
#          "/tmp/vigil-before /tmp/vigil-after" "rules /tmp/grid-rules"
# Each replay writes to $TMPDIR/alternate/<build>-<rules>/ (alerts and score records, to diff).
set -euo pipefail
rounds=$1 archive=$2 bins=$3 rulesets=$4
out=${TMPDIR:-/tmp}/alternate
mkdir -p "$out"
rm -f "$out"/*.times
for _ in $(seq "$rounds"); do
  for b in $bins; do
    for r in $rulesets; do
      key=$(basename "$b")-$(basename "$r")
      /usr/bin/time -f "%U" -a -o "$out/$key.times" taskset -c 1 "$b" replay --rules "$r" \
        --events "$archive" --out "$out/$key" --scores summary > /dev/null 2>&1
    done
  done
done
for b in $bins; do
  for r in $rulesets; do
    key=$(basename "$b")-$(basename "$r")
    sort -n "$out/$key.times" | awk -v k="$key" '{a[NR]=$1} END {printf "%s min %.2f median %.2f (%d runs)\n", k, a[1], a[int((NR+1)/2)], NR}'
  done
done
