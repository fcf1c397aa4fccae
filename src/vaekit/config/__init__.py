"""Training configuration: one dataclass per component, each with its defaults.

A run is described by a `TrainConfig` made of four sections, the same four as in a TOML file:

    [data]   which images and how they are turned into x      (DataConfig)
    [model]  the VAE: kind, sizes, likelihood                  (ModelConfig)
    [optim]  optimizer, learning rate and its schedule         (OptimConfig)
    [train]  objective, samples, beta, epochs, seed, device    (LoopConfig)

Each field declares itself with `setting`: its default, and where it has them its valid choices, its
range (a `Bound`), its command-line flag with the help text, and whether a resumed run may change it.
Everything else is built from those declarations: `BOUNDS`, the choice checks of `validate`,
`RESUMABLE_CHANGES`, the reading of TOML files and config.json (`apply`), and the flag tables of
`vaekit train` and `vaekit classify` (`vaekit.commands.tables.flag_table`). The classifier's config
(`vaekit.classify.config`) uses `OptimConfig` as it is and takes the data and loop settings it shares
with the VAE from these sections (`shared`).

Precedence: the defaults below < a `--config FILE.toml` < command-line flags. A key that does not
exist, a value of the wrong type or out of range is a `ConfigError`: one sentence naming where the
value came from (the TOML file, "command line", a run's config.json), the key, what was expected and
the value. Every number is checked against its bound (finite, within its range: seeds within
0 ... 2**32 - 1, sizes below 2**31) as it is read and again by `validate`; whether a run fits in
memory is `vaekit.train.memory.check_fits`. `config.json` of a run is `asdict(config)`, and
`from_dict` reads it back.

The package, one concept a file (every name is imported from `vaekit.config` itself):

    settings.py  how a field declares itself (`setting`, `shared`, `Bound`) and the tables built
                 from the declarations
    sections.py  the four sections, `TrainConfig`, the valid choices, `BOUNDS`, `RESUMABLE_CHANGES`
    values.py    numbers, durations, image sizes and integer lists read from text, TOML or JSON
    read.py      `apply`, `load_toml`, `from_dict`: every value checked as it is read; `validate`
    epochs.py    what the run's epochs would leave doing nothing (warm-up, patience, step schedule)
    environ.py   the environment variables vaekit reads, as strictly as flags (`env_int`, ...)
"""

from vaekit.config.environ import (
    DECIMAL,
    NUMBER,
    RANK_ERRORS_ENV,
    env_int,
    env_seconds,
    env_switch,
    rank_error_file,
    rank_errors_value,
    seconds_of,
)
from vaekit.config.epochs import (
    FLOAT32_TINY,
    check_epochs,
    check_planned_epochs,
    check_warmup,
    flushed_epoch,
    n_epochs,
)
from vaekit.config.read import (
    COMMAND_LINE,
    FILLED_IN,
    MAX_LAYERS,
    MAX_TOML_BYTES,
    USED_WITH,
    C,
    apply,
    channels_sentence,
    check_choices,
    check_data_images,
    check_fields,
    check_used,
    check_value,
    check_with_data,
    choice,
    differences,
    from_dict,
    given_keys,
    load_toml,
    parse_image_channels,
    validate,
)
from vaekit.config.sections import (
    ACTIVATIONS,
    BINARIZATIONS,
    BOUNDS,
    DEVICES,
    ENGINES,
    ESTIMATORS,
    IMAGE_CHANNELS,
    IMAGE_FITS,
    IMAGE_OPTIONS,
    LIKELIHOODS,
    MAX_SIZE,
    MAX_THREADS,
    MODEL_KINDS,
    OBJECTIVES,
    OPTIMIZERS,
    PRECISIONS,
    PRIORS,
    RESUMABLE_CHANGES,
    SCHEDULES,
    SECTIONS,
    SEED_MAX,
    VARIANCES,
    DataConfig,
    LoopConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    check_conv_stride,
    check_image_shape,
)
from vaekit.config.settings import (
    KINDS,
    Bound,
    bounds_of,
    flag_of,
    kind_of,
    resumable_of,
    sections_of,
    setting,
    settings_of,
    shared,
)
from vaekit.config.spelling import spell, spell_key
from vaekit.config.values import (
    BEYOND_FLOAT,
    DURATION_UNITS,
    MAX_IMAGE_SIDE,
    check_path_length,
    checkpoint_interval,
    float_of,
    format_duration,
    given_text,
    is_int,
    is_number,
    parse_duration,
    parse_image_size,
    parse_int_list,
    parse_positive_duration,
    spaced_parts,
)

__all__ = [  # the public names of the modules, each imported from here
    "ACTIVATIONS", "BINARIZATIONS", "BOUNDS", "Bound", "C", "COMMAND_LINE", "DEVICES", "FILLED_IN",
    "BEYOND_FLOAT", "DURATION_UNITS", "DataConfig",
    "ENGINES", "ESTIMATORS", "IMAGE_CHANNELS", "IMAGE_FITS", "IMAGE_OPTIONS", "KINDS", "LIKELIHOODS",
    "LoopConfig", "MAX_IMAGE_SIDE", "MAX_LAYERS", "MAX_SIZE", "MAX_THREADS", "MAX_TOML_BYTES",
    "MODEL_KINDS", "ModelConfig", "OBJECTIVES", "OPTIMIZERS", "OptimConfig", "PRECISIONS", "PRIORS",
    "RESUMABLE_CHANGES", "SCHEDULES", "SECTIONS", "SEED_MAX", "TrainConfig", "USED_WITH", "VARIANCES",
    "apply", "bounds_of", "channels_sentence", "check_choices", "check_data_images", "check_fields",
    "check_used", "check_value", "given_keys",
    "check_conv_stride", "check_epochs", "check_image_shape", "check_planned_epochs", "check_warmup",
    "check_with_data", "n_epochs", "FLOAT32_TINY", "flushed_epoch",
    "checkpoint_interval", "choice", "differences", "flag_of", "format_duration", "from_dict", "is_int",
    "is_number", "kind_of", "load_toml", "parse_duration", "parse_image_channels", "parse_image_size",
    "parse_int_list",
    "parse_positive_duration", "spaced_parts", "given_text", "check_path_length", "DECIMAL", "NUMBER",
    "float_of",
    "RANK_ERRORS_ENV", "env_int", "env_seconds", "env_switch", "rank_error_file", "rank_errors_value",
    "seconds_of", "spell", "spell_key",
    "resumable_of", "sections_of", "setting", "settings_of", "shared", "validate",
]
