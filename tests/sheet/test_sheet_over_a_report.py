"""`vaekit sheet --out RUN/report.html`: the run's report page (`vaekit report`'s, marked as
vaekit's, so the law of outputs alone lets it be replaced) is refused as the sheet's page, in one
sentence, before any work and with the page left as it was; a report.html elsewhere, or another
page beside the run, is the sheet's to write."""

from __future__ import annotations

from pathlib import Path

import pytest

import vaekit.sheet
from eval_runs import make_run
from vaekit.cli import main
from vaekit.errors import ConfigError
from vaekit.report.outputs import HTML_GENERATOR, write_run_report
from vaekit.runs import REPORT


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_run(tmp_path_factory.mktemp("runs") / "run", epochs=1)
    write_run_report(run, f"<!DOCTYPE html><html><head>{HTML_GENERATOR}</head><body>report</body></html>")
    return run


@pytest.fixture
def stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sheet's build replaced by a refusal: a command that gets that far says 'built'."""
    def stop(*_args: object, **_kwargs: object) -> None:
        raise ConfigError("built.")

    monkeypatch.setattr(vaekit.sheet, "build_sheet", stop)


def sheet(capsys: pytest.CaptureFixture[str], out: Path, run: Path) -> str:
    status = main(["sheet", "--out", str(out), "--vae-run", str(run)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_the_runs_report_is_not_the_sheets_page(run: Path, stopped: None,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = (run / REPORT).read_bytes()
    err = sheet(capsys, run / REPORT, run)
    assert "built" not in err and str(run / REPORT) in err and "vaekit report" in err, err
    assert err.startswith("vaekit sheet: error: ") and err.rstrip().endswith("."), err
    assert (run / REPORT).read_bytes() == before


def test_other_pages_are_the_sheets(run: Path, tmp_path: Path, stopped: None,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert "built" in sheet(capsys, run / "sheet.html", run)  # beside the run, not its report
    assert "built" in sheet(capsys, tmp_path / REPORT, run)  # a report.html of no run
