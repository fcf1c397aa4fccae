"""The law of the files vaekit writes where a user names them (`vaekit.report.outputs`): a user's
file at `sample --out`, `arch --scaling --plot` (.png, .svg, .pdf), `sheet --out` or inside
`check --figures DIR` is refused in one sentence, exit 2, and left byte for byte as it was; a file
vaekit wrote there is replaced when the same command runs again; `--figures` makes only the last
part of a missing directory and refuses a path that is not a directory; a FIFO is refused without
being opened. vaekit's mark is read back with readers of each format that are not vaekit's."""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from PIL import Image

import vaekit.commands.check as check_command
import vaekit.sheet
from eval_runs import make_run
from hang import deadline
from vaekit.checks import run_checks
from vaekit.checks.claim import ClaimResult
from vaekit.cli import main
from vaekit.errors import ConfigError
from vaekit.report.outputs import MARK, check_output, figure_metadata, made_by_vaekit
from vaekit.runs import render_figure
from vaekit.sheet.build import Sheet

PRECIOUS = b"precious: the user's own bytes\n"
FORMATS = (".png", ".svg", ".pdf")


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under `root` (hidden ones included, links not followed) with a file's bytes."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() and not p.is_symlink() else None
            for p in sorted(root.rglob("*"))}


def refused(capsys: pytest.CaptureFixture[str], status: int, command: str, one_sentence: Callable[..., None],
            *names: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr: one sentence naming `names`."""
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and "Traceback" not in err, (status, out, err)
    assert err.count("\n") == 1 and err.startswith(f"vaekit {command}: error: "), err
    message = err.strip().removeprefix(f"vaekit {command}: error: ")
    one_sentence(message, *names)
    return message


@pytest.fixture
def no_hang() -> Iterator[None]:
    """A test that would wait on a FIFO fails after 60 s instead of hanging the session."""
    with deadline(60):
        yield


def a_figure() -> Any:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


# ----------------------------------------------------------------------------- the mark


def test_each_format_keeps_the_mark_where_its_own_readers_find_it(tmp_path: Path) -> None:
    """PNG: Pillow reads the tEXt 'Software'; SVG: the Dublin Core creator of its metadata; PDF:
    the info dictionary's /Creator; and `made_by_vaekit` sees each."""
    paths = {}
    for suffix in FORMATS:
        path = paths[suffix] = tmp_path / f"f{suffix}"
        path.write_bytes(render_figure(a_figure(), path, 100, figure_metadata(path)))
        assert made_by_vaekit(path), suffix
    assert Image.open(paths[".png"]).info["Software"] == MARK
    ns = {"dc": "http://purl.org/dc/elements/1.1/", "cc": "http://creativecommons.org/ns#"}
    creator = ET.parse(paths[".svg"]).getroot().find(".//dc:creator/cc:Agent/dc:title", ns)
    assert creator is not None and creator.text == MARK
    assert re.search(rb"/Creator \(" + re.escape(MARK.encode()) + rb"\)", paths[".pdf"].read_bytes())


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_figure_without_the_mark_is_not_vaekits(tmp_path: Path, suffix: str) -> None:
    """matplotlib's own figure (its 'Software' or 'Creator' is matplotlib), a user's text, nothing."""
    plain = tmp_path / f"plain{suffix}"
    plain.write_bytes(render_figure(a_figure(), plain, 100))
    user = tmp_path / f"user{suffix}"
    user.write_bytes(PRECIOUS)
    assert not made_by_vaekit(plain) and not made_by_vaekit(user)
    assert not made_by_vaekit(tmp_path / "missing.png")


def test_check_output_refuses_all_but_nothing_and_vaekits_own(tmp_path: Path, no_hang: None,
                                                              one_sentence: Callable[..., None]) -> None:
    own = tmp_path / "own.png"
    own.write_bytes(render_figure(a_figure(), own, 100, figure_metadata(own)))
    check_output(own)
    check_output(tmp_path / "missing.png")
    user = tmp_path / "user.png"
    user.write_bytes(PRECIOUS)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    link = tmp_path / "link.png"
    link.symlink_to(own)  # even to a file of vaekit's: the link is the user's
    (tmp_path / "dir.png").mkdir()
    for path, words in ((user, "did not write"), (fifo, "FIFO"), (link, "symbolic link"),
                        (tmp_path / "dir.png", "directory")):
        with pytest.raises(ConfigError) as err:
            check_output(path)
        one_sentence(str(err.value), repr(str(path)), words, "another path")
    assert user.read_bytes() == PRECIOUS and link.is_symlink()


# ----------------------------------------------------------------------------- arch --scaling --plot


@pytest.mark.parametrize("suffix", FORMATS)
def test_arch_plot_leaves_a_users_file_and_replaces_its_own(
        tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    mine = tmp_path / f"mine{suffix}"
    mine.write_bytes(PRECIOUS)
    plain = tmp_path / f"plain{suffix}"  # a figure, but not one vaekit wrote
    plain.write_bytes(render_figure(a_figure(), plain, 100))
    before = tree(tmp_path)
    for path in (mine, plain):
        message = refused(capsys, main(["arch", "--scaling", "--plot", str(path)]), "arch", one_sentence,
                          f"--plot {str(path)!r}", "did not write")
        assert "another path" in message and "remove the file" in message
    assert tree(tmp_path) == before  # byte for byte, and no temporary file left
    own = tmp_path / f"scaling{suffix}"
    for _ in range(2):  # the second run replaces the first's file
        assert main(["arch", "--scaling", "--plot", str(own)]) == 0
        assert capsys.readouterr().out.rstrip().endswith(f"plot written to {own}")
        assert made_by_vaekit(own)
    assert tree(tmp_path) == {**before, own.name: own.read_bytes()}


def test_arch_plot_refuses_a_link_to_a_users_file_and_a_fifo(
        tmp_path: Path, no_hang: None, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    target = tmp_path / "thesis.png"
    target.write_bytes(PRECIOUS)
    (tmp_path / "link.png").symlink_to(target)
    refused(capsys, main(["arch", "--scaling", "--plot", str(tmp_path / "link.png")]), "arch", one_sentence,
            "link.png", "symbolic link")
    os.mkfifo(tmp_path / "fifo.png")
    refused(capsys, main(["arch", "--scaling", "--plot", str(tmp_path / "fifo.png")]), "arch", one_sentence,
            "fifo.png", "not a regular file")
    assert target.read_bytes() == PRECIOUS and (tmp_path / "link.png").is_symlink()
    assert sorted(tree(tmp_path)) == ["fifo.png", "link.png", "thesis.png"]


# ----------------------------------------------------------------------------- sample --out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("outputs") / "run", latent=2, epochs=1)


def test_sample_out_leaves_a_users_file_and_replaces_its_own(
        run: Path, tmp_path: Path, no_hang: None, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    mine = tmp_path / "mine.png"
    mine.write_bytes(PRECIOUS)
    os.mkfifo(tmp_path / "fifo.png")
    message = refused(capsys, main(["sample", str(run), "-n", "4", "--out", str(mine)]), "sample",
                      one_sentence, f"--out {str(mine)!r}", "did not write")
    assert "another path" in message
    refused(capsys, main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "fifo.png")]), "sample",
            one_sentence, "fifo.png", "not a regular file")
    assert mine.read_bytes() == PRECIOUS
    own = tmp_path / "samples.png"
    for seed in ("1", "2"):  # the second run replaces the first's picture
        assert main(["sample", str(run), "-n", "4", "--seed", seed, "--out", str(own)]) == 0
        assert capsys.readouterr().out.strip() == str(own)
        assert made_by_vaekit(own)
    assert sorted(tree(tmp_path)) == ["fifo.png", "mine.png", "samples.png"]


def test_a_run_figure_carries_the_mark(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default --out, the run's figures/ folder: marked too, and written again on a re-run."""
    for _ in range(2):
        assert main(["sample", str(run), "-n", "4"]) == 0
    own = Path(capsys.readouterr().out.split()[-1])
    assert own.parent == run / "figures" and made_by_vaekit(own)


def test_a_run_whose_figures_cannot_be_written_is_told_to_pass_out(
        run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's figures/ that cannot be written (a read-only mount) named only the OS's reason: --out,
    which writes elsewhere, was not said. Root writes through a folder's mode, so there the check's
    view of a read-only mount (os.access) stands in for it."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "figures").mkdir(exist_ok=True)
    before = sorted(p.name for p in (copy / "figures").iterdir())
    if os.geteuid() == 0:
        import vaekit.commands.sample as sample_command

        monkeypatch.setattr(sample_command.os, "access", lambda path, mode: mode != os.W_OK)
    (copy / "figures").chmod(0o555)
    try:
        message = refused(capsys, main(["sample", str(copy), "-n", "4"]), "sample", one_sentence,
                          str(copy / "figures"), "pass --out")
        assert "cannot write the samples there" in message
        assert sorted(p.name for p in (copy / "figures").iterdir()) == before
        assert main(["sample", str(copy), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
    finally:
        (copy / "figures").chmod(0o755)
    assert made_by_vaekit(tmp_path / "s.png")


# ----------------------------------------------------------------------------- sheet --out


@pytest.fixture
def quick_sheet(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`vaekit sheet` with an empty sheet built at once; the list records each build."""
    builds: list[str] = []

    def build(work: str, **_kwargs: object) -> Sheet:
        builds.append(work)
        return Sheet([], [], True, 0)

    monkeypatch.setattr(vaekit.sheet, "build_sheet", build)
    return builds


def test_sheet_out_leaves_a_users_page_before_any_work_and_replaces_its_own(
        tmp_path: Path, quick_sheet: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    monkeypatch.chdir(tmp_path)
    Path("sheet.html").write_bytes(PRECIOUS)  # the default --out
    refused(capsys, main(["sheet"]), "sheet", one_sentence, "--out 'sheet.html'", "did not write")
    mine = tmp_path / "mine.html"
    mine.write_bytes(b"<!DOCTYPE html><html><head><meta name='generator' content='not vaekit'></head></html>")
    refused(capsys, main(["sheet", "--out", str(mine)]), "sheet", one_sentence, str(mine), "did not write")
    assert quick_sheet == []  # refused before anything was built
    assert Path("sheet.html").read_bytes() == PRECIOUS and b"not vaekit" in mine.read_bytes()
    own = tmp_path / "page.html"
    for _ in range(2):
        assert main(["sheet", "--out", str(own)]) == 0
        assert made_by_vaekit(own) and f"<meta name='generator' content='{MARK}'>" in own.read_text()
    assert len(quick_sheet) == 2
    assert sorted(tree(tmp_path)) == ["mine.html", "page.html", "sheet.html"]


def test_a_users_page_put_there_while_the_sheet_builds_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    """The law again at the moment of writing: minutes of building do not make the file vaekit's."""
    out = tmp_path / "sheet.html"

    def build(work: str, **_kwargs: object) -> Sheet:
        out.write_bytes(PRECIOUS)
        return Sheet([], [], True, 0)

    monkeypatch.setattr(vaekit.sheet, "build_sheet", build)
    status = main(["sheet", "--out", str(out)])
    refused(capsys, status, "sheet", one_sentence, str(out), "did not write")
    assert tree(tmp_path) == {"sheet.html": PRECIOUS}


# ----------------------------------------------------------------------------- check --figures DIR


@pytest.fixture(scope="module")
def variance() -> ClaimResult:
    """The variance claim's result, computed once (quick sizes)."""
    (result,) = run_checks(["variance"], quick=True)
    return result


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch, variance: ClaimResult) -> list[list[str]]:
    """`vaekit check` whose claims are the variance result above; the list records each run."""
    calls: list[list[str]] = []

    def fake(ids: list[str], **kwargs: Any) -> list[ClaimResult]:
        calls.append(list(ids))
        return [variance]

    monkeypatch.setattr(check_command, "run_checks", fake)
    return calls


def figures(directory: Path | str) -> int:
    return main(["check", "--quick", "--only", "variance", "--figures", str(directory)])


def test_figures_leaves_a_users_file_in_a_users_folder(
        tmp_path: Path, checks: list[list[str]], capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "variance.png").write_bytes(PRECIOUS)
    (user / "notes.txt").write_bytes(b"notes")
    before = tree(tmp_path)
    message = refused(capsys, figures(user), "check", one_sentence, str(user / "variance.png"),
                      f"--figures {str(user)!r}", "did not write")
    assert "another path" in message
    assert checks == [] and tree(tmp_path) == before  # refused before any claim ran


def test_figures_writes_beside_a_users_other_files_and_again(
        tmp_path: Path, checks: list[list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    """A folder of the user's where the figures vaekit writes are missing (a training.png that
    --only variance does not write is not touched), then vaekit's own replaced."""
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_bytes(b"notes")
    (user / "training.png").write_bytes(PRECIOUS)
    for _ in range(2):
        assert figures(user) == 0
        assert f"wrote {user / 'variance.png'}" in capsys.readouterr().out
        assert made_by_vaekit(user / "variance.png")
    assert len(checks) == 2
    assert sorted(tree(tmp_path)) == ["userdir", "userdir/notes.txt", "userdir/training.png",
                                      "userdir/variance.png"]
    assert (user / "training.png").read_bytes() == PRECIOUS and (user / "notes.txt").read_bytes() == b"notes"


def test_figures_makes_only_the_last_part_of_a_new_folder(
        tmp_path: Path, checks: list[list[str]], capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    deep = tmp_path / "missing" / "deep"
    refused(capsys, figures(deep), "check", one_sentence, str(deep), "does not exist", str(deep.parent))
    assert tree(tmp_path) == {} and checks == []
    assert figures(tmp_path / "new") == 0
    assert sorted(tree(tmp_path)) == ["new", "new/variance.png"]


def test_figures_names_a_file_not_a_directory(
        tmp_path: Path, checks: list[list[str]], capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    afile = tmp_path / "afile"
    afile.write_bytes(PRECIOUS)
    message = refused(capsys, figures(afile), "check", one_sentence, str(afile), "not a directory")
    assert "File exists" not in message
    assert tree(tmp_path) == {"afile": PRECIOUS} and checks == []


def test_figures_refuses_a_fifo_without_waiting_on_it(
        tmp_path: Path, no_hang: None, checks: list[list[str]], capsys: pytest.CaptureFixture[str],
        one_sentence: Callable[..., None]) -> None:
    user = tmp_path / "userdir"
    user.mkdir()
    os.mkfifo(user / "variance.png")
    refused(capsys, figures(user), "check", one_sentence, str(user / "variance.png"), "FIFO")
    assert checks == [] and (user / "variance.png").is_fifo()


def test_a_users_figure_put_there_while_the_claims_run_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variance: ClaimResult,
        capsys: pytest.CaptureFixture[str], one_sentence: Callable[..., None]) -> None:
    user = tmp_path / "userdir"

    def fake(ids: list[str], **kwargs: Any) -> list[ClaimResult]:
        user.mkdir()
        (user / "variance.png").write_bytes(PRECIOUS)
        return [variance]

    monkeypatch.setattr(check_command, "run_checks", fake)
    status = figures(user)
    out, err = capsys.readouterr()
    assert status == 2 and "Traceback" not in err
    one_sentence(err.strip().removeprefix("vaekit check: error: "), str(user / "variance.png"),
                 "did not write")
    assert tree(tmp_path) == {"userdir": None, "userdir/variance.png": PRECIOUS}
