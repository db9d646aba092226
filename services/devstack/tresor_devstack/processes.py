"""Child processes of the local stack: started in order, all stopped on Ctrl-C."""

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


class Supervisor:
    def __init__(self) -> None:
        self._children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, module: str, env: Mapping[str, str], *args: str) -> None:
        # A process group of its own: Ctrl-C reaches only the supervisor, which then stops
        # the children in reverse order, instead of all of them at once.
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args], env={**os.environ, **env}, process_group=0
        )
        self._children.append((name, process))

    def run_once(self, module: str, env: Mapping[str, str], *args: str) -> None:
        subprocess.run([sys.executable, "-m", module, *args], env={**os.environ, **env}, check=True)

    def wait_grpc_serving(self, name: str, address: str, within_seconds: float = 60) -> None:
        deadline = time.monotonic() + within_seconds
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                self._check_alive()
                with contextlib.suppress(grpc.RpcError):
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                time.sleep(0.2)
        raise TimeoutError(f"{name} did not become ready at {address}")

    def wait_https(self, name: str, url: str, cafile: Path, within_seconds: float = 60) -> None:
        """Until `url` answers 200 over TLS, verified against the local certificate."""
        deadline = time.monotonic() + within_seconds
        while time.monotonic() < deadline:
            self._check_alive()
            if not cafile.exists():  # Traefik's start-up writes it
                time.sleep(0.2)
                continue
            context = ssl.create_default_context(cafile=str(cafile))
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, context=context, timeout=2) as response,  # noqa: S310
            ):
                if response.status == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{name} did not answer at {url}")

    def _check_alive(self) -> None:
        for name, process in self._children:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.returncode}")

    def wait(self) -> None:
        """Until Ctrl-C / SIGTERM, or until a child dies."""
        stop = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stop
            stop = True

        # SIGINT too: started in the background, a process inherits SIGINT ignored, and
        # Python then never raises KeyboardInterrupt.
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        try:
            while not stop:
                self._check_alive()
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass

    def stop_all(self) -> None:
        for _, process in reversed(self._children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in reversed(self._children):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
