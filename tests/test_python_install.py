"""Wheels installed into the image's venv as layer entries (jib.python.venv, jib.python.install).

Wheels are made by ``make_wheel`` here (also used by test_python_layers.py), so these tests need
no network and can build the odd cases (``.data`` dirs, corrupt RECORDs) real wheels rarely have.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import logging
import marshal
import py_compile
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

import pytest

from jib.errors import JibError
from jib.image.descriptor import Platform
from jib.layers import EXECUTABLE_MODE, FILE_MODE, EntryKind, LayerEntry
from jib.python import install as install_mod
from jib.python.install import Spool, can_precompile, install_wheels
from jib.python.target import TargetPython
from jib.python.venv import VenvLayout, pyvenv_cfg, venv_entries

SITE = "/app/.venv/lib/python3.11/site-packages"
HOST_311 = sys.implementation.cache_tag == "cpython-311"


def target(version: tuple[int, int, int] = (3, 11, 2), arch: str = "amd64") -> TargetPython:
    return TargetPython(
        platform=Platform("linux", arch),
        version=version,
        executable=f"/usr/bin/python{version[0]}.{version[1]}",
        libc=("glibc", (2, 36)),
    )


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def make_wheel(
    directory: Path,
    name: str,
    version: str = "1.0",
    files: Mapping[str, bytes] | None = None,
    *,
    tag: str = "py3-none-any",
    purelib: bool = True,
    entry_points: str = "",
    executables: frozenset[str] = frozenset(),
    requires: tuple[str, ...] = (),
    corrupt: str | None = None,
) -> Path:
    """A valid wheel (WHEEL, METADATA, RECORD with hashes); ``corrupt`` names a file whose
    content is changed after its RECORD hash was taken."""
    dist = f"{name.replace('-', '_')}-{version}"
    content = dict(files or {f"{name.replace('-', '_')}/__init__.py": b"VALUE = 1\n"})
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {req}\n" for req in requires)
    content[f"{dist}.dist-info/METADATA"] = meta.encode()
    content[f"{dist}.dist-info/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: {str(purelib).lower()}\n"
        f"Tag: {tag}\n"
    ).encode()
    if entry_points:
        content[f"{dist}.dist-info/entry_points.txt"] = entry_points.encode()
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in content.items():
        writer.writerow([path, _record_hash(data), len(data)])
    writer.writerow([f"{dist}.dist-info/RECORD", "", ""])
    content[f"{dist}.dist-info/RECORD"] = record.getvalue().encode()
    if corrupt is not None:
        content[corrupt] = content[corrupt] + b"# tampered\n"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in content.items():
            info = zipfile.ZipInfo(member, (2020, 2, 2, 0, 0, 0))
            info.external_attr = (0o100755 if member in executables else 0o100644) << 16
            archive.writestr(info, data)
    return path


def by_path(entries: list[LayerEntry]) -> dict[str, LayerEntry]:
    return {entry.path: entry for entry in entries}


def content(entry: LayerEntry) -> bytes:
    source = entry.source
    return source if isinstance(source, bytes) else Path(str(source)).read_bytes()


def install(tmp_path: Path, wheels: list[Path], **kwargs: object) -> dict[str, LayerEntry]:
    layout = VenvLayout(kwargs.pop("target", target()), kwargs.pop("app_root", "/app"))  # type: ignore[arg-type]
    return by_path(install_wheels(wheels, layout, Spool(tmp_path / "spool"), **kwargs))  # type: ignore[arg-type]


# --- the venv skeleton ---------------------------------------------------------------------


def test_venv_skeleton_points_at_the_base_interpreter() -> None:
    entries = venv_entries(target(), "/app")
    assert [e.path for e in entries] == sorted(e.path for e in entries)
    links = {e.path: e.link_target for e in entries if e.kind is EntryKind.SYMLINK}
    assert links == {
        "/app/.venv/bin/python": "python3.11",
        "/app/.venv/bin/python3": "python3.11",
        "/app/.venv/bin/python3.11": "/usr/bin/python3.11",
        "/app/.venv/lib64": "lib",
    }
    cfg = by_path(entries)["/app/.venv/pyvenv.cfg"]
    assert content(cfg).decode().splitlines() == [
        "home = /usr/bin",
        "include-system-site-packages = false",
        "version = 3.11.2",
        "executable = /usr/bin/python3.11",
    ]
    dirs = {e.path for e in entries if e.kind is EntryKind.DIRECTORY}
    assert SITE in dirs and "/app/.venv/bin" in dirs
    assert venv_entries(target(), "/app") == entries  # deterministic


def test_venv_skeleton_follows_app_root_and_version() -> None:
    t = TargetPython(
        Platform("linux", "arm64"), (3, 12, 7), "/usr/local/bin/python3", ("musl", (1, 2))
    )
    paths = {e.path for e in venv_entries(t, "/srv/app/")}
    assert "/srv/app/.venv/lib/python3.12/site-packages" in paths
    assert "/srv/app/.venv/bin/python3.12" in paths
    assert pyvenv_cfg(t).startswith(b"home = /usr/local/bin\n")


@pytest.mark.parametrize("root", ["/my app", "/" + "x" * 120, "relative"])
def test_unusable_app_root_is_refused(root: str) -> None:
    with pytest.raises(JibError, match=r"app-root|absolute"):
        venv_entries(target(), root)


# --- installing wheels ---------------------------------------------------------------------


def test_pure_wheel_layout_record_installer_and_scripts(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "w",
        "demo-pkg",
        "2.0",
        {
            "demo_pkg/__init__.py": b"def main():\n    print('hi')\n",
            "demo_pkg/data/info.txt": b"data\n",
            "demo_pkg-2.0.data/scripts/legacy": b"#!python\nprint('legacy')\n",
            "demo_pkg-2.0.data/data/share/demo/readme.txt": b"shared\n",
            "demo_pkg-2.0.data/headers/demo.h": b"int x;\n",
            "demo_pkg-2.0.data/purelib/demo_extra.py": b"X = 2\n",
        },
        entry_points=(
            "[console_scripts]\ndemo = demo_pkg:main\n[gui_scripts]\ndemo-gui = demo_pkg:main\n"
        ),
    )
    files = install(tmp_path, [wheel], compile_bytecode=False)

    assert content(files[f"{SITE}/demo_pkg/__init__.py"]).startswith(b"def main")
    assert f"{SITE}/demo_pkg/data/info.txt" in files
    assert f"{SITE}/demo_extra.py" in files  # .data/purelib -> site-packages
    assert content(files["/app/.venv/share/demo/readme.txt"]) == b"shared\n"
    assert "/app/.venv/include/site/python3.11/demo_pkg/demo.h" in files
    assert not any(".data/" in path for path in files)

    script = files["/app/.venv/bin/demo"]
    assert script.mode == EXECUTABLE_MODE
    text = content(script).decode()
    assert text.startswith("#!/app/.venv/bin/python\n")
    assert "from demo_pkg import main" in text
    assert content(files["/app/.venv/bin/demo-gui"]).startswith(b"#!/app/.venv/bin/python\n")
    legacy = files["/app/.venv/bin/legacy"]
    assert content(legacy) == b"#!/app/.venv/bin/python\nprint('legacy')\n"
    assert legacy.mode == EXECUTABLE_MODE  # scripts run by name, whatever the zip said

    dist_info = f"{SITE}/demo_pkg-2.0.dist-info"
    assert content(files[f"{dist_info}/INSTALLER"]) == b"pyjib\n"
    rows = list(csv.reader(io.StringIO(content(files[f"{dist_info}/RECORD"]).decode())))
    recorded = {row[0]: row for row in rows}
    assert recorded["demo_pkg-2.0.dist-info/RECORD"][1:] == ["", ""]
    assert "../../../bin/demo" in recorded and "../../../share/demo/readme.txt" in recorded
    assert "../../../include/site/python3.11/demo_pkg/demo.h" in recorded
    # Every file installed is in RECORD with the hash of what was installed (shebang included).
    for path, entry in files.items():
        if path.startswith(SITE):
            rel = path[len(SITE) + 1 :]
        else:
            rel = "../../../" + path[len("/app/.venv/") :]
        assert rel in recorded, rel
        if not rel.endswith("RECORD"):
            assert recorded[rel][1] == _record_hash(content(entry))
            assert int(recorded[rel][2]) == len(content(entry))
    assert all(e.mode in (FILE_MODE, EXECUTABLE_MODE) for e in files.values())


def test_native_wheel_goes_to_platlib_with_executable_bits(tmp_path: Path) -> None:
    so = b"\x7fELF" + bytes(60)
    wheel = make_wheel(
        tmp_path / "w",
        "fastlib",
        "0.3",
        {
            "fastlib/__init__.py": b"from ._speed import f\n",
            "fastlib/_speed.cpython-311-x86_64-linux-gnu.so": so,
            "fastlib-0.3.data/platlib/fastlib_plugin.py": b"P = 1\n",
        },
        tag="cp311-cp311-manylinux_2_17_x86_64",
        purelib=False,
        executables=frozenset({"fastlib/_speed.cpython-311-x86_64-linux-gnu.so"}),
    )
    files = install(tmp_path, [wheel], compile_bytecode=False)
    lib = files[f"{SITE}/fastlib/_speed.cpython-311-x86_64-linux-gnu.so"]
    assert content(lib) == so and lib.mode == EXECUTABLE_MODE
    assert files[f"{SITE}/fastlib/__init__.py"].mode == FILE_MODE
    assert f"{SITE}/fastlib_plugin.py" in files
    assert (
        content(files[f"{SITE}/fastlib-0.3.dist-info/WHEEL"]).find(b"Root-Is-Purelib: false") >= 0
    )


def test_big_files_are_spooled_to_disk_not_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(install_mod, "MEMORY_FILE_LIMIT", 1000)
    big = bytes(range(256)) * 40
    wheel = make_wheel(tmp_path / "w", "big", files={"big/__init__.py": b"", "big/blob.bin": big})
    files = install(tmp_path, [wheel], compile_bytecode=False)
    blob = files[f"{SITE}/big/blob.bin"]
    assert isinstance(blob.source, Path) and blob.source.parent == tmp_path / "spool"
    assert blob.source.read_bytes() == big
    assert isinstance(files[f"{SITE}/big/__init__.py"].source, bytes)


def test_later_wheel_wins_on_overlap_whatever_the_order(tmp_path: Path) -> None:
    a = make_wheel(tmp_path / "w", "aaa", files={"ns/__init__.py": b"# from aaa\n", "ns/a.py": b""})
    b = make_wheel(tmp_path / "w", "bbb", files={"ns/__init__.py": b"# from bbb\n", "ns/b.py": b""})
    one = install(tmp_path, [a, b], compile_bytecode=False)
    two = install(tmp_path, [b, a], compile_bytecode=False)
    assert content(one[f"{SITE}/ns/__init__.py"]) == b"# from bbb\n"
    assert [(p, content(e)) for p, e in one.items()] == [(p, content(e)) for p, e in two.items()]


def test_corrupt_wheel_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "bad", corrupt="bad/__init__.py")
    with pytest.raises(JibError, match=r"bad-1.0-py3-none-any.whl is corrupt: bad/__init__.py"):
        install(tmp_path, [wheel])


def test_not_a_wheel_is_a_one_line_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake-1.0-py3-none-any.whl"
    fake.write_bytes(b"not a zip")
    with pytest.raises(JibError, match=r"cannot install wheel fake-1\.0-py3-none-any\.whl"):
        install(tmp_path, [fake])


# --- bytecode ------------------------------------------------------------------------------

MODULE = b"import os\n\ndef where():\n    return __file__\n\nVALUES = {'a', 'b', 'c'}\n"


@pytest.mark.skipif(not HOST_311, reason="needs a CPython 3.11 host to match the 3.11 target")
def test_bytecode_compiled_when_cache_tags_match(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "w",
        "mod",
        files={"mod/__init__.py": MODULE, "mod/py2.py": b"print 'python 2'\n"},
    )
    files = install(tmp_path, [wheel], compile_bytecode=True)
    pyc = files[f"{SITE}/mod/__pycache__/__init__.cpython-311.pyc"]
    data = content(pyc)
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, unchecked
    code = marshal.loads(data[16:])
    assert code.co_filename == f"{SITE}/mod/__init__.py"  # tracebacks show in-image paths
    # The Python 2 file does not compile and is skipped, as compileall would.
    assert f"{SITE}/mod/__pycache__/py2.cpython-311.pyc" not in files
    rows = content(files[f"{SITE}/mod-1.0.dist-info/RECORD"]).decode().splitlines()
    assert "mod/__pycache__/__init__.cpython-311.pyc,," in rows


@pytest.mark.skipif(not HOST_311, reason="needs a CPython 3.11 host to match the 3.11 target")
def test_no_stale_pyc_when_a_later_wheel_replaces_a_module(tmp_path: Path) -> None:
    a = make_wheel(tmp_path / "w", "aaa", files={"ns/mod.py": b"X = 1\n"})
    b = make_wheel(tmp_path / "w", "bbb", files={"ns/mod.py": b"X = (\n"})
    files = install(tmp_path, [a, b], compile_bytecode=True)
    assert content(files[f"{SITE}/ns/mod.py"]) == b"X = (\n"
    assert f"{SITE}/ns/__pycache__/mod.cpython-311.pyc" not in files


def test_bytecode_skipped_when_cache_tags_differ(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = (3, 12, 1) if HOST_311 else (3, 11, 2)
    assert not can_precompile(target(other))
    wheel = make_wheel(tmp_path / "w", "mod", files={"mod/__init__.py": MODULE})
    with caplog.at_level(logging.DEBUG, logger="jib.python.install"):
        files = install(tmp_path, [wheel], target=target(other), compile_bytecode=True)
    assert not any(path.endswith(".pyc") for path in files)
    site = f"/app/.venv/lib/python{other[0]}.{other[1]}/site-packages"
    assert b"__pycache__" not in content(files[f"{site}/mod-1.0.dist-info/RECORD"])
    assert "not precompiling bytecode" in caplog.text


def py_compiled(tmp_path: Path, mode: py_compile.PycInvalidationMode) -> bytes:
    """What ``py_compile`` writes for ``MODULE`` as ``/app/m.py``."""
    source = tmp_path / "m.py"
    source.write_bytes(MODULE)
    cfile = tmp_path / "m.pyc"
    py_compile.compile(
        str(source),
        cfile=str(cfile),
        dfile="/app/m.py",
        doraise=True,
        invalidation_mode=mode,
        optimize=0,
    )
    return cfile.read_bytes()


# -- bytecode from clean processes --------------------------------------------------------------

_DIGEST_OF_CLICK_PYCS = """
import hashlib, importlib.util, marshal, pathlib, sys
from contextlib import closing
from jib.python.bytecode import BytecodeCompiler
root = pathlib.Path(importlib.util.find_spec("click").origin).parent
files = sorted(root.rglob("*.py"))
if sys.argv[2] == "loaded":
    import click, httpx, rich.console  # what a Hatch or Poetry process may hold
items = [(f.read_bytes(), "/app/.venv/lib/python3.11/site-packages/click/" + f.name) for f in files]
if sys.argv[1] == "workers":
    with closing(BytecodeCompiler()) as compiler:
        pycs = compiler.compile_many(items, checked=False)
else:  # what py_compile does, in this process
    flags = (0b01).to_bytes(4, "little")
    pycs = [
        importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(source)
        + marshal.dumps(compile(source, dfile, "exec", dont_inherit=True, optimize=0))
        for source, dfile in items
    ]
print(hashlib.sha256(b"".join(p or b"-" for p in pycs)).hexdigest())
"""


def _click_pycs(how: str, state: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", _DIGEST_OF_CLICK_PYCS, how, state],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_bytecode_does_not_depend_on_what_the_building_process_has_imported() -> None:
    # The in-process way: the same sources, other bytes once click, httpx and rich are loaded.
    assert _click_pycs("in-process", "fresh") != _click_pycs("in-process", "loaded")
    # pyjib's workers: the same bytes whatever the parent process holds.
    assert _click_pycs("workers", "fresh") == _click_pycs("workers", "loaded")


@pytest.mark.parametrize("checked", [False, True])
def test_workers_write_what_py_compile_writes(tmp_path: Path, checked: bool) -> None:
    from jib.python.bytecode import BytecodeCompiler

    mode = py_compile.PycInvalidationMode
    expected = py_compiled(tmp_path, mode.CHECKED_HASH if checked else mode.UNCHECKED_HASH)
    items = [(MODULE, "/app/m.py"), (b"def (:\n", "/app/bad.py")] * 3  # more files than workers
    with closing(BytecodeCompiler()) as compiler:
        pycs = compiler.compile_many(items, checked=checked)
    assert pycs == [expected, None] * 3


def test_a_worker_that_dies_is_one_line_and_leaves_no_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jib.python import bytecode

    monkeypatch.setattr(bytecode, "_WORKER", "import sys; sys.stdin.buffer.read(9); sys.exit(3)")
    compiler = bytecode.BytecodeCompiler()
    with pytest.raises(JibError) as err:
        compiler.compile_many([(MODULE, "/app/m.py")] * 6, checked=False)
    assert "stopped unexpectedly" in str(err.value) and "\n" not in str(err.value)
    workers = [w for w in compiler._workers if w is not None]
    compiler.close()
    assert workers and all(w.returncode is not None for w in workers)
