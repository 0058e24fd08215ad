"""The output directory, replaced whole or not at all.

Policies go into a cluster: a run that stops half-way (Ctrl-C, SIGTERM, a full disk, a file-size
limit, a write error) must leave the previous output exactly as it was, and nothing may be
written outside ``--output``. So a run writes into a staging directory beside the target (same
filesystem), with the previous output's files linked in (a run that writes namespace ``a`` keeps
the files of namespace ``b`` it did not write, as writing file by file would), and moves it into
place only at the end: one atomic exchange where Linux has ``renameat2``, else two renames with
SIGINT/SIGTERM held off between them. On any failure the staging directory is removed. An output
directory that is a mount point (a container volume) cannot be renamed: there the staging
directory is inside it and each file is moved into place atomically, one by one.

An existing output directory must look like netpolgen output (namespace directories of
``*.yaml`` files, hidden files such as ``.gitkeep`` at the top): anything else, and any
symbolic link in it, is refused rather than carried over or replaced. ``--output ~`` or an output
with a link to ``/etc`` in it is a mistake, or an attack.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

from netpolgen.errors import OutputError
from netpolgen.k8snames import is_label_name

CLUSTER_DIR = "_cluster"  # cluster-scoped policies (render.CLUSTER_DIR); no namespace is named so

_MAX_CARRIED = 100_000  # files an existing output may hold before it is surely not ours


def check_target(out_dir: str) -> list[tuple[str, str]]:
    """The (relative path, absolute path) of the files of an existing output directory to carry
    over; [] when it does not exist yet. Raises OutputError when it is not netpolgen output."""
    try:
        st = os.lstat(out_dir)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise OutputError(out_dir, None, e.strerror or str(e)) from e
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(out_dir, None, f"is a symbolic link (to {os.readlink(out_dir)}); give the directory it points to")
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(out_dir, None, "exists and is not a directory; --output names a directory (or - for stdout)")
    carried: list[tuple[str, str]] = []
    for entry in _scan(out_dir):
        path = os.path.join(out_dir, entry.name)
        if entry.is_symlink():
            raise OutputError(path, None, f"is a symbolic link (to {os.readlink(path)}); refusing to write through it")
        if entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
            carried.append((entry.name, path))
        elif entry.is_dir(follow_symlinks=False) and (is_label_name(entry.name) or entry.name == CLUSTER_DIR):
            for sub in _scan(path):
                sub_path = os.path.join(path, sub.name)
                if sub.is_symlink():
                    raise OutputError(sub_path, None, f"is a symbolic link (to {os.readlink(sub_path)}); refusing to write through it")
                if not (sub.is_file(follow_symlinks=False) and (sub.name.endswith(".yaml") or sub.name.startswith("."))):
                    raise OutputError(sub_path, None, "is not a policy file netpolgen writes; refusing to replace the"
                                      " output directory holding it (choose an empty or new directory)")
                carried.append((os.path.join(entry.name, sub.name), sub_path))
        else:
            raise OutputError(path, None, "is not a namespace directory netpolgen writes; refusing to replace the"
                              " output directory holding it (choose an empty or new directory)")
        if len(carried) > _MAX_CARRIED:
            raise OutputError(out_dir, None, f"holds more than {_MAX_CARRIED} files; is it really an output directory?")
    return carried


def _scan(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise OutputError(path, None, e.strerror or str(e)) from e


@contextmanager
def staged(out_dir: str) -> Iterator[str]:
    """A staging directory for ``out_dir``: yields its path, holding the previous output's files
    (linked); when the block ends normally it replaces ``out_dir``, when it raises (anything,
    Ctrl-C included) it is removed and ``out_dir`` is untouched."""
    target = os.path.abspath(out_dir)
    carried = check_target(target)
    # A mount point (a container's volume) cannot be renamed: the staging directory goes inside
    # it, and the files move into place one by one, each atomically (the run as a whole is not).
    inside = os.path.isdir(target) and os.path.ismount(target)
    parent = target if inside else os.path.dirname(target)
    try:
        os.makedirs(parent, exist_ok=True)
        prefix = ".netpolgen-staging-" if inside else f".{os.path.basename(target)}.netpolgen-"
        stage = tempfile.mkdtemp(prefix=prefix, dir=parent)
    except OSError as e:
        raise OutputError(out_dir, None, f"cannot create a directory beside it: {e.strerror or e}") from e
    try:
        if not inside:
            rel = ""
            try:
                for rel, src in carried:
                    _carry(src, os.path.join(stage, rel))
            except OSError as e:
                raise OutputError(os.path.join(out_dir, rel), None, f"cannot carry over: {e.strerror or e}") from e
        yield stage
        if inside:
            _move_files_in(stage, target)
        else:
            _swap_in(stage, target, exists=os.path.lexists(target))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _move_files_in(stage: str, target: str) -> None:
    with _signals_held():
        try:
            for root, _dirs, files in os.walk(stage):
                rel = os.path.relpath(root, stage)
                for name in files:
                    dest_dir = os.path.normpath(os.path.join(target, rel))
                    os.makedirs(dest_dir, exist_ok=True)
                    os.replace(os.path.join(root, name), os.path.join(dest_dir, name))
            shutil.rmtree(stage)
            _fsync_dir(target)
        except OSError as e:
            raise OutputError(target, None, f"cannot move the new output into place: {e.strerror or e}") from e


def _carry(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)  # the same file: new ones are written beside, never into it
    except OSError:
        shutil.copy2(src, dst)


def _swap_in(stage: str, target: str, exists: bool) -> None:
    with _signals_held():
        try:
            if not exists:
                os.rename(stage, target)
            elif _exchange(stage, target):
                shutil.rmtree(stage)  # now the previous output
            else:
                old = stage + ".old"
                os.rename(target, old)
                os.rename(stage, target)
                shutil.rmtree(old)
            _fsync_dir(os.path.dirname(target))
        except OSError as e:
            raise OutputError(target, None, f"cannot move the new output into place: {e.strerror or e}") from e


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux renameat2); False where that is not available."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (38, 22, 95):  # ENOSYS, EINVAL, EOPNOTSUPP: the kernel or filesystem cannot
        return False
    raise OSError(err, os.strerror(err))


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (only the main thread can hold them)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
