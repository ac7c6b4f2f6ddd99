"""The README's fenced blocks run as written: every ```bash/```sh line and every ```python block,
in a temporary folder, in README order (long runs with small sizes). A shell or python block that
is neither run nor listed in NOT_RUN (with the reason) fails `test_every_block_is_run_or_listed`,
and so does a block in a language this file has not classified."""
from __future__ import annotations

import ast
import builtins
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


@dataclass(frozen=True)
class Block:
    heading: str  # the nearest heading above the block
    lang: str  # the fence's info string ("" when untagged)
    text: str
    line: int  # 1-based line of the opening fence

    @property
    def first(self) -> str:
        return next(line.strip() for line in self.text.splitlines() if line.strip())


def readme_blocks(text: str) -> list[Block]:
    blocks, heading, fence, body = [], "", None, []
    for number, line in enumerate(text.splitlines(), 1):
        if fence is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            elif line.startswith("```"):
                fence, body = (line[3:].strip(), number), []
        elif line.startswith("```"):
            blocks.append(Block(heading, fence[0], "\n".join(body), fence[1]))
            fence = None
        else:
            body.append(line)
    assert fence is None, f"README.md:{fence[1]}: a fenced block is never closed"
    return blocks


BLOCKS = readme_blocks(README.read_text())
RUN_LANGUAGES = ("bash", "sh", "python")
SHELLS = ("bash", "sh")

# Blocks in other languages: documentation, run elsewhere or not at all.
OTHER_LANGUAGES = {
    "": "untagged: a synopsis with placeholders, a directory tree or a file layout",
    "js": "needs onnxruntime-node from npm; examples/node (make test) runs the same TrainStep API",
    "cpp": "needs a C++ build against LibTorch; examples/cpp (make test) runs the same calls",
}
# bash/python blocks that are not run here, by their first line, with the reason.
NOT_RUN = {
    "make demo    # set-up, then the main job: train PPO on CartPole, export, validate parity":
        "set-up from scratch plus the whole suite (minutes): measured from a clean clone, and "
        "CI runs `make test` itself (.ci/run)",
    "rlexport bundle --env CartPole-v1 --algo ppo [any rlexport train option] -o cartpole-bundle":
        "a synopsis with placeholders (`[any rlexport train option]`, `runs/RUN`) and 500 000-step "
        "host runs; examples/run.sh (make test) runs the bundle hosts with short runs",
}
# Python blocks that are not executed (too slow for this test), with the reason; their names are
# still checked (`test_python_block_names`).
NOT_EXECUTED = {
    "from rlexport.export import export_program, export_onnx, export_torchscript, export_aoti":
        "export_aoti compiles a C++ package (minutes on 2 cores); tests/export runs the four "
        "exporters. Also, run by hand after the Quick start: export_torchscript of its loss (GAE "
        "in-graph, dynamic time) is refused (the trace does not verify at the golden cases)",
    "from rlexport.export import export_grad, export_train_step":
        "two gradient-graph exports and an ONNX Runtime loop (minutes on 2 cores); tests/train_step "
        "runs export_grad, export_train_step and OnnxTrainer",
}
# Python fragments that continue the Quick start, with the names the prose gives them.
CONTEXT = {
    "from rlexport.export import export_program, export_onnx, export_torchscript, export_aoti":
        "example = batch",
    "from rlexport.export import export_grad, export_train_step": "example = batch",
}
# Known breakage, strictly expected to fail until the named fix lands (then delete the entry).
XFAIL: dict[str, str] = {}
# Long commands run with small sizes: (pattern, replacement) applied to each bash line.
SMALL_SIZES = [(re.compile(r"--total-steps \d+"), "--total-steps 1024")]
STATE_LINES = ("source ", "cd ", "export ")  # replayed before every later line of the block


def _runs(block: Block) -> bool:
    return block.lang in RUN_LANGUAGES and block.first not in NOT_RUN


def _id(block: Block) -> str:
    return f"L{block.line}"


def test_every_block_is_run_or_listed():
    unknown = [f"README.md:{b.line}: ```{b.lang}" for b in BLOCKS
               if b.lang not in RUN_LANGUAGES and b.lang not in OTHER_LANGUAGES]
    assert not unknown, f"blocks in a language tests/test_readme.py does not classify: {unknown}"
    firsts = {b.first for b in BLOCKS}
    stale = [key for key in [*NOT_RUN, *NOT_EXECUTED, *CONTEXT] if key not in firsts]
    stale += [key for key in XFAIL if key.removeprefix("names:") not in firsts
              and not any(key in b.text for b in BLOCKS)]
    assert not stale, f"entries of tests/test_readme.py that match no README block or line: {stale}"
    assert any(_runs(b) for b in BLOCKS if b.lang == "python")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A temporary folder with `.venv` pointing at the venv that runs the tests."""
    path = tmp_path_factory.mktemp("readme")
    (path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return path


def _env() -> dict[str, str]:
    # The venv's bin is not on PATH: a line that says plain `rlexport` must have activated it.
    venv_bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "RLEXPORT_DEBUG")}
    return {**env, "PATH": path, "OMP_NUM_THREADS": "1", "COLUMNS": "100"}


def _bash_lines() -> list[tuple[Block, str, tuple[str, ...]]]:
    """Each command of each run bash block, with the state lines (source, cd) before it."""
    lines = []
    for block in filter(lambda b: b.lang in SHELLS and _runs(b), BLOCKS):
        state: list[str] = []
        for raw in block.text.splitlines():
            command = raw.split(" #", 1)[0].strip()  # README comments are separated by " #"
            if not command or command.startswith("#"):
                continue
            lines.append((block, command, tuple(state)))
            if command.startswith(STATE_LINES):
                state.append(command)
    return lines


def _expect_failure(key: str, request) -> None:
    if key in XFAIL:
        request.applymarker(pytest.mark.xfail(reason=XFAIL[key], strict=True))


@pytest.mark.parametrize("block,command,state", _bash_lines(),
                         ids=[f"{_id(b)}:{c[:50]}" for b, c, _ in _bash_lines()])
def test_bash_line(block, command, state, workdir, request):
    _expect_failure(command, request)
    shrunk = command
    for pattern, small in SMALL_SIZES:
        shrunk = pattern.sub(small, shrunk)
    script = "\n".join(["set -euo pipefail", *state, shrunk])
    done = subprocess.run(["bash", "-c", script], cwd=workdir, env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, (
        f"README.md:{block.line}: `{command}` exited {done.returncode}\n"
        f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def _names(source: str) -> tuple[set[str], set[str]]:
    """(names the code reads, names it binds), from its syntax tree."""
    read, bound = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return read, bound


PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python" and _runs(b)]


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=_id)
def test_python_block_names(block, request):
    """Every name a block reads is bound by it, by a block above it, or by its CONTEXT line."""
    _expect_failure("names:" + block.first, request)
    bound = set(dir(builtins))
    for earlier in PYTHON_BLOCKS[: PYTHON_BLOCKS.index(block)]:
        bound |= _names(CONTEXT.get(earlier.first, "") + "\n" + earlier.text)[1]
    read, own = _names(CONTEXT.get(block.first, "") + "\n" + block.text)
    undefined = sorted(read - own - bound)
    assert not undefined, f"README.md:{block.line}: the block reads {undefined}, defined nowhere above it"


_NAMESPACE: dict = {"__name__": "__readme__"}  # executed blocks share one namespace, in order


@pytest.mark.parametrize("block", [b for b in PYTHON_BLOCKS if b.first not in NOT_EXECUTED], ids=_id)
def test_python_block(block, workdir, monkeypatch, request):
    _expect_failure(block.first, request)
    monkeypatch.chdir(workdir)
    source = CONTEXT.get(block.first, "") + "\n" + block.text
    exec(compile(source, f"README.md:{block.line}", "exec"), _NAMESPACE)  # noqa: S102 (the point)


def test_small_sizes_apply_to_the_long_commands():
    trains = [c for _, c, _ in _bash_lines() if shlex.split(c)[:2] == ["rlexport", "train"]]
    assert trains, "the README's bash blocks no longer train: drop SMALL_SIZES or this test"
    for command in trains:
        assert "--total-steps" in command, f"`{command}` would run 500 000 steps in the test"
