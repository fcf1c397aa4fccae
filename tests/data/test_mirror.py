"""`vaekit data fetch --mirror URL`: a mirror that is not an http(s) URL, an empty one, or one given
where nothing would be downloaded from it (with --data-dir or $VAEKIT_DATA, for digits, a folder or
an array) is refused in one sentence, exit 2, before anything is sent over the network."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import numpy as np
import pytest

from vaekit.cli import main
from vaekit.data.registry import fetch
from vaekit.errors import ConfigError

ASIDE = "http://127.0.0.1:9/fake/"  # a closed port: never asked, the network is refused below


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the network was used: {args}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


QUERY = "has a query (?) or a fragment (#), after which no file name could follow"
BAD_URLS = [
    ("", "is empty"),
    ("   ", "is blank"),
    ("ftp://127.0.0.1/fake/", "does not start with http:// or https://"),
    ("file:///tmp/fake/", "does not start with http:// or https://"),
    ("127.0.0.1:8000/fake/", "does not start with http:// or https://"),
    ("localhost:8000/fake/", "does not start with http:// or https://"),
    ("fake", "does not start with http:// or https://"),
    ("http://", "names no host"),
    ("https:///fake/", "names no host"),
    ("http://127.0.0.1:99999/fake/", "has a port that is not a number from 1 to 65535"),
    ("http://127.0.0.1:0/fake/", "has a port that is not a number from 1 to 65535"),
    ("http://127.0.0.1/fa ke/", "holds a space or a control character"),
    ("http://127.0.0.1/fake/\n", "holds a space or a control character"),
    ("http://[::1/fake/", "is not a URL"),
    ("http://127.0.0.1/fake/?q=1", QUERY),
    ("http://127.0.0.1/fake/?", QUERY),
    ("http://127.0.0.1/fake/#f", QUERY),
    ("http://u:p@127.0.0.1/fake/", "holds a user name or password (user@host), which vaekit does not send"),
    ("http://u@127.0.0.1/fake/", "holds a user name or password (user@host), which vaekit does not send"),
]


@pytest.mark.parametrize(("url", "problem"), BAD_URLS, ids=[repr(u) for u, _ in BAD_URLS])
def test_a_mirror_that_is_no_http_url_is_refused(places, fake_registry, cli_error, one_sentence,
                                                 url: str, problem: str) -> None:
    fake_registry()
    cli_error(main(["data", "fetch", "fake", "--mirror", url]), f"--mirror {url!r} {problem};")
    with pytest.raises(ConfigError) as info:  # the API too: "" is not read as 'not given'
        fetch("fake", base_url=url)
    one_sentence(str(info.value), repr(url), "http://")
    assert not places.cache_root.exists()


def test_a_bad_mirror_is_refused_even_when_the_set_is_in_the_cache(places, fake_set, fake_registry,
                                                                   cli_error) -> None:
    fake_registry()
    fake_set.write(places.cache_root / "fake")
    cli_error(main(["data", "fetch", "fake", "--mirror", "ftp://127.0.0.1/fake/"]), "ftp://")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/fake/", "HTTPS://127.0.0.1/fake/",
                                 "http://[::1]:8080/fake/", "http://mirror.example/"])
@pytest.mark.parametrize("place", ["cache", "system"])
def test_a_good_mirror_of_a_set_found_is_accepted_with_a_note_that_it_went_unused(
    places, fake_set, fake_registry, capsys, one_sentence, url: str, place: str
) -> None:
    """The set is where a fetch would put it or read it: exit 0 (a script that fetches before it
    trains goes on), and a note on stderr that the mirror was not asked, naming it and the place."""
    fake_registry()
    found = fake_set.write((places.cache_root if place == "cache" else places.system_root) / "fake")
    assert main(["data", "fetch", "fake", "--mirror", url]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"fake: {found}"
    assert err.startswith("note: ")
    one_sentence(err.removeprefix("note: ").strip(), f"--mirror {url}", "not used", str(found),
                 "nothing was downloaded")


@pytest.mark.parametrize("has_data", [True, False])
def test_a_mirror_with_a_data_dir_is_refused(places, fake_set, fake_registry, tmp_path, cli_error,
                                             has_data: bool) -> None:
    fake_registry()
    mine = tmp_path / "mine"
    if has_data:
        fake_set.write(mine)
    cli_error(main(["data", "fetch", "fake", "--data-dir", str(mine), "--mirror", ASIDE]),
              "--mirror", ASIDE, "--data-dir", str(mine))
    assert not places.cache_root.exists()


def test_a_mirror_with_vaekit_data_is_refused(places, fake_set, fake_registry, tmp_path,
                                              monkeypatch: pytest.MonkeyPatch, cli_error) -> None:
    fake_registry()
    monkeypatch.setenv("VAEKIT_DATA", str(fake_set.write(tmp_path / "shared")))
    cli_error(main(["data", "fetch", "fake", "--mirror", ASIDE]),
              "--mirror", ASIDE, "$VAEKIT_DATA", str(tmp_path / "shared"))


@pytest.mark.parametrize("kind", ["digits", "folder", "array"])
def test_a_mirror_for_a_set_that_is_not_downloaded_is_refused(
    places, tmp_path, cli_error: Callable[..., str], capsys, kind: str
) -> None:
    name = {"digits": "digits", "folder": str(tmp_path), "array": str(tmp_path / "x.npy")}[kind]
    last = cli_error(main(["data", "fetch", name, "--mirror", ASIDE]), "--mirror", ASIDE, name)
    assert "so leave --mirror out" in last
    if kind == "digits":  # without the flag, as before
        assert main(["data", "fetch", "digits"]) == 0
        assert "nothing to fetch" in capsys.readouterr().out


@pytest.mark.parametrize("kind", ["digits", "array"])
def test_a_mirror_and_a_data_dir_for_a_set_not_downloaded_are_both_named(
    places, tmp_path, cli_error: Callable[..., str], capsys, kind: str
) -> None:
    """`data fetch digits --mirror U --data-dir D` was told to leave --mirror out, and the command
    without it was then refused for --data-dir: the advice, followed, must work."""
    np.save(tmp_path / "x.npy", np.zeros((10, 4, 4), np.uint8))
    name = {"digits": "digits", "array": str(tmp_path / "x.npy")}[kind]
    last = cli_error(main(["data", "fetch", name, "--mirror", ASIDE, "--data-dir", str(tmp_path)]),
                     "--mirror", ASIDE, name)
    assert "so leave --mirror and --data-dir out" in last
    assert main(["data", "fetch", name]) == 0  # the advice, followed
    assert "nothing to fetch" in capsys.readouterr().out
