"""report.html in a run: vaekit's page carries its mark (the meta generator the other pages carry),
so `vaekit report RUN` replaces a report.html only when it is missing, vaekit's own, or a page of an
earlier vaekit (which had no mark); a user's page there is refused in one sentence, exit 2, and
nothing in the run is written."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from eval_runs import make_classifier_run, make_run
from vaekit import runs
from vaekit.cli import main
from vaekit.report.outputs import HTML_GENERATOR, MARK, made_by_vaekit

REPORT = ["report", "{run}", "--k", "2", "--limit", "20"]


def report(run: Path) -> list[str]:
    return [a.format(run=run) for a in REPORT]


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run and the report vaekit wrote of it."""
    run = make_run(tmp_path_factory.mktemp("runs") / "run")
    assert main(report(run)) == 0
    return run


@pytest.fixture
def run(reported: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(reported, tmp_path / "run"))


def test_the_page_carries_vaekits_mark(reported: Path) -> None:
    page = (reported / runs.REPORT).read_text()
    assert f"<meta name='generator' content='{MARK}'>" in page[:2000]
    assert made_by_vaekit(reported / runs.REPORT)


def test_a_classifier_page_carries_it_too(tmp_path: Path) -> None:
    run = make_classifier_run(tmp_path / "clf")
    assert main(["report", str(run)]) == 0
    assert made_by_vaekit(run / runs.REPORT)


@pytest.mark.parametrize("mine", ["<html><body>my notes on this run</body></html>\n",
                                  "<!DOCTYPE html><html lang='en'><head><title>mine</title></head></html>"])
def test_a_users_report_html_in_the_run_is_refused(run: Path, capsys: Any, one_sentence: Any,
                                                   mine: str) -> None:
    (run / runs.EVAL).unlink()  # a report that would evaluate first: nothing is written either
    (run / runs.REPORT).write_text(mine)
    before = snapshot(run)
    capsys.readouterr()
    assert main(report(run)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    one_sentence(err.removeprefix("vaekit report: error: "), str(run / runs.REPORT))
    assert (run / runs.REPORT).read_text() == mine and snapshot(run) == before


def test_a_link_named_report_html_is_refused(run: Path, tmp_path: Path, capsys: Any,
                                                            one_sentence: Any) -> None:
    target = tmp_path / "elsewhere.html"
    target.write_text("mine\n")
    (run / runs.REPORT).unlink()
    (run / runs.REPORT).symlink_to(target)
    assert main(report(run)) == 2
    one_sentence(capsys.readouterr().err.strip().removeprefix("vaekit report: error: "),
                 str(run / runs.REPORT))
    assert target.read_text() == "mine\n"


def test_vaekits_own_report_and_an_earlier_vaekits_are_written_again(run: Path) -> None:
    again = ["report", str(run)]  # eval.json of the run is there
    assert main(again) == 0  # its own, with the mark
    earlier = (run / runs.REPORT).read_text().replace(HTML_GENERATOR, "", 1)
    (run / runs.REPORT).write_text(earlier)  # as an earlier vaekit wrote it: no mark
    assert not made_by_vaekit(run / runs.REPORT)
    assert main(again) == 0
    assert made_by_vaekit(run / runs.REPORT)
    (run / runs.REPORT).unlink()  # and none at all
    assert main(again) == 0 and made_by_vaekit(run / runs.REPORT)
