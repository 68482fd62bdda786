#!/usr/bin/env bash
# Node-shared memory left by a crash: a node's first rank killed between creating its /dev/shm
# segment and unlinking it (once every rank has mapped it) leaves the segment behind. Its name holds
# the creator's PID namespace and pid; the next node leader on the machine removes the segments of
# processes that are gone, says so, and keeps those of live processes and of other PID namespaces.
source "$(dirname "$0")/common.sh"
[ -d /dev/shm ] && [ -w /dev/shm ] || { echo "no writable /dev/shm: skipped"; exit 77; }
ns="$(stat -L -c %i /proc/self/ns/pid)"
dead="$(sh -c 'echo $$')"  # a pid that has exited
kill -0 "$dead" 2>/dev/null && fail "pid $dead still runs"
tag="$$-$RANDOM"
leaked="/dev/shm/hcl-$ns-$dead-0-$tag" live="/dev/shm/hcl-$ns-$$-0-$tag" other="/dev/shm/hcl-1-$dead-0-$tag"
trap 'rm -f "$leaked" "$live" "$other"; rm -rf "$work"' EXIT
head -c 3145728 /dev/zero > "$leaked"
: > "$live"
: > "$other"

KNN_BANK=100 KNN_TEST=50 train 2 --max-steps 2 --out "$work/run" > "$work/log" 2>&1 || { cat "$work/log"; fail "hcl-train"; }
[ ! -e "$leaked" ] || fail "the dead process's segment is still there"
[ -e "$live" ] || fail "a live process's segment was removed"
[ -e "$other" ] || fail "another PID namespace's segment was removed"
grep -q "node-shared memory: removed 1 segment(s) of 3 MiB from /dev/shm left by processes that died while loading (pid $dead)" \
  "$work/log" || { cat "$work/log"; fail "no line saying what was removed"; }
echo "3 passed, 0 failed"
