#!/usr/bin/env python3
"""The raw files a results table is computed from, packed for the repository: every run folder's JSON under DIR
(run.json, summary.json, level_L/{run.json,metrics.json,log.jsonl,val_curve.jsonl}, eval.json, eval_test.json, pseudo and
validation references left out as derived) — no models, checkpoints or images — into one deterministic .tar.gz
(sorted names, zero times and owners), with its SHA-256 in a .sha256 file beside it, so a table re-derives from
the committed archive and a changed archive is seen.

    python3 tools/pack_runs.py /work/study/distill/mask/w8 docs/results/distill/runs.tar.gz
    python3 tools/pack_runs.py --no-logs RUNS OUT.tar.gz   # without the per-step training logs (when no table reads them)
    python3 tools/pack_runs.py --check docs/results/distill/runs.tar.gz      # the checksum still holds
    python3 tools/pack_runs.py --unpack docs/results/distill/runs.tar.gz DIR  # after checking it
    python3 tools/pack_runs.py --add [--no-logs] docs/results/width/runs.tar.gz DIR  # DIR's run files added to a checked
        # archive (a file at a path the archive has replaces it), repacked with its checksum: a study finished in parts

Python 3.11 standard library only.
"""
import gzip
import hashlib
import io
import sys
import tarfile
import tempfile
from pathlib import Path

KEEP = {"run.json", "summary.json", "metrics.json", "log.jsonl", "val_curve.jsonl", "eval.json", "eval_test.json"}
# A results archive holds text a reader can open; anything bigger than this is not a run's JSON.
MAX_FILE = 64 << 20


def files(root, keep=KEEP):
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not p.is_symlink() and p.name in keep and not any(part in ("checkpoints", "work") for part in rel.parts):
            yield rel, p


def pack(root, out, keep=KEEP):
    root, out = Path(root), Path(out)
    buf = io.BytesIO()
    # mtime 0 in the gzip header and in every member: the same runs give the same bytes.
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            n = 0
            for rel, p in files(root, keep):
                data = p.read_bytes()
                if len(data) > MAX_FILE:
                    sys.exit(f"{p}: {len(data)} bytes, more than a run's JSON")
                info = tarfile.TarInfo(str(rel))
                info.size, info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0o644, 0, 0, "", ""
                tar.addfile(info, io.BytesIO(data))
                n += 1
    if n == 0:
        sys.exit(f"{root}: no run files to pack")
    data = buf.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    digest = hashlib.sha256(data).hexdigest()
    Path(f"{out}.sha256").write_text(f"{digest}  {out.name}\n")
    print(f"{out}: {n} files, {len(data)} bytes, sha256 {digest}")


def check(archive):
    archive = Path(archive)
    want = Path(f"{archive}.sha256").read_text().split()[0]
    have = hashlib.sha256(archive.read_bytes()).hexdigest()
    if have != want:
        sys.exit(f"{archive}: sha256 {have}, but {archive.name}.sha256 says {want}")
    return archive


def unpack(archive, dest):
    """Extracts a checked archive into dest (plain files only, no path leaving dest)."""
    archive = check(archive)
    dest = Path(dest)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest


def add(archive, root, keep=KEEP):
    """Packs the checked `archive`'s files and `root`'s run files together (`root`'s where both have a path) into
    `archive`."""
    with tempfile.TemporaryDirectory() as tmp:
        merged = unpack(archive, tmp)
        for rel, p in files(Path(root), keep):
            (merged / rel).parent.mkdir(parents=True, exist_ok=True)
            (merged / rel).write_bytes(p.read_bytes())
        # The archive's own files stay whatever `keep` says: only what is added is filtered.
        pack(merged, archive, KEEP)


def on_runs(arg, fn):
    """fn(root, label) on a run folder, or on a checked archive unpacked into a temporary folder; the label is
    what the user named, so a table computed from an archive says which (not the temporary folder)."""
    if str(arg).endswith(".tar.gz"):
        with tempfile.TemporaryDirectory() as tmp:
            return fn(unpack(arg, tmp), str(arg))
    return fn(Path(arg), str(arg))


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "--check":
        check(a[1])
        print(f"{a[1]}: checksum holds")
    elif len(a) == 3 and a[0] == "--unpack":
        unpack(a[1], a[2])
    elif len(a) == 2:
        pack(a[0], a[1])
    elif len(a) == 3 and a[0] == "--no-logs":
        pack(a[1], a[2], KEEP - {"log.jsonl"})
    elif len(a) == 3 and a[0] == "--add":
        add(a[1], a[2])
    elif len(a) == 4 and a[:2] == ["--add", "--no-logs"]:
        add(a[2], a[3], KEEP - {"log.jsonl"})
    else:
        sys.exit(__doc__)
