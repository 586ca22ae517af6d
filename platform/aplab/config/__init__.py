"""A run's configuration: the typed schema, its parsing, its checks and identity, and the resolver.

``aplab.config`` re-exports the bottom layer (schema, overrides, checks, identity). ``aplab.config.resolve``
sits above the domain packages (it asks losses, noise, data and models to check their fields and fills
unset fields from the dataset's preset) and is imported by name.
"""

from .checks import check_settings
from .identity import config_hash, identity, run_folder
from .overrides import apply, from_dict, from_flat, load_yaml, parse_override, to_flat, to_yaml, yaml_number
from .schema import (
    LOSS_PARAMS,
    DataConfig,
    LossConfig,
    ModelConfig,
    NoiseConfig,
    OptimConfig,
    ResolvedConfig,
    RunConfig,
    RuntimeConfig,
    TrackingConfig,
    field_names,
    loss_kwargs,
)

__all__ = [
    "LOSS_PARAMS", "DataConfig", "LossConfig", "ModelConfig", "NoiseConfig", "OptimConfig", "ResolvedConfig",
    "RunConfig", "RuntimeConfig", "TrackingConfig", "apply", "check_settings", "config_hash", "field_names",
    "from_dict", "from_flat", "identity", "load_yaml", "loss_kwargs", "parse_override", "run_folder", "to_flat", "to_yaml",
    "yaml_number",
]
