#!/bin/sh
# run-unit.sh - run each cmocka test program; print every summary; fail if any failed.
rc=0; n=0; bad=""
for t in "$@"; do
    n=$((n + 1))
    echo "== $t"
    if ! "$t"; then rc=1; bad="$bad $(basename "$t")"; fi
done
if [ $rc -ne 0 ]; then
    echo "unit: FAILED:$bad"
else
    echo "unit: $n test programs passed"
fi
exit $rc
