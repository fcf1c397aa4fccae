"""Runs on disk (design.md, "Runs on disk"): writing and reading `runs/NAME/`.

    config.json               everything needed to rebuild the model (`TrainConfig` as a dict; a
                              classifier's `ClassifierConfig`, with "task": "classify")
    model.safetensors         the weights with the best validation score so far (-ELBO, accuracy)
    checkpoint.safetensors    model + optimizer tensors of the last finished epoch, and in its
                              metadata (key "checkpoint") the JSON state below: one file, one rename,
                              so the pair can never be half-written
    checkpoint.json           the same state, readable: epoch, step, optimizer scalars, RNG states,
                              best validation -ELBO, config
    metrics.jsonl             one line per epoch
    eval.json                 the evaluation of model.safetensors (its SHA-256 inside)

The pieces, imported here so that `runs.NAME` reaches every one:

    files.py    the files: atomic writes, the one-writer lock, figures, strict JSON
    tensor_files.py  safetensors files, read whole only when their header accounts for every
                byte; the model's fingerprint, which ties an eval.json to its weights
    metrics.py  metrics.jsonl: its rows, and the checkpoint's digest of them; the rows a model was
                trained through
    weights.py  model and checkpoint tensors: saved, read back, held against the model
    kinds.py    the kinds of run (`Task`: 'vae' here, 'classify' registered by `vaekit.classify`),
                config.json read through its kind
    identity.py which run a directory and its files belong to: vaekit's own directories only, the
                run id, the config the weights were trained with
    load.py     `load_run` -> `Run`: config, model on a device, metrics, images; the model file
                checked whole (`check_model_file`) and the eval.json of the model (`read_eval`),
                written only over an eval.json of vaekit's (`check_eval_replaceable`, `write_eval`)
"""

from vaekit.runs.files import (
    CHECKPOINT,
    CHECKPOINT_JSON,
    CONFIG,
    EVAL,
    METRICS,
    MODEL,
    PUT_BACK,
    REPORT,
    RESULT_FILES,
    RUN_FILES,
    TMP,
    check_files_writable,
    check_writable,
    figures_dir,
    held_elsewhere,
    is_temp,
    locked,
    new_run_dir,
    parse_json,
    read_run_file,
    render_figure,
    save_figure,
    strict_json,
    temp_path,
    write_bytes_atomic,
    write_error,
    write_json_atomic,
)
from vaekit.runs.identity import (
    MODEL_SHA_KEY,
    check_run_dir,
    check_trained_config,
    run_id,
    trained_epochs,
    weights_metadata,
    write_config,
)
from vaekit.runs.kinds import (
    DEFAULT,
    RUN_SECTION,
    TASKS,
    AnyConfig,
    Task,
    anchor_data,
    check_config_kind,
    maker_of,
    read_config,
    register_task,
    task_for,
    task_in,
    task_of,
    weights_task,
)
from vaekit.runs.load import (
    Run,
    StaleEval,
    check_eval_not_link,
    check_eval_replaceable,
    check_model_file,
    check_outputs,
    check_run_config,
    device_named,
    is_vaekit_eval,
    load_run,
    load_run_data,
    read_eval,
    resumed_config,
    usable_model,
    write_eval,
)
from vaekit.runs.metrics import append_metrics, model_metrics, read_metrics, truncate_metrics
from vaekit.runs.tensor_files import model_fingerprint, read_metadata, read_tensors, save_tensors
from vaekit.runs.weights import (
    check_readable_copy,
    decode_bytes,
    encode_bytes,
    load_checkpoint,
    load_weights,
    model_sha256,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
    save_model,
    save_weights,
    unmarked_weights,
)

__all__ = [
    "CHECKPOINT", "CHECKPOINT_JSON", "CONFIG", "DEFAULT", "EVAL", "METRICS", "MODEL", "MODEL_SHA_KEY",
    "PUT_BACK", "REPORT", "RESULT_FILES", "RUN_FILES", "RUN_SECTION", "TASKS", "TMP", "AnyConfig", "Run",
    "Task", "StaleEval",
    "append_metrics", "check_config_kind", "check_model_file", "check_outputs", "check_readable_copy",
    "check_eval_not_link", "check_eval_replaceable", "check_files_writable", "check_run_config",
    "check_run_dir",
    "check_trained_config",
    "check_writable",
    "decode_bytes", "device_named", "encode_bytes",
    "figures_dir", "held_elsewhere", "is_temp", "is_vaekit_eval",
    "load_checkpoint", "load_run", "load_weights", "locked", "maker_of",
    "model_fingerprint", "model_metrics", "model_sha256", "new_run_dir",
    "optimizer_from_flat", "optimizer_to_flat", "parse_json", "read_config", "read_eval", "read_metadata",
    "read_metrics", "read_run_file", "read_tensors", "register_task", "render_figure", "resumed_config",
    "load_run_data", "anchor_data",
    "run_id",
    "save_checkpoint",
    "save_figure", "save_model", "save_tensors", "save_weights", "strict_json", "task_for", "task_in",
    "task_of", "temp_path", "trained_epochs", "truncate_metrics", "unmarked_weights", "usable_model",
    "weights_metadata",
    "weights_task",
    "write_bytes_atomic", "write_config",
    "write_error", "write_eval", "write_json_atomic",
]
