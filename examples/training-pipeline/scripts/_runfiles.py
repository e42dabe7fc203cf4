"""Helpers shared by the example steps: the run directory and metrics.json merging (see pipeline-spec.ts)."""
import fcntl
import json
import os


def run_dir():
    d = os.environ["MLINFRA_RUN_DIR"]
    os.makedirs(d, exist_ok=True)
    return d


def params():
    return json.loads(os.environ.get("MLINFRA_PARAMS") or "{}")


def merge_metrics(values):
    """Merges {name: number} into $MLINFRA_RUN_DIR/metrics.json under an exclusive lock (steps may run in parallel)."""
    path = os.path.join(run_dir(), "metrics.json")
    lock = os.open(run_dir(), os.O_RDONLY)  # flock on the run directory itself: no lock file is left behind
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                metrics = json.load(f)
        except FileNotFoundError:
            metrics = {}
        metrics.update(values)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(metrics, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    finally:
        os.close(lock)
    return metrics


def read_metrics():
    try:
        with open(os.path.join(run_dir(), "metrics.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
