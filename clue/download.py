"""Fetch the official CLUE task zips, check them, and unpack each into ``<data-dir>/<task>/``.

The CLUE team hosts one zip per task at ``storage.googleapis.com/cluebenchmark/tasks/<name>_public.zip``.
Most unpack flat (``train.json dev.json test.json ...``), cmnli's into a ``cmnli_public/`` folder; either
way the files land directly in ``<data-dir>/<task>/``, the layout ``clue.paths.find_task_dir`` and
``clue.data.task_files`` read.

Checksums: the CLUE team publishes none. The digests below are the ones other loaders recorded when they
fetched the same URLs, so a match means "the same bytes they got", no more:
  HF-a    huggingface/datasets datasets/clue/dataset_infos.json @ df7b3fa98db3 (sha256)
  HF-b    the same file @ 040102f10096: tnews, cluewsc2020, chid and c3 were re-issued in between
  Paddle  PaddlePaddle/PaddleNLP paddlenlp/datasets/clue.py @ 1878a0224b0b (md5)
Where none is known (cluener, and sha256 for ocnli) the tool says so and prints the sha256 it computed.
"""

import hashlib
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from clue.paths import TASKS, data_root

BASE_URL = "https://storage.googleapis.com/cluebenchmark/tasks/"


@dataclass(frozen=True)
class Archive:
    task: str                # data folder name, as in clue.paths.TASKS
    zip_name: str            # file name on the CLUE server
    sha256: tuple = ()       # (digest, size in bytes, source) for every published snapshot
    md5: tuple = ()          # (digest, source)

    def url(self, base_url=BASE_URL):
        return base_url.rstrip("/") + "/" + self.zip_name

    @property
    def known(self):
        return bool(self.sha256 or self.md5)


ARCHIVES = {a.task: a for a in (
    Archive("afqmc", "afqmc_public.zip",
            (("5a4cb1556b833010c329fa2ad2207d9e98fc94071b7e474015e9dd7c385db4dc", 1195044, "HF-a, HF-b"),),
            (("3377b559bb4e61d03a35282550902ca0", "Paddle"),)),
    Archive("tnews", "tnews_public.zip",
            (("2469c4205606e24118c7de08199fbd55da483b65128e1d9c1f380849797f6ce0", 4689325, "HF-a"),
             ("77c476e70cfe0b014a81b84c6e1db2142a8a2f52f4ae0a8216aa75e673933462", 5123575, "HF-b")),
            (("587171233c8e8db00a3dc9bae5d2b47d", "Paddle"),)),
    Archive("iflytek", "iflytek_public.zip",
            (("c59b961b29f1d0bad0c5e01aa62e4a61a80e9cfb980ce89b06c000851fbb3b06", 6505938, "HF-a, HF-b"),),
            (("19e4b19947db126f69aae18db0da2b87", "Paddle"),)),
    Archive("cmnli", "cmnli_public.zip",
            (("3a3f3b1d3d27134cf11e585156f07fa050bd0a0836821c02696af0dbaa14513b", 31404066, "HF-a, HF-b"),),
            (("e0e8caefd9b3491220c18b466233f2ff", "Paddle"),)),
    Archive("ocnli", "ocnli_public.zip", (),
            (("acb426f6f3345076c6ce79239e7bc307", "Paddle"),)),
    Archive("cluewsc2020", "cluewsc2020_public.zip",
            (("5e318e8c2c88256ea66819a24348a65d0824ade15c0f02c5a14b78d240d38afb", 88526, "HF-a"),
             ("ebe5f357b19392d601be401b2fd4246983f534809a078eab7bda1de418fb3ffe", 281384, "HF-b")),
            (("17abe1be3f7dd3bad5f114ba4c40ee9b", "Paddle"),)),
    Archive("csl", "csl_public.zip",
            (("795d1a2e475d59acad8236f6c5baba7a0b43d3e0508cb60f15ffbc76d5f437c4", 3234594, "HF-a, HF-b"),),
            (("394a2ccbf6ddd7e331be4d5d7798f0f6", "Paddle"),)),
    Archive("cmrc2018", "cmrc2018_public.zip",
            (("6c63dc27e728ec5231aeb7d2861b4c90b6c116390582e0c44416cf3edf030b16", 3405146, "HF-a, HF-b"),)),
    Archive("chid", "chid_public.zip",
            (("4cdf93c0a9dfa43113284c501d8948bbc17bd6a55e3b0b4314a31909562ec19d", 133322133, "HF-a"),
             ("be02dbcc41a9c237542141f53836e70a209f7a686cf894891411c7e5534f73a4", 139199202, "HF-b"))),
    Archive("c3", "c3_public.zip",
            (("15e98a52512116efc2382c82496069ae75b7944cbd144230ef0f7f8150a1de7c", 3200727, "HF-a"),
             ("20dfa683c57c9795129e22d8dd0c299d6b2a29fbc84758ef2ebdb8b2904d7e12", 3495930, "HF-b"))),
    Archive("cluener", "cluener_public.zip"),
)}
assert tuple(ARCHIVES) == TASKS

JUNK = ("__MACOSX/", ".DS_Store")


class ChecksumError(ValueError):
    """The zip's digest matches none of the published ones."""


def digests(path):
    """(sha256, md5) hex digests of a file, read in 1 MiB blocks."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def verify(archive, path):
    """A line saying what the zip at ``path`` matched; ChecksumError when it matches nothing published."""
    sha, md5 = digests(path)
    for digest, _, source in archive.sha256:
        if sha == digest:
            return f"sha256 {sha} matches {source}"
    for digest, source in archive.md5:
        if md5 == digest:
            return f"md5 {md5} matches {source} (sha256 {sha})"
    if not archive.known:
        return f"no published checksum for {archive.zip_name}; computed sha256 {sha}"
    expected = [f"sha256 {d} ({n:,} bytes, {s})" for d, n, s in archive.sha256]
    expected += [f"md5 {d} ({s})" for d, s in archive.md5]
    raise ChecksumError(
        f"{path}: sha256 {sha}, md5 {md5}, {Path(path).stat().st_size:,} bytes, matches none of the published "
        f"digests for {archive.zip_name}: {'; '.join(expected)}. The server copy may have been re-issued since; "
        f"check it yourself and rerun with --no-verify to accept it."
    )


def fetch(url, dest, progress=True):
    """Download ``url`` to ``dest`` through ``dest.part`` (renamed only when complete)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url) as response, open(part, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name)
        for block in iter(lambda: response.read(1 << 20), b""):
            out.write(block)
            if bar:
                bar.update(len(block))
        if bar:
            bar.close()
    part.replace(dest)
    return dest


def _members(zf, zip_path):
    """(member, relative path inside the task folder) for every file, one shared top folder stripped."""
    files = [m for m in zf.infolist() if not m.is_dir()
             and not any(j in m.filename for j in JUNK)]
    if not files:
        raise ValueError(f"{zip_path}: the zip holds no files")
    parts = []
    for m in files:
        p = PurePosixPath(m.filename.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts:
            raise ValueError(f"{zip_path}: member {m.filename!r} points outside the folder it unpacks to")
        parts.append(p.parts)
    tops = {p[0] for p in parts}
    strip = 1 if len(tops) == 1 and all(len(p) > 1 for p in parts) else 0
    return [(m, PurePosixPath(*p[strip:])) for m, p in zip(files, parts)]


def unpack(zip_path, task, data_dir, force=False):
    """Unpack ``zip_path`` into ``<data_dir>/<task>/``; returns the folder.

    Files are extracted into a temporary folder beside the target first, so an interrupted unpack never
    leaves a half-filled task folder. An existing non-empty folder is kept unless ``force``.
    """
    root = Path(data_dir)
    target = root / task
    if target.exists() and any(target.iterdir()) and not force:
        raise FileExistsError(f"{target} already holds files; pass --force to replace them")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{task}.", dir=root))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for member, rel in _members(zf, zip_path):
                out = tmp.joinpath(*rel.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        if target.exists():
            old = root / f".{task}.old"
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old)
        else:
            tmp.rename(target)
    except zipfile.BadZipFile:
        raise ValueError(f"{zip_path}: not a zip file (truncated download?)") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def layout_report(task, data_dir):
    """A line naming the train/dev/test files the task scripts will read from the unpacked folder."""
    from clue.data import task_files  # the tasks' own view of the folder

    found = task_files(task, data_dir)
    parts = []
    for split, value in found.items():
        paths = value if isinstance(value, (list, tuple)) else [value]
        names = [Path(p).name for p in paths if p]
        parts.append(f"{split}: {', '.join(names) if names else 'MISSING'}")
    return f"{task}: " + "; ".join(parts)


def install(task, data_dir=None, zip_path=None, base_url=BASE_URL, cache_dir=None, check=True,
            force=False, progress=True, log=print):
    """Download (or take ``zip_path``), verify, unpack and report one task. Returns the task folder."""
    archive = ARCHIVES[task]
    root, _ = data_root(data_dir)
    target = root / task
    if target.exists() and any(target.iterdir()) and not force:
        log(f"{task}: {target} already holds files, skipped (--force replaces them)")
        return target
    if zip_path is None:
        cache = Path(cache_dir) if cache_dir else root / ".downloads"
        zip_path = cache / archive.zip_name
        if not zip_path.is_file():
            log(f"{task}: downloading {archive.url(base_url)}")
            fetch(archive.url(base_url), zip_path, progress=progress)
    if check:
        log(f"{task}: {verify(archive, zip_path)}")
    else:
        log(f"{task}: not verified (--no-verify); sha256 {digests(zip_path)[0]}")
    unpack(zip_path, task, root, force=force)
    log(layout_report(task, root))
    return target


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        description="Download the official CLUE task zips, check them against the published digests, and "
                    "unpack each into <data-dir>/<task>/.")
    parser.add_argument("tasks", nargs="*", metavar="TASK", help=f"tasks (default: all): {', '.join(TASKS)}")
    parser.add_argument("--data-dir", help="where the task folders go (default $CLUE_DATA_DIR, else ./datasets)")
    parser.add_argument("--zip", dest="zip_path", help="unpack this already downloaded zip (one TASK only)")
    parser.add_argument("--base-url", default=BASE_URL, help="a mirror holding the same <task>_public.zip names")
    parser.add_argument("--cache-dir", help="where zips are kept (default <data-dir>/.downloads)")
    parser.add_argument("--no-verify", action="store_true", help="accept a zip that matches no published digest")
    parser.add_argument("--force", action="store_true", help="replace task folders that already hold files")
    parser.add_argument("--list", action="store_true", help="print each task's URL and known digests, then stop")
    args = parser.parse_args(argv)

    tasks = args.tasks or list(TASKS)
    unknown = [t for t in tasks if t not in ARCHIVES]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}")
    if args.list:
        for t in tasks:
            a = ARCHIVES[t]
            known = [f"sha256 {d} ({s})" for d, _, s in a.sha256] + [f"md5 {d} ({s})" for d, s in a.md5]
            print(f"{t}\t{a.url(args.base_url)}\t{'; '.join(known) or 'no published checksum'}")
        return 0
    if args.zip_path and len(tasks) != 1:
        parser.error("--zip needs exactly one TASK")
    failed = []
    for t in tasks:
        try:
            install(t, args.data_dir, args.zip_path, args.base_url, args.cache_dir,
                    check=not args.no_verify, force=args.force)
        except (OSError, ValueError) as err:   # one bad task must not stop the others
            print(f"{t}: FAILED: {err}")
            failed.append(t)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0
