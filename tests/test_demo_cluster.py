"""scripts/demo.py --cluster: a redis-server, two node sidecars and a gateway, end to end."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.demo import DEMO, REPO
from tests.redis_server import require_redis_server


def processes_with(*texts: str) -> list[str]:
    """The processes whose command line holds one of ``texts``."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True
    )
    return [line for line in listing.stdout.splitlines() if any(t in line for t in texts)]


@pytest.mark.timeout(180)
async def test_demo_cluster_serves_both_nodes_jobs_through_the_gateway(tmp_path: Path) -> None:
    """--cluster: a redis-server, two node sidecars and a gateway, real training on both nodes;
    the gateway lists each node's job with its node, and Ctrl-C stops every process."""
    require_redis_server()
    root = tmp_path / "jobs"
    log = (tmp_path / "demo.stderr").open("wb")
    demo = await asyncio.create_subprocess_exec(
        sys.executable, str(DEMO), "--cluster", "--root", str(root), "--port", "0", "--steps", "4",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=log,
    )  # fmt: skip
    assert demo.stdout is not None
    lines: list[str] = []
    redis_port = None

    async def read_until(text: str) -> str:
        while not lines or text not in lines[-1]:
            line = await demo.stdout.readline()  # type: ignore[union-attr]
            assert line, "the demo ended early:\n" + "".join(lines)
            lines.append(line.decode())
        return "".join(lines)

    async def until_listed(
        session: aiohttp.ClientSession, url: str, expected: set[tuple[str, ...]]
    ) -> None:
        """Until ``url`` lists just these jobs: (ok or fails, node[, status]) each."""
        while True:
            async with session.get(f"{url}/api/jobs") as response:
                jobs = (await response.json())["jobs"]
            fields = [(j["job_id"].rsplit("-", 1)[1], j["node"], j["status"]) for j in jobs]
            if {f[: len(next(iter(expected)))] for f in fields} == expected:
                return
            assert len(jobs) <= 2, (url, jobs)
            await asyncio.sleep(0.05)

    try:
        async with asyncio.timeout(150), aiohttp.ClientSession() as session:
            text = await read_until("in a terminal:")
            gateway = re.search(r"^gateway at (http://127\.0\.0\.1:\d+)", text, re.M)
            redis = re.search(r"^  redis: +redis://127\.0\.0\.1:(\d+)/0", text, re.M)
            nodes = dict(re.findall(r"^  (node-[ab]): +(http://127\.0\.0\.1:\d+)/", text, re.M))
            assert gateway and redis and set(nodes) == {"node-a", "node-b"}, text
            redis_port = redis[1]
            # While they train: the gateway lists the job of each node, with its node.
            await until_listed(session, gateway[1], {("ok", "node-a"), ("fails", "node-b")})
            await read_until("Ctrl-C to stop")
            ended = {("ok", "node-a", "completed"), ("fails", "node-b", "failed")}
            for url in (gateway[1], *nodes.values()):  # each node serves the other's job too
                await until_listed(session, url, ended)
        assert sorted(p.name for p in root.iterdir()) == ["node-a", "node-b"]

        demo.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(demo.wait(), 30) == 0
        assert processes_with(str(tmp_path), f"127.0.0.1:{redis_port}") == []
        assert "Traceback" not in (tmp_path / "demo.stderr").read_text()
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
        log.close()


def test_demo_cluster_without_redis_server_says_so_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--cluster", "--root", str(tmp_path / "jobs"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": str(tmp_path), "LANG": "C.UTF-8"},  # no redis-server there
    )
    assert result.returncode == 1
    assert result.stderr == (
        "--cluster runs a Redis of its own, and redis-server is not installed: "
        "apt-get install redis-server\n"
    )
    assert result.stdout == ""
    assert not (tmp_path / "jobs").exists()


def test_demo_cluster_busy_port_says_so_in_one_line(tmp_path: Path) -> None:
    """The gateway's port in use: the same line as without --cluster, and nothing left, its
    redis-server included."""
    require_redis_server()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        demo = subprocess.Popen(
            [
                sys.executable,
                str(DEMO),
                "--cluster",
                "--root",
                str(tmp_path / "jobs"),
                "--port",
                str(port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = demo.communicate(timeout=30)
    assert demo.returncode == 1
    assert err == (
        f"port {port} is busy (another demo or sidecar?): choose another with --port N, "
        "or --port 0 for any free one\n"
    )
    assert out == ""
    assert not (tmp_path / "jobs").exists()
