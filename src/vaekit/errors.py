"""Errors a user can cause. Each carries one sentence naming the input and what was expected.

The CLI prints the sentence and exits with status 2; anything else is a bug and keeps its traceback.
"""


class VaekitError(Exception):
    """Base class: bad input from a user (a file, a flag, a config, a checkpoint)."""


class DataError(VaekitError):
    """A dataset, file or directory that cannot be used."""


class IDXFormatError(DataError):
    """An IDX file whose header or payload is wrong (magic, dtype, dims, size, gzip)."""


class ChecksumError(DataError):
    """A file whose SHA-256 differs from the published one."""


class DownloadError(DataError):
    """A download that failed or was cut."""


class UnknownDatasetError(DataError):
    """A dataset name that is not in the registry."""


class SpecError(VaekitError):
    """A layer specification that is malformed or does not fit its input."""


class ConfigError(VaekitError):
    """A config file, flag or value that is not valid."""


class CheckpointError(VaekitError):
    """A run directory, model or checkpoint that cannot be loaded."""


class DivergenceError(VaekitError):
    """Training whose loss became NaN or infinite (a learning rate too high, say)."""


class RunBusyError(CheckpointError):
    """A run directory that another vaekit process is writing (one writer at a time)."""


class RunWriteError(CheckpointError, OSError):
    """A run file that could not be written (disk full, read-only, not a directory): an OSError too,
    so that code catching OSError still sees it; the previous version of the file is kept."""


LOST_PEER_STATUS = 75  # a rank's exit status when another rank ended first (BSD's EX_TEMPFAIL)


class PeerLost(Exception):
    """Not a user's error: another rank of a distributed run is gone in the middle of a collective
    (`vaekit.distributed.World.all_reduce`). The rank ends with LOST_PEER_STATUS, silently under
    `vaekit train --nproc` (whose launcher names the rank that ended first), with this sentence
    under a torchrun of the user's own."""
