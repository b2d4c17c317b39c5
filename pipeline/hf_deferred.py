"""datatrove without huggingface_hub's network stack, until something in the process uses it.

Two datatrove modules that every stage imports bind huggingface_hub names at import time: `datatrove.io`
(`HfFileSystem`, for one `isinstance` check when it lists a folder) and `datatrove.pipeline.writers.huggingface`
(the HF dataset and bucket writers, which `datatrove.pipeline.writers/__init__.py` imports whenever any writer is
imported: `create_commit`, `CommitOperationAdd`, `HfHubHTTPError`...). Those names live in
`huggingface_hub.hf_api`, `hf_file_system`, `_commit_api` and `errors`, which bring httpx, anyio, ssl, yaml and the
rest: about 0.3 CPU-s of the 0.4 CPU-s every stage process paid before its first document (`bench/bench_start.py`),
for code that no run without an `hf://` path or an HF writer calls.

`install()` (from `pipeline/__init__.py`, so before any pipeline module imports datatrove) puts a finder on
`sys.meta_path` that changes how two kinds of module are loaded, and nothing else:

- While the body of one of `DEFERRING` runs, the huggingface_hub attributes it imports are stand-ins (`_stand_in`);
  right after, the attributes are removed again, so huggingface_hub's own lazy loader answers any later
  `from huggingface_hub import X` with the real object. Only those two modules' globals hold stand-ins.
- When a real module of `DEFERRED` finishes loading (whoever imports it: an `hf://` path through fsspec's registry,
  a writer's first call, the trainer's export code, a direct import), every module global in the process that is a
  stand-in for one of its names is replaced by the real object.

So a stand-in exists only while its real module is not loaded, and then no instance of the real class, no raised
`HfHubHTTPError`, can exist either: `isinstance(x, stand-in)` is False, `except stand-in` matches nothing, and both
are right. Calling a stand-in (a function, or a class to build an instance) imports the real module, which replaces
the stand-ins, and calls the real object. Nothing on disk is changed; if a deferring module is already imported
when `install()` runs, nothing is done for it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

# datatrove modules whose import binds huggingface_hub names -> (the huggingface_hub module they import from, names)
DEFERRING = {
    "datatrove.io": [("huggingface_hub", ["HfFileSystem"])],
    "datatrove.pipeline.writers.huggingface": [
        (
            "huggingface_hub",
            ["CommitOperationAdd", "batch_bucket_files", "create_bucket", "create_commit", "create_repo"]
            + ["list_bucket_tree", "preupload_lfs_files"],
        ),
        ("huggingface_hub.utils", ["HfHubHTTPError"]),
    ],
}
# the huggingface_hub module each of those names is defined in (huggingface_hub's own lazy-import tables)
DEFERRED = {
    "huggingface_hub.hf_file_system": {"HfFileSystem": "class"},
    "huggingface_hub._commit_api": {"CommitOperationAdd": "class"},
    "huggingface_hub.hf_api": {
        name: "function"
        for name in ["batch_bucket_files", "create_bucket", "create_commit", "create_repo", "list_bucket_tree"]
        + ["preupload_lfs_files"]
    },
    "huggingface_hub.errors": {"HfHubHTTPError": "exception"},
}
_HOME = {name: module for module, names in DEFERRED.items() for name in names}
_stand_ins: dict[str, object] = {}  # name -> its stand-in, made once


def _real(name: str):
    return getattr(importlib.import_module(_HOME[name]), name)


class _DeferredClass(type):
    """The metaclass of a class stand-in: isinstance/issubclass answer for the real class once it is loaded (before
    that, nothing can be its instance); calling it builds a real instance."""

    def __instancecheck__(cls, obj: object) -> bool:
        module = sys.modules.get(_HOME[cls.__name__])
        return module is not None and isinstance(obj, getattr(module, cls.__name__))

    def __subclasscheck__(cls, sub: type) -> bool:
        module = sys.modules.get(_HOME[cls.__name__])
        return module is not None and issubclass(sub, getattr(module, cls.__name__))

    def __call__(cls, *args, **kwargs):
        return _real(cls.__name__)(*args, **kwargs)

    def __getattr__(cls, attr: str):  # class attributes (HfFileSystem.protocol, ...) are the real class's
        return getattr(_real(cls.__name__), attr)


def _stand_in(name: str):
    if name not in _stand_ins:
        kind = DEFERRED[_HOME[name]][name]
        doc = f"Stand-in for huggingface_hub's {name} until {_HOME[name]} is imported (pipeline/hf_deferred.py)."
        if kind == "function":

            def forward(*args, **kwargs):
                return _real(name)(*args, **kwargs)

            forward.__name__ = forward.__qualname__ = name
            forward.__doc__ = doc
            _stand_ins[name] = forward
        else:
            # an exception stand-in must be a BaseException subclass to be legal in `except`; nothing raises it
            bases = (Exception,) if kind == "exception" else ()
            _stand_ins[name] = _DeferredClass(name, bases, {"__doc__": doc, "__module__": __name__})
    return _stand_ins[name]


def _replace_stand_ins(module_name: str) -> None:
    """`module_name` (one of DEFERRED) is loaded: every module global that is a stand-in for one of its names becomes
    the real object."""
    real_module = sys.modules[module_name]
    replace = {id(_stand_ins[n]): getattr(real_module, n) for n in DEFERRED[module_name] if n in _stand_ins}
    if not replace:
        return
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for key, value in list(namespace.items()):
            if id(value) in replace:  # ids of the stand-ins, which `_stand_ins` keeps alive
                namespace[key] = replace[id(value)]


class _Loader(importlib.abc.Loader):
    """The path loader of a DEFERRING or DEFERRED module, with the stand-ins around (or the replacement after) its
    body."""

    def __init__(self, loader: importlib.abc.Loader, fullname: str) -> None:
        self.loader = loader
        self.fullname = fullname

    def __getattr__(self, attr: str):  # get_source, get_code, is_package...: the path loader's own
        return getattr(self.loader, attr)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        if self.fullname in DEFERRED:
            self.loader.exec_module(module)
            _replace_stand_ins(self.fullname)
            return
        placed = []  # (module, name, stand-in) set on huggingface_hub modules while the body runs
        try:
            for source_name, names in DEFERRING[self.fullname]:
                try:
                    source = importlib.import_module(source_name)
                except ImportError:  # the body's own import raises it, as it would without this finder
                    continue
                for name in names:
                    # not when the real module is loaded already, or the package holds an eager attribute
                    if _HOME[name] not in sys.modules and name not in vars(source):
                        setattr(source, name, _stand_in(name))
                        placed.append((source, name, _stand_ins[name]))
            self.loader.exec_module(module)
        finally:
            for source, name, stand_in in placed:
                if vars(source).get(name) is stand_in:
                    delattr(source, name)  # later imports get the real object from huggingface_hub's lazy loader


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the modules of DEFERRING and DEFERRED as the path finder does, and gives them `_Loader`."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in DEFERRING and fullname not in DEFERRED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, fullname)
        return spec


def install() -> None:
    """Puts the finder in front of the path finder, once; a no-op when datatrove.io is already imported."""
    if "datatrove.io" in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
