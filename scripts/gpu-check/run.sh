#!/usr/bin/env bash
# GPU checks of mlinfra-agent on a real GPU host (run on a machine with NVIDIA GPUs, PyTorch and
# Node.js; the agent bundle built): GPU detection, CUDA_VISIBLE_DEVICES per slot, a real CUDA OOM
# classified `oom`, two GPU jobs on one GPU never overlapping, a small training job that checkpoints
# and resumes, and a 2-process NCCL all-reduce under torch.distributed.run.
# Usage: scripts/gpu-check/run.sh OUT_DIR   (NODE=node binary, AGENT_JS=agent bundle to use)
set -u
out=${1:?usage: run.sh OUT_DIR}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
node=${NODE:-node}
A=("$node" "${AGENT_JS:-$root/dist/agent/mlinfra-agent.js}")
data=$(mktemp -d)
python3 -c 'import secrets; print(secrets.token_hex(24))' > "$data/token"
export MLINFRA_AGENT_URL=http://127.0.0.1:7077 MLINFRA_AGENT_TOKEN
MLINFRA_AGENT_TOKEN=$(cat "$data/token")
log() { echo "== $*"; }

log "nvidia-smi -L"; nvidia-smi -L
"${A[@]}" serve --port 7077 --data-dir "$data/agent" --token-file "$data/token" --grace-seconds 5 > "$out/agent.log" 2>&1 &
agent=$!
for _ in $(seq 1 100); do "${A[@]}" list > /dev/null 2>&1 && break; sleep 0.2; done
log "healthz"; python3 - <<'PY'
import json, os, urllib.request
r = urllib.request.Request(os.environ["MLINFRA_AGENT_URL"] + "/healthz", headers={"Authorization": "Bearer " + os.environ["MLINFRA_AGENT_TOKEN"]})
print(urllib.request.urlopen(r).read().decode())
PY

wait_job() {  # prints the job's final JSON
  local id=$1 s
  for _ in $(seq 1 600); do
    s=$("${A[@]}" status "$id")
    case $(python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' <<<"$s") in
      succeeded|failed|cancelled|interrupted) echo "$s"; return;;
    esac
    sleep 0.5
  done
  echo "$s"
}
submit() { "${A[@]}" submit "$@"; }

log "1. what a 1-GPU job sees"
j=$(submit --gpus 1 --name env -- python3 "$here/env_check.py"); wait_job "$j" > "$out/job-env.json"; "${A[@]}" logs "$j"

log "2. two 1-GPU jobs on a 1-GPU host: the second waits for the slot"
a=$(submit --gpus 1 --name slot-a -- sh -c 'echo start $(date +%s.%N); sleep 2; echo end $(date +%s.%N)')
b=$(submit --gpus 1 --name slot-b -- sh -c 'echo start $(date +%s.%N); sleep 2; echo end $(date +%s.%N)')
wait_job "$a" > /dev/null; wait_job "$b" > /dev/null
echo "slot-a: $("${A[@]}" logs "$a" | tr '\n' ' ')"; echo "slot-b: $("${A[@]}" logs "$b" | tr '\n' ' ')"

log "3. a real CUDA out-of-memory"
j=$(submit --gpus 1 --name oom -- python3 "$here/oom.py"); wait_job "$j" > "$out/job-oom.json"
"${A[@]}" logs "$j" | tail -n 4
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("state", j["state"], "exit", j.get("exitCode"), "failure", json.dumps(j.get("failure")))' "$out/job-oom.json"

log "4. small training job, then a longer one that resumes from its checkpoint"
ck=$data/ckpt; mkdir -p "$ck"
j=$(submit --gpus 1 --name train --checkpoint-dir "$ck" --env STEPS=600 -- python3 "$here/train_gpu.py"); wait_job "$j" > "$out/job-train.json"
"${A[@]}" logs "$j" | tail -n 3
j2=$(submit --gpus 1 --name train-resume --checkpoint-dir "$ck" --env STEPS=800 -- python3 "$here/train_gpu.py"); wait_job "$j2" > "$out/job-train2.json"
"${A[@]}" logs "$j2" | tail -n 4
python3 -c 'import json,sys; [print(n, json.load(open(f))["state"]) for n,f in zip(["train","resume"],sys.argv[1:])]' "$out/job-train.json" "$out/job-train2.json"

log "5. 2-process NCCL all-reduce (torch.distributed.run --nproc_per_node 2) on the host's GPUs"
j=$(submit --gpus 1 --name nccl --env NCCL_DEBUG=WARN -- python3 -m torch.distributed.run --standalone --nproc_per_node 2 "$here/nccl_check.py")
wait_job "$j" > "$out/job-nccl.json"; "${A[@]}" logs "$j" | grep -E '"rank"|NCCL WARN|Error|error' | head -n 12
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("state", j["state"], "failure", json.dumps(j.get("failure")))' "$out/job-nccl.json"

log "6. kill -9 of the agent during a GPU training job: the job keeps running and is recorded once"
j=$(submit --gpus 1 --name train-survive --checkpoint-dir "$data/ckpt2" --env STEPS=5000 -- python3 "$here/train_gpu.py")
sleep 4
kill -9 "$agent"; wait "$agent" 2>/dev/null
"${A[@]}" serve --port 7077 --data-dir "$data/agent" --token-file "$data/token" --grace-seconds 5 >> "$out/agent.log" 2>&1 &
agent=$!
for _ in $(seq 1 100); do "${A[@]}" list > /dev/null 2>&1 && break; sleep 0.2; done
wait_job "$j" > "$out/job-survive.json"; "${A[@]}" logs "$j" | tail -n 2
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("state", j["state"], "attempts", j.get("attempts"), "exit", j.get("exitCode"))' "$out/job-survive.json"

log "7. GPU metrics the agent exports"
python3 - <<'PY'
import os, urllib.request
r = urllib.request.Request(os.environ["MLINFRA_AGENT_URL"] + "/metrics", headers={"Authorization": "Bearer " + os.environ["MLINFRA_AGENT_TOKEN"]})
for line in urllib.request.urlopen(r).read().decode().splitlines():
    if "gpu" in line and not line.startswith("#"):
        print(line)
PY
kill -TERM "$agent"; wait "$agent"; echo "agent exit $?"
