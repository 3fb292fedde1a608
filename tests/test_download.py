"""The download tool on zips made here from the real CLUE files, laid out as the official zips are.

Nothing is fetched from the network: downloads go through ``file://`` URLs to a local "mirror" folder.
"""

import hashlib
import re
import zipfile

import pytest

from clue import download
from clue.paths import find_task_dir
from clue.registry import TASKS


def make_zip(path, members):
    """``members``: {name inside the zip: bytes}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def head(path, n):
    """The first ``n`` lines of a JSON-lines file, as bytes."""
    return b"\n".join(path.read_bytes().split(b"\n")[:n]) + b"\n"


@pytest.fixture
def afqmc_zip(tmp_path, clue_data_dir):
    # afqmc_public.zip unpacks flat: train.json dev.json test.json (train is part of dev here)
    src = clue_data_dir / "afqmc"
    return make_zip(tmp_path / "mirror" / "afqmc_public.zip", {
        "train.json": head(src / "dev.json", 200),
        "dev.json": (src / "dev.json").read_bytes(),
        "test.json": (src / "test.json").read_bytes(),
    })


def test_flat_zip_unpacks_into_task_folder(tmp_path, clue_data_dir, afqmc_zip):
    data = tmp_path / "data"
    folder = download.unpack(afqmc_zip, "afqmc", data)
    assert folder == data / "afqmc" == find_task_dir("afqmc", data)
    assert sorted(p.name for p in folder.iterdir()) == ["dev.json", "test.json", "train.json"]
    assert (folder / "test.json").read_bytes() == (clue_data_dir / "afqmc" / "test.json").read_bytes()
    files = TASKS["afqmc"].find_files(find_task_dir("afqmc", data))
    assert files["dev"] == [folder / "dev.json"] and files["test"] == [folder / "test.json"]
    assert not [p for p in data.iterdir() if p.name.startswith(".")]   # no temporary folder left


def test_zip_with_public_folder_is_flattened(tmp_path, clue_data_dir):
    # cmnli_public.zip keeps its files under cmnli_public/; cmnli has ocnli's format, so ocnli lines stand in
    src = clue_data_dir / "ocnli"
    zip_path = make_zip(tmp_path / "cmnli_public.zip", {
        "cmnli_public/train.json": head(src / "train.3k.json", 100),
        "cmnli_public/dev.json": head(src / "dev.json", 50),
        "cmnli_public/test.json": head(src / "test.json", 50),
        "__MACOSX/cmnli_public/._dev.json": b"junk",
    })
    folder = download.unpack(zip_path, "cmnli", tmp_path / "data")
    assert sorted(p.name for p in folder.iterdir()) == ["dev.json", "test.json", "train.json"]
    files = TASKS["cmnli"].find_files(find_task_dir("cmnli", tmp_path / "data"))
    assert {k: v[0].name for k, v in files.items() if v is not None and k in ("train", "dev", "test")} == {
        "train": "train.json", "dev": "dev.json", "test": "test.json"}


def test_c3_clue_names_are_found(tmp_path, clue_data_dir):
    src = clue_data_dir / "c3"
    zip_path = make_zip(tmp_path / "c3_public.zip", {
        "d-train.json": (src / "c3-d-dev.json").read_bytes(),
        "m-train.json": (src / "c3-m-dev.json").read_bytes(),
        "d-dev.json": (src / "c3-d-dev.json").read_bytes(),
        "m-dev.json": (src / "c3-m-dev.json").read_bytes(),
    })
    download.unpack(zip_path, "c3", tmp_path / "data")
    report = download.layout_report("c3", tmp_path / "data")
    assert "d-dev.json" in report and "m-dev.json" in report, report


def test_existing_folder_is_kept_unless_forced(tmp_path, afqmc_zip):
    data = tmp_path / "data"
    (data / "afqmc").mkdir(parents=True)
    (data / "afqmc" / "mine.json").write_text("keep me\n")
    with pytest.raises(FileExistsError, match="--force"):
        download.unpack(afqmc_zip, "afqmc", data)
    assert (data / "afqmc" / "mine.json").read_text() == "keep me\n"
    download.unpack(afqmc_zip, "afqmc", data, force=True)
    assert sorted(p.name for p in (data / "afqmc").iterdir()) == ["dev.json", "test.json", "train.json"]


def test_bad_zips_are_refused_and_leave_nothing(tmp_path, afqmc_zip):
    data = tmp_path / "data"
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(afqmc_zip.read_bytes()[:5000])
    with pytest.raises(ValueError, match="not a zip file"):
        download.unpack(truncated, "afqmc", data)
    escaping = make_zip(tmp_path / "evil.zip", {"../outside.json": b"{}\n"})
    with pytest.raises(ValueError, match="outside"):
        download.unpack(escaping, "afqmc", data)
    assert not (tmp_path / "outside.json").exists()
    assert not (data / "afqmc").exists()
    assert not data.exists() or not any(data.iterdir())


def test_checksum_match_mismatch_and_unknown(tmp_path, monkeypatch, afqmc_zip):
    sha = hashlib.sha256(afqmc_zip.read_bytes()).hexdigest()
    # the real afqmc entry: our zip is not the official one, so it must be refused, naming both digests
    with pytest.raises(download.ChecksumError) as err:
        download.verify(download.ARCHIVES["afqmc"], afqmc_zip)
    assert sha in str(err.value) and "5a4cb155" in str(err.value) and "--no-verify" in str(err.value)
    # a published digest that does match
    matching = download.Archive("afqmc", "afqmc_public.zip", ((sha, afqmc_zip.stat().st_size, "test"),))
    assert download.verify(matching, afqmc_zip) == f"sha256 {sha} matches test"
    md5 = hashlib.md5(afqmc_zip.read_bytes()).hexdigest()
    assert "matches paddle" in download.verify(download.Archive("afqmc", "x.zip", (), ((md5, "paddle"),)), afqmc_zip)
    # no digest known: say so and print the computed sha256
    assert download.verify(download.ARCHIVES["cluener"], afqmc_zip) == (
        f"no published checksum for cluener_public.zip; computed sha256 {sha}")


def test_download_from_mirror_through_cli(tmp_path, clue_data_dir, capsys):
    mirror = tmp_path / "mirror"
    src = clue_data_dir / "cluener"
    make_zip(mirror / "cluener_public.zip", {n: (src / n).read_bytes() for n in ("train.json", "dev.json", "test.json")})
    data = tmp_path / "data"
    argv = ["cluener", "--data-dir", str(data), "--base-url", mirror.as_uri()]
    assert download.main(argv) == 0
    out = capsys.readouterr().out
    sha = hashlib.sha256((mirror / "cluener_public.zip").read_bytes()).hexdigest()
    assert f"computed sha256 {sha}" in out
    assert (data / ".downloads" / "cluener_public.zip").is_file()          # kept for reruns
    assert (data / "cluener" / "dev.json").read_bytes() == (src / "dev.json").read_bytes()
    assert re.search(r"cluener: .*dev: dev\.json", out), out
    # second run: the folder is there, nothing is redone
    assert download.main(argv) == 0
    assert "already holds files, skipped" in capsys.readouterr().out


def test_cli_reports_checksum_failure_and_no_verify_accepts(tmp_path, afqmc_zip, capsys):
    data = tmp_path / "data"
    argv = ["afqmc", "--data-dir", str(data), "--base-url", afqmc_zip.parent.as_uri()]
    assert download.main(argv) == 1
    out = capsys.readouterr().out
    assert "afqmc: FAILED" in out and "matches none of the published digests" in out
    assert not (data / "afqmc").exists()
    assert download.main(argv + ["--no-verify"]) == 0
    assert (data / "afqmc" / "dev.json").is_file()


def test_every_task_has_an_official_url():
    assert set(download.ARCHIVES) == set(TASKS)
    for task, archive in download.ARCHIVES.items():
        assert archive.url() == f"https://storage.googleapis.com/cluebenchmark/tasks/{archive.zip_name}"
        for digest, size, _ in archive.sha256:
            assert re.fullmatch(r"[0-9a-f]{64}", digest) and size > 0, task
        for digest, _ in archive.md5:
            assert re.fullmatch(r"[0-9a-f]{32}", digest), task
