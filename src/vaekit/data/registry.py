"""The datasets vaekit knows by name, where it looks for them, and their published checksums.

Lookup order for the IDX sets (design.md): `--data-dir`, `$VAEKIT_DATA`, `~/.cache/vaekit/NAME`
(`$XDG_CACHE_HOME/vaekit/NAME` when that is set to an absolute path),
`/usr/share/datasets/NAME` (Debian's dataset-fashion-mnist package); else download into the cache.
A directory named by `--data-dir` or `$VAEKIT_DATA` is used as it is: bad files there are an error,
never a silent fall-back elsewhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vaekit.config import env_switch
from vaekit.data.download import (
    MISMATCH,
    MISSING,
    OK,
    UNCHECKED,
    RemoteFile,
    check_mirror_url,
    checksum_ok,
    download_file,
    remove_stale_parts,
)
from vaekit.errors import ChecksumError, DataError, UnknownDatasetError
from vaekit.regular import check_regular

SYSTEM_DATA_ROOT = Path("/usr/share/datasets")  # last place looked in (Debian's dataset packages)



@dataclass(frozen=True)
class IDXDataset:
    """A dataset published as four IDX files (MNIST's format)."""

    name: str
    description: str
    base_url: str
    files: dict[str, RemoteFile]  # role -> file; roles: train_images, train_labels, test_...
    classes: tuple[str, ...]
    val_size: int = 5000
    test_size: int = 10_000  # images of the published test set (t10k: MNIST's, and the sets after it)
    image_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W): 28x28 grey, MNIST's format



def _files(sums: dict[str, str], checksum_of: str) -> dict[str, RemoteFile]:
    names = {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }
    return {role: RemoteFile(names[role], sums[role], checksum_of) for role in names}


REGISTRY: dict[str, IDXDataset] = {
    "fashion-mnist": IDXDataset(
        "fashion-mnist",
        "Zalando's article images, 28x28 grey, 10 classes (Xiao et al. 2017)",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        _files(
            {  # SHA-256 of the decompressed files (design.md)
                "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            },
            "raw",
        ),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "mnist": IDXDataset(
        "mnist",
        "handwritten digits, 28x28 grey, 10 classes (LeCun et al. 1998)",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        _files(
            {  # SHA-256 of the .gz archives
                "train_images": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "train_labels": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "test_images": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "test_labels": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            },
            "archive",
        ),
        tuple(str(d) for d in range(10)),
    ),
    "kmnist": IDXDataset(
        "kmnist",
        "Kuzushiji-MNIST, cursive Japanese characters, 28x28 grey, 10 classes (Clanuwat et al. 2018)",
        "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        _files(
            {  # SHA-256 of the .gz archives
                "train_images": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
                "train_labels": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
                "test_images": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
                "test_labels": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
            },
            "archive",
        ),
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
}


BUILTIN = ("digits",)  # scikit-learn's bundled 8x8 digits: no download


def check_name(name: str) -> None:
    """An UnknownDatasetError for an empty or blank dataset NAME, as `vaekit data` takes it: a
    name, not a config key."""
    if not name.strip():
        raise UnknownDatasetError(f"the dataset name is {'empty' if not name else 'blank'}; expected a "
                                  f"dataset name (`vaekit data fetch` downloads {', '.join(REGISTRY)}, and "
                                  "digits comes with scikit-learn), or a folder of images or a .npy/.npz "
                                  "array file to be read where it lies.")


def check_val_size(name: str, val_size: int | None, where: str = "data.val_size (--val-size)") -> None:
    """A DataError for a validation size given for a set that is not downloaded: digits and a user's
    data are split 80/10/10. `where`: the setting as it was given (a flag, or a file's key)."""
    if val_size is not None and name not in REGISTRY:
        raise DataError(f"{where} applies to the downloaded sets "
                        f"({', '.join(sorted(REGISTRY))}); {name} is split 80/10/10, so leave it out.")


DEFAULT_DATASET = "fashion-mnist"



def known_datasets() -> list[str]:
    return [*REGISTRY, *BUILTIN]



def find_file(directory: Path, remote: RemoteFile, strict: bool = False) -> Path | None:
    """The regular file of `remote` in `directory`: its own name, else its archive's (.gz); None
    if neither is there. `strict` (a directory the user named): where neither is a regular file but
    one is something else (a FIFO, a device, a link to one or to nothing, a folder), a DataError
    naming it (`vaekit.regular.check_regular`) rather than 'no data there'; nothing is opened."""
    odd = None
    for candidate in (directory / remote.name, directory / remote.archive_name):
        try:
            if check_regular(candidate, f"the IDX file {remote.name}[.gz] of a dataset", DataError):
                return candidate
        except DataError as err:
            odd = odd or err
    if strict and odd is not None:
        raise odd
    return None



def _has_all(directory: Path, spec: IDXDataset, strict: bool = False) -> bool:
    """Whether `directory` holds every file of `spec` (`find_file`, `strict` as it says)."""
    return all(find_file(directory, f, strict) is not None for f in spec.files.values())



def cache_root() -> Path:
    """The user's cache directory, as the XDG Base Directory specification says: $XDG_CACHE_HOME
    when it is set to an absolute path (an empty or relative one is ignored), else ~/.cache."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    return Path(os.path.expanduser("~")) / ".cache"


def cache_dir(name: str) -> Path:
    """vaekit's cache of `name` (a dataset's IDX files, or "folders"): cache_root()/vaekit/NAME."""
    return cache_root() / "vaekit" / name



DATA_DIR = "--data-dir or [data] data_dir"  # where a data directory is given: a flag, or a config's key


def candidate_dirs(name: str, data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """The places searched for dataset `name`, in order, labelled by where they come from."""
    out: list[tuple[str, Path]] = []
    if data_dir is not None:
        check_not_url(str(data_dir), DATA_DIR)
        out.append((DATA_DIR, Path(data_dir)))
    elif os.environ.get("VAEKIT_DATA"):
        out.append(("$VAEKIT_DATA", Path(os.environ["VAEKIT_DATA"])))
    out.append(("cache", cache_dir(name)))
    out.append(("system", SYSTEM_DATA_ROOT / name))
    return out



URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")  # a scheme and '//': https://, file://, s3://


def check_not_url(text: str, origin: str | None = None) -> None:
    """A DataError naming `text` as the user gave it (a Path would collapse its '//' and name a file
    that is not the one given) when it is a URL (https://..., file://...) and no local path of that
    text is there: vaekit reads local files and folders, and downloads only the sets it knows by
    name. `origin`: where a data directory came from (None: a dataset name or path)."""
    if not URL.match(text) or os.path.lexists(text):
        return
    if origin is not None:
        raise DataError(f"{text} (from {origin}): a URL, which vaekit does not read; expected a local "
                        "folder holding a dataset's files (vaekit downloads the datasets it knows by "
                        "name itself).")
    raise DataError(f"{text}: a URL, which vaekit does not read; it reads local files and folders "
                    "(download the file first), and downloads only the datasets it knows by name "
                    f"({', '.join(REGISTRY)}).")


def _lacking(directory: Path, name: str, spec: IDXDataset) -> str:
    """' (FILE, ... missing in DIR)' for the first of `directory` and directory/NAME that holds some
    files of the set but not all; '' where neither holds any."""
    for d in (directory, directory / name):
        found = {f.name: find_file(d, f) for f in spec.files.values()} if d.is_dir() else {}
        if any(path is not None for path in found.values()):
            return f" ({', '.join(n for n, path in found.items() if path is None)} missing in {d})"
    return ""


def locate(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The directory holding the IDX files of `name`, or None if no place has them.

    A user-named directory (`data_dir` or $VAEKIT_DATA) is final: it is used as it is, or as its
    subdirectory NAME, and if neither holds the files that is an error, not a fall-back: one
    naming a file of the set there that is no regular file (a FIFO, a link to a device), if any.
    """
    spec = registry_entry(name)
    for origin, directory in candidate_dirs(name, data_dir):
        if origin in (DATA_DIR, "$VAEKIT_DATA"):
            for d in (directory, directory / name):
                if d.is_dir() and _has_all(d, spec):
                    return d
            if not directory.is_dir():
                what = "not a directory" if directory.exists() else "no such directory"
                raise DataError(f"{directory} (from {origin}): {what}.")
            for d in (directory, directory / name):  # a file there that is no regular file: named
                if d.is_dir():
                    _has_all(d, spec, strict=True)
            expected = ", ".join(f.name + "[.gz]" for f in spec.files.values())
            lacking = _lacking(directory, name, spec)
            raise DataError(f"{directory} (from {origin}): no {name} data there{lacking}; expected the files "
                            f"{expected}.")
        if directory.is_dir() and _has_all(directory, spec):
            return directory
    return None



def registry_entry(name: str) -> IDXDataset:
    if name not in REGISTRY:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets are {', '.join(known_datasets())}, "
            "a folder of images, or a path to a .npy/.npz array of images."
        )
    return REGISTRY[name]



ALLOW_MODIFIED_ENV = "VAEKIT_ALLOW_MODIFIED_DATA"  # "1": use files that fail their checksum


def allow_modified_data(explicit: bool | None = None) -> bool:
    """Whether files that fail their published checksum may be used: `explicit` when given (the
    --allow-modified flag), else whether $VAEKIT_ALLOW_MODIFIED_DATA is "1" ("0", empty or unset:
    no; any other value is a ConfigError naming the two)."""
    if explicit is not None:
        return explicit
    return env_switch(ALLOW_MODIFIED_ENV, {"1": True, "0": False})


def fetch(name: str, data_dir: str | Path | None = None, base_url: str | None = None) -> Path:
    """Return the directory of `name`, downloading it into the cache if no place has it.

    `base_url`: a mirror to download from instead of the official address (None): an http:// or
    https:// URL, checked before anything else (an empty one is a ConfigError). A download first
    deletes what killed downloads of the set left in the cache (`remove_stale_parts`)."""
    if base_url is not None:
        check_mirror_url(base_url)
    found = locate(name, data_dir)
    return found if found is not None else _download(name, base_url)


def fetch_checked(name: str, data_dir: str | Path | None, base_url: str | None,
                  say: Callable[[str], None]) -> Path:
    """`fetch` as `vaekit data fetch` does it: a set found in place is first held file by file to
    its published SHA-256 (unless `allow_modified_data()`). Files that fail, in the cache or the
    system's datasets, are downloaded again into the cache, which is looked in first; in a
    directory the user named (--data-dir, $VAEKIT_DATA) they are a ChecksumError, as vaekit writes
    only to its cache. `say` tells of each download, and of a mirror not asked."""
    if base_url is not None:
        check_mirror_url(base_url)
    found = locate(name, data_dir)
    if found is None:
        return _download(name, base_url)
    status = {} if allow_modified_data() else checksum_status(name, found)
    paths = {remote.name: find_file(found, remote) for remote in registry_entry(name).files.values()}
    bad = [str(paths[file]) for file, state in status.items() if state == MISMATCH]
    if not bad:
        if base_url is not None:
            say(f"--mirror {base_url} was not used: {name} is already in {found}, so nothing was downloaded.")
        return found
    origin = candidate_dirs(name, data_dir)[0][0]
    if origin in (DATA_DIR, "$VAEKIT_DATA"):
        raise ChecksumError(f"{bad[0]} does not match the published SHA-256 of {name}, and vaekit writes "
                            f"only to its cache, not to {found} (from {origin}); replace the file with a "
                            f"verified copy, or set {ALLOW_MODIFIED_ENV}=1 to use it as it is.")
    say(f"{', '.join(Path(path).name for path in bad)} in {found} {'does' if len(bad) == 1 else 'do'} not "
        f"match the published SHA-256 of {name}; a verified copy is downloaded into {cache_dir(name)}.")
    return _download(name, base_url)


def repair_advice(name: str, data_dir: str | Path | None) -> str:
    """How to mend a damaged file of the set `name` (a clause): `vaekit data fetch` for the cache or
    the system's datasets (`fetch_checked`); a verified copy by hand in a directory the user named,
    which vaekit does not write, or the cache without that directory."""
    origin = candidate_dirs(name, data_dir)[0][0]
    if origin in (DATA_DIR, "$VAEKIT_DATA"):
        leave = "unset $VAEKIT_DATA" if origin == "$VAEKIT_DATA" else "leave --data-dir out"
        return (f"replace it with a verified copy, or {leave} to read the cache, where `vaekit data fetch "
                f"{name}` downloads one")
    return (f"`vaekit data fetch {name}` holds the set's files to their published SHA-256 and downloads "
            "verified copies of those that fail into the cache")


def _download(name: str, base_url: str | None) -> Path:
    """The files of `name` the cache lacks or holds damaged, downloaded into it; the cache's path."""
    spec = registry_entry(name)
    target = cache_dir(name)
    base = spec.base_url if base_url is None else base_url.rstrip("/") + "/"  # a folder, its files inside
    existed = target.exists()
    remove_stale_parts(target, [remote.archive_name for remote in spec.files.values()])
    try:
        for remote in spec.files.values():
            dest = target / remote.archive_name
            if dest.is_file() and checksum_ok(dest, remote):
                continue
            download_file(base + remote.archive_name, dest, remote)
    except DataError:
        if not existed and target.is_dir() and not any(target.iterdir()):
            target.rmdir()  # leave no empty cache directory behind a failed download
        raise
    return target


def checksum_status(name: str, directory: Path) -> dict[str, str]:
    """For each file of `name` in `directory`: 'ok', 'MISMATCH', 'missing' or 'unchecked (...)'
    (a plain copy of a file whose published sum is of its .gz archive)."""
    spec = registry_entry(name)
    status = {}
    for remote in spec.files.values():
        path = find_file(directory, remote)
        if path is None:
            status[remote.name] = MISSING
        elif remote.checksum_of == "archive" and not path.name.endswith(remote.archive_suffix):
            status[remote.name] = UNCHECKED
        else:
            status[remote.name] = OK if checksum_ok(path, remote) else MISMATCH
    return status


def where_found(data_dir: str | Path | None = None) -> list[dict[str, str]]:
    """For each known dataset: its name, where it was found (or why not) and its description. A
    `data_dir` that is no directory is a DataError, not a row of errors."""
    if data_dir is not None:
        check_not_url(str(data_dir), "--data-dir")
    if data_dir is not None and not Path(data_dir).is_dir():
        what = "not a directory" if Path(data_dir).exists() else "no such directory"
        raise DataError(f"{data_dir} (from --data-dir): {what}.")
    rows = []
    for name in known_datasets():
        if name in BUILTIN:
            where, desc = "bundled with scikit-learn", "8x8 handwritten digits, 1,797 images"
        else:
            try:
                found = locate(name, data_dir)
            except DataError as err:
                found, where = None, f"error: {err}"
            else:
                where = str(found) if found else "missing (vaekit data fetch " + name + ")"
            desc = REGISTRY[name].description
        rows.append({"name": name, "location": where, "description": desc})
    return rows


def where_found_text(rows: list[dict[str, str]]) -> str:
    """The `where_found` rows as `vaekit data list` prints them: a dataset's name and where it is,
    its description under it."""
    width = max(len(r["name"]) for r in rows)
    return "\n".join(f"{r['name']:<{width}}  {r['location']}\n{'':<{width}}  {r['description']}"
                     for r in rows)
