"""Index credentials for the uv and pip subprocesses pyjib runs (sdist builds), by netrc file.

pyjib's own HTTP requests carry credentials through ``IndexAuth``; a subprocess cannot take that
object. Credentials in the URLs it is given would show in ``ps`` and in its error messages, so
they go in a netrc file instead, which uv and pip both read from ``$NETRC``: created private
(0600, in a 0700 directory), holding only the indexes' hosts, and deleted when the run ends.
The user's own netrc follows ours in the file, so their other hosts keep working.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

from jib.python.index import IndexAuth

log = logging.getLogger(__name__)


@contextmanager
def netrc_environment(auth: IndexAuth | None, urls: Iterable[str]) -> Iterator[dict[str, str]]:
    """``{"NETRC": path}`` for a subprocess that must reach ``urls`` with ``auth``'s credentials;
    ``{}`` when none of them has any."""
    lines: list[str] = []
    hosts: set[str] = set()
    for url in urls:
        host = urlsplit(url).hostname
        credentials = auth.credentials_for(url) if auth else None
        if not (host and credentials) or host in hosts:
            continue
        user, password = credentials
        if not (_plain(user) and _plain(password)):
            # uv's and pip's netrc parsers disagree on quoting; better no credentials than wrong.
            log.warning("cannot pass the credentials for %s to a build (spaces or quotes)", host)
            continue
        hosts.add(host)
        lines.append(f"machine {host} login {user} password {password}")
    if not lines:
        yield {}
        return
    own = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    with suppress(OSError, UnicodeDecodeError):  # none of the user's own: ours alone
        lines.append(own.read_text())
    with tempfile.TemporaryDirectory(prefix="pyjib-netrc-") as tmp:
        path = Path(tmp) / "netrc"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("".join(line.rstrip("\n") + "\n" for line in lines))
        yield {"NETRC": str(path)}


def _plain(token: str) -> bool:
    """A netrc token every parser reads alike: not empty, no whitespace, no quote."""
    return bool(token) and not any(c.isspace() or c in "\"'" for c in token)
