"""Fetch the official CLUE task zips, check them, and unpack each into ``<data-dir>/<task>/``.

The CLUE team hosts one zip per task at ``storage.googleapis.com/cluebenchmark/tasks/<name>_public.zip``.
Most unpack flat (``train.json dev.json test.json ...``), cmnli's into a ``cmnli_public/`` folder; either
way the files land directly in ``<data-dir>/<task>/``, the layout ``clue.paths.find_task_dir`` and
``clue.registry`` read.

Checksums: the CLUE team publishes none. The digests (in ``clue.registry``) are the ones other loaders
recorded when they fetched the same URLs, so a match means "the same bytes they got", no more:
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

from clue import registry
from clue.paths import atomic_path, data_root

BASE_URL = "https://storage.googleapis.com/cluebenchmark/tasks/"


@dataclass(frozen=True)
class Archive:
    task: str                # data folder name
    zip_name: str            # file name on the CLUE server
    sha256: tuple = ()       # (digest, size in bytes, source) for every published snapshot
    md5: tuple = ()          # (digest, source)

    def url(self, base_url=BASE_URL):
        return base_url.rstrip("/") + "/" + self.zip_name

    @property
    def known(self):
        return bool(self.sha256 or self.md5)


# the digests live with the other facts of each task, in clue.registry
ARCHIVES = {t.name: Archive(t.name, f"{t.name}_public.zip", t.zip_sha256, t.zip_md5) for t in registry.TASKS.values()}

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
    """Download ``url`` to ``dest`` through ``atomic_path`` (in place only when complete)."""
    with atomic_path(dest) as part, urllib.request.urlopen(url) as response, open(part, "wb") as out:
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
    return Path(dest)


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
    from clue.paths import find_task_dir

    found = registry.get(task).find_files(find_task_dir(task, data_dir))   # the tasks' own view of the folder
    parts = [f"{split}: {', '.join(p.name for p in paths) if paths else 'MISSING'}" for split, paths in found.items()]
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
    parser.add_argument("tasks", nargs="*", metavar="TASK", help=f"tasks (default: all): {', '.join(ARCHIVES)}")
    parser.add_argument("--data-dir", help="where the task folders go (default $CLUE_DATA_DIR, else ./datasets)")
    parser.add_argument("--zip", dest="zip_path", help="unpack this already downloaded zip (one TASK only)")
    parser.add_argument("--base-url", default=BASE_URL, help="a mirror holding the same <task>_public.zip names")
    parser.add_argument("--cache-dir", help="where zips are kept (default <data-dir>/.downloads)")
    parser.add_argument("--no-verify", action="store_true", help="accept a zip that matches no published digest")
    parser.add_argument("--force", action="store_true", help="replace task folders that already hold files")
    parser.add_argument("--list", action="store_true", help="print each task's URL and known digests, then stop")
    args = parser.parse_args(argv)

    tasks = args.tasks or list(ARCHIVES)
    unknown = [t for t in tasks if t not in ARCHIVES]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(ARCHIVES)}")
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
