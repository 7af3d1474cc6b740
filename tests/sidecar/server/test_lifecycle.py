"""The sidecar as a process: shutdown under load, a read-only jobs root, unreadable files."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import aiohttp

from scripts.support.listening import await_listening
from tests.helpers import unavailable, write_atomic


def unprivileged() -> list[str]:
    """A command prefix under which file permissions bind this process, even as root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        unavailable("running as root without setpriv (util-linux): permissions cannot bind")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


async def start(
    root: Path, *args: str, prefix: list[str] | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        *(prefix or []), sys.executable, "-m", "sidecar", "--root", str(root), "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    listening = await await_listening(process, timeout=20, what="the sidecar")
    return process, listening.url


async def test_sigterm_with_500_clients(tmp_path: Path) -> None:
    for job in range(50):
        write_atomic(tmp_path / f"job{job}" / "progress.json", {"status": "running"})
    process, url = await start(tmp_path, "--max-clients-per-address", "10")
    ws_base = url.replace("http", "ws", 1)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        clients = []
        for i in range(500):
            ws = await session.ws_connect(f"{ws_base}/ws/training/job{i % 50}")
            clients.append(ws)
        for ws in clients:
            assert (await ws.receive_json(timeout=10))["type"] == "snapshot"
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        closes = await asyncio.gather(*(ws.receive(timeout=5) for ws in clients))
        code = await asyncio.wait_for(process.wait(), 5)
        took = time.monotonic() - began
        for ws in clients:
            await ws.close()
    assert [(m.data, m.extra) for m in closes] == [(1001, "server shutting down")] * 500
    assert code == 0
    assert took < 2.0, f"took {took:.2f} s"


def snapshot_tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every path under root: mode, size, mtime in ns, and a digest of its content."""
    tree = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        tree[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return tree


async def test_a_read_only_root_works_and_is_left_byte_for_byte_unchanged(tmp_path: Path) -> None:
    prefix = unprivileged()
    root = tmp_path / "jobs"
    write_atomic(root / "running" / "progress.json", {"status": "running", "step": 3, "loss": 0.5})
    (root / "running" / "metrics.jsonl").write_text(
        '{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.7}\n'
    )
    write_atomic(root / "done" / "progress.json", {"status": "completed", "final_loss": 0.1})
    (root / "pending").mkdir()
    write_atomic(root / "broken" / "progress.json", "{not json")
    for path in [*root.rglob("*"), root]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = snapshot_tree(root)
    try:
        process, url = await start(root, "--rescan-interval", "0.1", prefix=prefix)
        try:
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 10
                while True:
                    async with session.get(f"{url}/api/jobs") as response:
                        jobs = {j["job_id"]: j for j in (await response.json())["jobs"]}
                    if "read_error" in jobs.get("broken", {}):
                        break
                    assert time.monotonic() < deadline, jobs
                    await asyncio.sleep(0.02)
                assert jobs.keys() == {"running", "done", "pending", "broken"}
                assert jobs["broken"]["read_error"].startswith("invalid json")
                ws_url = url.replace("http", "ws", 1) + "/ws/training/running?history=1"
                async with session.ws_connect(ws_url) as ws:
                    assert (await ws.receive_json(timeout=5))["step"] == 3
                    assert [e["step"] for e in (await ws.receive_json(timeout=5))["entries"]] == [
                        1,
                        2,
                    ]
                # A few reconciliation scans over the tree, counted by the sidecar itself.
                scans = await _scans(session, url)
                deadline = time.monotonic() + 10
                while await _scans(session, url) < scans + 3:
                    assert time.monotonic() < deadline, "no reconciliation scans"
                    await asyncio.sleep(0.05)
        finally:
            process.terminate()
            _, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert snapshot_tree(root) == before
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


async def _scans(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    return next(
        float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("sidecar_scans_total ")
    )


async def test_permission_denied_keeps_the_last_good_state(tmp_path: Path) -> None:
    prefix = unprivileged()
    file = tmp_path / "j" / "progress.json"
    write_atomic(file, {"status": "running", "step": 1})
    process, url = await start(tmp_path, prefix=prefix)
    try:
        async with aiohttp.ClientSession() as session:
            file.chmod(0o000)
            os.utime(file)  # an event, as a trainer's write would make
            deadline = time.monotonic() + 10
            while True:
                async with session.get(f"{url}/api/jobs/j") as response:
                    body = await response.json()
                if "read_error" in body:
                    break
                assert time.monotonic() < deadline, body
                await asyncio.sleep(0.02)
            assert (body["read_error"], body["step"]) == ("permission denied", 1)
    finally:
        file.chmod(0o644)
        process.terminate()
        _, err = await process.communicate()
    assert "job j:" in err.decode() and "permission denied" in err.decode()


async def test_a_killed_trainer_is_stalled_within_two_seconds(tmp_path: Path) -> None:
    """kill -9 writes nothing; the pid and hostname in the file tell the sidecar."""
    from aiohttp.test_utils import TestServer

    from sidecar.server.app import create_app
    from sidecar.server.settings import Settings

    file = tmp_path / "j" / "progress.json"
    trainer = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import json, os, socket, sys, time\n"
        f"path = {str(file)!r}\n"
        "os.makedirs(os.path.dirname(path), exist_ok=True)\n"
        "json.dump({'status': 'running', 'pid': os.getpid(), 'hostname': socket.gethostname()}, open(path + '.tmp', 'w'))\n"
        "os.replace(path + '.tmp', path)\n"
        "print('written', flush=True)\n"
        "time.sleep(600)\n",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert trainer.stdout is not None
    assert await asyncio.wait_for(trainer.stdout.readline(), 20) == b"written\n"
    server = TestServer(create_app(Settings(root=tmp_path)), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            ws_url = str(server.make_url("/ws/training/j")).replace("http", "ws", 1)
            async with session.ws_connect(ws_url) as ws:
                assert (await ws.receive_json(timeout=5))["stalled"] is False
                trainer.kill()  # SIGKILL; left unreaped for now, as a busy parent might
                killed = time.monotonic()
                patch = await ws.receive_json(timeout=2)
                assert (patch["stalled"], patch["stall_reason"]) == (True, "process exited")
                assert time.monotonic() - killed < 2
    finally:
        await trainer.wait()
        await server.close()
