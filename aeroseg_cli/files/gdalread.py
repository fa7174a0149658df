"""GDAL calls that fail whenever GDAL reports a problem, and never print GDAL's own lines.

rasterio raises only when a GDAL call returns an error code, but GDAL can report a problem and still return pixels:
a VRT whose source file is missing says so once and returns zeros (and on later reads of that handle says nothing);
a GeoTIFF read with ``NUM_THREADS`` whose block failed to decode keeps the failed block, so the next read of the
same handle returns it as zeros without a word. ``checked`` runs GDAL calls so that any error GDAL reports while they
run, or a warning that means missing data, fails them with ``GdalError`` (a ``RasterioIOError`` carrying GDAL's most
telling message as ``cause``). Readers that retry open a new handle: a handle whose read failed is never read again.

How GDAL's messages are seen, with public APIs only. rasterio forwards GDAL's messages to Python logging (loggers
``rasterio._env`` and ``rasterio._err``: errors at INFO as "GDAL signalled an error: err_no=N, msg=...", warnings at
WARNING, debug lines at DEBUG) from the thread that called GDAL, while a ``rasterio.Env`` is active in that thread;
outside one, GDAL prints raw ``ERROR 1: ...`` lines on stderr. ``checked`` enters a ``rasterio.Env`` and opens a
per-thread collection that a logging filter on those two loggers fills; what a checked call reports becomes its
outcome, not a log line (with ``AEROSEG_DEBUG`` set the records also go on to the log). GDAL's curl layer reports a
failed HTTP request of a single-threaded read only as a debug line, so for remote paths ``checked`` turns on that one
debug category (``CPL_DEBUG=VSICURL``, unless the user set ``CPL_DEBUG``): a dying server is then reported as the
HTTP failure, not as the decoder error it caused. GDAL's own worker threads (``NUM_THREADS``) have no Python handler,
so readers use them only for local GeoTIFFs, whose decoder errors GDAL hands back to the calling thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from rasterio.errors import RasterioError, RasterioIOError

from aeroseg_cli.files.errors import CLIError

LOGGERS = ("rasterio._env", "rasterio._err")
# warnings that mean pixels were not read (the rest, e.g. an unknown TIFF tag, leave the data whole)
MISSING_DATA = re.compile(
    r"no such file|cannot open|can't open|could not open|failed|premature|truncat|short read|read error|"
    r"response.code|http|curl|corrupt|missing|not found|unable to|decod",
    re.IGNORECASE,
)
RESPONSE_CODE = re.compile(r"response_code=(\d+)")
REQUEST = re.compile(r"^(?:\w+: )?\w+\((?P<url>[^)]*)\)(?:, (?P<bytes>[\d-]+))?: response_code=(?P<code>\d+)"
                     r"(?:, (?:curl error )?msg=(?P<msg>.*))?")  # fmt: skip


def strict_reads() -> contextlib.AbstractContextManager:
    """GDAL options that make damaged data an error, for one block of work (``rasterio.Env``: restored after)."""
    import rasterio

    from aeroseg_cli.runtime.host import STRICT_READS

    return rasterio.Env(**{k: v for k, v in STRICT_READS.items() if k not in os.environ})


@dataclass(frozen=True)
class GdalMessage:
    level: str  # "error", "warning" or "debug"
    text: str


class GdalError(RasterioIOError, CLIError):
    """A GDAL call reported a problem (an error, or a warning that means missing data); ``cause`` is GDAL's words.
    A rasterio I/O error to code that handles those, and a one-line runtime failure (exit 1) where none does."""

    def __init__(self, cause: str, path: str = "") -> None:
        name = path.rstrip("/").rsplit("/", 1)[-1]
        super().__init__(f"reading {name} failed: {cause}" if name else cause)
        self.cause = cause


def _message(record: logging.LogRecord) -> GdalMessage:
    """A record of rasterio's GDAL forwarding as (level, GDAL's text)."""
    if record.msg.startswith("GDAL signalled an error") and isinstance(record.args, tuple) and len(record.args) == 2:
        return GdalMessage("error", str(record.args[1]))
    text = re.sub(r"^CPLE_\w+(?: in |:)", "", record.getMessage())
    if record.levelno >= logging.ERROR or record.levelno == logging.INFO:  # INFO: rasterio's level for GDAL errors
        return GdalMessage("error", text)
    return GdalMessage("warning" if record.levelno == logging.WARNING else "debug", text)


class _Collector(logging.Filter):
    """On rasterio's GDAL loggers: records of a thread inside ``checked`` go to that thread's collection; others
    pass only if the logger's level before installation would have let them through."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()
        self.passing = logging.WARNING
        self.debug = bool(os.environ.get("AEROSEG_DEBUG"))

    def filter(self, record: logging.LogRecord) -> bool:
        stack = getattr(self.local, "stack", None)
        if stack:
            stack[-1].append(_message(record))
            return self.debug
        return record.levelno >= self.passing

    @contextlib.contextmanager
    def collecting(self) -> Iterator[list[GdalMessage]]:
        stack = self.local.__dict__.setdefault("stack", [])
        stack.append([])
        try:
            yield stack[-1]
        finally:
            stack.pop()


_collector: _Collector | None = None
_install_lock = threading.Lock()


def _installed() -> _Collector:
    """The collector, installed once (logging levels lowered so that GDAL's errors, logged at INFO, are made)."""
    global _collector
    with _install_lock:
        if _collector is None:
            collector = _Collector()
            collector.passing = min(logging.getLogger(n).getEffectiveLevel() for n in LOGGERS)
            for name in LOGGERS:
                logger = logging.getLogger(name)
                logger.addFilter(collector)
                logger.setLevel(logging.DEBUG)
            _collector = collector
    return _collector


@contextlib.contextmanager
def public_errors() -> Iterator[None]:
    """GDAL's raw errors raised as the public ``RasterioIOError`` (the raw one as its ``__cause__``).

    A failing read, pixel write or ``rasterio.open`` raises ``RasterioIOError``, but rasterio lets GDAL's own error
    classes (``CPLE_AppDefinedError``, ``CPLE_OpenFailedError``, ...) out of ``rasterio.shutil.copy`` and of the
    metadata setters (tags, colour table, band descriptions), and exports them under no public name (their base,
    ``CPLE_BaseError``, derives from ``Exception`` only: rasterio 1.4). They are recognised here by the package that
    raises them, as ``exception_cause`` walks rasterio's chains: nothing private is imported, and any other
    exception passes unchanged."""
    try:
        yield
    except RasterioError:
        raise
    except Exception as exc:
        if not type(exc).__module__.startswith("rasterio."):
            raise
        raise RasterioIOError(str(exc)) from exc


def _remote(path: str) -> bool:
    return path.startswith("/vsicurl") or path.lower().startswith(("http://", "https://"))


def http_failure(messages: list[GdalMessage]) -> str | None:
    """The first failed HTTP request among GDAL's messages, in plain words; None if there was none."""
    for m in messages:
        codes = [int(c) for c in RESPONSE_CODE.findall(m.text)]
        if not codes or all(200 <= c < 300 for c in codes):
            continue
        found = REQUEST.match(m.text)
        if found:
            part = f" (bytes {found['bytes']})" if found["bytes"] else ""
            why = f", {found['msg'].strip()}" if found["msg"] and found["msg"].strip() else ""
            return f"HTTP request for {found['url']}{part} failed: response code {found['code']}{why}"
        return f"HTTP request failed ({m.text.removeprefix('VSICURL: ')})"
    return None


def exception_cause(exc: BaseException) -> str:
    """GDAL's own words behind a rasterio error ("IReadBlock failed at X offset 0 ...") rather than "Read failed. See
    previous exception for details."."""
    if isinstance(exc, GdalError):
        return exc.cause
    messages, e = [], exc
    while e is not None and (e is exc or type(e).__module__.startswith("rasterio")):  # not what was being handled
        text = str(e).strip()
        if text and "See previous exception" not in text:
            messages.append(text.splitlines()[0])
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return "; ".join(dict.fromkeys(messages)) or type(exc).__name__


def cause(messages: list[GdalMessage], exc: BaseException | None = None) -> str:
    """Why a checked call failed: an HTTP failure first (it explains the decoder error it causes), then the
    exception's GDAL chain, then GDAL's reported errors and missing-data warnings."""
    http = http_failure(messages)
    if http:
        return http
    if exc is not None:
        return exception_cause(exc)
    texts = [m.text for m in messages if m.level == "error"] or [m.text for m in messages if m.level == "warning"]
    return "; ".join(dict.fromkeys(texts)) or "GDAL reported a problem"


def failed(messages: list[GdalMessage]) -> bool:
    return any(m.level == "error" or (m.level == "warning" and MISSING_DATA.search(m.text)) for m in messages)


@contextlib.contextmanager
def checked(path: str = "", strict: bool = True) -> Iterator[list[GdalMessage]]:
    """Run GDAL calls (on a dataset of ``path``) inside a ``rasterio.Env``, their messages collected; raise
    ``GdalError`` if they raise a rasterio I/O error or, when ``strict``, if GDAL reported an error or a warning that
    means missing data. ``strict=False`` is for opening, where GDAL reports harmless misses (sidecar files, an
    overview it cannot read) and only an exception is a failure; its messages still explain that exception."""
    import rasterio

    collector = _installed()
    if _remote(str(path)) and "CPL_DEBUG" not in os.environ:
        os.environ["CPL_DEBUG"] = "VSICURL"  # read by GDAL at each debug call; set once, before any read of it
    with rasterio.Env(), collector.collecting() as messages:
        try:
            yield messages
        except GdalError:
            raise
        except RasterioIOError as exc:
            raise GdalError(cause(messages, exc), str(path)) from None
        if strict and failed(messages):
            raise GdalError(cause(messages), str(path))
