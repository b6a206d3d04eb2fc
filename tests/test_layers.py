"""The layer builder: entries, the tar it writes, the gzip around it, and how it fails."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

from jib.errors import JibError
from jib.image.layer import Layer
from jib.image.mediatypes import OCI_LAYER_GZIP
from jib.layers import (
    EPOCH_PLUS_SECOND,
    MEMBER_SIZE,
    BuiltLayer,
    Compression,
    DuplicateEntryError,
    EntryKind,
    LayerEntry,
    LayerPathError,
    build_layer,
    entries_from_tree,
    normalize_target,
)
from jib.layers import builder as builder_module
from jib.layers import tar as tar_module
from jib.layers.compress import GZIP_HEADER, gzip_writer


def members(layer: BuiltLayer) -> list[tarfile.TarInfo]:
    with tarfile.open(layer.path, "r:gz") as tf:
        return tf.getmembers()


def names(layer: BuiltLayer) -> list[str]:
    return [m.name for m in members(layer)]


def gzip_members(data: bytes) -> list[bytes]:
    """The raw gzip members of ``data``, split by decompressing one after another."""
    found = []
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        d.decompress(data)
        assert d.eof
        found.append(data[: len(data) - len(d.unused_data)])
        data = d.unused_data
    return found


# --- entries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [("/app", "/app"), ("/app/", "/app"), ("//app/./x//y", "/app/x/y"), ("/é/ü", "/é/ü")],
)
def test_target_paths_are_normalized(given: str, expected: str) -> None:
    assert normalize_target(given) == expected


@pytest.mark.parametrize("bad", ["app/x", "/app/../etc/passwd", "/a\0b", "", "/x/.."])
def test_bad_target_paths_are_refused_in_one_line(bad: str) -> None:
    with pytest.raises(LayerPathError) as err:
        LayerEntry.data(b"x", bad)
    assert "\n" not in str(err.value)


def test_root_itself_and_bad_metadata_are_refused() -> None:
    with pytest.raises(LayerPathError, match="'/' itself"):
        LayerEntry.directory("/")
    with pytest.raises(LayerPathError, match="mode"):
        LayerEntry.data(b"", "/x", mode=0o10000)
    with pytest.raises(LayerPathError, match="uid"):
        LayerEntry.data(b"", "/x", uid=-1)
    with pytest.raises(LayerPathError, match="symlink"):
        LayerEntry.symlink("/x", "")


def test_file_mode_follows_only_the_owner_execute_bit(tmp_path: Path) -> None:
    plain, script = tmp_path / "plain", tmp_path / "script"
    plain.write_text("x")
    script.write_text("#!/bin/sh\n")
    plain.chmod(0o600)
    script.chmod(0o700)
    assert LayerEntry.file(plain, "/a").mode == 0o644
    assert LayerEntry.file(script, "/b").mode == 0o755
    assert LayerEntry.file(script, "/c", mode=0o640).mode == 0o640
    with pytest.raises(JibError, match="is a directory"):
        LayerEntry.file(tmp_path, "/d")
    with pytest.raises(JibError, match="cannot read"):
        LayerEntry.file(tmp_path / "missing", "/e")


def test_entries_from_tree_keeps_symlinks_and_empty_dirs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg" / "empty").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("print()\n")
    (src / "pkg" / "link").symlink_to("mod.py")
    (src / "dangling").symlink_to("/nowhere/at/all")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    entries = {e.path: e for e in entries_from_tree(src, "/app")}
    assert entries["/app"].kind is EntryKind.DIRECTORY
    assert entries["/app/pkg/empty"].kind is EntryKind.DIRECTORY
    assert entries["/app/pkg/link"].link_target == "mod.py"
    assert entries["/app/dangling"].link_target == "/nowhere/at/all"
    assert entries["/app/run.sh"].mode == 0o755
    assert entries["/app/pkg/mod.py"].mode == 0o644


def test_entries_from_tree_mode_for_overrides(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_text("x")

    def mode_for(path: str, kind: EntryKind) -> int | None:
        if path.startswith("/srv/bin/") and kind is EntryKind.FILE:
            return 0o750
        return 0o700 if kind is EntryKind.DIRECTORY else None

    entries = {e.path: e for e in entries_from_tree(tmp_path, "/srv", mode_for=mode_for)}
    assert entries["/srv/bin/tool"].mode == 0o750
    assert entries["/srv/bin"].mode == 0o700


def test_entries_from_tree_refuses_fifos(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(JibError, match=r"pipe is a socket, FIFO or device"):
        entries_from_tree(tmp_path, "/x")


# --- the tar ---------------------------------------------------------------------------------


def test_entries_are_sorted_with_parents_added(tmp_path: Path) -> None:
    layer = build_layer(
        [
            LayerEntry.data(b"b", "/app/z/b.txt"),
            LayerEntry.data(b"a", "/app/a-b"),
            LayerEntry.data(b"c", "/app/a/c.txt"),
            LayerEntry.symlink("/usr/local/bin/app", "/app/a/c.txt"),
        ],
        tmp_path,
    )
    assert names(layer) == [
        "app",
        "app/a",
        "app/a/c.txt",
        "app/a-b",
        "app/z",
        "app/z/b.txt",
        "usr",
        "usr/local",
        "usr/local/bin",
        "usr/local/bin/app",
    ]
    by_name = {m.name: m for m in members(layer)}
    assert by_name["usr/local"].isdir() and by_name["usr/local"].mode == 0o755
    assert by_name["usr/local/bin/app"].issym()
    assert by_name["usr/local/bin/app"].linkname == "/app/a/c.txt"


def test_metadata_is_normalized_and_nothing_of_the_host_leaks(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"hello")
    os.chown(src, 1234, 5678)
    os.utime(src, (1_700_000_000, 1_700_000_000))
    custom = LayerEntry.data(b"x", "/etc/custom", mode=0o600, uid=1000, gid=1001, mtime=99)
    layer = build_layer([LayerEntry.file(src, "/app/f"), custom], tmp_path / "out")
    by_name = {m.name: m for m in members(layer)}
    for m in by_name.values():
        assert (m.uname, m.gname, m.devmajor, m.devminor) == ("", "", 0, 0)
        assert m.pax_headers == {}
    f = by_name["app/f"]
    assert (f.mode, f.uid, f.gid, f.mtime, f.size) == (0o644, 0, 0, EPOCH_PLUS_SECOND, 5)
    c = by_name["etc/custom"]
    assert (c.mode, c.uid, c.gid, c.mtime) == (0o600, 1000, 1001, 99)
    # Implicit parents are root's, whoever owns the files under them (as in Jib).
    assert (by_name["etc"].uid, by_name["etc"].mode) == (0, 0o755)


def test_pax_long_and_non_ascii_names_round_trip(tmp_path: Path) -> None:
    long_name = "/app/" + "/".join(["d" * 60] * 4) + "/module_with_a_long_name.py"
    unicode_name = "/app/données/naïve_日本語.txt"
    long_link = "../" * 40 + "target"
    entries = [
        LayerEntry.data(b"long", long_name),
        LayerEntry.data(b"unicode", unicode_name),
        LayerEntry.symlink("/app/link", long_link),
        LayerEntry.data(b"", "/app/big-ids", uid=1 << 22, gid=(1 << 21) + 5),
    ]
    layer = build_layer(entries, tmp_path / "out")
    with tarfile.open(layer.path, "r:gz") as tf:
        assert tf.extractfile(long_name[1:]).read() == b"long"  # type: ignore[union-attr]
        assert tf.extractfile(unicode_name[1:]).read() == b"unicode"  # type: ignore[union-attr]
        assert tf.getmember("app/link").linkname == long_link
        ids = tf.getmember("app/big-ids")
        assert (ids.uid, ids.gid) == (1 << 22, (1 << 21) + 5)
    listing = subprocess.run(
        ["tar", "-tzf", str(layer.path)], capture_output=True, check=True, env={"LC_ALL": "C.UTF-8"}
    ).stdout.decode()
    assert long_name[1:] in listing.splitlines()
    assert unicode_name[1:] in listing.splitlines()


def test_duplicates_identical_collapse_different_fail(tmp_path: Path) -> None:
    same = [LayerEntry.directory("/app"), LayerEntry.directory("/app"), LayerEntry.data(b"", "/x")]
    assert names(build_layer(same, tmp_path)) == ["app", "x"]
    with pytest.raises(DuplicateEntryError, match="two different entries for /x") as err:
        build_layer([LayerEntry.data(b"1", "/x"), LayerEntry.data(b"2", "/x")], tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(DuplicateEntryError, match="/x is a file in this layer"):
        build_layer([LayerEntry.data(b"1", "/x"), LayerEntry.data(b"2", "/x/y")], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{build_layer(same, tmp_path).digest.hex}.tar.gz"
    ]


def test_empty_layer_is_a_valid_empty_tar(tmp_path: Path) -> None:
    layer = build_layer([], tmp_path)
    assert gzip.decompress(layer.path.read_bytes()) == bytes(1024)
    assert layer.uncompressed_size == 1024


def test_external_tools_read_and_extract_the_layer(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("x = 1\n")
    (src / "pkg" / "data.bin").write_bytes(os.urandom(3 * MEMBER_SIZE + 12345))
    (src / "pkg" / "alias").symlink_to("__init__.py")
    layer = build_layer(entries_from_tree(src, "/app"), tmp_path / "out")
    blob = layer.path.read_bytes()
    assert len(gzip_members(blob)) == 4  # multi-member gzip, read whole by every tool below
    gunzipped = subprocess.run(["gzip", "-dc", str(layer.path)], capture_output=True, check=True)
    assert hashlib.sha256(gunzipped.stdout).hexdigest() == layer.diff_id.hex
    assert gzip.decompress(blob) == gunzipped.stdout
    listing = subprocess.run(
        ["tar", "-tzvf", str(layer.path)], capture_output=True, check=True, text=True
    ).stdout
    assert "lrwxrwxrwx 0/0" in listing and "app/pkg/alias -> __init__.py" in listing
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "-xzf", str(layer.path), "-C", str(dest)], check=True)
    assert (dest / "app/pkg/data.bin").read_bytes() == (src / "pkg/data.bin").read_bytes()
    assert os.readlink(dest / "app/pkg/alias") == "__init__.py"


# --- gzip and digests -----------------------------------------------------------------------


def test_gzip_header_has_no_name_no_time_fixed_os(tmp_path: Path) -> None:
    layer = build_layer([LayerEntry.data(b"x" * (2 * MEMBER_SIZE), "/x")], tmp_path)
    parts = gzip_members(layer.path.read_bytes())
    assert len(parts) == 3
    for part in parts:
        magic, method, flags, mtime, xfl, os_byte = struct.unpack("<HBBIBB", part[:10])
        assert (magic, method, flags, mtime, xfl, os_byte) == (0x8B1F, 8, 0, 0, 0, 255)
        assert part[:10] == GZIP_HEADER


def test_digests_sizes_and_the_layer_protocol(tmp_path: Path) -> None:
    layer = build_layer([LayerEntry.data(b"hello\n", "/app/hello.txt")], tmp_path)
    blob = layer.path.read_bytes()
    assert layer.path.name == f"{layer.digest.hex}.tar.gz"
    assert layer.digest.hex == hashlib.sha256(blob).hexdigest()
    assert layer.diff_id.hex == hashlib.sha256(gzip.decompress(blob)).hexdigest()
    assert (layer.size, layer.uncompressed_size) == (len(blob), len(gzip.decompress(blob)))
    assert layer.media_type == OCI_LAYER_GZIP
    assert isinstance(layer, Layer)
    with layer.open() as f:
        assert f.read() == blob


@pytest.mark.parametrize("spec", ["libdeflate:1", "libdeflate:12", "zlib:6", "zlib-ng:1", "isal:2"])
def test_every_encoder_writes_valid_gzip(tmp_path: Path, spec: str) -> None:
    compression = Compression.parse(spec)
    module = {"zlib-ng": "zlib_ng", "isal": "isal"}.get(compression.algorithm)
    if module:
        pytest.importorskip(module, reason=f"optional encoder {compression.algorithm}")
    content = b"".join(b"line %d of some text\n" % i for i in range(200_000))
    layer = build_layer([LayerEntry.data(content, "/f")], tmp_path, compression=compression)
    with tarfile.open(layer.path) as tf:
        assert tf.extractfile("f").read() == content  # type: ignore[union-attr]
    assert layer.path.read_bytes()[:10] == GZIP_HEADER


def test_bad_compression_specs_are_one_line_errors() -> None:
    for spec in ["brotli", "zlib:10", "libdeflate:0", "zlib:x"]:
        with pytest.raises(JibError) as err:
            Compression.parse(spec)
        assert "\n" not in str(err.value)


def test_bytes_do_not_depend_on_threads_or_write_sizes() -> None:
    data = os.urandom(MEMBER_SIZE // 3) * 10 + b"tail"
    outputs = set()
    for threads, step in [(1, len(data)), (3, 4096), (2, 777_777), (4, 1)]:
        if step == 1:
            data_parts = [data[:10], data[10:11], data[11:]]
        else:
            data_parts = [data[i : i + step] for i in range(0, len(data), step)]
        out = io.BytesIO()
        writer = gzip_writer(Compression(), out, threads=threads)
        for part in data_parts:
            writer.write(part)
        writer.close()
        outputs.add(out.getvalue())
    assert len(outputs) == 1
    assert gzip.decompress(outputs.pop()) == data


# --- failures leave nothing behind ------------------------------------------------------------


def _assert_one_line_naming(err: pytest.ExceptionInfo[JibError], name: str) -> None:
    message = str(err.value)
    assert "\n" not in message and name in message, message


@pytest.mark.parametrize("case", ["dangling", "directory", "deleted", "fifo"])
def test_unreadable_source_is_a_one_line_error_and_leaves_nothing(
    tmp_path: Path, case: str
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(2 * MEMBER_SIZE))  # written before the failure
    bad = src / "zzz-bad"
    if case == "dangling":
        bad.symlink_to(src / "missing")
    elif case == "directory":
        bad.mkdir()
    elif case == "fifo":
        os.mkfifo(bad)
    else:
        bad.write_text("soon gone")
    entries = [
        LayerEntry.file(src / "big.bin", "/app/big.bin"),
        LayerEntry(path="/app/zzz-bad", kind=EntryKind.FILE, mode=0o644, source=bad),
    ]
    if case == "deleted":  # there when the entries were listed, gone when the layer is written
        bad.unlink()
    out = tmp_path / "out"
    with pytest.raises(JibError) as err:
        build_layer(entries, out)
    _assert_one_line_naming(err, str(bad))
    assert list(out.iterdir()) == []


def test_keyboard_interrupt_mid_build_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_header = tar_module.header
    calls = 0

    def interrupting_header(entry: LayerEntry, size: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return real_header(entry, size)

    monkeypatch.setattr(tar_module, "header", interrupting_header)
    entries = [LayerEntry.data(os.urandom(MEMBER_SIZE), f"/f{i}") for i in range(5)]
    with pytest.raises(KeyboardInterrupt):
        build_layer(entries, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_write_failure_is_a_one_line_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = 0

    def failing_write(self: object, data: bytes | memoryview, /) -> None:
        nonlocal written
        written += len(data)
        if written > 100_000:
            raise builder_module._OutputError(OSError(28, "No space left on device"))

    monkeypatch.setattr(builder_module._Output, "write", failing_write)
    with pytest.raises(JibError) as err:
        build_layer([LayerEntry.data(os.urandom(3 * MEMBER_SIZE), "/x")], tmp_path)
    _assert_one_line_naming(err, str(tmp_path))
    assert "free some disk space" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_file_size_limit_is_a_real_write_error(tmp_path: Path) -> None:
    # A real failing write(2) (EFBIG under RLIMIT_FSIZE), in a child so the limit stays there.
    script = f"""
import os, resource, signal, sys
from jib.errors import JibError
from jib.layers import LayerEntry, build_layer
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
try:
    build_layer([LayerEntry.data(os.urandom(8 << 20), "/x")], {str(tmp_path)!r})
except JibError as exc:
    print(exc)
    sys.exit(3)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.count("\n") == 1 and "cannot write a layer to" in result.stdout
    assert list(tmp_path.iterdir()) == []


# --- a container engine reads it ---------------------------------------------------------------


def _oci_archive(layer: BuiltLayer, target: Path) -> None:
    """The smallest OCI archive holding ``layer``: what podman needs to load it."""
    import json
    import platform

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]},
        }
    ).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {"mediaType": layer.media_type, "digest": str(layer.digest), "size": layer.size}
            ],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
                    "size": len(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": "pyjib-layer-test:1"},
                }
            ],
        }
    ).encode()
    blobs = {
        "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
        "index.json": index,
        f"blobs/sha256/{config_digest[7:]}": config,
        f"blobs/sha256/{hashlib.sha256(manifest).hexdigest()}": manifest,
        f"blobs/sha256/{layer.digest.hex}": layer.path.read_bytes(),
    }
    with tarfile.open(target, "w") as tf:
        for name, data in blobs.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@pytest.mark.e2e
def test_podman_loads_and_unpacks_the_layer(tmp_path: Path, podman: object) -> None:
    # containers/storage gunzips every member with Go and unpacks the tar into a real rootfs.
    src = tmp_path / "src"
    (src / "données").mkdir(parents=True)
    (src / "données" / "big.bin").write_bytes(os.urandom(2 * MEMBER_SIZE + 3))
    (src / "données" / "link").symlink_to("big.bin")
    layer = build_layer(entries_from_tree(src, "/app"), tmp_path / "out")
    archive = tmp_path / "image.tar"
    _oci_archive(layer, archive)
    (image,) = podman.load(archive)  # type: ignore[attr-defined]
    container = podman.call("create", image, "/none").stdout.strip()  # type: ignore[attr-defined]
    try:
        podman.call("export", "-o", str(tmp_path / "rootfs.tar"), container)  # type: ignore[attr-defined]
    finally:
        podman.call("rm", container)  # type: ignore[attr-defined]
    with tarfile.open(tmp_path / "rootfs.tar") as tf:
        big = tf.extractfile("app/données/big.bin")
        assert big is not None and big.read() == (src / "données" / "big.bin").read_bytes()
        assert tf.getmember("app/données/link").linkname == "big.bin"


def test_a_foreign_libdeflate_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from jib.layers import compress

    compress.check_libdeflate()  # the pinned wheel passes
    monkeypatch.setattr(compress, "_probe_ok", False)
    monkeypatch.setattr(compress, "_PROBE_SHA256", "0" * 64)
    with pytest.raises(JibError, match="reinstall it") as err:
        gzip_writer(Compression(), io.BytesIO())
    assert "\n" not in str(err.value)
