"""No native start-up noise on stderr unless ``--verbose``.

TensorFlow's C++ side logs through absl before its logging is set up (``WARNING: All log messages
before absl::InitializeLog() ...``, ``I0000 ... oneDNN custom operations are on``, ``cudart_stub``,
``E0000 ... failed call to cuInit``); ``TF_CPP_MIN_LOG_LEVEL`` does not reach those lines. They are
written straight to file descriptor 2, so the only way to keep them off the terminal is at that
level: while TensorFlow is imported (and its devices are listed, where ``cuInit`` runs), fd 2 goes
to a temporary file, and afterwards every line of it that is not in absl's log format is written
back. libjpeg's messages on corrupt files ("Improper call to JPEG library in state 201") are also
plain ``fprintf(stderr)`` from C; the image check decodes every file once under the same filter,
and the files that fail are skipped and counted in hpsearch's own warning.

TensorFlow's own Python logger is set to errors only once it is imported (its retracing warning).

``install(verbose)`` runs first thing in every hpsearch process (the CLI entry point, which
``launch``/``run`` workers also start through): it sets the logging environment and a one-shot
import hook for ``tensorflow``. ``HPSEARCH_VERBOSE=1`` (set by ``--verbose``, inherited by
workers) turns all of it off.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from types import ModuleType
from typing import Any

VERBOSE_ENV = "HPSEARCH_VERBOSE"

# absl/glog lines: "I0000 00:00:1796221598.403591   28473 port.cc:153] ..." and absl's preamble
ABSL_LINE = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]+\] |WARNING: All log messages before absl::)")
# libjpeg's messages (jerror.h), printed by its default output_message
JPEG_LINE = re.compile(
    rb"^(?:Improper call to JPEG library|Corrupt JPEG data|Premature end of JPEG file|Not a JPEG file|"
    rb"Invalid JPEG file structure|Unsupported marker type|Bogus |Huffman table|Quantization table|"
    rb"JPEG datastream contains no image|Unsupported JPEG process|Empty JPEG image|Suspension not allowed|"
    rb"Input file read error)"
)
# what decoding a corrupt image prints: libjpeg, and TensorFlow's own log lines about the failure
IMAGE_NOISE = re.compile(JPEG_LINE.pattern + rb"|" + ABSL_LINE.pattern)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


@contextlib.contextmanager
def native_stderr_filtered(noise: re.Pattern[bytes] = ABSL_LINE) -> Iterator[None]:
    """Send fd 2 to a temporary file meanwhile; then write back the lines that are not ``noise``."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = b"".join(line for line in tmp if not noise.match(line))
            if kept:
                sys.stderr.flush()
                os.write(2, kept)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with native_stderr_filtered():
            self._loader.exec_module(module)
            try:  # platform initialisation (cuInit) logs here, not at import
                module.config.list_physical_devices()
            except Exception:
                pass
        # TensorFlow's Python warnings, chiefly "N out of the last M calls ... triggered tf.function
        # retracing": every trial builds its own model, so its functions are new by design, and many
        # short trials (pruned after one epoch) set that heuristic off. Errors still show.
        import logging

        logging.getLogger("tensorflow").setLevel(logging.ERROR)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Wraps the first ``import tensorflow`` (by anyone: hpsearch, Keras, a task) in the filter."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        import importlib.util

        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install(verbose_flag: bool = False) -> None:
    """Set the logging environment before TensorFlow is imported, and the import hook."""
    if verbose_flag:
        os.environ[VERBOSE_ENV] = "1"
    if verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow C++: errors only, once initialised
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC (hpsearch proxy, TensorFlow's runtime)
    os.environ.setdefault("GLOG_minloglevel", "2")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
