"""GPU use while training: NVML samples in a background thread, the idle rule they feed, and the
peak memory and utilisation a run reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch

from algo_platform.training.idle import GpusIdle, IdleRule, fake_utilisation, sample_seconds


class GpuMonitor:
    """Samples GPU utilisation with NVML (nvidia-ml-py) in the background, feeding the idle rule;
    no-op without a GPU (or with the fake feed of `training/idle.py`)."""

    def __init__(self, device: torch.device, rule: IdleRule | None = None):
        self.samples: list[float] = []
        self.rule = rule
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        read = self._reader(device)
        if read is None:
            return
        interval = sample_seconds()

        def sample() -> None:
            while not self._stop.wait(interval):
                value = read()
                self.samples.append(value)
                if self.rule is not None:
                    self.rule.observe(value, time.monotonic())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _reader(device: torch.device):
        fake = fake_utilisation()
        if fake is not None:
            return lambda: fake
        if device.type != "cuda":
            return None
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        except Exception:  # NVML missing or unusable: report what torch knows
            return None
        return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)

    def idle_check(
        self, step: int, world_size: int, checkpoint_every: int, device: torch.device, checkpoint: Callable[[], None]
    ) -> None:
        """After a step: when the rule fired, `checkpoint()` and stop (GpusIdle). Ranks of a DDP
        job decide together, at checkpoint steps, so none is left waiting for the others."""
        if self.rule is None:
            return
        fired = self.rule.fired(time.monotonic())
        if world_size > 1:
            if step % checkpoint_every:
                return
            flag = torch.tensor([int(fired)], device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            fired = bool(flag.item())
        if not fired:
            return
        checkpoint()
        raise GpusIdle(self.rule.reason(time.monotonic(), step))

    def stop(self, device: torch.device) -> dict[str, float]:
        self._stop.set()
        if device.type != "cuda":
            return {"gpu_utilization_mean_pct": sum(self.samples) / len(self.samples)} if self.samples else {}
        report = {
            "gpu_memory_peak_gib": torch.cuda.max_memory_allocated(device) / 2**30,
            "gpu_name": torch.cuda.get_device_name(device),
        }
        if self.samples:
            report |= {
                "gpu_utilization_mean_pct": sum(self.samples) / len(self.samples),
                "gpu_utilization_max_pct": max(self.samples),
            }
        return report
