"""What the GPU fleet costs a run, and what a second node gives on CPU.

1. Queue overhead: the time from a training step's launch to its pod's process starting, through
   the real PipesK8sClient against the Kubernetes emulator (tests/support/k8s_emulator.py),
   without a queue (the baseline) and with Kueue's gate and an admission that comes at once
   (the emulator plays Kueue): what the platform's admission wait adds beyond Kueue's own decision.
2. Two processes vs one: the trainer's samples/s under torchrun with two nodes (c10d on loopback,
   gloo) against one process with the same global batch, on this machine's CPU cores.

    python -m benchmarks.gpu_fleet --repeats 5
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "gpu_fleet.json"
# A Pipes process that reports at once: the launch, not the work, is what is measured.
PROBE = """
import time
from dagster_pipes import open_dagster_pipes
with open_dagster_pipes() as pipes:
    pipes.report_asset_materialization(metadata={"started_at": time.time()})
"""


def _launch_seconds(queued: bool, repeats: int, tmp: Path) -> list[tuple[float, float]]:
    import dagster as dg

    from algo_platform.core.fleet import QUEUE_LABEL
    from algo_platform.resources.k8s_launcher import K8sTrainingLauncher
    from tests.support.k8s_emulator import KubernetesApiEmulator

    samples = []
    with KubernetesApiEmulator(extra_path=str(Path(sys.executable).parent), kueue=True) as emulator:
        stop = threading.Event()

        def kueue() -> None:  # admits whatever is gated, as soon as it is
            while not stop.is_set():
                if emulator.gated:
                    emulator.admit()
                time.sleep(0.005)

        threading.Thread(target=kueue, daemon=True).start()
        launcher = K8sTrainingLauncher(
            namespace="bench", gpus=0, env_from_secrets=[], load_incluster_config=False,
            kubeconfig_file=emulator.kubeconfig(tmp / "kubeconfig"), poll_interval_seconds=0.05,
            labels={QUEUE_LABEL: "bench"} if queued else {}, cluster_queue="bench" if queued else None,
        )  # fmt: skip

        @dg.asset
        def probe(context: dg.AssetExecutionContext, training_launcher: K8sTrainingLauncher) -> dg.MaterializeResult:
            launched = time.time()
            reported = training_launcher.run_task(context, ["python", "-c", PROBE], {}).get_materialize_result()
            started = reported.metadata["started_at"].value
            return dg.MaterializeResult(
                metadata={"launch_to_start": started - launched, "launch_to_done": time.time() - launched}
            )

        for _ in range(repeats + 1):  # the first run warms imports up
            result = dg.materialize([probe], resources={"training_launcher": launcher})
            metadata = result.asset_materializations_for_node("probe")[0].metadata
            samples.append((metadata["launch_to_start"].value, metadata["launch_to_done"].value))
        stop.set()
    return samples[1:]


def _samples_per_second(tmp: Path, nodes: int) -> float:
    from tests.support.factories import write_inputs

    sequences, vocabulary = write_inputs(tmp, users=2_000)
    out = Path(tempfile.mkdtemp(prefix=f"nodes-{nodes}-", dir=tmp))  # fresh: a finished run would resume
    batch = 64 // nodes  # the same global batch
    args = ["-m", "algo_platform.training", "--sequences", sequences, "--vocabulary", vocabulary,
            "--output-dir", str(out), "--epochs", "3", "--patience", "0", "--batch-size", str(batch),
            "--device", "cpu"]  # fmt: skip
    if nodes == 1:
        logs = [subprocess.run([sys.executable, *args], check=True, capture_output=True).stderr.decode()]
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    f"--nnodes={nodes}",
                    f"--node_rank={rank}",
                    "--nproc_per_node=1",
                    "--rdzv_backend=c10d",
                    f"--rdzv_endpoint=127.0.0.1:{port}",
                    "--rdzv_id=bench",
                    *args,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                # the machine's cores shared out, as a node would own its own
                env={**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // nodes))},
            )  # fmt: skip
            for rank in range(nodes)
        ]
        logs = []
        for worker in workers:
            _, err = worker.communicate(timeout=900)
            if worker.returncode:
                raise RuntimeError(err.decode()[-2000:])
            logs.append(err.decode())
    # The trainer logs its result without Pipes; rank 0's holds samples/s of all ranks.
    found = [float(m) for log in logs for m in re.findall(r"'samples_per_second': ([0-9.e+]+)", log)]
    if not found:
        raise RuntimeError("the trainer's result line carries no samples_per_second: " + logs[0][-2000:])
    return found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        direct = _launch_seconds(False, options.repeats, tmp)
        queued = _launch_seconds(True, options.repeats, tmp)
        # Alternated, so both see the same machine; short runs on 2 shared cores vary a lot.
        one, two = [], []
        for _ in range(options.repeats):
            one.append(_samples_per_second(tmp, 1))
            two.append(_samples_per_second(tmp, 2))
    results = {
        "queue_overhead": {
            f"{measure}_{case}": {
                "seconds": [sample[index] for sample in samples],
                "median": statistics.median(sample[index] for sample in samples),
            }
            for index, measure in enumerate(("launch_to_pod_start", "launch_to_step_done"))
            for case, samples in (("without_queue", direct), ("with_kueue", queued))
        },
        "cpu_nodes": {
            "one_process_samples_per_second": one,
            "two_processes_samples_per_second": two,
            "median_one": statistics.median(one),
            "median_two": statistics.median(two),
            "ratio": statistics.median(two) / statistics.median(one),
        },  # fmt: skip
    }
    overhead = results["queue_overhead"]
    for measure in ("launch_to_pod_start", "launch_to_step_done"):
        with_kueue, without = (
            overhead[f"{measure}_with_kueue"]["median"],
            overhead[f"{measure}_without_queue"]["median"],
        )
        overhead[f"{measure}_ratio"] = with_kueue / without
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
