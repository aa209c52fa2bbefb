"""Reclaiming idle GPUs: a trainer whose GPUs stay under a utilisation for a while stops itself,
after a checkpoint, so the GPUs go back to the fleet and a retry resumes where it stopped.

The launcher sets the project's rule in the environment (`compute.idle_gpu_percent`,
`compute.idle_minutes`); the GPU monitor feeds it NVML's utilisation every second, and the
training loop asks it after each step. Without a GPU there are no samples, so it never fires.
`ALGO_PLATFORM_FAKE_GPU_UTILISATION` replaces NVML with a constant (tests, and a drill of the rule
on a machine without GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass

from algo_platform.core import environment

IDLE_PERCENT_ENV = "ALGO_PLATFORM_IDLE_GPU_PERCENT"
IDLE_MINUTES_ENV = "ALGO_PLATFORM_IDLE_MINUTES"
FAKE_UTILISATION_ENV = "ALGO_PLATFORM_FAKE_GPU_UTILISATION"
SAMPLE_SECONDS_ENV = "ALGO_PLATFORM_GPU_SAMPLE_SECONDS"
# Exit status of a trainer stopped by the rule (the launcher's message names it).
IDLE_EXIT_CODE = 75


class GpusIdle(SystemExit):
    """Raised by the training loop once the rule fires; the checkpoint is written first."""


@dataclass
class IdleRule:
    percent: float = 5.0
    seconds: float = 30 * 60.0
    since: float | None = None  # when the current run of samples under `percent` began

    @classmethod
    def from_environment(cls) -> IdleRule:
        return cls(
            percent=float(environment.read(IDLE_PERCENT_ENV) or 5.0),
            seconds=float(environment.read(IDLE_MINUTES_ENV) or 30.0) * 60.0,
        )

    def observe(self, utilisation_pct: float, now: float) -> None:
        """One sample (the busiest of the process's GPUs): under the threshold it starts or extends a
        run of idle samples; at or over it, the run ends."""
        if utilisation_pct < self.percent:
            self.since = now if self.since is None else self.since
        else:
            self.since = None

    def idle_for(self, now: float) -> float:
        return 0.0 if self.since is None else now - self.since

    def fired(self, now: float) -> bool:
        return self.since is not None and self.idle_for(now) >= self.seconds

    def reason(self, now: float, step: int) -> str:
        return (
            f"GPUs idle: utilisation under {self.percent:g}% for {self.idle_for(now) / 60:.1f} minutes "
            f"(compute.idle_minutes: {self.seconds / 60:g}); stopped after a checkpoint at step {step}, "
            "so the GPUs go back to the fleet; a retry resumes from it"
        )


def idle_rule_environment(percent: float, minutes: float) -> dict[str, str]:
    """The rule as the launcher hands it to the trainer."""
    return {IDLE_PERCENT_ENV: f"{percent:g}", IDLE_MINUTES_ENV: f"{minutes:g}"}


def fake_utilisation() -> float | None:
    value = environment.read(FAKE_UTILISATION_ENV)
    return float(value) if value not in (None, "") else None


def sample_seconds() -> float:
    return float(environment.read(SAMPLE_SECONDS_ENV) or 1.0)
