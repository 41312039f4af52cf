"""The one typed config tree, at the ground of the package: it imports nothing above it.

YAML in, ``key=value`` overrides on top, validated on load. Every option is documented once, in
its section's ``Field(description=...)``; ``tadistill config show`` prints them. An unknown key
or a bad value fails at load with a message that names the dotted key. Choices between named
implementations (teacher sources, launchers, selection rules, ...) come from the import-free
table in ``choices.py``; the implementations are imported only when a run builds them.

One file per part of the tree: ``data.py`` (data, ray), ``teacher.py`` (teacher, budget),
``models.py`` (models, inference), ``signals.py`` (signals, selection, trust), ``train.py`` (train,
eval), ``root.py`` (Config and what follows from it), ``load.py`` (YAML, overrides, descriptions).
"""

from .base import SYNTHETIC, ConfigError
from .data import ANSWER_TYPES, PRESETS, DataConfig, FieldMap, HFDataConfig, RayConfig, SyntheticDataConfig
from .load import describe_options, load_config, parse_overrides
from .models import AutoscalingConfig, InferenceConfig, ModelsConfig, SyntheticModelsConfig
from .root import METHOD_PRESETS, METHODS, Config
from .signals import SelectionConfig, SignalsConfig, TrustConfig
from .teacher import (TEACHER_SOURCES, BudgetConfig, Price, RecordedTeacherConfig, RecordFields,
                      SyntheticTeacherConfig, TeacherConfig)
from .train import DeepSpeedConfig, EvalConfig, LoraConfig, TrackingConfig, TrainConfig

__all__ = [
    "ANSWER_TYPES", "AutoscalingConfig", "BudgetConfig", "Config", "ConfigError", "DataConfig", "DeepSpeedConfig",
    "EvalConfig", "FieldMap", "HFDataConfig", "InferenceConfig", "LoraConfig", "METHODS", "METHOD_PRESETS",
    "ModelsConfig", "PRESETS", "Price", "RayConfig", "RecordFields", "RecordedTeacherConfig", "SYNTHETIC",
    "SelectionConfig", "SignalsConfig", "SyntheticDataConfig", "SyntheticModelsConfig", "SyntheticTeacherConfig",
    "TEACHER_SOURCES", "TeacherConfig", "TrackingConfig", "TrainConfig", "TrustConfig", "describe_options",
    "load_config", "parse_overrides",
]
