"""rtl_tcp as librtlsdr's ``rtl_tcp.c`` speaks it: a real server on loopback for the tests."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Sequence

__all__ = ["RtlTcpServer"]


class RtlTcpServer:
    """rtl_tcp as librtlsdr's ``rtl_tcp.c`` speaks it, serving a recording's bytes.

    It sends the ``RTL0`` header, then the recording's cu8 bytes paced at the sample rate in
    force (the last 0x02 command received), and records every command. Each connection resumes
    at the first whole sample after where the last one stopped. ``behaviours`` says how each
    connection behaves (the last one repeats): ``normal``; ``bad_magic``, ``garbage``,
    ``huge_gains``, ``silent`` (no header); ``stall_after:N`` (N bytes, then silence with the
    connection open); ``close_after:N``; ``trickle`` (a few bytes now and then). With ``loop``
    the recording starts again at its end, for as long as the connection lasts.
    """

    def __init__(
        self,
        data: bytes,
        behaviours: Sequence[str] = ("normal",),
        chunk: int = 16384,
        rate: float = 2.048e6,
        loop: bool = False,
    ) -> None:
        self.data = data
        self.loop = loop
        self.behaviours = list(behaviours)
        self.chunk = chunk
        self.rate = rate
        self.commands: list[tuple[int, int]] = []
        self.served: list[list[int]] = []
        self.offset = 0
        self.connections = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            behaviour = self.behaviours[min(self.connections, len(self.behaviours) - 1)]
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn, behaviour), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, behaviour: str) -> None:
        kind, _, arg = behaviour.partition(":")
        with conn:
            header = {
                "normal": struct.pack(">4sII", b"RTL0", 5, 29),
                "stall_after": struct.pack(">4sII", b"RTL0", 5, 29),
                "close_after": struct.pack(">4sII", b"RTL0", 5, 29),
                "bad_magic": struct.pack(">4sII", b"RTL1", 5, 29),
                "garbage": b"HTTP/1.1 400 Bad Request\r\n\r\n",
                "huge_gains": struct.pack(">4sII", b"RTL0", 5, 4_000_000_000),
                "silent": b"",
                "trickle": struct.pack(">4sII", b"RTL0", 5, 29),
            }[kind]
            conn.sendall(header)
            reader = threading.Thread(target=self._commands, args=(conn,), daemon=True)
            reader.start()
            limit = int(arg) if arg else None
            if kind in ("normal", "stall_after", "close_after"):
                self._stream(conn, limit)
            while kind == "trickle" and not self._stop.wait(0.02):
                try:
                    conn.sendall(b"\x80" * 100)
                except OSError:
                    return
            if kind != "close_after":
                self._stop.wait()

    def _stream(self, conn: socket.socket, limit: int | None) -> None:
        start = self.offset = self.offset + self.offset % 2
        self.served.append([start, start])
        due = time.monotonic()
        try:
            while not self._stop.is_set() and self.offset < len(self.data):
                if self.loop and self.offset + self.chunk > len(self.data):
                    # whole samples only: the recording's length is even
                    conn.sendall(self.data[self.offset :])
                    due += (len(self.data) - self.offset) / (2 * self.rate)
                    self.offset = 0
                    continue
                end = min(self.offset + self.chunk, len(self.data))
                if limit is not None:
                    end = min(end, start + limit)
                if end <= self.offset:
                    break
                due += (end - self.offset) / (2 * self.rate)
                time.sleep(max(0.0, due - time.monotonic()))
                conn.sendall(self.data[self.offset : end])
                self.offset = self.served[-1][1] = end
        except OSError:
            pass

    def _commands(self, conn: socket.socket) -> None:
        pending = b""
        while not self._stop.is_set():
            try:
                got = conn.recv(5 - len(pending))
            except OSError:
                return
            if not got:
                return
            pending += got
            if len(pending) == 5:
                command, value = struct.unpack(">BI", pending)
                self.commands.append((command, value))
                if command == 0x02:
                    self.rate = float(value)
                pending = b""
