"""Where a run's figures go: ``metrics.jsonl`` always, TensorBoard/MLflow when asked.

Only the main process writes. ``metrics.jsonl`` gets one JSON object per line,
``{"kind": "train"|"eval", "step": ..., ...}``; on resume the lines past the resumed
step are dropped, since those steps are trained again.
"""

from __future__ import annotations

import json
from pathlib import Path

from odyssey.io import append_jsonl, atomic_write


class MetricsLog:
    def __init__(self, out_dir: Path, accelerator, report_to: list[str], run_config: dict):
        self.path = Path(out_dir) / "metrics.jsonl"
        self.accelerator = accelerator
        self.trackers = bool(report_to)
        if self.trackers:
            flat = {k: v for k, v in _flatten(run_config).items() if isinstance(v, (int, float, str, bool))}
            accelerator.init_trackers("odyssey", config=flat)

    def truncate_after(self, step: int) -> None:
        """Keep only the lines of steps already covered by the checkpoint resumed from."""
        if not self.accelerator.is_main_process or not self.path.is_file():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        with atomic_write(self.path) as f:
            f.write("".join(line + "\n" for line in kept))

    def log(self, row: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        append_jsonl(self.path, row)
        if self.trackers:
            prefix = row.get("split", row["kind"])
            values = {f"{prefix}/{k}": v for k, v in row.items()
                      if isinstance(v, (int, float)) and k not in ("step",)}
            self.accelerator.log(values, step=row["step"])

    def close(self) -> None:
        if self.trackers:
            self.accelerator.end_training()


def read_metrics(out_dir: Path) -> list[dict]:
    path = Path(out_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
