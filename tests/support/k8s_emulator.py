"""A Kubernetes API emulator for testing PipesK8sClient without a cluster.

kmock's KubernetesEmulator serves the API over HTTP on 127.0.0.1 in its own thread and event
loop (Dagster and the kubernetes client block). A small pod runner reacts to pod creation: it
runs the pod's container command as a local process with the container's env, moves the pod
through Pending -> Running -> Succeeded/Failed, and serves the process output as the pod log
(follow, timestamps, tailLines), which is where PipesK8sClient reads Pipes messages from.

With `kueue=True` it also plays Kueue's pod webhook: a pod carrying a queue label gets Kueue's
scheduling gate and waits, without running, until the test admits it (`admit`); ClusterQueue
objects the test puts in (`put_cluster_queue`) are served as Kueue serves them.

A small Job controller runs an Indexed Job's pods (suspended ones once admitted) and sets the
Job's status when they end. Its pods share this machine, so each node's torchrun gets its own
loopback address (PET_LOCAL_ADDR, 127.0.0.<index+1>): index 0 sorts first in the rendezvous and
holds rank 0, as pod `<job>-0` does on a cluster.
"""

import asyncio
import contextlib
import datetime as dt
import os
import signal
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import kmock

from algo_platform.core.fleet import ADMISSION_GATE, KUEUE_API, QUEUE_LABEL

PODS = kmock.resource("v1/pods")
JOBS = kmock.resource("batch/v1/jobs")
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
# Served as stored (no controller acts on them): what the reaper lists and deletes.
STORED = {
    "batch/v1/jobs": ("Job", True),
    "v1/services": ("Service", True),
    f"{KUEUE_API}/workloads": ("Workload", True),
    f"{KUEUE_API}/clusterqueues": ("ClusterQueue", False),
}


def _container_status(name: str, image: str, state: dict, ready: bool = False) -> dict:
    # The kubernetes client's models reject statuses without these fields.
    return {
        "name": name,
        "image": image,
        "imageID": f"docker://{image}",
        "ready": ready,
        "restartCount": 0,
        "state": state,
    }


class PodRun:
    """One pod's process and its log lines, each with a unique, increasing timestamp."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.finished = asyncio.Event()
        self.changed = asyncio.Event()
        self.process: asyncio.subprocess.Process | None = None
        self._last = dt.datetime.now(dt.UTC)

    def add(self, line: str) -> None:
        # dagster-k8s merges lines that share a timestamp, which would corrupt Pipes JSON.
        stamp = max(dt.datetime.now(dt.UTC), self._last + dt.timedelta(microseconds=1))
        self._last = stamp
        self.lines.append(f"{stamp.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} {line}")
        self.changed.set()


class KubernetesApiEmulator:
    def __init__(self, extra_path: str, kueue: bool = False) -> None:
        self.extra_path = extra_path  # prepended to PATH so `python` is the test's interpreter
        self.kueue = kueue
        self.gated: list[tuple[str, str, dict]] = []  # pods Kueue holds: (namespace, name, container)
        self.suspended: list[tuple[str, str]] = []  # Jobs Kueue holds: (namespace, name)
        self.runs: dict[tuple[str, str], PodRun] = {}
        self.created: list[dict] = []
        self.tasks: list[asyncio.Task] = []
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._serve(),), daemon=True)

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "KubernetesApiEmulator":
        self.thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("Kubernetes emulator did not start")
        return self

    def __exit__(self, *exc) -> None:
        for run in self.runs.values():
            if run.process is not None and run.process.returncode is None:
                self.loop.call_soon_threadsafe(os.killpg, run.process.pid, signal.SIGKILL)
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            self.emulator, self.url = emulator, str(server.url).rstrip("/")
            emulator.resources["v1/pods"] = {"kind": "Pod", "namespaced": True}
            for resource, (kind, namespaced) in STORED.items():
                emulator.resources[resource] = {"kind": kind, "namespaced": namespaced}
            emulator[kmock.action.CREATE, PODS] << self._on_create
            emulator[kmock.action.FETCH, PODS, kmock.subresource("log")] << self._serve_log
            emulator[kmock.action.DELETE, PODS] << self._on_delete
            emulator[kmock.action.CREATE, JOBS] << self._on_create_job
            # Listings honour label and field (metadata.name) selectors, as an API server does.
            for resource in ["v1/pods", *STORED]:
                emulator[kmock.action.LIST, kmock.resource(resource)] << self._list
            self._ready.set()
            await self._stop.wait()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def kubeconfig(self, path: Path) -> str:
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: emulator\n"
            f"clusters: [{{name: emulator, cluster: {{server: '{self.url}'}}}}]\n"
            "users: [{name: tester, user: {token: any}}]\n"
            "contexts: [{name: emulator, context: {cluster: emulator, user: tester, namespace: default}}]\n"
        )
        return str(path)

    # --- pod state ---------------------------------------------------------------------------
    def _object(self, namespace: str, name: str):
        return self.emulator.objects[PODS, namespace, name]

    def _set_status(self, namespace: str, name: str, status: dict) -> None:
        with contextlib.suppress(KeyError):
            pod = self._object(namespace, name)
            if not pod.deleted:  # a deleted pod stays gone (404), as on a real API server
                pod.patch({"status": status})

    async def _on_create(self, request: kmock.Request) -> dict:
        pod = request.data
        namespace = request.namespace or pod["metadata"].get("namespace", "default")
        name = pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        self.created.append(pod)
        if self.kueue and QUEUE_LABEL in pod["metadata"].get("labels", {}):
            # Kueue's webhook: gated until its workload is admitted; the scheduler leaves it alone.
            self._object(namespace, name).patch({"spec": {"schedulingGates": [{"name": ADMISSION_GATE}]}})
            gated = {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
            self._set_status(namespace, name, {"phase": "Pending", "conditions": [gated]})
            self.gated.append((namespace, name, container))
            return self._object(namespace, name).raw
        self._start(namespace, name, container)
        return self._object(namespace, name).raw

    def _start(self, namespace: str, name: str, container: dict) -> None:
        # A status at once: the client lists the pod right after creating it.
        waiting = _container_status(container["name"], container["image"], {"waiting": {"reason": "ContainerCreating"}})
        self._set_status(namespace, name, {"phase": "Pending", "containerStatuses": [waiting]})
        run = self.runs[namespace, name] = PodRun()
        self.tasks.append(asyncio.get_running_loop().create_task(self._run_pod(namespace, name, container, run)))

    async def _run_pod(self, namespace: str, name: str, container: dict, run: PodRun) -> None:
        env = {**os.environ, "PATH": f"{self.extra_path}:{os.environ['PATH']}"}
        env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
        run.process = await asyncio.create_subprocess_exec(
            *container["command"],
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        started = dt.datetime.now(dt.UTC).isoformat()
        running = _container_status(container["name"], container["image"], {"running": {"startedAt": started}}, True)
        self._set_status(namespace, name, {"phase": "Running", "containerStatuses": [running]})
        async for raw in run.process.stdout:
            run.add(raw.decode(errors="replace").rstrip("\n"))
        code = await run.process.wait()
        terminated = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": dt.datetime.now(dt.UTC).isoformat(),
            }
        }
        # Final status before the log stream closes: the client reads logs, then polls the phase.
        self._set_status(
            namespace,
            name,
            {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [_container_status(container["name"], container["image"], terminated)],
            },
        )
        run.finished.set()
        run.changed.set()

    async def _on_create_job(self, request: kmock.Request) -> dict:
        job = request.data
        namespace = request.namespace or job["metadata"].get("namespace", "default")
        name = job["metadata"]["name"]
        stored = self.emulator.objects[JOBS, namespace, name]
        stored.patch({"metadata": {"uid": f"uid-{name}"}, "status": {}})
        if job["spec"].get("suspend"):
            self.suspended.append((namespace, name))
        else:
            self._run_job(namespace, name)
        return stored.raw

    def _run_job(self, namespace: str, name: str) -> None:
        job = self.emulator.objects[JOBS, namespace, name].raw
        template = job["spec"]["template"]
        runs = []
        for index in range(job["spec"]["completions"]):
            pod = f"{name}-{index}-{os.urandom(3).hex()}"
            labels = {**template["metadata"].get("labels", {}), "job-name": name, COMPLETION_INDEX: str(index)}
            container = dict(template["spec"]["containers"][0])
            container["env"] = [*container.get("env", []), {"name": "JOB_COMPLETION_INDEX", "value": str(index)},
                                {"name": "PET_LOCAL_ADDR", "value": f"127.0.0.{index + 1}"}]  # fmt: skip
            manifest = {"apiVersion": "v1", "kind": "Pod", "spec": {**template["spec"], "containers": [container]},
                        "metadata": {"name": pod, "namespace": namespace, "labels": labels,
                                     "annotations": dict(template["metadata"].get("annotations", {}))}}  # fmt: skip
            self.emulator.objects[PODS, namespace, pod] = manifest
            self.created.append(manifest)
            self._start(namespace, pod, container)
            runs.append(self.runs[namespace, pod])

        async def finish() -> None:
            for run in runs:
                await run.finished.wait()
            codes = [run.process.returncode if run.process else -9 for run in runs]
            status = {"succeeded": codes.count(0), "failed": len(codes) - codes.count(0)}
            with contextlib.suppress(KeyError):
                if not self.emulator.objects[JOBS, namespace, name].deleted:
                    self.emulator.objects[JOBS, namespace, name].patch({"status": status})

        self.tasks.append(asyncio.get_running_loop().create_task(finish()))

    async def _list(self, request: kmock.Request) -> dict:
        def selected(raw: dict) -> bool:
            metadata = raw.get("metadata", {})
            labels = metadata.get("labels") or {}
            for term in filter(None, request.params.get("labelSelector", "").split(",")):
                key, _, value = term.partition("=")
                if key not in labels or (value and labels[key] != value):
                    return False
            field = request.params.get("fieldSelector", "")
            return not field.startswith("metadata.name=") or metadata.get("name") == field.split("=", 1)[1]

        items = [
            obj.raw
            for (resource, namespace, _), obj in self.emulator.objects.items()
            if resource == request.resource and namespace == request.namespace and not obj.deleted
        ]
        return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"},
                "items": [raw for raw in items if selected(raw)]}  # fmt: skip

    async def _on_delete(self, request: kmock.Request) -> dict:
        # The emulator has already recorded the deletion; stop the pod's process, as a kubelet would.
        run = self.runs.get((request.namespace, request.name))
        if run is not None and run.process is not None and run.process.returncode is None:
            os.killpg(run.process.pid, signal.SIGKILL)
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Success",
            "details": {"name": request.name, "kind": "pods"},
        }

    async def _serve_log(self, request: kmock.Request) -> AsyncIterator[bytes]:
        run = self.runs[request.namespace, request.name]
        params = request.params
        follow = params.get("follow", "false").lower() == "true"
        with_timestamps = params.get("timestamps", "false").lower() == "true"
        tail = int(params["tailLines"]) if "tailLines" in params else None

        def render(line: str) -> bytes:
            return ((line if with_timestamps else line.split(" ", 1)[1]) + "\n").encode()

        if not follow:
            lines = run.lines[-tail:] if tail else run.lines
            yield b"".join(render(line) for line in lines) or b""
            return
        sent = 0
        while True:
            while sent < len(run.lines):
                yield render(run.lines[sent])
                sent += 1
            if run.finished.is_set():
                return
            run.changed.clear()
            await run.changed.wait()

    # --- for tests ---------------------------------------------------------------------------
    def put_cluster_queue(self, queue: dict) -> None:
        """Serve a ClusterQueue (with the status Kueue would keep) at its cluster-scoped path."""
        self.put(f"{KUEUE_API}/clusterqueues", queue)

    def put(self, resource: str, manifest: dict) -> None:
        """Store an object as a controller would have made it (a Job, a Kueue workload, a run worker's pod)."""

        async def put() -> None:
            key = (kmock.resource(resource), manifest["metadata"].get("namespace"), manifest["metadata"]["name"])
            self.emulator.objects[key] = manifest

        asyncio.run_coroutine_threadsafe(put(), self.loop).result(10)

    def preempt_job_when_running(self, namespace: str, name: str, after_lines: int = 1) -> None:
        """As Kueue evicts a workload: once pod 0 has logged, suspend the Job and stop its pods."""

        async def preempt() -> None:
            while True:
                runs = [
                    (pod, run) for (ns, pod), run in self.runs.items() if ns == namespace and pod.startswith(f"{name}-")
                ]
                if any(pod.startswith(f"{name}-0-") and len(run.lines) >= after_lines for pod, run in runs):
                    break
                await asyncio.sleep(0.05)
            self.emulator.objects[JOBS, namespace, name].patch({"spec": {"suspend": True}})
            for pod, run in runs:
                if run.process is not None and run.process.returncode is None:
                    os.killpg(run.process.pid, signal.SIGKILL)
                self._object(namespace, pod).delete()

        asyncio.run_coroutine_threadsafe(preempt(), self.loop)

    def annotations(self, namespace: str, key: str) -> dict[str, str]:
        """Pod name -> the annotation `key` as the pods carry it now (patches included)."""
        return {
            name: (obj.raw["metadata"].get("annotations") or {}).get(key, "")
            for (resource, ns, name), obj in self.emulator.objects.items()
            if resource == PODS and ns == namespace
        }

    def exists(self, resource: str, namespace: str | None, name: str) -> bool:
        try:
            return not self.emulator.objects[kmock.resource(resource), namespace, name].deleted
        except KeyError:
            return False

    def admit(self) -> int:
        """Kueue admits every gated pod: its gate goes and it runs. Returns how many it admitted."""

        async def admit_all() -> int:
            admitted, self.gated = self.gated, []
            for namespace, name, container in admitted:
                self._object(namespace, name).patch({"spec": {"schedulingGates": []}})
                self._start(namespace, name, container)
            jobs, self.suspended = self.suspended, []
            for namespace, name in jobs:
                self.emulator.objects[JOBS, namespace, name].patch({"spec": {"suspend": False}})
                self._run_job(namespace, name)
            return len(admitted) + len(jobs)

        return asyncio.run_coroutine_threadsafe(admit_all(), self.loop).result(10)

    def delete_pod_when_running(self, namespace: str, after_lines: int = 1) -> None:
        """From outside, delete the first pod once it has written `after_lines` log lines."""

        async def watch() -> None:
            while True:
                for (ns, name), run in list(self.runs.items()):
                    if ns == namespace and len(run.lines) >= after_lines:
                        if run.process is not None and run.process.returncode is None:
                            os.killpg(run.process.pid, signal.SIGKILL)
                        self._object(ns, name).delete()
                        run.finished.set()
                        run.changed.set()
                        return
                await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(watch(), self.loop)
