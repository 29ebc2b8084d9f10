"""`dragon serve` as a test starts it: a real process on a free loopback port, its output in a
file of the test's directory (quoted when it fails to start), ready once /readyz answers."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port
from tests.support.readiness import wait_ready

DRAGON = Path(sys.executable).with_name("dragon")


@dataclass
class DragonServer:
    """One `dragon serve` process on a loopback port, its output in `log`."""

    process: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def wait_ready(self) -> None:
        await wait_ready(self.url, process=self.process, output=self.output)

    async def crash(self) -> None:
        """SIGKILL: no shutdown hook, no flush, no goodbye."""
        self.process.kill()
        await self.process.wait()

    async def stop(self, *, seconds: float = 10) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `seconds`."""
        if self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), timeout=seconds)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def start_dragon_serve(env: dict[str, str], *, directory: Path, name: str) -> DragonServer:
    """Starts `dragon serve` with `env` (which names its database) in `directory`, output in
    `<name>.log`; returns it once ready. The caller stops it."""
    port = free_port()
    log = directory / f"{name}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            str(DRAGON),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env=env,
            cwd=directory,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    server = DragonServer(process=process, port=port, log=log)
    try:
        await server.wait_ready()
    except BaseException:
        await server.stop()
        raise
    return server
