"""`volthaus serve` as a real process: demo site, first admin token, JSON logs, clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_health(url: str, process: subprocess.Popen[str]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise AssertionError(f"server exited early with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become healthy")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_serve_demo_then_stop_cleanly(tmp_path: Path, stop_signal: signal.Signals) -> None:
    http_port, ocpp_port = free_port(), free_port()
    env = dict(os.environ, VOLTHAUS_DATABASE_URL=f"sqlite:///{tmp_path / 'serve.db'}")
    command = [
        str(Path(sys.executable).with_name("volthaus")), "serve", "--demo",
        "--http-port", str(http_port), "--ocpp-port", str(ocpp_port),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        url = f"http://127.0.0.1:{http_port}"
        wait_for_health(url, process)
        assert httpx.get(f"{url}/docs").status_code == 200
        with socket.create_connection(("127.0.0.1", ocpp_port), timeout=2):
            pass  # the OCPP listener accepts connections
    finally:
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    token_lines = [line for line in output.splitlines() if "Admin API token" in line]
    assert len(token_lines) == 1
    token = token_lines[0].rsplit(" ", 1)[1]
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    names = [event["event"] for event in events]
    assert "ready" in names and names[-1] == "stopped"
    assert all("timestamp" in event and "level" in event for event in events)

    # A second start keeps the data and does not mint another admin token.
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        wait_for_health(url, process)
        sites = httpx.get(
            f"{url}/api/v1/sites/lindenhof/export", headers={"Authorization": f"Bearer {token}"}
        )
        assert sites.status_code == 200 and len(sites.json()["accounts"]) == 6
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and "Admin API token" not in output


def test_the_http_socket_is_tcp_so_answers_are_not_held_by_nagle() -> None:
    """asyncio sets TCP_NODELAY only on sockets created as IPPROTO_TCP; without it a kept-alive
    connection waited for the peer's delayed ACK (~40 ms) on every answer."""
    import socket as sockets

    from csms.serve import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == sockets.IPPROTO_TCP
    finally:
        sock.close()
