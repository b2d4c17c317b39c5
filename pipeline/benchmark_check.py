"""Fine-tuning data goes through the corpus's benchmark decontamination too: the check that `pipeline train sft|dpo`
(and the demo) hand to the trainer, built here because train/ does not import stages/."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.config import Config, ConfigError
from pipeline.runner import stage_dir
from stages.decontam import text_check


def finetune_benchmark_check(cfg: Config) -> Callable[[str], list[str]] | None:
    """text -> benchmarks whose items it holds, with the decontam stage's `[[stages.decontam.benchmarks]]`,
    thresholds and index (`<workdir>/decontam/index`, built once and reused while the files and settings are
    unchanged); None when the stage is disabled. A missing benchmark file is a ConfigError naming the key."""
    decontam = cfg.stages.decontam
    if not decontam.enabled:
        return None
    try:
        return text_check(cfg, decontam, stage_dir(cfg, "decontam") / "index")
    except ValueError as e:
        raise ConfigError(str(e)) from None
