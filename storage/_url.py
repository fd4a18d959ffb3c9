"""Where the storage URL comes from, and how it is shown.

Precedence: ``--storage`` flag > ``HPSEARCH_STORAGE`` > ``HPSEARCH_STORAGE_FILE`` (a file holding
the URL) > ``sqlite:///hpsearch.db`` in the current directory (the embedded default).

A password never needs to be on a command line: ``HPSEARCH_STORAGE_PASSWORD`` or
``HPSEARCH_STORAGE_PASSWORD_FILE`` fills in the password of a URL given without one.
Every URL hpsearch prints goes through ``mask_url`` / ``mask_text``.

URLs are taken as users write them (``normalize_url``): ``postgresql://`` is SQLAlchemy's psycopg 3
(a dependency, as is psycopg2 for ``postgresql+psycopg2://``), ``postgres://`` is read as
``postgresql://``, and ``mysql://`` (SQLAlchemy's mysqlclient, a C build) as ``mysql+pymysql://``.
"""

from __future__ import annotations

import os
from pathlib import Path
import re

DEFAULT_URL = "sqlite:///hpsearch.db"
ENV_URL = "HPSEARCH_STORAGE"
ENV_URL_FILE = "HPSEARCH_STORAGE_FILE"
ENV_PASSWORD = "HPSEARCH_STORAGE_PASSWORD"
ENV_PASSWORD_FILE = "HPSEARCH_STORAGE_PASSWORD_FILE"

# scheme://user:password@host -> scheme://user:***@host, wherever it appears in free text.
_CREDENTIALS = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*):(?P<pw>[^@\s]*)@")


# scheme as written -> the scheme with a driver hpsearch installs
_SCHEMES = {"postgres": "postgresql", "mysql": "mysql+pymysql"}


def normalize_url(url: str) -> str:
    """The URL with a scheme whose driver is installed: ``mysql://`` -> ``mysql+pymysql://``,
    ``postgres://`` -> ``postgresql://`` (psycopg 3); anything else unchanged."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in _SCHEMES:
        return f"{_SCHEMES[scheme.lower()]}://{rest}"
    return url


def _read_secret_file(path: str, what: str) -> str:
    from ._errors import StorageError

    try:
        return Path(path).read_text().strip()
    except OSError as e:
        raise StorageError(f"cannot read {what} file {path}: {e.strerror}; fix the path in ${what}") from None


def resolve_url(flag: str | None = None) -> str:
    """The storage URL to use, with the password from the environment filled in if needed."""
    if flag:
        url = flag
    elif os.environ.get(ENV_URL):
        url = os.environ[ENV_URL]
    elif os.environ.get(ENV_URL_FILE):
        url = _read_secret_file(os.environ[ENV_URL_FILE], ENV_URL_FILE)
    else:
        url = DEFAULT_URL
    return _with_password(normalize_url(url.strip()))


def _with_password(url: str) -> str:
    password = os.environ.get(ENV_PASSWORD)
    if password is None and os.environ.get(ENV_PASSWORD_FILE):
        password = _read_secret_file(os.environ[ENV_PASSWORD_FILE], ENV_PASSWORD_FILE)
    if not password or url.startswith(("sqlite", "grpc")):
        return url
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return url
    if parsed.password:
        return url  # an explicit password in the URL wins
    return parsed.set(password=password).render_as_string(hide_password=False)


def check_url(url: str) -> None:
    """Raise ``StorageError`` for a URL that cannot be parsed or whose port is not 1-65535."""
    from ._errors import StorageError

    fix = "fix --storage or $HPSEARCH_STORAGE"
    if url.startswith("grpc://"):
        port = url[len("grpc://") :].rstrip("/").rpartition(":")[2]
    elif url.startswith("sqlite"):
        return
    else:
        m = re.match(r"^[^:/]+://(?:[^@/]*@)?(?:\[[^\]]*\]|[^:/?]*)(?::(?P<port>[^/?]*))?", url)
        if m is None:
            raise StorageError(f"storage URL {mask_url(url)} is not scheme://user@host[:port]/database; {fix}")
        port = m.group("port")
        if port is None or port == "":
            return
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise StorageError(f"storage URL {mask_url(url)} has port {port!r}, not a number 1-65535; {fix}")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('head')}:***@", url)


def mask_text(text: str, *secrets: str) -> str:
    """Free text (an error, a log line) with URL passwords and the given secrets masked."""
    text = _CREDENTIALS.sub(lambda m: f"{m.group('head')}:***@", text)
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def url_password(url: str) -> str | None:
    m = _CREDENTIALS.search(url)
    return m.group("pw") if m and m.group("pw") else None
