#!/usr/bin/env bash
# Keeps one lab daemon running as systemd's Restart=on-failure would on a real host:
#   supervise.sh STATE_FILE COMMAND [ARGS...]
# A daemon that exits by itself (non-zero, or killed by a signal) is started again after a
# backoff that doubles from 100 ms to 5 s and resets once it has run for 10 s. A clean exit
# (code 0) ends the supervisor, as systemd leaves a unit that exited successfully.
# STATE_FILE.hold present: `shoal lab kill` is failing the host on purpose; the daemon is not
# restarted until the hold file goes (`shoal lab start`).
# STATE_FILE gets one JSON object, rewritten atomically on every change.
# Bash rather than Node: one of these runs per lab daemon, and a shell costs a few MB.
set -u
state=$1
shift
hold="$state.hold"
restarts=0
last_exit=null
child=0
stopping=0

write_state() { # state
  printf '{"supervisorPid":%d,"pid":%d,"state":"%s","restarts":%d,"lastExit":%s}\n' \
    "$$" "$child" "$1" "$restarts" "$last_exit" >"$state.tmp" && mv -f "$state.tmp" "$state"
}

# Stopping the supervisor stops its daemon (lab down sends SIGTERM to both anyway).
on_term() {
  stopping=1
  [ "$child" -gt 0 ] && kill -TERM "$child" 2>/dev/null
}
trap on_term TERM INT

# Waits for a sleep without blocking signals: bash runs traps only between commands.
pause() {
  sleep "$1" &
  wait $! 2>/dev/null
}

backoff_ms=100
while :; do
  while [ -e "$hold" ] && [ "$stopping" -eq 0 ]; do
    write_state held
    pause 0.2
  done
  [ "$stopping" -eq 1 ] && break
  started=$(date +%s)
  "$@" &
  child=$!
  write_state running
  # wait returns early when a trapped signal arrives; wait again until the child is gone.
  while :; do
    wait "$child"
    code=$?
    kill -0 "$child" 2>/dev/null || break
  done
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  if [ "$code" -gt 128 ]; then
    last_exit=$(printf '{"signal":"SIG%s","at":"%s"}' "$(kill -l $((code - 128)) 2>/dev/null || echo $((code - 128)))" "$now")
  else
    last_exit=$(printf '{"code":%d,"at":"%s"}' "$code" "$now")
  fi
  [ "$stopping" -eq 1 ] && break
  if [ "$code" -eq 0 ] && [ ! -e "$hold" ]; then
    write_state exited
    exit 0
  fi
  [ -e "$hold" ] && continue
  [ $(($(date +%s) - started)) -ge 10 ] && backoff_ms=100
  write_state backoff
  pause "$(printf '%d.%03d' $((backoff_ms / 1000)) $((backoff_ms % 1000)))"
  backoff_ms=$((backoff_ms * 2))
  [ "$backoff_ms" -gt 5000 ] && backoff_ms=5000
  restarts=$((restarts + 1))
done
write_state stopped
