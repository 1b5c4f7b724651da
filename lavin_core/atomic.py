"""Writes that a reader sees whole or not at all: a temporary name first, then one rename.

    write_bytes("out/depth.png", data)              # a file: temp file in the same folder, fsync, rename
    with atomic_folder("runs/x/export") as tmp:     # a folder: filled under a hidden temp name,
        save_into(tmp)                              # renamed into place when the block ends

A ``kill -9`` at any moment leaves either the old content (or nothing) or the new content under
the final name; the temporary names start with ``.tmp-`` and are hidden from listings that skip
dot files. Local paths get the full guarantee (POSIX ``rename`` is atomic within one file system,
and the data is fsynced before it). fsspec URLs get what the store offers: object stores (s3,
gcs) put one object atomically, so a file is atomic; a folder there is several objects, and
``atomic_folder`` writes every file of it to its final key with the files listed in ``last``
(``config.json`` for a ``save_pretrained`` folder, which every reader opens first) written last.

This module sits with the shared vocabulary (it imports nothing of LaVin) so that checkpoints,
data, training and evaluation all write the same way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence

import fsspec
from fsspec.implementations.local import LocalFileSystem

#: Prefix of every temporary name: hidden, and recognisable as debris of an interrupted write.
TEMP_PREFIX = ".tmp-"


def temporary_name(path: str | os.PathLike) -> str:
    """A fresh hidden sibling of ``path`` (same folder, so a rename onto ``path`` stays on one file system)."""
    path = os.fspath(path).rstrip("/")
    folder, _, name = path.rpartition("/")
    hidden = f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}"
    return f"{folder}/{hidden}" if folder else hidden


def _fsync_folder(folder: str) -> None:
    # The rename itself must reach the disk too; without this a power cut could undo it.
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def write_bytes(url: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to the file at ``url`` (local path or fsspec URL) atomically, replacing any file there."""
    fs, path = fsspec.core.url_to_fs(os.fspath(url))
    write_bytes_to(fs, path, data)


def write_bytes_to(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """``write_bytes`` on a file system already opened (``path`` without its protocol)."""
    folder = path.rstrip("/").rpartition("/")[0]
    if folder:
        fs.makedirs(folder, exist_ok=True)
    if not _is_local(fs):
        temporary = temporary_name(path)
        fs.pipe_file(temporary, data)
        fs.mv(temporary, path)
        return
    _replace_local(path, lambda temporary: _write_all(temporary, data))


def _write_all(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _replace_local(path: str, write: Callable[[str], None]) -> None:
    """``write`` a hidden sibling of the local ``path``, fsync it, rename it onto ``path``, fsync
    the folder; on any failure the sibling goes and whatever was at ``path`` stays."""
    temporary = temporary_name(path)
    try:
        write(temporary)
        _fsync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(path.rstrip("/").rpartition("/")[0])


def write_file(url: str | os.PathLike, write: Callable[[str], None]) -> None:
    """``write(local_path)`` makes the file (a writer that needs a real path: ffmpeg), which then
    appears at ``url`` atomically: locally under a hidden sibling name, fsynced and renamed; on an
    fsspec URL made in a local scratch folder, uploaded under a temporary name and moved. The
    temporary name ends with the final one, so a writer that reads the extension still sees it."""
    fs, path = fsspec.core.url_to_fs(os.fspath(url))
    folder = path.rstrip("/").rpartition("/")[0]
    if _is_local(fs):
        if folder:
            os.makedirs(folder, exist_ok=True)
        _replace_local(path, write)
        return
    temporary = temporary_name(path)
    with tempfile.TemporaryDirectory() as scratch:
        local = os.path.join(scratch, temporary.rpartition("/")[2])
        write(local)
        if folder:
            fs.makedirs(folder, exist_ok=True)
        fs.put_file(local, temporary)
        fs.mv(temporary, path)


def write_text(url: str | os.PathLike, text: str) -> None:
    """``write_bytes`` of ``text`` in UTF-8."""
    write_bytes(url, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_folder(url: str | os.PathLike, *, last: Sequence[str] = ()) -> Iterator[str]:
    """Yield a temporary folder to fill; on success it replaces the folder ``url`` in one rename.

    Locally an existing folder at ``url`` is moved aside first and deleted after the new one is in
    place, so at every instant ``url`` is the complete old folder, the complete new one, or absent
    (never a mix). Entries of the old folder that the block did not write are carried over (hard
    links where possible), so replacing a folder loses nothing else that was in it. On an error inside the block the temporary folder is removed and ``url`` is
    untouched. For fsspec URLs other than local ones the yielded path is a local temporary folder
    whose files are uploaded to ``url`` afterwards, the names in ``last`` after all others.
    """
    fs, path = fsspec.core.url_to_fs(os.fspath(url))
    path = path.rstrip("/")
    if _is_local(fs):
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if os.path.exists(path) and not os.path.isdir(path):
            raise NotADirectoryError(f"{url} is a file, not a folder; remove it or choose another path")
        temporary = temporary_name(path)
        os.makedirs(temporary)
        try:
            yield temporary
            _carry_over(path, temporary)
            for name in os.listdir(temporary):
                _fsync_file(os.path.join(temporary, name))
            _fsync_folder(temporary)
            _replace_folder(temporary, path)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        _fsync_folder(parent)
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as local:
        yield local
        names = sorted(os.listdir(local), key=lambda n: (n in last, last.index(n) if n in last else 0, n))
        fs.makedirs(path, exist_ok=True)
        for name in names:
            with open(os.path.join(local, name), "rb") as f:
                write_bytes_to(fs, f"{path}/{name}", f.read())


def _carry_over(old: str, new: str) -> None:
    """Link (or copy) into ``new`` every entry of the folder ``old`` that ``new`` lacks."""
    try:
        names = os.listdir(old) if os.path.isdir(old) else []
    except FileNotFoundError:
        return
    written = set(os.listdir(new))
    for name in names:
        if name in written or name.startswith(TEMP_PREFIX):
            continue
        source, target = os.path.join(old, name), os.path.join(new, name)
        try:
            if os.path.isdir(source) and not os.path.islink(source):
                shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
            else:
                _link_or_copy(source, target)
        except FileNotFoundError:  # a concurrent writer replaced the old folder meanwhile
            continue


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def _fsync_file(path: str) -> None:
    if os.path.isfile(path):
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def _replace_folder(new: str, path: str) -> None:
    """Rename ``new`` onto ``path``; an existing folder there is moved aside, then deleted.

    Two writers racing on one folder both succeed, one after the other: a rename that finds
    another writer's folder freshly in place goes around again.
    """
    for _ in range(100):
        aside = None
        if os.path.lexists(path):
            aside = temporary_name(path)
            try:
                os.rename(path, aside)
            except FileNotFoundError:  # another writer moved it aside first
                aside = None
        try:
            os.rename(new, path)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                if aside is not None:
                    os.rename(aside, path)  # put the old folder back: never leave nothing where something was
                raise
            if aside is not None:  # another writer's complete folder landed meanwhile; ours goes next
                shutil.rmtree(aside, ignore_errors=True)
            continue
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        return
    raise OSError(f"could not move {new} to {path}: other writers kept replacing it")
