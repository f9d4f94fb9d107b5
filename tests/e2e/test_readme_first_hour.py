"""A new user's first hour, as the README tells it (issue 14): `yunzhou up` (what `make up` runs) in a fresh
folder, then the README's "Using it" commands exactly as written, read from README.md so they cannot drift,
in a shell where only what the README and `up` said to do was done; a busy port and a second `up` answer
in one line; Ctrl-C leaves nothing running; `up` again leaves the user's changes to the demo alone.

Only the ports differ from the README (free ports through YUNZHOU_API_PORT / YUNZHOU_ROUTER_PORT, as the
README documents), and XDG_CONFIG_HOME points at a temporary folder so the discovery entry is the test's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from yunzhou.testing import free_port

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
BANNER_END = "Press Ctrl-C to stop everything."


def readme_block(heading: str) -> list[str]:
    """The lines of the first ```sh block after ``heading`` in README.md."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(f"\n{heading}\n") :]
    match = re.search(r"```sh\n(.*?)```", after, re.DOTALL)
    assert match, f"no sh block after {heading}"
    return [line for line in match.group(1).splitlines() if line.strip()]


def readme_lines() -> list[str]:
    """Every line of every ```sh block of README.md."""
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    return [line for block in blocks for line in block.splitlines()]


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(proc.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            if (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z":
                left.add(pid)
        except (OSError, IndexError):
            continue
    return left


class Up:
    """`yunzhou up` as `make up` runs it: in the folder, with the README's port variables."""

    def __init__(self, folder: Path, config_home: Path, api_port: int, router_port: int) -> None:
        self.folder, self.api_port, self.router_port = folder, api_port, router_port
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("YUNZHOU_")}
        self.env |= {
            "XDG_CONFIG_HOME": str(config_home),
            "YUNZHOU_API_PORT": str(api_port),
            "YUNZHOU_ROUTER_PORT": str(router_port),
        }
        self.log = folder / "up.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def run_once(self) -> subprocess.CompletedProcess[str]:
        """A second `up` that is expected to refuse at once."""
        return subprocess.run(
            [sys.executable, "-m", "yunzhou", "up"],
            cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    def start(self, until: str = BANNER_END) -> str:
        """Start it and return its output once ``until`` is in it."""
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "yunzhou", "up"],
                cwd=self.folder, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 900  # the demo is built first (a fresh machine builds a stack too)
        while until not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "yunzhou up did not come up:\n" + self.log.read_text()
            time.sleep(0.05)  # polling its output, bounded by the deadline
        return self.log.read_text()

    def paste_lines(self) -> list[str]:
        """What `up` told the user to paste into another terminal."""
        banner = self.log.read_text()
        block = banner[banner.index("In another terminal") : banner.index(BANNER_END)]
        return [line.strip() for line in block.splitlines()[1:] if line.strip()]

    def stop(self) -> tuple[int, float]:
        """Ctrl-C; returns the exit code and how long it took."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return code, time.monotonic() - began


def user_shell(config_home: Path, script: list[str]) -> subprocess.CompletedProcess[str]:
    """bash in the clone with only the system PATH: no venv, no YUNZHOU_* variables."""
    venv_bin = str(Path(sys.executable).parent)
    path = ":".join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":") if p and p != venv_bin)
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "XDG_CONFIG_HOME": str(config_home)}
    env |= {"LANG": "C.UTF-8", "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        ["bash", "-c", "\n".join(["set -ex", *script])],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    base = tmp_path_factory.mktemp("first-hour")
    (base / "clone").mkdir()
    running = Up(base / "clone", base / "config", free_port(), free_port())
    running.start()
    yield running
    if running.proc is not None and running.proc.poll() is None:
        running.stop()


def test_the_readme_commands_work_as_written_after_up(up: Up) -> None:
    pasted = up.paste_lines()
    assert re.fullmatch(r"source \S+/bin/activate", pasted[0]), pasted
    assert f"export YUNZHOU_URL=http://127.0.0.1:{up.api_port}" in pasted  # not the README's default port
    commands = readme_block("## Using it")
    assert commands[0].startswith("source .venv/bin/activate")
    [curl] = [
        line.replace(":8080/", f":{up.router_port}/") for line in readme_lines() if line.startswith("curl ")
    ]
    done = user_shell(up.folder.parent / "config", [*pasted, *commands, curl])
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "Deployed team/dev/orders as release 2" in done.stdout
    assert '"app.rollback"' in done.stdout  # yunzhou audit -o json
    assert re.search(r'"accepted": ?true', done.stdout)  # the curl: orders asked inventory


def test_a_second_up_here_says_so_in_one_line(up: Up) -> None:
    again = up.run_once()
    assert again.returncode == 1
    assert again.stdout == ""
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert f"already running here (pid {up.proc.pid if up.proc else 0}, http://127.0.0.1:{up.api_port}" in (
        again.stderr
    )
    assert httpx.get(f"http://127.0.0.1:{up.api_port}/api/v1/healthz", timeout=10).status_code == 200


def test_a_busy_port_is_named_in_one_line_and_nothing_is_left(up: Up, tmp_path: Path) -> None:
    for api_port, router_port, names in (
        (up.api_port, free_port(), ("(API and console)", "--api-port N or YUNZHOU_API_PORT=N")),
        (free_port(), up.router_port, ("(router)", "--router-port N or YUNZHOU_ROUTER_PORT=N")),
    ):
        other = Up(tmp_path, tmp_path / "config", api_port, router_port)
        began = time.monotonic()
        refused = other.run_once()
        took = time.monotonic() - began
        assert refused.returncode == 1
        line = refused.stderr.strip()
        assert len(line.splitlines()) == 1, refused.stderr
        assert "Traceback" not in refused.stderr
        port = api_port if "API" in names[0] else router_port
        assert line.startswith(f"yunzhou: port {port} on 127.0.0.1 {names[0]} is in use"), line
        assert names[1] in line
        assert took < 60, took  # fails at once (the time is Python's start-up on a busy machine)
        assert not (tmp_path / ".yunzhou" / "router.pid").exists()
        assert not (tmp_path / "config" / "yunzhou" / "servers" / f"{api_port}.json").exists()


def test_ctrl_c_stops_everything_and_up_again_keeps_the_users_changes(up: Up) -> None:
    config_home = up.folder.parent / "config"
    scaled = user_shell(config_home, [*up.paste_lines()[:2], "yunzhou scale shop/dev/orders 1 --wait"])
    assert scaled.returncode == 0, scaled.stderr
    started = descendants(up.proc.pid if up.proc else 0)
    assert started  # the router and the demo's instances
    code, took = up.stop()
    assert code == 0, up.log.read_text()[-3000:]
    assert alive(started) == set()
    assert not (config_home / "yunzhou" / "servers" / f"{up.api_port}.json").exists()
    print(f"Ctrl-C stopped everything in {took:.1f} s")  # reported with -s

    banner = up.start()
    try:
        kept = [line for line in banner.splitlines() if "(already there: left as it is)" in line]
        assert len(kept) == 2, banner  # orders and inventory
        assert any("shop/dev/orders release 1," in line for line in kept), banner
        listed = user_shell(config_home, [*up.paste_lines()[:2], "yunzhou apps shop/dev -o json"])
        assert listed.returncode == 0, listed.stderr
        orders = next(a for a in json.loads(listed.stdout) if a["name"] == "orders")
        assert (orders["desired_release"], orders["replicas"]) == (1, 1)  # not redeployed, not rescaled
    finally:
        up.stop()


def test_ctrl_c_while_the_demo_deploys_stops_everything_promptly(tmp_path: Path) -> None:
    (tmp_path / "clone").mkdir()
    early = Up(tmp_path / "clone", tmp_path / "config", free_port(), free_port())
    try:
        early.start(until="Uvicorn running")  # the API is up, the demo not yet
        started = descendants(early.proc.pid if early.proc else 0)
        code, took = early.stop()
    finally:
        if early.proc is not None and early.proc.poll() is None:
            early.proc.kill()
            early.proc.wait()
    log = early.log.read_text()
    assert BANNER_END not in log  # it was stopped before the demo was up
    assert code == 0, log[-3000:]
    assert "Traceback" not in log
    assert took < 60, took
    assert alive(started) == set()
    print(f"Ctrl-C during seeding stopped everything in {took:.1f} s")
