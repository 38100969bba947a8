"""Where exports live: one immutable version folder per export, and a `latest` link to the newest.

    exported/<name>/v1/{encoder,decoder,model}.onnx, manifest.json
    exported/<name>/v2/...
    exported/<name>/latest -> v2

An export is assembled in a hidden staging folder beside the versions and becomes `v<N>` in one
rename, so a folder named `v<N>` is always complete; `latest` is then re-pointed by replacing it
with a new symlink (`os.replace`, atomic). A crash at any point leaves `latest` on the previous
complete version. `latest` is a relative symlink (POSIX; the project already relies on `fcntl`),
so the whole `exported/<name>` folder can be moved or copied with `cp -a`; archivers that follow
links store the newest version twice.

Standard library only: the onnxruntime-only runtime resolves folders with it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

LATEST = "latest"
MANIFEST_NAME = "manifest.json"
_VERSION = re.compile(r"^v(\d+)$")
_STAGING_PREFIX = ".staging-"


def versions(root: Path) -> list[tuple[int, Path]]:
    """(number, folder) of every version under `exported/<name>`, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m[1]), p) for p in root.iterdir() if (m := _VERSION.match(p.name)) and p.is_dir()]
    return sorted(found)


def fsync_path(path: Path) -> None:
    """Flush a file's or folder's contents to disk, so a rename after it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One writer at a time re-points `latest` or prunes (two exports of one name may finish together)."""
    with (root / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def new_staging(root: Path) -> Path:
    """A private, hidden folder under `exported/<name>` to assemble one export in."""
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(root)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f"{_STAGING_PREFIX}{os.getpid()}-"))
    # mkdtemp makes the folder private (0700); a version folder must be readable as any other
    # folder the user creates (a server or container running as another user loads it).
    staging.chmod(0o777 & ~_umask())
    return staging


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask is process-wide,
    and exports run in threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_abandoned_staging(root: Path) -> None:
    """Staging folders of processes that no longer exist (killed mid-export) are removed."""
    for path in root.glob(f"{_STAGING_PREFIX}*"):
        pid = path.name.removeprefix(_STAGING_PREFIX).split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(staging: Path, root: Path, keep: int | None = None) -> Path:
    """Rename the complete `staging` folder to the next `v<N>`, point `latest` at the newest version,
    and, with `keep`, remove all but the newest `keep` versions. Returns the version folder."""
    fsync_path(staging)
    while True:
        found = versions(root)
        target = root / f"v{found[-1][0] + 1 if found else 1}"
        try:
            # One rename; it fails when a concurrent export of the same name took this number first.
            os.rename(staging, target)
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            continue
        break
    with _locked(root):
        newest = [p for _, p in versions(root) if (p / MANIFEST_NAME).is_file()][-1]
        link = root / f".{LATEST}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(newest.name, link)
        os.replace(link, root / LATEST)
        fsync_path(root)
        if keep is not None:
            for _, old in versions(root)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    return target


class LayoutError(ValueError):
    """The export folder's layout is broken (a `latest` link to nothing, versions without `latest`)."""


def resolve_export(folder: Path) -> Path:
    """The concrete folder to load: `latest`'s target (resolved once, so a concurrent export cannot
    mix two versions), a version folder itself, or an old flat export (manifest.json at the top)."""
    if folder.is_symlink():  # `exported/<name>/latest` given directly: pin the version it names now
        folder = folder.resolve()
    latest = folder / LATEST
    if latest.is_symlink() or latest.exists():
        target = latest.resolve()
        if not (target / MANIFEST_NAME).is_file():
            raise LayoutError(
                f"{latest} points at {target}, which holds no {MANIFEST_NAME}; re-export the model or "
                f"point {LATEST} at a complete version ({', '.join(p.name for _, p in versions(folder))})"
            )
        return target
    if (folder / MANIFEST_NAME).is_file():
        return folder
    found = versions(folder)
    if found:
        raise LayoutError(
            f"{folder} has versions ({', '.join(p.name for _, p in found)}) but no {LATEST} link; load a "
            f"version folder, e.g. {found[-1][1]}, or re-export"
        )
    return folder
