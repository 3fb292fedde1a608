"""make_submission: the task scripts' own outputs (the run_clue run of test_run_all) pack into a valid
submit.zip; each broken case is reported by name and nothing is written; CLUENER is checked on its own,
on the real CLUENER test set and a real CLUE-format results file."""

import json
import shutil
import zipfile

import pytest

import small_clue
from clue import registry, submit_check


@pytest.fixture(scope="session")
def clue11(tmp_path_factory, clue_data_dir):
    return small_clue.clue11_run(tmp_path_factory, clue_data_dir)


@pytest.fixture
def results(clue11, tmp_path):
    """A copy of the run's results folder, free to break."""
    data, out, code = clue11
    assert code == 0
    copy = tmp_path / "results"
    shutil.copytree(out / "results", copy)
    return data, copy


def make(capsys, results, data, *extra):
    code = submit_check.main(["--results", str(results), "--data-dir", str(data), *map(str, extra)])
    return code, capsys.readouterr().out


def test_task_outputs_pack_into_a_valid_zip(results, tmp_path, capsys):
    data, folder = results
    zip_path = tmp_path / "submit.zip"
    code, out = make(capsys, folder, data, "--output", zip_path)
    assert code == 0, out
    assert f"all 9 files valid: {', '.join(submit_check.CLUE11)}" in out
    assert "note: cluener_predict.json" not in out                      # the nine tasks only were run
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.namelist() == list(submit_check.CLUE11)
        for name in zf.namelist():
            assert zf.read(name) == (folder / name).read_bytes()


def first_lines(path, n):
    return path.read_text(encoding="utf-8").split("\n")[:n]


def test_every_broken_case_is_reported_by_name(results, tmp_path, capsys):
    data, folder = results
    # missing id: afqmc's second line removed
    afqmc = folder / "afqmc_predict.json"
    lines = afqmc.read_text().split("\n")
    gone = json.loads(lines.pop(1))["id"]
    afqmc.write_text("\n".join(lines))
    # duplicate id: csl's first line written twice
    csl = folder / "csl_predict.json"
    first = first_lines(csl, 1)[0]
    csl.write_text(first + "\n" + csl.read_text())
    # label outside the set: iflytek line 3 says "119" (labels are 0..118)
    iflytek = folder / "iflytek_predict.json"
    lines = iflytek.read_text().split("\n")
    row = json.loads(lines[2])
    lines[2] = json.dumps({"id": row["id"], "label": "119"})
    iflytek.write_text("\n".join(lines))
    # wrong file name: the CLUE 1.0 style name for tnews
    (folder / "tnews11_predict.json").rename(folder / "tnews_predict.json")
    # truncated files: ocnli and c3 cut inside their last line, cmrc2018 inside a character of its object
    ocnli = folder / "ocnli_50k_predict.json"
    ocnli.write_bytes(ocnli.read_bytes()[:-9])
    cmrc = folder / "cmrc2018_predict.json"
    raw = cmrc.read_bytes()
    cut = next(i for i in range(len(raw) // 2, len(raw)) if raw[i] >= 0xE0) + 1   # inside a Chinese character
    cmrc.write_bytes(raw[:cut])
    cmrc_line = raw[:cut - 1].count(b"\n") + 1
    c3 = folder / "c311_predict.json"
    c3.write_bytes(c3.read_bytes()[:-30])                                       # inside a line
    # chid: an answer outside the ten candidates
    chid = folder / "chid11_predict.json"
    answers = json.loads(chid.read_text())
    blank = next(iter(answers))
    answers[blank] = 10
    chid.write_text(json.dumps(answers))

    zip_path = tmp_path / "submit.zip"
    zip_path.write_bytes(b"an earlier zip")
    code, out = make(capsys, folder, data, "--output", zip_path)
    assert code == 1
    expected = [
        f"afqmc_predict.json: id {gone!r} is missing",
        f"csl_predict.json: id {json.loads(first)['id']!r} appears 2 times",
        "iflytek_predict.json:3: label '119' is not in the label set",
        "tnews_predict.json: wrong file name, not a leaderboard file (did you mean tnews11_predict.json?)",
        "tnews11_predict.json: missing file (tnews writes it: python tasks/tnews.py)",
        "ocnli_50k_predict.json: does not end with a newline (truncated?)",
        f"cmrc2018_predict.json:{cmrc_line}: not valid UTF-8 (unexpected end of data at "
        f"byte {cut - 1}; truncated?)",
        "c311_predict.json: does not end with a newline (truncated?)",
        f"chid11_predict.json: id {blank!r}: 10 is not a candidate index 0..9",
    ]
    for text in expected:
        assert text in out, f"{text!r} not reported in:\n{out}"
    assert f"{zip_path} not written" in out
    assert zip_path.read_bytes() == b"an earlier zip"                  # untouched
    # the files not broken are not reported
    assert "cluewsc11_predict.json" not in out


def test_ids_out_of_order_and_unknown(results, capsys):
    data, folder = results
    path = folder / "cluewsc11_predict.json"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[0], lines[1] = lines[1], lines[0]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    c3 = folder / "c311_predict.json"
    rows = [json.loads(x) for x in c3.read_text().splitlines()]
    rows[-1]["id"] = 99999
    c3.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out = make(capsys, folder, data, "--check-only")
    assert code == 1
    assert f"cluewsc11_predict.json:1: id {lines[0]['id']!r} out of order" in out
    assert "c311_predict.json:" in out and "id 99999 is not in the test file" in out


def test_cluener_on_its_own_real_test_set(tmp_path, clue_data_dir, capsys):
    # a CLUE-format CLUENER results file (CLUEbenchmark/LightLM's example) against the real test set
    folder = tmp_path / "results"
    folder.mkdir()
    example = clue_data_dir / "submit_examples" / "cluener2020_results.json"
    shutil.copy(example, folder / "cluener_predict.json")
    zip_path = tmp_path / "cluener_submit.zip"
    code, out = make(capsys, folder, clue_data_dir, "--cluener", "--output", zip_path)
    assert code == 0, out
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.namelist() == ["cluener_predict.json"]
    # broken: an unknown type, an entity whose offsets spell something else
    rows = [json.loads(x) for x in example.read_text(encoding="utf-8").splitlines()]
    rows[0]["label"]["person"] = {"x": [[0, 0]]}
    entity, places = next(iter(rows[1]["label"]["name"].items()))
    rows[1]["label"]["name"] = {entity: [[places[0][0] + 1, places[0][1] + 1]]}
    (folder / "cluener_predict.json").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                 encoding="utf-8")
    code, out = make(capsys, folder, clue_data_dir, "--cluener", "--check-only")
    assert code == 1
    assert "cluener_predict.json:1: entity type 'person' is not one of the 10 CLUENER types" in out
    assert f"cluener_predict.json:2: name {entity!r} at [{places[0][0] + 1}, {places[0][1] + 1}] does not spell" in out


def test_real_example_files(clue_data_dir):
    """CLUE-format files from CLUEbenchmark/LightLM checked against the real test sets: iflytek's (CRLF line
    ends) is valid; csl's numbers lines from 0 where the test file's own ids start at 1, which is caught."""
    examples = clue_data_dir / "submit_examples"
    iflytek = registry.get("iflytek")
    assert submit_check.check_file(examples / "iflytek_predict.json", iflytek,
                                   clue_data_dir / "iflytek" / "test.json") == []
    problems = submit_check.check_file(examples / "csl_predict.json", registry.get("csl"),
                                       clue_data_dir / "csl" / "test.json")
    assert any("id 0 is not in the test file" in p for p in problems)
    assert any("id 3000 is missing" in p for p in problems)


def test_one_object_files_repeated_missing_and_unknown_keys(tmp_path):
    from chid_fixture import make_chid

    make_chid(tmp_path / "chid", sizes=(("test1.1", 2),))
    test = tmp_path / "chid" / "test1.1.json"
    blanks = [r["id"] for r in registry.get("chid").read(test)]
    body = ", ".join(f'"{b}": 0' for b in blanks[1:])          # the first blank left out
    path = tmp_path / "chid11_predict.json"
    path.write_text("{" + body + f', "{blanks[1]}": 1, "#idiom999999#": 0' + "}")
    problems = submit_check.check_file(path, registry.get("chid"), test)
    assert f"{path}: id {blanks[1]!r} appears 2 times" in problems
    assert f"{path}: id {blanks[0]!r} is missing" in problems
    assert f"{path}: id '#idiom999999#' is not in the test file" in problems
    assert len(problems) == 3


def test_c3_upstream_test_set_is_checked_in_both_parts(tmp_path, clue_data_dir):
    # the upstream layout has no test1.1.json: its test set is c3-d-test.json and c3-m-test.json together
    folder = tmp_path / "c3"
    folder.mkdir()
    for part in "dm":
        docs = json.loads((clue_data_dir / "c3" / f"c3-{part}-test.json").read_text(encoding="utf-8"))[:3]
        (folder / f"c3-{part}-test.json").write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
    task = registry.get("c3")
    (test_files, name), = [o for o in task.test_outputs(folder) if o[1] == "c311_predict.json"]
    assert [p.name for p in test_files] == ["c3-d-test.json", "c3-m-test.json"]
    d_questions = len(task.read(folder / "c3-d-test.json"))
    ids = [r["id"] for r in task.read(test_files)]
    assert len(ids) > d_questions
    path = tmp_path / name
    path.write_text("".join(json.dumps({"id": i, "label": "0"}) + "\n" for i in ids))
    assert submit_check.check_file(path, task, test_files) == []
    path.write_text("".join(json.dumps({"id": i, "label": "0"}) + "\n" for i in ids[:d_questions]))
    problems = submit_check.check_file(path, task, test_files)
    assert problems == [f"{path}: {d_questions:,} of {len(ids):,} ids ({len(ids) - d_questions:,} missing, "
                        f"the first {ids[d_questions]!r}) — a --limit run?"]


def test_a_short_file_from_a_limit_run_is_one_counted_line_not_one_per_id(tmp_path, clue_data_dir):
    task, test = registry.get("ocnli"), clue_data_dir / "ocnli" / "test.json"
    ids = [r["id"] for r in task.read(test)]
    path = tmp_path / "ocnli_50k_predict.json"
    path.write_text("".join(json.dumps({"id": i, "label": "neutral"}) + "\n" for i in ids[:200]))
    assert submit_check.check_file(path, task, test) == [
        f"{path}: 200 of {len(ids):,} ids ({len(ids) - 200:,} missing, the first {ids[200]!r}) — a --limit run?"]
    path.write_text("".join(json.dumps({"id": i, "label": "neutral"}) + "\n" for i in ids[:-2]))
    assert submit_check.check_file(path, task, test) == [f"{path}: id {i!r} is missing" for i in ids[-2:]]
