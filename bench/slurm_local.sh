#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (Debian's slurmctld, slurmd, munge; Slurm 22.05), started by hand (no
# systemd), and the pipeline run on it against the local executor.
#
#   bench/slurm_local.sh up                 # install the packages if missing, start munged, slurmctld, slurmd
#   bench/slurm_local.sh run [--config C]   # up, `pipeline run all --wait` on Slurm, verify, compare kept ids with
#                                           # a local run of the same config; then down (unless KEEP_SLURM=1)
#   bench/slurm_local.sh down               # stop the daemons this script started (and only those)
#   eval "$(bench/slurm_local.sh env)"      # SLURM_CONF for sbatch, squeue, sinfo in this shell
#
# Everything it writes lives under $MAPCC_SLURM_DIR (default /tmp/mapcc-slurm): slurm.conf, state, logs, pid files.
# Idempotent: `up` on a running cluster does nothing; `down` stops only the pids it recorded.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${MAPCC_SLURM_DIR:-/tmp/mapcc-slurm}"
CONF="$STATE/slurm.conf"
CPUS="${MAPCC_SLURM_CPUS:-2}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
export SLURM_CONF="$CONF"

log() { echo "[slurm_local] $*" >&2; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v sbatch >/dev/null; then
    return
  fi
  [[ $(id -u) -eq 0 ]] || { log "slurmctld/slurmd/munge are not installed and this is not root: apt-get install -y slurmctld slurmd munge slurm-client"; exit 1; }
  log "installing slurmctld slurmd munge slurm-client (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd munge slurm-client >/dev/null
}

write_conf() {
  mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/log"
  # RealMemory must cover what jobs ask for (--mem-per-cpu x CPUs); Slurm's default is 1 MB.
  local mem_mb
  mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  cat >"$CONF.tmp" <<CONF
# Written by bench/slurm_local.sh: one node, this machine, $CPUS CPUs.
ClusterName=mapcc
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort=${MAPCC_SLURMCTLD_PORT:-6817}
SlurmdPort=${MAPCC_SLURMD_PORT:-6818}
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Finished jobs stay visible to squeue/scontrol for 10 minutes (the runner reads their state).
MinJobAge=600
NodeName=localhost CPUs=$CPUS RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  mv "$CONF.tmp" "$CONF"
}

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    return
  fi
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  [[ -f /etc/munge/munge.key ]] || { log "no /etc/munge/munge.key (the munge package creates it)"; exit 1; }
  runuser -u munge -- /usr/sbin/munged
  cp /run/munge/munged.pid "$STATE/munged.started.pid"  # ours: `down` stops it
  log "munged started (pid $(cat "$STATE/munged.started.pid"))"
}

up() {
  install_packages
  write_conf
  start_munge
  if ! alive "$STATE/slurmctld.started.pid"; then
    setsid /usr/sbin/slurmctld -D -c -f "$CONF" >"$STATE/log/slurmctld.out" 2>&1 < /dev/null &
    echo $! >"$STATE/slurmctld.started.pid"
    log "slurmctld started (pid $!)"
  fi
  if ! alive "$STATE/slurmd.started.pid"; then
    setsid /usr/sbin/slurmd -D -N localhost -f "$CONF" >"$STATE/log/slurmd.out" 2>&1 < /dev/null &
    echo $! >"$STATE/slurmd.started.pid"
    log "slurmd started (pid $!)"
  fi
  for _ in $(seq 60); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      log "cluster up: $(sinfo -h -o '%P %D node(s) %c CPUs %T')"
      return
    fi
    sleep 1
  done
  log "the node did not come up in 60 s; logs: $STATE/log/"
  tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
  exit 1
}

stop_pidfile() {
  local f="$1" name="$2"
  if alive "$f"; then
    local pid
    pid=$(cat "$f")
    kill "$pid"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "$name stopped (pid $pid)"
  fi
  rm -f "$f"
}

down() {
  stop_pidfile "$STATE/slurmd.started.pid" slurmd
  stop_pidfile "$STATE/slurmctld.started.pid" slurmctld
  stop_pidfile "$STATE/munged.started.pid" munged
}

run() {
  local config="$REPO/pipeline.toml" workdir=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --config) config="$2"; shift 2 ;;
      --workdir) workdir="$2"; shift 2 ;;
      *) log "unknown option $1"; exit 2 ;;
    esac
  done
  workdir="${workdir:-$STATE/run}"
  up
  [[ "${KEEP_SLURM:-0}" == 1 ]] || trap down EXIT
  rm -rf "$workdir/slurm" "$workdir/local"
  # Jobs run this checkout's code with its venv (PYTHONPATH: a venv copied from elsewhere keeps its old paths).
  local slurm_set=(--set executor.kind=slurm --set executor.slurm.partition=debug
    --set "executor.slurm.env_command=export PATH=$REPO/.venv/bin:\$PATH PYTHONPATH=$REPO"
    --set executor.slurm.time=01:00:00
    --set executor.slurm.qos= --set "run.workdir=$workdir/slurm")
  log "pipeline run all on Slurm: $config"
  local t0=$SECONDS
  mkdir -p "$workdir"
  (cd "$REPO" && "$PY" -m pipeline run all --wait --config "$config" "${slurm_set[@]}") 2>"$workdir/slurm.log" \
    || { grep -v ' | INFO ' "$workdir/slurm.log" | tail -n 40 >&2; exit 1; }
  grep '^\[pipeline\]' "$workdir/slurm.log" >&2 || true
  log "slurm run: $((SECONDS - t0)) s wall (submit to last task)"
  (cd "$REPO" && "$PY" -m pipeline status --config "$config" "${slurm_set[@]}")
  (cd "$REPO" && "$PY" -m pipeline verify --config "$config" "${slurm_set[@]}")
  log "pipeline run all locally: $config"
  t0=$SECONDS
  (cd "$REPO" && "$PY" -m pipeline run all --config "$config" --set "run.workdir=$workdir/local") \
    2>"$workdir/local.log" || { tail -n 30 "$workdir/local.log" >&2; exit 1; }
  grep '^\[pipeline\]' "$workdir/local.log" >&2 || true
  log "local run: $((SECONDS - t0)) s wall"
  "$PY" - "$workdir/local" "$workdir/slurm" <<'PYCODE'
import sys
from pathlib import Path

import polars as pl

local, slurm = map(Path, sys.argv[1:])
stages = ["ingest", "langid", "filter", "dedup", "pii", "decontam"]
bad = 0
for stage in stages:
    ids = {}
    for name, root in (("local", local), ("slurm", slurm)):
        files = sorted((root / stage / "kept").glob("*.parquet"))
        ids[name] = set(pl.scan_parquet(files).select("id").collect()["id"]) if files else set()
    same = ids["local"] == ids["slurm"]
    bad += not same
    print(f"{stage:<9} kept ids: local {len(ids['local']):>7,}  slurm {len(ids['slurm']):>7,}  {'same' if same else 'DIFFERENT'}")
for split in ("train", "valid"):
    for name in sorted({p.parent.name for p in (local / "tokenize").glob(f"*/*{split}*.bin")}):
        a = b"".join(p.read_bytes() for p in sorted((local / "tokenize" / name).glob(f"*{split}*.bin")))
        b = b"".join(p.read_bytes() for p in sorted((slurm / "tokenize" / name).glob(f"*{split}*.bin")))
        bad += a != b
        print(f"tokens {name}/{split}: {'same' if a == b else 'DIFFERENT'} ({len(a):,} bytes)")
sys.exit(1 if bad else 0)
PYCODE
}

case "${1:-run}" in
  up) up ;;
  down) down ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  run) shift || true; run "$@" ;;
  *) log "usage: $0 up|down|env|run [--config FILE] [--workdir DIR]"; exit 2 ;;
esac
