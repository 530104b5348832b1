"""Run a Python script with transformers unable to load a model's own code (stdlib only).

    python no_remote_code.py SCRIPT [ARGS...]      # SCRIPT runs as __main__, as `python SCRIPT ARGS` would

llama.cpp's converter calls `AutoTokenizer.from_pretrained(..., trust_remote_code=True)` for several
architectures. The export already hands it a folder without the model's code (model_files.py
`stage_model_folder`); this is the second wall, for whatever that missed: when the script (or a
library it uses) first imports `transformers.dynamic_module_utils`, the functions through which
transformers decides to run and then imports a model's code are replaced before anyone can bind them:
deciding says "no" (the library's own classes are used where there are some, else the load fails with
a ValueError that says why), and importing always fails. Modules cached by an earlier trusted load
are out of reach too: HF_MODULES_CACHE points at a new empty folder. transformers itself is not
imported here, only patched when the script imports it.
"""

from __future__ import annotations

import importlib.abc
import os
import runpy
import shutil
import sys
import tempfile

TARGET = "transformers.dynamic_module_utils"
REFUSAL = ("tuneforge refused to run this model's own code (it was not exported with --trust-remote-code); "
           "transformers' built-in classes are used where there are some")


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise ValueError(REFUSAL)


def _never_trust(trust_remote_code=None, model_name=None, has_local_code=False, has_remote_code=False, *_args, **_kwargs):
    if has_remote_code and not has_local_code:
        raise ValueError(f"{REFUSAL}, and {model_name} has none: it can only be loaded with its own code")
    return False


REPLACEMENTS = {"resolve_trust_remote_code": _never_trust, "get_class_from_dynamic_module": _refuse,
                "get_cached_module_file": _refuse, "get_class_in_module": _refuse}


def patch(module: object) -> None:
    """Replace the remote-code functions in transformers.dynamic_module_utils (and in modules that bound them)."""
    originals = {name: getattr(module, name, None) for name in REPLACEMENTS}
    for name, replacement in REPLACEMENTS.items():
        setattr(module, name, replacement)
    for other in list(sys.modules.values()):
        if other is module or not getattr(other, "__name__", "").startswith("transformers."):
            continue
        for name, original in originals.items():
            if original is not None and getattr(other, name, None) is original:
                setattr(other, name, REPLACEMENTS[name])


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, real: importlib.abc.Loader):
        self.real = real

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module) -> None:
        self.real.exec_module(module)
        patch(module)

    def __getattr__(self, name: str):  # get_source, get_filename...: the real loader's
        return getattr(self.real, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """From now on (in this process) transformers cannot run a model's own code."""
    modules = tempfile.mkdtemp(prefix="tuneforge-no-remote-code-")
    os.environ["HF_MODULES_CACHE"] = modules  # read when transformers is imported: no cached model code
    import atexit

    atexit.register(shutil.rmtree, modules, True)
    if TARGET in sys.modules:
        patch(sys.modules[TARGET])
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: no_remote_code.py SCRIPT [ARGS...]")
    script = os.path.abspath(argv[0])
    install()
    sys.argv = [script, *argv[1:]]
    sys.path[0] = os.path.dirname(script)  # as if `python SCRIPT` had been run
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
