"""The Python environment mounted inside the sandbox, at neutral paths.

The interpreter's installation (sys.base_prefix, real path) is mounted read-only at
/opt/python and the virtual environment's `lib` folder (its site-packages, with torch) at
/opt/venv/lib. /opt/venv/pyvenv.cfg is generated (`home = /opt/python/bin`) and
/opt/venv/bin/python is a symlink to /opt/python/bin/pythonX.Y, so inside the sandbox
`/opt/venv/bin/python` is a normal venv interpreter: sys.prefix == "/opt/venv", the venv's
site-packages on sys.path, no host path in sys.path. LD_LIBRARY_PATH=/opt/python/lib lets an
interpreter built with `--enable-shared` and an absolute RUNPATH (pyenv's) find libpython.

bubblewrap runs as the sandbox's host uid and resolves every bind source itself, so each
source must be reachable by that uid. Here the interpreter lives under /root (mode 0700), which
the dedicated sandbox uid cannot traverse: such a source is *staged*, i.e. mirrored once into
the world-traversable state folder (`PARETOBOARD_SANDBOX_STATE_DIR`) as a tree of hard links
(a copy where hard links fail), leaving out the base site-packages (the venv has its own) and
the test suite. The mirror is keyed by the source path and modification times and rebuilt when
those change; files replaced in place by an upgrade need a worker restart.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from worker.sandbox.errors import SandboxUnavailableError
from worker.sandbox.identity import HostIdentity, ensure_dir, state_dir

PYTHON_HOME = "/opt/python"
VENV = "/opt/venv"


@dataclass(frozen=True)
class PythonRuntime:
    """Host sources and inside paths of the Python environment given to the sandbox."""

    base_prefix: Path
    """Host folder mounted at /opt/python (the installation, or its staged mirror)."""
    venv_lib: Path | None
    """Host `<venv>/lib` mounted at /opt/venv/lib; None when not running in a venv."""
    executable: str
    """The interpreter, relative to the installation: "bin/python3.11"."""
    version: str
    """"3.11.7"."""

    @property
    def python(self) -> str:
        """The interpreter's path inside the sandbox."""
        if self.venv_lib is not None:
            return f"{VENV}/bin/python"
        return f"{PYTHON_HOME}/{self.executable}"

    def pyvenv_cfg(self) -> bytes:
        home = f"{PYTHON_HOME}/{os.path.dirname(self.executable)}"
        return (
            f"home = {home}\ninclude-system-site-packages = false\nversion = {self.version}\n"
        ).encode()

    def env(self) -> dict[str, str]:
        return {
            "LD_LIBRARY_PATH": f"{PYTHON_HOME}/lib",
            "PATH": (f"{VENV}/bin:" if self.venv_lib else "")
            + f"{PYTHON_HOME}/bin:/usr/local/bin:/usr/bin:/bin",
        }


def discover_runtime() -> PythonRuntime:
    """The running interpreter and venv, as real host paths."""
    base = Path(os.path.realpath(sys.base_prefix))
    exe = Path(os.path.realpath(sys.executable))
    try:
        rel = exe.relative_to(base)
    except ValueError as exc:
        raise SandboxUnavailableError(
            f"the interpreter {exe} is not inside its installation {base}"
        ) from exc
    venv_lib: Path | None = None
    if os.path.realpath(sys.prefix) != str(base):
        venv_lib = Path(os.path.realpath(os.path.join(sys.prefix, "lib")))
    version = ".".join(str(v) for v in sys.version_info[:3])
    return PythonRuntime(base_prefix=base, venv_lib=venv_lib, executable=str(rel), version=version)


def reachable_by(path: Path, identity: HostIdentity) -> bool:
    """Whether `identity` (no supplementary groups) can traverse to and list `path`."""
    if not identity.switch:
        return os.access(path, os.R_OK | os.X_OK)
    path = Path(os.path.abspath(path))
    chain = [*reversed(path.parents), path]
    for i, p in enumerate(chain):
        try:
            st = os.stat(p)
        except OSError:
            return False
        if st.st_uid == identity.uid:
            bits = (stat.S_IXUSR, stat.S_IRUSR)
        elif st.st_gid == identity.gid:
            bits = (stat.S_IXGRP, stat.S_IRGRP)
        else:
            bits = (stat.S_IXOTH, stat.S_IROTH)
        if stat.S_ISDIR(st.st_mode) and not st.st_mode & bits[0]:
            return False
        if i == len(chain) - 1 and not st.st_mode & bits[1]:
            return False
    return True


_lock = threading.Lock()
_cache: dict[tuple[PythonRuntime, HostIdentity], PythonRuntime] = {}


def runtime_for(identity: HostIdentity) -> PythonRuntime:
    """The runtime with every source reachable by `identity` (staging what is not); cached."""
    found = discover_runtime()
    key = (found, identity)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached.base_prefix.exists():
            return cached
        minor = "python{}.{}".format(*sys.version_info[:2])
        base = found.base_prefix
        if not reachable_by(base, identity):
            skip = {f"lib/{minor}/test"}
            if found.venv_lib is not None:
                skip.add(f"lib/{minor}/site-packages")
            base = stage_tree(found.base_prefix, skip)
        venv_lib = found.venv_lib
        if venv_lib is not None and not reachable_by(venv_lib, identity):
            venv_lib = stage_tree(venv_lib, set())
        result = PythonRuntime(
            base_prefix=base,
            venv_lib=venv_lib,
            executable=found.executable,
            version=found.version,
        )
        for p in (result.base_prefix, result.venv_lib):
            if p is not None and not reachable_by(p, identity):
                raise SandboxUnavailableError(
                    f"{p} is not readable by the sandbox uid {identity.uid}: every folder above "
                    "it needs o+x (set PARETOBOARD_SANDBOX_STATE_DIR to a world-traversable path)"
                )
        _cache[key] = result
        return result


def _stage_key(source: Path, skip: set[str]) -> str:
    """Changes when the top three folder levels change (packages added, removed, upgraded)."""
    h = hashlib.sha256(f"{source}|{sorted(skip)}".encode())

    def visit(rel: str, depth: int) -> None:
        path = source / rel
        h.update(f"{rel}:{path.stat().st_mtime_ns};".encode())
        if depth == 3:
            return
        with os.scandir(path) as entries:
            names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        for name in names:
            child = os.path.normpath(os.path.join(rel, name))
            if child not in skip:
                visit(child, depth + 1)

    visit(".", 0)
    return h.hexdigest()[:20]


def stage_tree(source: Path, skip: set[str]) -> Path:
    """A mirror of `source` in the state folder (hard links, or copies across filesystems).

    File modes are kept, so nothing becomes readable that was not. Earlier mirrors are never
    deleted here (a running sandbox may still have one mounted); remove stale ones by hand.
    """
    try:
        root = ensure_dir(state_dir(), 0o755)
        staged = ensure_dir(root / "staged", 0o755)
        target = staged / f"{source.name}-{_stage_key(source, skip)}"
        if target.is_dir():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=staged))
    except OSError as exc:
        raise SandboxUnavailableError(
            f"could not prepare the sandbox state folder {state_dir()}: {exc}"
        ) from exc
    try:
        _mirror(source, tmp, skip)
        os.chmod(tmp, stat.S_IMODE(source.stat().st_mode))
        try:
            os.rename(tmp, target)
        except OSError as exc:  # another process staged it first
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SandboxUnavailableError(
            f"could not stage {source} for the sandbox into {staged}: {exc}; install Python "
            "and the venv in world-readable folders instead"
        ) from exc
    return target


def _mirror(source: Path, dest: Path, skip: set[str]) -> None:
    for dirpath, dirnames, filenames in os.walk(source):
        rel = os.path.relpath(dirpath, source)
        out = dest if rel == "." else dest / rel
        kept = []
        for d in dirnames:
            rel_d = os.path.normpath(os.path.join(rel, d))
            src_d = os.path.join(dirpath, d)
            if rel_d in skip:
                continue
            if os.path.islink(src_d):
                os.symlink(os.readlink(src_d), out / d)
                continue
            os.mkdir(out / d, 0o700)
            os.chmod(out / d, stat.S_IMODE(os.stat(src_d).st_mode))  # root writes anyway
            kept.append(d)
        dirnames[:] = kept
        for name in filenames:
            src = os.path.join(dirpath, name)
            dst = out / name
            st = os.lstat(src)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISREG(st.st_mode):  # modes are kept: nothing becomes more readable
                try:
                    os.link(src, dst)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise
                    shutil.copy2(src, dst)
