"""The `sbx` command line driven as a person would: a real process, `SBX_API_URL` and a config
folder of its own, output read from its stdout and stderr (and a pseudo-terminal for `shell`)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import termios
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sandbox_platform import Client

from tests.clients.python.support import PASSWORD, Pty, new_email, wait_until

SBX = str(Path(sys.executable).parent / "sbx")
BOOT = "sh -c 'echo booted $GREETING; while true; do sleep 3600; done'"

Run = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(api_url: str, config_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SBX_API_KEY", "SBX_API_URL")}
    return {**env, "SBX_API_URL": api_url, "SBX_CONFIG_DIR": str(config_dir), "COLUMNS": "200"}


def runner(env: dict[str, str]) -> Run:
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SBX, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
        )

    return run


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def env(api_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return cli_env(api_url, tmp_path_factory.mktemp("sbx-config"))


@pytest.fixture(scope="module")
def sbx(env: dict[str, str]) -> Run:
    run = runner(env)
    ok(run("signup", "--email", new_email(), "--password", PASSWORD))
    return run


@pytest.fixture(scope="module")
def environment(sbx: Run, test_image: str) -> str:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    args = ["env", "create", name, "--image", test_image, "--env", "GREETING=hello", "--command", BOOT, "-q"]
    uuid.UUID(ok(sbx(*args)).strip())
    return name


@pytest.fixture(scope="module")
def sandbox(sbx: Run, environment: str) -> Iterator[str]:
    name = f"cli-box-{uuid.uuid4().hex[:6]}"
    sandbox_id = ok(sbx("create", environment, "--name", name, "-q")).strip()
    uuid.UUID(sandbox_id)
    yield name
    sbx("rm", sandbox_id, "--no-wait")


def test_signup_login_and_errors_without_credentials(api_url: str, tmp_path: Path) -> None:
    env = cli_env(api_url, tmp_path)
    run = runner(env)
    refused = run("ls")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: UNAUTHORIZED: You are not logged in.")
    assert "hint: log in with `sbx login`" in refused.stderr

    email = new_email()
    ok(run("signup", "--email", email, "--password", PASSWORD))
    config = tmp_path / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "token = " in config.read_text()
    assert ok(run("whoami")).strip() == email

    wrong = run("login", "--email", email, "--password", "not the password")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("error: UNAUTHORIZED: ")

    # The password prompt reads stdin.
    ok(run("login", "--email", email, stdin=f"{PASSWORD}\n"))
    token = ok(run("login", "--email", email, "--password", PASSWORD, "--json"))
    me = json.loads(token)
    assert me["user"]["email"] == email

    with Client(base_url=api_url, token=me["token"]) as client:
        key = client.api_keys.create("cli").key
    ok(run("login", "--api-key", key))
    assert f'api_key = "{key}"' in config.read_text()
    assert "token" not in config.read_text()
    assert ok(run("whoami", "--json")).count(email) == 1
    # SBX_API_KEY wins over the saved credential.
    overridden = runner({**env, "SBX_API_KEY": "sk_" + "2" * 40})("whoami")
    assert overridden.returncode == 1
    assert overridden.stderr.startswith("error: UNAUTHORIZED:")


def test_environment_and_secret_commands(sbx: Run, environment: str, test_image: str) -> None:
    listed = json.loads(ok(sbx("env", "ls", "--json")))
    shown = json.loads(ok(sbx("env", "show", environment, "--json")))
    assert shown["id"] in {e["id"] for e in listed}
    assert shown["env"] == {"GREETING": "hello"}
    assert shown["command"] == ["sh", "-c", "echo booted $GREETING; while true; do sleep 3600; done"]

    ok(sbx("secret", "set", environment, "API_KEY", "-", stdin="s3cret\n"))
    ok(sbx("secret", "set", environment, "OTHER", "value"))
    ok(sbx("secret", "rm", environment, "OTHER"))
    details = ok(sbx("env", "show", shown["id"][:8]))
    assert "API_KEY" in details
    assert "OTHER" not in details

    spare = f"spare-{uuid.uuid4().hex[:6]}"
    created = json.loads(
        ok(sbx("env", "create", spare, "--image", test_image, "--port", "8080", "--disk", "256", "--json"))
    )
    assert created["ports"] == [{"container": 8080}]
    assert (created["disk"], created["runtime"]) == (256, "runc")
    updated = json.loads(ok(sbx("env", "update", spare, "--runtime", "gvisor", "--disk", "128", "--json")))
    assert (updated["version"], updated["runtime"], updated["disk"]) == (2, "gvisor", 128)
    assert "runtime" in ok(sbx("env", "show", spare))
    info = json.loads(ok(sbx("info", "--json")))
    assert "gvisor" in info["runtimes"]
    assert "gvisor" in ok(sbx("info"))
    ok(sbx("env", "rm", spare))
    gone = sbx("env", "show", spare)
    assert gone.returncode == 1
    assert gone.stderr.startswith("error: NOT_FOUND: ")

    invalid = sbx("env", "create", "no spaces", "--image", test_image)
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("error: VALIDATION_ERROR: ")


def test_ls_show_exec_and_logs(sbx: Run, sandbox: str) -> None:
    assert sandbox in ok(sbx("ls"))
    listed = {s["name"]: s for s in json.loads(ok(sbx("ls", "--json")))}
    assert listed[sandbox]["status"] == "running"
    sandbox_id = listed[sandbox]["id"]
    assert sandbox_id in ok(sbx("show", sandbox_id[:8]))

    failed = sbx("exec", sandbox, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (failed.returncode, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
    result = json.loads(ok(sbx("exec", sandbox, "--json", "--", "echo", "$GREETING")))
    assert (result["exitCode"], result["stdout"]) == (0, "$GREETING\n")  # a list runs without a shell

    wait_until(lambda: "booted hello" in ok(sbx("logs", sandbox)), timeout=30)
    lines = json.loads(ok(sbx("logs", sandbox, "--tail", "5", "--json")))
    assert lines[0]["seq"] == 1
    assert lines[0]["text"] == "booted hello"


def test_lifecycle_replicate_events_and_follow(env: dict[str, str], sbx: Run, sandbox: str) -> None:
    assert "is stopped" in ok(sbx("stop", sandbox))
    refused = sbx("exec", sandbox, "--", "true")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: NOT_RUNNING: ")
    assert "hint: start it with `sbx start REF`" in refused.stderr
    assert "is running" in ok(sbx("start", sandbox))
    assert json.loads(ok(sbx("restart", sandbox, "--json")))["status"] == "running"

    copy = ok(sbx("replicate", sandbox, "--env", "EXTRA=1", "-q")).strip()
    assert ok(sbx("exec", copy, "--", "sh", "-c", "echo $GREETING$EXTRA")) == "hello1\n"
    # `logs -f` follows until the sandbox is destroyed, then ends by itself.
    follower = subprocess.Popen(
        [SBX, "logs", copy, "-f", "--json"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert json.loads(follower.stdout.readline())["text"] == "booted hello"  # type: ignore[union-attr]
        assert json.loads(ok(sbx("rm", copy, "--json")))["status"] == "destroyed"
        assert follower.wait(timeout=30) == 0
    finally:
        follower.kill()
        follower.wait()

    # The copy's history: it ran, then was destroyed.
    events = [json.loads(line) for line in ok(sbx("events", copy, "--json", "--count", "4")).splitlines()]
    assert {e["sandboxId"] for e in events} == {copy}
    types = [e["type"] for e in events]
    assert "sandbox.running" in types
    assert types[-2:] == ["sandbox.destroying", "sandbox.destroyed"]


def test_metrics(sbx: Run, sandbox: str) -> None:
    sample = wait_until(lambda: ok(sbx("metrics", sandbox, "--json")), timeout=60, interval=0.5)
    assert json.loads(sample)["memory"]["limitBytes"] == 256 * 1024 * 1024
    assert "CPU" in ok(sbx("metrics", sandbox))


def test_shell_on_a_real_terminal(env: dict[str, str], sbx: Run, sandbox: str) -> None:
    term = Pty([SBX, "shell", sandbox], env, cols=80, rows=24)
    try:
        term.expect("/ # ", timeout=30)  # the shell's prompt
        term.send("echo ready-$((40+2))\r")
        term.expect("ready-42")
        term.send("stty size\r")
        term.expect("24 80")

        term.send("vi\r")
        term.expect("~")
        term.send(":q\r")
        term.send("echo back-$((1+2))\r")
        term.expect("back-3")

        term.resize(100, 40)

        def resized() -> bool:
            term.send("stty size\r")
            try:
                term.expect("40 100", timeout=2)
            except AssertionError:
                return False
            return True

        wait_until(resized, timeout=20, interval=0)

        # Ctrl-C reaches the sandbox as a byte: it ends `sleep` there, not the CLI here.
        term.send("echo sleeping-$((1+1)); sleep 60; echo slept\r")
        term.expect("sleeping-2")
        term.send(b"\x03")
        term.send("echo after-$((2*3))\r")
        assert b"slept" not in term.expect("after-6")

        term.send("exit\r")
        assert term.wait(timeout=30) == 0
        modes = term.terminal_modes()
        assert modes[3] & termios.ICANON
        assert modes[3] & termios.ECHO
        assert modes == term.cooked
    finally:
        term.close()
