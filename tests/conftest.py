"""Session fixtures for the end-to-end test bed (see tests/testbed/).

Every fixture starts lazily, on the first test that asks for it, and is torn down at the end of
the session. A missing tool fails the test with one line naming the fix, never a silent skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from testbed import MissingToolError
from testbed.baseimage import base_image_tar as build_base_image_tar
from testbed.baseimage import push_base_image
from testbed.faultproxy import FaultProxy
from testbed.podman import Podman
from testbed.registry import Registry

T = TypeVar("T")


def _tooled(make: Callable[[], T]) -> T:
    """``make()``, failing the test with one line if a tool it drives is not installed."""
    try:
        return make()
    except MissingToolError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


def _started(**kwargs: Any) -> Registry:
    return _tooled(Registry(**kwargs).start)


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """A plain-HTTP registry without auth, shared by the session (use ``mark()`` to scope
    ``requests()`` to your test)."""
    reg = _started()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def basic_registry() -> Iterator[Registry]:
    """htpasswd Basic auth over HTTP; ``credentials`` is the (user, password) it accepts."""
    reg = _started(auth="basic")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def tls_registry() -> Iterator[Registry]:
    """No auth, HTTPS with a throwaway CA at ``ca_path`` (``cert_dir`` for skopeo/podman)."""
    reg = _started(tls=True)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry() -> Iterator[Registry]:
    """Token auth backed by ``token_server`` (no anonymous pull); ``credentials`` log in."""
    reg = _started(auth="token")
    yield reg
    reg.stop()


@pytest.fixture
def registry_factory() -> Iterator[Callable[..., Registry]]:
    """``registry_factory(auth=..., tls=..., anonymous_pull=...)``: a fresh registry that is
    stopped when the test ends, for tests that need empty storage or an unusual variant."""
    started: list[Registry] = []

    def make(**kwargs: Any) -> Registry:
        reg = _started(**kwargs)
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.stop()


@pytest.fixture(scope="session")
def base_image_tar() -> Path:
    """The Debian bookworm + Python 3.11 base as a ``docker save``-style archive (cached)."""
    return _tooled(build_base_image_tar)


@pytest.fixture(scope="session")
def base_image_ref(registry: Registry, base_image_tar: Path) -> str:
    """``127.0.0.1:PORT/pyjib-test/python:3.11`` in the session's plain ``registry``."""
    return _tooled(lambda: push_base_image(base_image_tar, registry))


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """A Podman with private storage; removed, with all its images, at the end of the session."""
    pod = _tooled(Podman)
    yield pod
    pod.close()


@pytest.fixture
def fault_proxy(registry: Registry) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the session's plain ``registry``, stopped when the test ends.
    Talk to ``fault_proxy.url``; program faults with ``fail``/``drop_after``/``stall``."""
    with FaultProxy(registry.host) as proxy:
        yield proxy
