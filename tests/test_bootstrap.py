"""scripts/bootstrap.py, the set-up behind `make demo`/`make test`: which pip commands run on
which kind of machine (probes stubbed), the real index probe against a local server, and the
prerequisite check that runs before any test."""
from __future__ import annotations

import http.server
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "bootstrap.py"
_spec = importlib.util.spec_from_file_location("bootstrap", SCRIPT)
bootstrap = importlib.util.module_from_spec(_spec)
sys.modules["bootstrap"] = bootstrap  # dataclasses look their module up by name
_spec.loader.exec_module(bootstrap)


def _never(*_):
    raise AssertionError("this probe must not be consulted here")


def _probes(gpu, reachable=_never, torch_version=None, index=bootstrap.CPU_INDEX):
    return bootstrap.Probes(gpu=gpu if callable(gpu) else (lambda: gpu), reachable=reachable,
                            torch_version=lambda _py: torch_version, cpu_index=lambda: index)


def _commands(venv, probes):
    return [step.command for step in bootstrap.plan_setup(venv, "python3", probes) if step.command]


def _pip_installs(commands):
    """The argument lists of the `pip install` commands, after `pip install`."""
    return [cmd[cmd.index("install") + 1:] for cmd in commands if "pip" in cmd]


FLAGS = ["--progress-bar", "off", "--disable-pip-version-check"]


def test_no_gpu_and_cpu_index_unreachable_falls_back_to_the_configured_index(tmp_path):
    asked = []
    commands = _commands(tmp_path / "venv", _probes(False, reachable=lambda url: asked.append(url) or False))
    assert asked == [bootstrap.CPU_INDEX]
    assert commands[0] == ["python3", "-m", "venv", str(tmp_path / "venv")]
    assert _pip_installs(commands) == [FLAGS + ["torch==2.13.0"], FLAGS + ["-e", ".[test]"]]
    assert all(cmd[0] == str(tmp_path / "venv" / "bin" / "python") for cmd in commands[1:])


def test_no_gpu_and_cpu_index_reachable_installs_the_cpu_build_first(tmp_path):
    commands = _commands(tmp_path / "venv", _probes(False, reachable=lambda url: True))
    assert _pip_installs(commands) == [
        FLAGS + ["--index-url", "https://download.pytorch.org/whl/cpu", "torch==2.13.0"],
        FLAGS + ["-e", ".[test]"],
    ]


def test_gpu_present_installs_torch_from_the_configured_index_without_probing(tmp_path):
    commands = _commands(tmp_path / "venv", _probes(True))  # reachable=_never: no probe
    assert _pip_installs(commands) == [FLAGS + ["torch==2.13.0"], FLAGS + ["-e", ".[test]"]]


@pytest.mark.parametrize("build", ["2.13.0+cu128", "2.13.0+cpu", "2.13.0"])
def test_an_installed_torch_2_13_0_is_kept_whatever_its_build(tmp_path, build):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").touch()  # the venv exists: no venv step
    commands = _commands(tmp_path, _probes(_never, torch_version=build))
    assert _pip_installs(commands) == [FLAGS + ["-e", ".[test]"]]
    assert commands[-1][1] == "-c" and "import torch" in commands[-1][2]  # reported, never refused


def test_another_torch_version_is_replaced(tmp_path):
    commands = _commands(tmp_path, _probes(False, reachable=lambda url: False, torch_version="2.12.1"))
    assert _pip_installs(commands)[0] == FLAGS + ["torch==2.13.0"]


def test_cpu_index_disabled_needs_no_probe(tmp_path):
    steps = bootstrap.plan_setup(tmp_path, "python3", _probes(False, index=None))
    assert "disabled by RLEXPORT_CPU_INDEX" in steps[1].title
    assert _pip_installs([s.command for s in steps if s.command])[0] == FLAGS + ["torch==2.13.0"]


class _Index(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
        self.end_headers()
        self.wfile.write(b"<a href='torch-2.13.0+cpu.whl'>torch</a>")

    def log_message(self, *args):
        pass


def test_index_probe_against_a_local_server_and_a_closed_port():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert bootstrap.index_reachable(base + "/whl/cpu")
        assert not bootstrap.index_reachable(base + "/whl/cu128")  # 404
    finally:
        server.shutdown()
    started = time.monotonic()
    assert not bootstrap.index_reachable("http://127.0.0.1:9/whl/cpu", timeout=2)
    assert time.monotonic() - started < 3


def _run(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120, **kwargs)


def test_dry_run_reads_the_probe_overrides(tmp_path):
    no_gpu = _run("--venv", str(tmp_path / "v"), "setup", "--dry-run",
                  env={"RLEXPORT_GPU": "0", "RLEXPORT_CPU_INDEX": "http://127.0.0.1:9/whl/cpu"})
    assert no_gpu.returncode == 0, no_gpu.stderr
    assert "no NVIDIA GPU found; PyTorch's CPU index not reachable" in no_gpu.stdout
    assert "--index-url" not in no_gpu.stdout
    gpu = _run("--venv", str(tmp_path / "v"), "setup", "--dry-run", env={"RLEXPORT_GPU": "1"})
    assert "NVIDIA GPU found" in gpu.stdout and "--index-url" not in gpu.stdout
    assert not (tmp_path / "v").exists()  # a dry run creates nothing


def test_pip_output_is_cut_to_a_line_per_package():
    lines = [
        "Collecting numpy>=1.26 (from rlexport==0.1.0)", "  Using cached numpy-2.3.1.whl (16.6 MB)",
        "WARNING: Location 'file:///opt/pypi/simple/numpy/' is ignored: it is neither a file nor a directory.",
        "Processing /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl (from x)",
        "Requirement already satisfied: filelock in ./venv/lib", "Downloading onnx-1.18.whl (17.2 MB)",
        "Downloading six-1.17.0.whl (11 kB)", "Installing collected packages: six, onnx, numpy",
        "Successfully installed numpy-2.3.1 onnx-1.18 six-1.17.0", "ERROR: No matching distribution",
    ]
    shown = [s for s in map(bootstrap._pip_line, lines) if s]
    assert shown == ["Collecting numpy>=1.26",
                     "Processing torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
                     "  Downloading onnx-1.18.whl (17.2 MB)",
                     "Installing 3 packages (unpacking; large wheels take a while)",
                     "Installed 3 packages", "ERROR: No matching distribution"]


def _fake_tools(tmp_path, node_version):
    """A PATH with a `node` of the given version and an npm, but no cmake and no compiler."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, out in [("node", f"v{node_version}"), ("npm", "10.8.2")]:
        (bin_dir / name).write_text(f"#!/bin/sh\necho {out}\n")
        (bin_dir / name).chmod(0o755)
    return {"PATH": str(bin_dir), "CXX": "no-such-c++"}


def test_prereqs_name_each_missing_tool_with_the_install_command(tmp_path):
    done = _run("prereqs", env=_fake_tools(tmp_path, "18.19.0"))
    assert done.returncode == 2
    assert "node: 18.19.0 found, need >= 20" in done.stderr
    assert "cmake: not found" in done.stderr and "C++20 compiler (no-such-c++): not found" in done.stderr
    assert "  - npm" not in done.stderr  # npm was found
    assert "sudo apt-get install nodejs npm cmake g++" in done.stderr


def test_make_test_stops_before_set_up_and_pytest_when_a_tool_is_missing(tmp_path):
    venv = tmp_path / "venv"
    done = _run("--venv", str(venv), "test", env=_fake_tools(tmp_path, "22.1.0"))
    assert done.returncode == 2
    assert "cmake: not found" in done.stderr
    assert "[set-up" not in done.stdout and not venv.exists()
    assert "prerequisites" in done.stdout and "FAILED (exit 2)" in done.stdout  # durations table


def test_python_only_is_refused_under_ci(tmp_path):
    done = _run("--venv", str(tmp_path / "v"), "test", "--python-only", env={"CI": "true"})
    assert done.returncode == 2 and "not allowed under CI" in done.stderr


@pytest.mark.skipif(not all(map(shutil.which, ["node", "npm", "cmake", "c++"])),
                    reason="node/npm/cmake/c++ not installed (make test checks them first)")
def test_prereqs_pass_on_a_machine_with_the_tools():
    done = _run("prereqs")
    assert done.returncode == 0, done.stderr
