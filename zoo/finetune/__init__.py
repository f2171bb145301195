"""Fine-tuning: dataset readers for the standard layouts, training, metrics and reports.

Example:
    >>> from zoo.finetune import finetune, FinetuneOptions
    >>> metrics = finetune("genre", "/data/gtzan", "runs/genre",
    ...                    FinetuneOptions(backbone="musicnn_msd"))
    >>> zoo.tag("song.wav", model="runs/genre").top(3)
"""

from __future__ import annotations

from typing import Any

__all__ = ["FRONTENDS", "TASKS", "FinetuneOptions", "finetune"]


def __getattr__(name: str) -> Any:
    # TensorFlow is imported only when training is asked for (the CLI parser stays light).
    if name in __all__:
        from zoo.finetune import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'zoo.finetune' has no attribute {name!r}")
