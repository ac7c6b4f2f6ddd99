#!/usr/bin/env python3
"""Set-up and test driver behind `make demo` and `make test` (standard library only).

It runs with the machine's own Python (>= 3.10), before the virtual environment exists:

    python3 scripts/bootstrap.py setup     the venv, torch 2.13.0 (CPU or CUDA build), then -e '.[test]'
    python3 scripts/bootstrap.py prereqs   node >= 20, npm, cmake >= 3.18, a C++20 compiler
    python3 scripts/bootstrap.py test      prereqs, setup, pytest, examples/run.sh; durations at the end

Which torch build: with an NVIDIA GPU (`/proc/driver/nvidia` or a working `nvidia-smi`) pip
installs `torch==2.13.0` from the configured index (the CUDA build on Linux). Without one, the
CPU build from PyTorch's CPU wheel index when that index answers within a few seconds, else
from the configured index (a local wheel folder, a mirror, or PyPI). A torch 2.13.0 already in
the venv is kept, whichever build it is. torch goes in first, so that `pip install -e '.[test]'`
finds its torch requirement met and never pulls a second build.

Overrides (environment): RLEXPORT_GPU=1|0 replaces the GPU probe; RLEXPORT_CPU_INDEX=URL
replaces PyTorch's CPU index (RLEXPORT_CPU_INDEX=none: use the configured index).
`setup --dry-run` prints the commands without running them.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
TORCH = "torch==2.13.0"
TORCH_VERSION = "2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PROBE_TIMEOUT_S = 4.0
STAMP_NAME = ".rlexport-installed"
PIP = ["-m", "pip", "install", "--progress-bar", "off", "--disable-pip-version-check"]

DEBIAN_HINT = (
    "On Debian/Ubuntu: sudo apt-get install nodejs npm cmake g++ "
    "(the nodejs package is >= 20 from Debian 13 and Ubuntu 24.10 on; on older releases "
    "install Node.js 20+ from https://github.com/nodesource/distributions or with nvm)"
)


# ----------------------------------------------------------------------------------- probes
def nvidia_gpu_present() -> bool:
    """True when the NVIDIA driver is loaded: /proc/driver/nvidia, or `nvidia-smi -L` lists a GPU."""
    forced = os.environ.get("RLEXPORT_GPU")
    if forced in ("0", "1"):
        return forced == "1"
    if Path("/proc/driver/nvidia").exists():
        return True
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "GPU" in done.stdout


def index_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when `url/torch/` answers HTTP 200 within `timeout` seconds (DNS included)."""
    answer: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout) as reply:
                answer.append(reply.status == 200)
        except Exception:  # any failure (DNS, refused, TLS, HTTP error) means "not reachable"
            answer.append(False)

    # A thread, because a hanging DNS lookup ignores urlopen's timeout.
    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(answer and answer[0])


def cpu_index() -> str | None:
    """PyTorch's CPU index, or the RLEXPORT_CPU_INDEX override (`none`: no CPU index)."""
    url = os.environ.get("RLEXPORT_CPU_INDEX", CPU_INDEX)
    return None if url.lower() in ("", "none") else url


def installed_torch(python: Path) -> str | None:
    """The torch version installed for `python`, without importing torch (None if absent)."""
    if not python.exists():
        return None
    code = "import importlib.metadata as m\ntry: print(m.version('torch'))\nexcept Exception: pass"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or None


@dataclass
class Probes:
    """What set-up looks at on the machine; tests replace these with stubs."""

    gpu: Callable[[], bool] = nvidia_gpu_present
    reachable: Callable[[str], bool] = index_reachable
    torch_version: Callable[[Path], str | None] = installed_torch
    cpu_index: Callable[[], str | None] = cpu_index


# ------------------------------------------------------------------------------------- plan
@dataclass
class Step:
    """One phase of set-up: a line saying what it does and the command that does it."""

    title: str
    command: list[str] | None  # None: nothing to run (the line only reports)
    pip: bool = False  # pip's output is filtered down to one line per package


def plan_setup(venv: Path, base_python: str, probes: Probes) -> list[Step]:
    """The phases of set-up for this machine, in order (nothing runs here but the probes)."""
    py = venv / "bin" / "python"
    steps: list[Step] = []
    if not py.exists():
        steps.append(Step(f"virtual environment {venv} ({base_python} -m venv)",
                          [base_python, "-m", "venv", str(venv)]))
    have = probes.torch_version(py)
    if have is not None and have.split("+")[0] == TORCH_VERSION:
        steps.append(Step(f"torch {have} already installed: kept", None))
    elif probes.gpu():
        steps.append(Step(f"torch {TORCH_VERSION} from the configured index "
                          "(NVIDIA GPU found: the CUDA build on Linux)",
                          [str(py), *PIP, TORCH], pip=True))
    else:
        url = probes.cpu_index()
        if url is not None and probes.reachable(url):
            steps.append(Step(f"torch {TORCH_VERSION}, CPU build from {url} (no NVIDIA GPU found)",
                              [str(py), *PIP, "--index-url", url, TORCH], pip=True))
        else:
            why = "not reachable" if url is not None else "disabled by RLEXPORT_CPU_INDEX"
            steps.append(Step(f"torch {TORCH_VERSION} from the configured index (no NVIDIA GPU "
                              f"found; PyTorch's CPU index {why})",
                              [str(py), *PIP, TORCH], pip=True))
    steps.append(Step("rlexport and its dependencies (pip install -e '.[test]')",
                      [str(py), *PIP, "-e", ".[test]"], pip=True))
    check = ("import torch; cuda = torch.cuda.is_available(); "
             "print(f'torch {torch.__version__}', "
             "f'(CUDA {torch.version.cuda}, GPU available: {cuda})' if torch.version.cuda "
             "else '(CPU build)')")
    steps.append(Step("check torch", [str(py), "-c", check]))
    return steps


# -------------------------------------------------------------------------------------- run
def _pip_line(line: str) -> str | None:
    """The lines of pip's output worth a newcomer's screen: one per package, plus problems."""
    if "is ignored: it is neither a file nor a directory" in line:
        return None  # a configured extra index that lacks this package: pip looks elsewhere
    if line.startswith(("ERROR", "WARNING")):
        return line
    if line.startswith("Collecting "):
        return line.split(" (from ", 1)[0]
    if line.startswith("Processing ") and line.split(" (from ", 1)[0].endswith(".whl"):
        return "Processing " + line.split(" (from ", 1)[0].rsplit("/", 1)[-1]  # a local wheel
    if line.startswith("Downloading ") and re.search(r"\((\d+(\.\d+)?) [MG]B\)", line):
        return "  " + line  # only the large downloads: they are where the time goes
    if line.startswith("Installing collected packages: "):
        count = len(line.split(":", 1)[1].split(","))
        return f"Installing {count} packages (unpacking; large wheels take a while)"
    if line.startswith("Successfully installed "):
        return f"Installed {len(line.split()) - 2} packages"
    return None


def run_step(step: Step, log: Path | None) -> int:
    """Runs one step, echoing its filtered output; the full output goes to `log`."""
    if step.command is None:
        return 0
    if not step.pip:
        return subprocess.run(step.command, cwd=ROOT).returncode
    env = dict(os.environ, PIP_NO_INPUT="1", PYTHONUNBUFFERED="1")
    kept: list[str] = []
    with subprocess.Popen(step.command, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, bufsize=1) as proc:
        sink = open(log, "a") if log else None
        try:
            for raw in proc.stdout:  # type: ignore[union-attr]
                if sink:
                    sink.write(raw)
                kept = (kept + [raw.rstrip()])[-40:]
                shown = _pip_line(raw.rstrip())
                if shown:
                    print("    " + shown, flush=True)
        finally:
            if sink:
                sink.close()
    if proc.returncode != 0:
        print("    pip failed; its last lines:\n      " + "\n      ".join(kept), file=sys.stderr)
    return proc.returncode


def _fingerprint() -> str:
    """What the installed venv depends on: the package list and this script."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "scripts/bootstrap.py"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def check_base_python(base_python: str) -> str | None:
    """An error line when `base_python` cannot build the venv (too old, or no venv/ensurepip)."""
    code = "import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 10) else 3)"
    try:
        done = subprocess.run([base_python, "-c", code], capture_output=True, text=True)
    except OSError:
        return f"{base_python} not found: install Python >= 3.10 (or make PYTHON=/path/to/python3)"
    if done.returncode == 3:
        return f"{base_python} is older than 3.10: make PYTHON=/path/to/python3.10-or-newer"
    if done.returncode != 0:
        return (f"{base_python} cannot create a virtual environment (no venv/ensurepip module). "
                "On Debian/Ubuntu: sudo apt-get install python3-venv")
    return None


def setup(venv: Path, base_python: str, probes: Probes, dry_run: bool = False) -> int:
    """Makes `venv` ready (idempotent: a no-op when the stamp matches); returns an exit status."""
    stamp = venv / STAMP_NAME
    if not dry_run and stamp.exists() and stamp.read_text().strip() == _fingerprint():
        print(f"[set-up] {venv} is up to date (delete {stamp} to redo it)")
        return 0
    if not (venv / "bin" / "python").exists():
        problem = check_base_python(base_python)
        if problem:
            print(f"set-up: {problem}", file=sys.stderr)
            return 2
    steps = plan_setup(venv, base_python, probes)
    log = None if dry_run else venv / "setup.log"
    for number, step in enumerate(steps, 1):
        print(f"[set-up {number}/{len(steps)}] {step.title}", flush=True)
        if dry_run:
            if step.command:
                print("    " + shlex.join(step.command))
            continue
        started = time.monotonic()
        rc = run_step(step, log if (venv / "bin").exists() else None)
        if rc != 0:
            print(f"set-up: step {number} failed (exit {rc}); full pip output: {log}", file=sys.stderr)
            return rc
        if step.command and time.monotonic() - started > 2:
            print(f"    ({time.monotonic() - started:.0f} s)")
    if not dry_run:
        stamp.write_text(_fingerprint() + "\n")
    return 0


# -------------------------------------------------------------------------- prerequisites
def _version(command: Sequence[str]) -> tuple[int, ...] | None:
    """The first dotted number in `command`'s output, or None when it cannot run."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", done.stdout + done.stderr)
    if done.returncode != 0 or not found:
        return None
    return tuple(int(part) for part in found.groups() if part is not None)


def _compiles_cxx20(compiler: str) -> str | None:
    """None when `compiler` builds a tiny C++20 program, else the reason it does not."""
    if shutil.which(compiler) is None:
        return "not found"
    source = "#include <span>\n#include <concepts>\nint main() { int a[2]{}; std::span s{a}; return std::integral<int> ? int(s.size()) - 2 : 1; }\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "probe.cpp")
        path.write_text(source)
        try:
            done = subprocess.run([compiler, "-std=c++20", str(path), "-o", str(Path(tmp, "probe"))],
                                  capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return "timed out compiling a tiny C++20 file"
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["error"])[0]
            return f"cannot compile C++20 ({first})"
    return None


def missing_prereqs() -> list[str]:
    """What `make test`'s non-Python consumers need and this machine lacks, one line each."""
    problems = []
    node = _version(["node", "--version"])
    if node is None:
        problems.append("node: not found (need Node.js >= 20)")
    elif node[0] < 20:
        problems.append(f"node: {'.'.join(map(str, node))} found, need >= 20")
    if _version(["npm", "--version"]) is None:
        problems.append("npm: not found")
    cmake = _version(["cmake", "--version"])
    if cmake is None:
        problems.append("cmake: not found (need >= 3.18)")
    elif cmake[:2] < (3, 18):
        problems.append(f"cmake: {'.'.join(map(str, cmake))} found, need >= 3.18")
    compiler = os.environ.get("CXX", "c++")
    why = _compiles_cxx20(compiler)
    if why:
        problems.append(f"C++20 compiler ({compiler}): {why}")
    return problems


def prereqs() -> int:
    problems = missing_prereqs()
    if not problems:
        print("[prerequisites] node, npm, cmake and a C++20 compiler: found")
        return 0
    print("make test needs, for the Node.js and C++ consumers of the exported graphs:", file=sys.stderr)
    for line in problems:
        print(f"  - {line}", file=sys.stderr)
    print(DEBIAN_HINT, file=sys.stderr)
    if os.environ.get("CI", "").lower() != "true":
        print("(or `make test PYTHON_ONLY=1` for the Python suite alone)", file=sys.stderr)
    return 2


# -------------------------------------------------------------------------------- make test
def test(venv: Path, base_python: str, python_only: bool) -> int:
    """make test: each phase timed, the durations printed at the end, stopping at a failure."""
    if python_only and os.environ.get("CI", "").lower() == "true":
        print("make test: PYTHON_ONLY is not allowed under CI (CI runs everything)", file=sys.stderr)
        return 2
    py = venv / "bin" / "python"
    phases: list[tuple[str, Callable[[], int]]] = []
    if not python_only:
        phases.append(("prerequisites", prereqs))
    phases.append(("set-up", lambda: setup(venv, base_python, Probes())))
    phases.append(("pytest", lambda: subprocess.run(
        [str(py), "-m", "pytest", "-q", "-n", "2", "--dist", "loadfile"], cwd=ROOT).returncode))
    if not python_only:
        phases.append(("examples/run.sh", lambda: subprocess.run(
            ["bash", "examples/run.sh"], cwd=ROOT, env=dict(os.environ, PYTHON=str(py))).returncode))
    durations: list[tuple[str, float, int]] = []
    rc = 0
    for name, run in phases:
        started = time.monotonic()
        rc = run()
        durations.append((name, time.monotonic() - started, rc))
        if rc != 0:
            break
    print("\nmake test: durations")
    for name, seconds, status in durations:
        print(f"  {name:<16} {seconds:7.0f} s  {'ok' if status == 0 else f'FAILED (exit {status})'}")
    print(f"  {'total':<16} {sum(s for _, s, _ in durations):7.0f} s")
    if python_only:
        print("  (PYTHON_ONLY=1: the Node.js and C++ consumers were not run)")
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["setup", "prereqs", "test"])
    parser.add_argument("--venv", default=".venv", help="the virtual environment (default .venv)")
    parser.add_argument("--dry-run", action="store_true", help="setup: print the commands only")
    parser.add_argument("--python-only", action="store_true",
                        help="test: the Python suite alone (refused under CI=true)")
    args = parser.parse_args(argv)
    venv = Path(args.venv)
    venv = venv if venv.is_absolute() else ROOT / venv
    if args.command == "setup":
        return setup(venv, sys.executable, Probes(), dry_run=args.dry_run)
    if args.command == "prereqs":
        return prereqs()
    return test(venv, sys.executable, args.python_only)


if __name__ == "__main__":
    sys.exit(main())
