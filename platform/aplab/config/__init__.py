"""A run's configuration: the typed schema and its YAML/override parsing, presets, and the resolver.

``aplab.config`` re-exports the schema (the bottom layer). ``aplab.config.resolve`` sits above the
domain packages (it asks losses, noise, data and models to check their fields) and is imported by name.
"""

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
    apply,
    config_hash,
    field_names,
    from_dict,
    from_flat,
    identity,
    load_yaml,
    loss_kwargs,
    parse_override,
    to_flat,
    to_yaml,
    yaml_number,
)

__all__ = [
    "LOSS_PARAMS", "DataConfig", "LossConfig", "ModelConfig", "NoiseConfig", "OptimConfig", "ResolvedConfig",
    "RunConfig", "RuntimeConfig", "TrackingConfig", "apply", "config_hash", "field_names", "from_dict",
    "from_flat", "identity", "load_yaml", "loss_kwargs", "parse_override", "to_flat", "to_yaml", "yaml_number",
]
