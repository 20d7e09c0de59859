"""Several `volthaus serve` processes on one machine sharing one PostgreSQL database and one
Redis, behind HAProxy when it is installed: the topology of docker/compose.yaml without Docker.

Used by the multi-node tests, `make cluster` and the soak benchmark. Migrations run once, as a
job, before the nodes start (as compose's `migrate` service does); every node shares the
station login key, as the nodes of one installation must.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HAPROXY_TEMPLATE = """\
global
    maxconn {maxconn}
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    # a station's websocket lives for days; the tunnel timeout governs it once upgraded
    timeout tunnel 1h
    option redispatch
frontend http
    bind {host}:{http_port}
    default_backend nodes_http
frontend ocpp
    bind {host}:{ocpp_port}
    default_backend nodes_ocpp
backend nodes_http
    balance roundrobin
    option httpchk GET /readyz
{http_servers}
backend nodes_ocpp
    balance leastconn
    option httpchk
    http-check send meth GET uri /readyz
{ocpp_servers}
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ClusterNode:
    index: int
    node_id: str
    http_port: int
    ocpp_port: int
    log_path: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


@dataclass
class LocalCluster:
    database_url: str
    redis_url: str
    nodes: int = 3
    site_file: Path | None = None
    host: str = "127.0.0.1"
    proxy: bool = True
    # Extra VOLTHAUS_* settings for every node (e.g. a shorter duty lease in tests).
    settings: Mapping[str, str] = field(default_factory=dict)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vh-cluster-")))
    members: list[ClusterNode] = field(default_factory=list)
    # None: free ports (tests); set: where the proxy listens (`make cluster`: 8000 and 9000)
    proxy_http_port: int | None = None
    proxy_ocpp_port: int | None = None
    node_base_port: int | None = None
    _haproxy: asyncio.subprocess.Process | None = None
    _login_key: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def http_url(self) -> str:
        """Where clients go: the proxy, else the first node."""
        port = self.proxy_http_port or self.members[0].http_port
        return f"http://{self.host}:{port}"

    @property
    def ocpp_url(self) -> str:
        port = self.proxy_ocpp_port or self.members[0].ocpp_port
        return f"ws://{self.host}:{port}/ocpp"

    def _env(self, node: ClusterNode | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "VOLTHAUS_DATABASE_URL": self.database_url,
            "VOLTHAUS_REDIS_URL": self.redis_url,
            "VOLTHAUS_LOGIN_KEY": self._login_key,
            "VOLTHAUS_LOG_FORMAT": "json",
            "VOLTHAUS_HOST": self.host,
        })
        env.update(self.settings)
        if node is not None:
            env.update({"VOLTHAUS_NODE_ID": node.node_id,
                        "VOLTHAUS_HTTP_PORT": str(node.http_port),
                        "VOLTHAUS_OCPP_PORT": str(node.ocpp_port)})
        return env

    async def _run_once(self, *argv: str) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csms.cli.main", *argv, env=self._env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"volthaus {' '.join(argv)} failed:\n{out.decode()[-2000:]}")

    async def start(self) -> None:
        await self._run_once("db", "upgrade")  # the one-off migration job
        if self.site_file is not None:
            await self._run_once("site", "import", str(self.site_file))
        for index in range(self.nodes):
            if self.node_base_port is not None:  # fixed: 8101/9101, 8102/9102, …
                http_port = self.node_base_port + 1 + index
                ocpp_port = self.node_base_port + 1001 + index
            else:
                http_port, ocpp_port = free_port(), free_port()
            node = ClusterNode(index, f"node-{index + 1}", http_port, ocpp_port,
                               self.folder / f"node-{index + 1}.log")
            self.members.append(node)
        await asyncio.gather(*(self.start_node(node.index) for node in self.members))
        if self.proxy and shutil.which("haproxy"):
            await self._start_proxy()
        else:
            self.proxy_http_port = self.proxy_ocpp_port = None

    async def start_node(self, index: int) -> None:
        node = self.members[index]
        log = node.log_path.open("ab")
        node.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csms.cli.main", "serve", env=self._env(node),
            stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        log.close()
        await self.wait_ready(index)

    async def wait_ready(self, index: int, timeout: float = 60) -> None:
        node = self.members[index]
        async with httpx.AsyncClient(timeout=2) as client, asyncio.timeout(timeout):
            while True:
                if not node.running:
                    tail = node.log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{node.node_id} ended while starting:\n{tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(node.http_url + "/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)

    async def _start_proxy(self) -> None:
        self.proxy_http_port = self.proxy_http_port or free_port()
        self.proxy_ocpp_port = self.proxy_ocpp_port or free_port()
        http_servers = "\n".join(
            f"    server {n.node_id} 127.0.0.1:{n.http_port} check inter 1s fall 2 rise 1"
            for n in self.members)
        ocpp_servers = "\n".join(
            f"    server {n.node_id} 127.0.0.1:{n.ocpp_port} check port {n.http_port} "
            "inter 1s fall 2 rise 1" for n in self.members)
        config = self.folder / "haproxy.cfg"
        # Two descriptors per proxied connection, within this process's limit.
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        maxconn = max(1000, min(50_000, (limit - 200) // 2))
        config.write_text(HAPROXY_TEMPLATE.format(
            maxconn=maxconn, host=self.host, http_port=self.proxy_http_port,
            ocpp_port=self.proxy_ocpp_port,
            http_servers=http_servers, ocpp_servers=ocpp_servers))
        log = (self.folder / "haproxy.log").open("ab")
        self._haproxy = await asyncio.create_subprocess_exec(
            "haproxy", "-db", "-f", str(config), stdout=log, stderr=asyncio.subprocess.STDOUT)
        log.close()
        async with httpx.AsyncClient(timeout=2) as client, asyncio.timeout(30):
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.http_url + "/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)

    def kill(self, index: int) -> None:
        """SIGKILL: no drain, no release; its claims and duties lapse on their own."""
        node = self.members[index]
        if node.process is not None and node.process.returncode is None:
            node.process.send_signal(signal.SIGKILL)

    async def terminate(self, index: int, timeout: float = 30) -> int | None:
        """SIGTERM and wait: the drain."""
        node = self.members[index]
        if node.process is None or node.process.returncode is not None:
            return None if node.process is None else node.process.returncode
        node.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(node.process.wait(), timeout)
        except TimeoutError:
            node.process.kill()
            return await node.process.wait()

    async def stop(self) -> None:
        await asyncio.gather(*(self.terminate(node.index) for node in self.members))
        for node in self.members:
            if node.process is not None and node.process.returncode is None:
                node.process.kill()
                await node.process.wait()
        if self._haproxy is not None and self._haproxy.returncode is None:
            self._haproxy.terminate()
            await self._haproxy.wait()

    async def __aenter__(self) -> LocalCluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
