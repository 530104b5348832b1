"""The pinned llama.cpp toolchain: converter, quantizer and runtime from one registry package.

llama.cpp's code is never copied into tuneforge. On first use (or `tuneforge gguf --install-toolchain`)
the source distribution of `llama-cpp-python` at one pinned version is downloaded with pip, extracted
into a cache directory and built into a wheel. The wheel (the quantizer and runtime, `llama_cpp`) and
the sdist's own `gguf-py` (the converter needs it; PyPI's `gguf` is older) are installed with
`pip install --target` into `<cache>/site`, so the user's environment is untouched. The converter
script `convert_hf_to_gguf.py` (with its `conversion` package) is kept from the sdist's `vendor/llama.cpp`;
the rest of the extracted sources is deleted after the build.

Everything that uses the toolchain runs in a subprocess whose PYTHONPATH starts with `<cache>/site`
(see `subprocess_env`): the CLI and MCP server never import llama_cpp or gguf themselves.

Cache layout under `$TUNEFORGE_TOOLCHAIN_DIR` (default `$TUNEFORGE_HOME/toolchain`):

    llama-cpp-python-0.3.36-py311-x86_64/
        download/llama_cpp_python-0.3.36.tar.gz   the sdist pip fetched (kept for rebuilds)
        llama.cpp/                        the converter and what it reads, copied from the sdist's vendor/llama.cpp
        site/                             llama_cpp + gguf (+ missing pure-Python deps)
        toolchain.json                    stamp: version, llama.cpp commit, python, when built
        build.log                         pip output of the last build
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict

from ..errors import TuneforgeError
from ..paths import home

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
#: llama.cpp commit bundled in the pinned sdist (checked after extraction; a mismatch is an error).
LLAMA_CPP_COMMIT = "0c1e570"
#: portable (no -march=native) build with the multimodal library (libmtmd: a VLM's GGUF pair is run on an image)
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=ON"
#: the shared libraries a complete build installs into site/llama_cpp/lib (a cache built without libmtmd is rebuilt)
REQUIRED_LIBS = ("libllama", "libmtmd")
STAMP_NAME = "toolchain.json"

Progress = Callable[[str], None]


class Toolchain(BaseModel):
    """A built toolchain: where its parts are, and which llama.cpp it is."""

    model_config = ConfigDict(extra="forbid")

    root: str
    version: str
    commit: str
    python: str
    site_dir: str
    llama_cpp_dir: str
    convert_script: str
    built_at: float
    build_seconds: float | None = None

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a subprocess that imports llama_cpp / gguf or runs the converter."""
        return subprocess_env(self, base)


def toolchain_root() -> Path:
    """$TUNEFORGE_TOOLCHAIN_DIR, else $TUNEFORGE_HOME/toolchain."""
    env = os.environ.get("TUNEFORGE_TOOLCHAIN_DIR")
    root = Path(env).expanduser() if env else home() / "toolchain"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _python_tag() -> str:
    return f"py{sys.version_info.major}{sys.version_info.minor}"


def toolchain_dir() -> Path:
    """The directory for the pinned version, this Python and this CPU architecture."""
    return toolchain_root() / f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}-{_python_tag()}-{platform.machine()}"


def installed() -> Toolchain | None:
    """The toolchain if it is built and complete for the pinned version, else None (instant)."""
    d = toolchain_dir()
    stamp = d / STAMP_NAME
    if not stamp.is_file():
        return None
    try:
        tc = Toolchain.model_validate_json(stamp.read_text())
    except ValueError:
        return None
    if tc.version != LLAMA_CPP_PYTHON_VERSION or not tc.commit.startswith(LLAMA_CPP_COMMIT):
        return None
    if not (Path(tc.site_dir) / "llama_cpp").is_dir() or not Path(tc.convert_script).is_file():
        return None
    if not (Path(tc.site_dir) / "gguf").is_dir():
        return None
    libs = Path(tc.site_dir) / "llama_cpp" / "lib"
    if not all(any(libs.glob(f"{name}.*")) for name in REQUIRED_LIBS):
        return None
    return tc


def subprocess_env(tc: Toolchain, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    parts = [tc.site_dir]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # llama.cpp logs to stderr; keep it, callers capture it.
    return env


def ensure(progress: Progress | None = None) -> Toolchain:
    """The pinned toolchain, building it first when it is not in the cache (5-15 minutes on 2 cores)."""
    tc = installed()
    if tc is not None:
        return tc
    d = toolchain_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building: wait for it
        tc = installed()
        if tc is not None:
            return tc
        return _build(d, progress or (lambda _m: None))


def _run(cmd: list[str], log: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None, what: str) -> None:
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise TuneforgeError(
            f"Building the llama.cpp toolchain failed while {what} (exit {proc.returncode}).\n{tail}",
            f"See the full log in {log}. Building needs a C/C++ compiler, cmake and access to PyPI "
            f"(pip download llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}).",
            code="gguf.toolchain_build_failed",
        )


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def _requirements(metadata: str) -> list[str]:
    """Unconditional Requires-Dist names in a METADATA / PKG-INFO text."""
    out = []
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:"):
            spec = line.split(":", 1)[1].strip()
            if ";" in spec:  # extras and markers: skip
                continue
            name = re.split(r"[\s<>=!~\[(]", spec, maxsplit=1)[0]
            if name:
                out.append(spec)
    return out


def _missing(specs: list[str]) -> list[str]:
    """Requirements not importable in this interpreter (installed into site/, never over the user's)."""
    from importlib.metadata import PackageNotFoundError, version

    missing = []
    for spec in specs:
        name = re.split(r"[\s<>=!~\[(]", spec, maxsplit=1)[0]
        try:
            version(name)
        except PackageNotFoundError:
            missing.append(spec)
    return missing


def _build(d: Path, progress: Progress) -> Toolchain:
    started = time.time()
    log = d / "build.log"
    log.write_text(f"tuneforge toolchain build, llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}\n")
    download = d / "download"
    src_root = d / "src"
    site = d / "site"
    wheels = d / "wheels"
    for stale in (src_root, site, wheels, d / "llama.cpp"):
        shutil.rmtree(stale, ignore_errors=True)
    download.mkdir(exist_ok=True)

    sdists = sorted(download.glob(f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"))
    if not sdists:
        progress(f"Downloading llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} (source)")
        _run(
            _pip() + ["download", f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "--no-binary", "llama-cpp-python",
                      "--no-deps", "-d", str(download)],
            log, what="downloading the source distribution",
        )
        sdists = sorted(download.glob("llama_cpp_python-*.tar.gz"))
    if not sdists:
        raise TuneforgeError(
            f"pip did not produce the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} source archive in {download}.",
            f"See {log}.",
            code="gguf.toolchain_build_failed",
        )

    progress("Extracting the source")
    src_root.mkdir()
    with tarfile.open(sdists[0]) as tar:
        try:
            tar.extractall(src_root, filter="data")
        except TypeError:  # Python without extraction filters (< 3.10.12): the archive comes from PyPI
            tar.extractall(src_root)
    (src,) = [p for p in src_root.iterdir() if p.is_dir()]
    vendor = src / "vendor" / "llama.cpp"
    convert = vendor / "convert_hf_to_gguf.py"
    if not convert.is_file():
        raise TuneforgeError(f"The sdist has no {convert.relative_to(src_root)}.", f"See {log}.", code="gguf.toolchain_build_failed")
    commit = _commit(vendor)
    if not commit.startswith(LLAMA_CPP_COMMIT):
        raise TuneforgeError(
            f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} bundles llama.cpp {commit}, expected {LLAMA_CPP_COMMIT}.",
            "The registry package changed under the pin; report this to tuneforge.",
            code="gguf.toolchain_pin_mismatch",
        )

    progress("Building llama.cpp (5-15 minutes on 2 cores; once per machine)")
    env = dict(os.environ)
    env["CMAKE_ARGS"] = CMAKE_ARGS
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(min(os.cpu_count() or 2, 8)))
    _run(_pip() + ["wheel", "--no-deps", "-w", str(wheels), str(src)], log, env=env,
         what="compiling llama.cpp")
    progress("Building gguf-py (the converter's own version)")
    _run(_pip() + ["wheel", "--no-deps", "-w", str(wheels), str(vendor / "gguf-py")], log,
         what="building gguf-py")

    progress("Installing into the toolchain cache")
    built = sorted(wheels.glob("*.whl"))
    _run(_pip() + ["install", "--no-deps", "--no-compile", "--target", str(site)] + [str(w) for w in built], log,
         what="installing the wheels")
    specs: list[str] = []
    for meta in site.glob("*.dist-info/METADATA"):
        specs += _requirements(meta.read_text(errors="replace"))
    missing = _missing(sorted(set(specs)))
    # the converter also needs these (not declared by gguf-py); add if the user lacks them
    missing += _missing(["sentencepiece", "safetensors"])
    missing = [m for m in missing if not m.startswith(("llama", "gguf"))]
    if missing:
        progress(f"Installing missing dependencies into the cache: {', '.join(missing)}")
        _run(_pip() + ["install", "--no-compile", "--target", str(site)] + missing, log,
             what="installing dependencies")

    kept = prune_sources(vendor, d / "llama.cpp")
    shutil.rmtree(src_root, ignore_errors=True)
    shutil.rmtree(wheels, ignore_errors=True)
    tc = Toolchain(
        root=str(d),
        version=LLAMA_CPP_PYTHON_VERSION,
        commit=commit,
        python=sys.version.split()[0],
        site_dir=str(site),
        llama_cpp_dir=str(kept),
        convert_script=str(kept / "convert_hf_to_gguf.py"),
        built_at=time.time(),
        build_seconds=round(time.time() - started, 1),
    )
    _smoke_test(tc, log)
    (d / STAMP_NAME).write_text(tc.model_dump_json(indent=2))
    progress(f"Toolchain ready in {tc.build_seconds:.0f} s (llama.cpp {commit[:7]})")
    return tc


#: what the converter needs from the llama.cpp sources (the rest, ~220 MB of C++ and docs, is dropped)
KEEP = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion", "gguf-py", "models/templates", "LICENSE")


def prune_sources(vendor: Path, dest: Path) -> Path:
    """Copy the converter and what it reads (its `conversion` package, `gguf-py`, chat templates) to dest."""
    shutil.rmtree(dest, ignore_errors=True)
    for rel in KEEP:
        source = vendor / rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, target)
    return dest


def _commit(vendor: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(vendor), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=30)
        if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", out.stdout.strip()):
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    # no git: the pin is trusted, the sdist came from the registry at the pinned version
    return LLAMA_CPP_COMMIT


def _smoke_test(tc: Toolchain, log: Path) -> None:
    code = ("import llama_cpp, gguf; from llama_cpp import mtmd_cpp; "
            "print(llama_cpp.__version__, getattr(gguf, 'LazyChunkedTensor', None) is not None)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=tc.env(), timeout=120)
    with open(log, "a") as fh:
        fh.write(f"\nsmoke test: rc={proc.returncode}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        raise TuneforgeError(
            f"The built toolchain does not import: {proc.stderr.strip().splitlines()[-1:]}",
            f"See {log}.",
            code="gguf.toolchain_broken",
        )
