#!/usr/bin/env bash
# CI: the scripts `pn-host suite slurm` writes, run by a real one-node Slurm on this machine.
# Installs Debian's slurm-wlm and munge if they are missing, starts munged, slurmctld and slurmd
# directly (service autostart is refused in containers) with a configuration of their own
# (SLURM_CONF; nothing in /etc/slurm changes), then:
#   1. a small suite submitted with the generated submit.sh: every array task and the report
#      job run, and the report equals that of the same suite run unsharded (wall-time columns
#      aside);
#   2. the same suite again with one array task cancelled by scancel: the report job still runs,
#      names the cancelled shard's missing runs and the command that reruns the shard; that
#      command recovers it and the report equals the unsharded one;
#   3. `suite slurm` warns when --cpus-per-task exceeds the node's CPUs.
# Stops the daemons at the end, also on failure. Needs root and a built `pn-host` and plugins
# (`cargo xtask build`).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
pn=$PWD/target/release/pn-host
[[ -x $pn ]] || { echo "error: $pn is missing: run cargo xtask build first" >&2; exit 1; }
((EUID == 0)) || { echo "error: the Slurm check installs and starts daemons: run it as root" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

work=$(mktemp -d /tmp/pn-slurm-ci.XXXXXX)
export SLURM_CONF=$work/slurm.conf
stop_daemons() {
    local pidfile pid
    for pidfile in "$work/slurmd.pid" "$work/slurmctld.pid" /run/munge/munged.pid; do
        [[ -s $pidfile ]] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
    done
}
fail() {
    echo "error: slurm check: $* (its files are in $work)" >&2
    for log in "$work"/slurmctld.log "$work"/slurmd.log; do
        [[ -f $log ]] && { echo "--- $log (tail)" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}
trap stop_daemons EXIT

# munge: the package leaves its key and user in place.
install -d -o munge -g munge -m 0755 /run/munge
runuser -u munge -- munged || fail "munged did not start"

node=$(slurmd -C | head -n 1)
name=$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"$node")
cat >"$SLURM_CONF" <<EOF
ClusterName=pnci
SlurmctldHost=$name(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=5
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=ci Nodes=$name Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p "$work/state" "$work/spool"
slurmctld || fail "slurmctld did not start"
slurmd || fail "slurmd did not start"
for _ in $(seq 60); do
    [[ $(sinfo --noheader --format=%t 2>/dev/null) == idle ]] && break
    sleep 1
done
[[ $(sinfo --noheader --format=%t 2>/dev/null) == idle ]] || fail "the node never became idle"
echo "slurm: node $name up after $((SECONDS - started)) s"

# Waits until no job is queued or running (at most $1 seconds).
wait_queue() {
    local until=$((SECONDS + $1))
    while [[ -n $(squeue --noheader) ]]; do
        ((SECONDS < until)) || fail "jobs still queued after $1 s: $(squeue --noheader)"
        sleep 1
    done
}

# summary.csv without its wall-time columns, which differ between any two executions.
summary() {
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) keep[i] = ($i !~ /time/) }
        { line = ""; for (i = 1; i <= NF; i++) if (keep[i]) line = line $i ","; print line }' \
        "$1/summary.csv"
}

# The tests' small suite with ten times the epochs: 12 runs of one to three seconds, long enough
# to cancel an array task between two of its runs.
suite=$work/suite.toml
sed 's/^train = \(.*\)epochs = 250 }$/train = \1epochs = 2500 }/' tests/fixtures/tiny-suite.toml >"$suite"
grep -q "epochs = 2500" "$suite" || fail "tests/fixtures/tiny-suite.toml changed: adapt this check"

"$pn" -q suite run "$suite" --out "$work/whole" --jobs 2 >/dev/null
reference=$(summary "$work/whole")

# 1. Every task runs; the report job follows them.
"$pn" suite slurm "$suite" --out "$work/sharded" --shards 3 --cpus-per-task 1 >/dev/null
bash "$work/sharded/slurm/submit.sh" >/dev/null
wait_queue 600
for i in 1 2 3; do
    grep -qs "shard $i/3 done" "$work/sharded/slurm/shard-$i.log" ||
        fail "array task $i did not finish (slurm/shard-$i.log)"
done
[[ -f $work/sharded/slurm/report.log ]] || fail "the report job did not run"
[[ $(summary "$work/sharded") == "$reference" ]] ||
    fail "the sharded report differs from the unsharded one"
echo "slurm: sharded report equals the unsharded one ($((SECONDS - started)) s)"

# 2. One task cancelled after its first run: the report job still runs and says what to rerun.
out=$work/cancelled
"$pn" suite slurm "$suite" --out "$out" --shards 3 --cpus-per-task 1 >/dev/null
array=$(sbatch --parsable "$out/slurm/array.sbatch")
array=${array%%;*}
sbatch --dependency=afterany:"$array" "$out/slurm/report.sbatch" >/dev/null
task_log=$out/slurm/shard-2.log
for _ in $(seq 600); do
    grep -qs " steps, " "$task_log" && break
    sleep 0.2
done
grep -qs " steps, " "$task_log" || fail "array task 2 finished no run in 120 s"
scancel "${array}_2"
wait_queue 600
log=$out/slurm/report.log
[[ -f $log ]] || fail "no report after the cancelled task"
grep -q "have no result yet" "$log" || fail "the report lists no missing runs: $(cat "$log")"
grep -q "shard 2 of 3" "$log" || fail "the report does not name shard 2: $(cat "$log")"
if grep -Eq "shard [13] of 3" "$log"; then fail "the report blames other shards: $(cat "$log")"; fi
sed -n '/no result yet/,$p' "$log"
rerun=$(sed -nE 's/^ +rerun the shard: (sbatch .*)$/\1/p' "$log")
[[ $rerun == "sbatch --array=2 $out/slurm/array.sbatch" ]] || fail "unexpected rerun command: $rerun"
$rerun >/dev/null
wait_queue 600
"$pn" suite report "$out" >/dev/null || fail "runs still missing after rerunning shard 2"
[[ $(summary "$out") == "$reference" ]] ||
    fail "the recovered report differs from the unsharded one"
echo "slurm: cancelled task recovered by rerunning its shard ($((SECONDS - started)) s)"

# 3. More CPUs per task than the node has: a warning, not an array that pends forever.
cpus=$(sed -E 's/.*CPUs=([0-9]+).*/\1/' <<<"$node")
warning=$("$pn" suite slurm "$suite" --out "$work/wide" --cpus-per-task $((cpus + 1)) 2>&1 >/dev/null)
[[ $warning == *"partition \`ci\` (at most $cpus)"* ]] || fail "no CPU warning: $warning"

stop_daemons
trap - EXIT
rm -rf "$work"
echo "slurm check passed in $((SECONDS - started)) s"
