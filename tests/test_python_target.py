"""The target Python: detected from a base image (config, then layer file names), its marker
environment and wheel tags, never the host's."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from packaging.markers import Marker

from jib.errors import JibError
from jib.image.config import ImageConfig
from jib.image.descriptor import Platform
from jib.image.digest import Digest
from jib.image.image import Image
from jib.image.layer import BlobLayer
from jib.local import read_local
from jib.python import layerscan
from jib.python.distro import distribution_of
from jib.python.markers import evaluate, evaluate_lock, marker_environment
from jib.python.tags import platform_tags, target_tags
from jib.python.target import TargetPython, detect_target

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"

# -- synthetic images ---------------------------------------------------------------------------


def make_layer(files: Mapping[str, bytes | str], *, compress: bool = True) -> BlobLayer:
    """A layer holding ``files`` (``"->target"`` makes a symlink), gzip or plain tar."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, str) and content.startswith("->"):
                info.type, info.linkname = tarfile.SYMTYPE, content[2:]
                tar.addfile(info)
                continue
            data = content.encode() if isinstance(content, str) else content
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    blob = gzip.compress(tar_bytes, mtime=0) if compress else tar_bytes
    return BlobLayer(
        digest=Digest.of_bytes(blob),
        diff_id=Digest.of_bytes(tar_bytes),
        size=len(blob),
        media_type=GZIP_LAYER if compress else TAR_LAYER,
        opener=lambda: io.BytesIO(blob),
    )


def make_image(
    layers: Sequence[BlobLayer] = (),
    *,
    env: Mapping[str, str] | None = None,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    platform: str = "linux/amd64",
    created_by: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """An image of ``layers``; ``created_by`` names each layer's history entry (default "test")."""
    config = ImageConfig.new(Platform.parse(platform))
    if env:
        config = config.with_env(env)
    if labels:
        config = config.with_labels(labels)
    config = config.with_entrypoint(entrypoint).with_cmd(cmd)
    for i, layer in enumerate(layers):
        history = created_by[i] if i < len(created_by) else "test"
        config = config.with_layer_added(layer.diff_id, {"created_by": history})
    return Image.build(config, layers, annotations=annotations)


def unreadable_layer(name: str = "rootfs") -> BlobLayer:
    """A layer that fails the test if anything opens it: reading it would mean downloading it."""

    def refuse() -> io.BytesIO:
        raise AssertionError(f"layer {name} was read")

    data = name.encode()
    return BlobLayer(
        digest=Digest.of_bytes(data),
        diff_id=Digest.of_bytes(data + b"-tar"),
        size=len(data),
        media_type=GZIP_LAYER,
        opener=refuse,
    )


LIBC_236 = b"\x7fELF...GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36.\0GLIBC_2.34"
DEBIAN_LIBS = {
    "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": b"\x7fELF",
    "usr/lib/x86_64-linux-gnu/libc.so.6": LIBC_236,
    "usr/lib/os-release": 'ID=debian\nVERSION_ID="12"\n',
}


def x86_target(**kwargs: object) -> TargetPython:
    values: dict[str, object] = {
        "platform": Platform.parse("linux/amd64"),
        "version": (3, 11, 2),
        "executable": "/usr/bin/python3.11",
        "libc": ("glibc", (2, 36)),
    }
    values.update(kwargs)
    return TargetPython(**values)  # type: ignore[arg-type]


# -- detection ----------------------------------------------------------------------------------


def test_debian_base_detected_from_layer_files_and_cached(
    base_image_tar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = read_local(f"tar://{base_image_tar}")
    assert "PYTHON_VERSION" not in image.config.env and image.config.cmd == ("python3",)
    target = detect_target(image, cache_dir=tmp_path)
    assert target.version == (3, 11, 2)  # micro from dpkg's status file
    assert target.minor == "3.11"
    assert target.executable == "/usr/bin/python3.11"
    assert target.libc == ("glibc", (2, 36))  # from libc.so.6's contents
    assert target.cache_tag == "cpython-311"
    assert target.abi_flags == ""
    assert target.machine == "x86_64"
    assert list((tmp_path / "python-targets").glob("*.json"))

    # A warm build reads the cached scan, never the layers.
    def no_scan(image: Image) -> None:
        raise AssertionError("layers reread")

    monkeypatch.setattr(layerscan, "scan_layers", no_scan)
    assert detect_target(image, cache_dir=tmp_path) == target


def test_official_style_image_from_python_version_and_path() -> None:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON_VERSION": "3.12.4"}
    assert detect_target(make_image(env=env)).executable == "/usr/local/bin/python3.12"

    # With layers: the interpreter is found in them; glibc from libc.so.6, across gzip layers.
    python_layer = make_layer(
        {
            "usr/local/bin/python3.12": b"\x7fELF",
            "usr/local/bin/python3": "->python3.12",
            "usr/local/lib/python3.12/lib-dynload/_ssl.cpython-312-x86_64-linux-gnu.so": b"",
        }
    )
    image = make_image([make_layer(DEBIAN_LIBS), python_layer], env=env, cmd=["python3"])
    target = detect_target(image)
    assert target.version == (3, 12, 4)
    assert target.executable == "/usr/local/bin/python3.12"
    assert target.libc == ("glibc", (2, 36))
    assert target.cache_tag == "cpython-312"


def test_explicit_settings_win() -> None:
    env = {"PATH": "/usr/local/bin:/usr/bin", "PYTHON_VERSION": "3.12.4"}
    image = make_image([make_layer(DEBIAN_LIBS)], env=env)
    target = detect_target(image, version="3.13.1", executable="/opt/py/bin/python3.13")
    assert (target.version, target.executable) == ((3, 13, 1), "/opt/py/bin/python3.13")
    assert target.libc == ("glibc", (2, 36))
    # No libc in the layers at all: the manylinux2014 baseline, which only errs towards older
    # (still loadable) wheels.
    bare = detect_target(make_image(), version="3.12", executable="/usr/bin/python3.12")
    assert bare.libc == ("glibc", (2, 17)) and bare.version == (3, 12, 0)


def test_entrypoint_names_the_interpreter_distroless_style() -> None:
    image = make_image(
        [make_layer({**DEBIAN_LIBS, "usr/bin/python3.11": b""})],
        entrypoint=["/usr/bin/python3.11"],
        platform="linux/arm64",
    )
    target = detect_target(image)
    assert (target.minor, target.executable, target.machine) == (
        "3.11",
        "/usr/bin/python3.11",
        "aarch64",
    )


def test_musl_free_threaded_and_whiteouts() -> None:
    lower = make_layer(
        {
            "lib/ld-musl-aarch64.so.1": b"",
            "etc/alpine-release": "3.20.0\n",
            "usr/bin/python3.11": b"",
            "usr/local/include/python3.13t/patchlevel.h": '#define PY_VERSION "3.13.5"\n',
        },
        compress=False,
    )
    upper = make_layer(
        {
            "usr/bin/.wh.python3.11": b"",  # the distro Python was removed
            "usr/local/bin/python3.13t": b"",
            "usr/local/lib/python3.13t/lib-dynload/_ssl.cpython-313t-aarch64-linux-musl.so": b"",
        }
    )
    target = detect_target(make_image([lower, upper], platform="linux/arm64"))
    assert target.executable == "/usr/local/bin/python3.13t"
    assert target.version == (3, 13, 5)
    assert target.abi_flags == "t" and target.cache_tag == "cpython-313t"
    assert target.libc == ("musl", (1, 2))
    assert target.site_packages == "lib/python3.13t/site-packages"
    tags = [str(t) for t in target_tags(target)]
    assert tags[0] == "cp313-cp313t-musllinux_1_2_aarch64"
    assert not any("manylinux" in t or "abi3-" in t for t in tags)


def test_image_without_python_names_the_keys_to_set() -> None:
    image = make_image([make_layer(DEBIAN_LIBS)], env={"PATH": "/usr/bin"}, cmd=["bash"])
    with pytest.raises(JibError) as err:
        detect_target(image)
    message = str(err.value)
    assert "\n" not in message
    assert "[tool.jib.python] version" in message and "executable" in message
    # A version the image does not have, without an executable, says so too.
    with pytest.raises(JibError, match=r"no python3\.12 interpreter.*executable"):
        detect_target(make_image([make_layer({"usr/bin/python3.11": b""})]), version="3.12")


# -- detection from the config alone (no layer read) ---------------------------------------------

DEBUERREOTYPE = "# debian.sh --arch 'amd64' out/ 'bookworm' '@1733097600'"
ALPINE_ROOTFS = "ADD alpine-minirootfs-3.20.3-x86_64.tar.gz / # buildkit"
OFFICIAL_ENV = {
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "PYTHON_VERSION": "3.12.7",
}


def test_official_python_slim_needs_no_layer() -> None:
    # python:3.12-slim-bookworm's config: debuerreotype's history line and PYTHON_VERSION.
    image = make_image(
        [unreadable_layer("debian"), unreadable_layer("python")],
        env=OFFICIAL_ENV,
        cmd=["python3"],
        created_by=[DEBUERREOTYPE, "RUN /bin/sh -c set -eux; ... # buildkit"],
    )
    target = detect_target(image)
    assert target.version == (3, 12, 7)
    assert target.executable == "/usr/local/bin/python3.12"
    assert target.libc == ("glibc", (2, 36))
    assert target.abi_flags == ""


def test_official_python_alpine_needs_no_layer() -> None:
    image = make_image(
        [unreadable_layer("alpine"), unreadable_layer("python")],
        env=OFFICIAL_ENV,
        created_by=[ALPINE_ROOTFS, "RUN /bin/sh -c set -eux; apk add ... # buildkit"],
        platform="linux/arm64",
    )
    target = detect_target(image)
    assert target.libc == ("musl", (1, 2))
    assert str(target_tags(target)[0]) == "cp312-cp312-musllinux_1_2_aarch64"


def test_stated_version_and_executable_on_a_named_distribution_need_no_layer() -> None:
    # A distroless-style base (no PYTHON_VERSION) whose manifest names its base image.
    image = make_image(
        [unreadable_layer()],
        entrypoint=["/usr/bin/python3.11"],
        annotations={"org.opencontainers.image.base.name": "docker.io/library/debian:12-slim"},
    )
    target = detect_target(image, version="3.11.2")
    assert (target.version, target.executable) == ((3, 11, 2), "/usr/bin/python3.11")
    assert target.libc == ("glibc", (2, 36))
    free = detect_target(image, version="3.13.5", executable="/usr/bin/python3.13t")
    assert free.abi_flags == "t" and free.cache_tag == "cpython-313t"


@pytest.mark.parametrize(
    ("env", "kwargs", "history"),
    [
        # No micro version anywhere: python_full_version markers need it, so read the layers.
        ({}, {"version": "3.11", "executable": "/usr/bin/python3.11"}, DEBUERREOTYPE),
        # UBI-style PYTHON_VERSION without a micro version, and not the docker-library layout.
        ({"PYTHON_VERSION": "3.11", "PATH": "/opt/app-root/bin:/usr/bin"}, {}, DEBUERREOTYPE),
        # Everything about Python stated, but the distribution is not named.
        (OFFICIAL_ENV, {}, "ADD file:5d6b639e8b6bcc011d4ee3f6ea6e8e4a8a1d in / "),
        # PYTHON_VERSION and PATH, but /usr/local/bin is not in PATH: where is the interpreter?
        ({"PYTHON_VERSION": "3.12.7", "PATH": "/usr/bin:/bin"}, {}, DEBUERREOTYPE),
    ],
)
def test_whatever_the_config_leaves_unknown_is_read_from_the_layers(
    env: dict[str, str], kwargs: dict[str, str], history: str
) -> None:
    image = make_image([unreadable_layer()], env=env, created_by=[history])
    with pytest.raises(AssertionError, match="was read"):
        detect_target(image, **kwargs)


def test_layers_and_config_agree_on_the_test_bed_base(
    base_image_tar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = read_local(f"tar://{base_image_tar}")
    scanned = detect_target(image)  # bare config: the layers are read
    distro = distribution_of(image)
    assert distro is not None and (distro.id, distro.version_id) == ("debian", "12")

    def no_scan(image: Image) -> None:
        raise AssertionError("layers read")

    monkeypatch.setattr(layerscan, "scan_layers", no_scan)
    stated = detect_target(image, version="3.11.2", executable="/usr/bin/python3.11")
    assert stated == scanned


@pytest.mark.parametrize(
    ("history", "labels", "expected"),
    [
        (DEBUERREOTYPE, {}, ("debian", "12", ("glibc", (2, 36)))),
        ("# debian.sh --arch 'arm64' out/ 'trixie' '@1760000000'", {}, ("debian", "13", None)),
        (
            "mmdebstrap --variant=essential --format=tar bullseye out.tar",
            {},
            ("debian", "11", None),
        ),
        ("ADD alpine-minirootfs-3.12.9-x86_64.tar.gz / # buildkit", {}, ("alpine", "3.12", None)),
        (
            "ADD file:abc in / ",
            {
                "org.opencontainers.image.ref.name": "ubuntu",
                "org.opencontainers.image.version": "24.04",
            },
            ("ubuntu", "24.04", ("glibc", (2, 39))),
        ),
        (
            "x",
            {"org.opencontainers.image.base.name": "python:3.12-slim-bookworm"},
            ("debian", "12", None),
        ),
        (
            "x",
            {"org.opencontainers.image.base.name": "python:3.13-alpine3.21"},
            ("alpine", "3.21", ("musl", (1, 2))),
        ),
        (
            "x",
            {"org.opencontainers.image.base.name": "ubuntu:jammy-20240808"},
            ("ubuntu", "22.04", ("glibc", (2, 35))),
        ),
        ("x", {"org.opencontainers.image.base.name": "localhost:5000/debian"}, None),
        ("x", {"org.opencontainers.image.base.name": "python:3.12-slim"}, None),
        ("x", {"org.opencontainers.image.base.name": "debian:sid"}, None),
        ("ADD file:abc in / ", {}, None),
    ],
)
def test_distribution_named_by_history_or_labels(
    history: str, labels: dict[str, str], expected: tuple[str, str, object] | None
) -> None:
    image = make_image([unreadable_layer()], created_by=[history], labels=labels)
    distro = distribution_of(image)
    if expected is None:
        assert distro is None
        return
    assert distro is not None
    assert (distro.id, distro.version_id) == expected[:2]
    if expected[2] is not None:
        assert distro.libc == expected[2]


def test_alpine_before_3_13_is_musl_1_1_and_a_later_bootstrap_run_is_ignored() -> None:
    old = make_image([unreadable_layer()], created_by=["ADD alpine-minirootfs-3.12.9-x86.tar.gz /"])
    assert distribution_of(old).libc == ("musl", (1, 1))  # type: ignore[union-attr]
    chroot = make_image(
        [unreadable_layer("a"), unreadable_layer("b")],
        created_by=["ADD file:abc in / ", "RUN mmdebstrap bookworm /srv/chroot"],
    )
    assert distribution_of(chroot) is None


# -- markers and tags ---------------------------------------------------------------------------


def test_markers_are_the_targets_not_the_hosts() -> None:
    target = x86_target(platform=Platform.parse("linux/arm64"))
    env = marker_environment(target)
    assert len(env) == 11
    assert env["platform_machine"] == "aarch64"  # this host is x86_64
    assert env["python_full_version"] == "3.11.2" and env["python_version"] == "3.11"
    assert env["sys_platform"] == "linux" and env["os_name"] == "posix"
    assert env["platform_system"] == "Linux" and env["implementation_name"] == "cpython"
    assert evaluate('platform_machine == "aarch64"', target)
    assert not evaluate('platform_machine == "x86_64"', target)
    assert not evaluate('python_version >= "3.12"', target)
    assert not evaluate('sys_platform == "win32"', target)
    assert evaluate('extra == "idna"', target, extras=["IDNA"])
    assert not evaluate('extra == "idna"', target)
    assert evaluate_lock(Marker("'idna' in extras"), target, extras=["idna"])
    assert not evaluate_lock("'dev' in dependency_groups", target, groups=())


def test_tags_for_glibc_aarch64() -> None:
    target = x86_target(platform=Platform.parse("linux/arm64"))
    tags = [str(t) for t in target_tags(target)]
    assert tags[0] == "cp311-cp311-manylinux_2_36_aarch64"
    assert "cp311-cp311-manylinux_2_17_aarch64" in tags
    assert "cp311-cp311-manylinux2014_aarch64" in tags
    assert "cp311-abi3-manylinux_2_28_aarch64" in tags and "py3-none-any" in tags
    assert not any("x86_64" in t or (t.endswith("linux_aarch64") and "many" not in t) for t in tags)
    assert "cp311-cp311-manylinux_2_37_aarch64" not in tags
    assert tags.index("cp311-cp311-manylinux_2_17_aarch64") < tags.index("py3-none-any")


def test_platform_tags_x86_go_back_to_manylinux1_and_arm_v7() -> None:
    x86 = platform_tags(x86_target(libc=("glibc", (2, 28))))
    assert x86[0] == "manylinux_2_28_x86_64" and x86[-2:] == [
        "manylinux_2_5_x86_64",
        "manylinux1_x86_64",
    ]
    assert "manylinux2010_x86_64" in x86 and "manylinux2014_x86_64" in x86
    arm = platform_tags(x86_target(platform=Platform.parse("linux/arm/v7")))
    assert arm[-2:] == ["manylinux_2_17_armv7l", "manylinux2014_armv7l"]


def test_requires_python_failure_names_the_base_images_python() -> None:
    target = x86_target()
    target.check_requires_python(">=3.10", "project demo")
    with pytest.raises(
        JibError, match=r"base image's Python is 3\.11\.2 .*requires-python '>=3\.12'"
    ):
        target.check_requires_python(">=3.12", "project demo")
