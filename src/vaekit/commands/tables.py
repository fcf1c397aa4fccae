"""Flag tables that several commands share: a dataset's image options (`vaekit train`, `data`,
`classify`), built from the data settings of `vaekit.config` like every command's table."""

from __future__ import annotations

from vaekit.commands.flags import Row, flag_table
from vaekit.config import IMAGE_OPTIONS, TrainConfig


def image_flags(section: str = "data") -> dict[str, Row]:
    """The flag rows of user images (`vaekit.data.folder`), the same for every command that loads data."""
    rows = {key: (flag, kind, text) for flag, (part, key, kind, text) in flag_table(TrainConfig()).items()
            if part == "data"}
    return {rows[key][0]: (section, key, rows[key][1], rows[key][2]) for key in IMAGE_OPTIONS}
