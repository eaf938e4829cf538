"""Ctrl-C in the CLI, turned into KeyboardInterrupt only where it cannot break the HTTP client.

Python raises KeyboardInterrupt between any two bytecodes. Inside httpx's synchronous
connection pool that can be between taking its lock and entering the block that gives it back
(httpcore takes it in a Python ``__enter__``): the lock stays held, and the next request on the
same client (the DELETE that closes a conversation, the cancel of a suite, closing the client)
waits for ever. So while a command runs, SIGINT goes to ``CtrlC``:

- at a prompt or a pause (``interruptible``) it raises at once: no request is under way;
- during an event stream (``stream``) it shuts the stream's socket down, so the blocked read
  returns and the client ends that request the ordinary way (its own error handling, its lock
  given back); KeyboardInterrupt is raised when the stream's block is left;
- anywhere else (a short request, or a stream's wait for its response to start) it is
  remembered and raised at the next ``check``; a second press while one is still remembered
  raises at once (the person insists: the client is then left as it is, and may hang, which a
  further press ends the same way).
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator
from types import FrameType
from typing import Any

import httpx

__all__ = ["EXIT_INTERRUPTED", "CtrlC"]

EXIT_INTERRUPTED = 130
"""The exit code of a command left by Ctrl-C (128 + SIGINT, as a shell reports it)."""


class CtrlC:
    """The Ctrl-C presses of one command, raised as KeyboardInterrupt at safe points."""

    def __init__(self) -> None:
        self._presses = 0
        self._raised = 0
        self._interruptible = False
        self._streams: set[socket.socket] = set()

    @property
    def pending(self) -> bool:
        """A press not raised yet."""
        return self._presses > self._raised

    @contextlib.contextmanager
    def installed(self) -> Iterator[CtrlC]:
        """Take SIGINT for the block (unless it is ignored, as for a shell's background job)."""
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.SIG_IGN:
            yield self
            return
        signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)

    def check(self) -> None:
        """Raise KeyboardInterrupt for a press not raised yet."""
        if self.pending:
            self._raised = self._presses
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A block with no request under way (reading a line, a pause): a press raises at
        once."""
        self._interruptible = True  # before the check: a press in between raises at once
        try:
            self.check()
            yield
        finally:
            self._interruptible = False

    @contextlib.contextmanager
    def stream(self, response: httpx.Response) -> Iterator[None]:
        """Reading ``response``'s body: a press ends the read (its socket shut down), then
        KeyboardInterrupt. The transport error the shut-down socket gives is that press's."""
        sock = _socket_of(response)
        if sock is not None:
            self._streams.add(sock)
        try:
            self.check()  # pressed before the socket was known: there is no read to end
            yield
        except httpx.TransportError:
            if not self.pending:
                raise
        finally:
            if sock is not None:
                self._streams.discard(sock)
        self.check()

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self._presses += 1
        insisted = self._presses - self._raised > 1 and not self._streams
        if self._interruptible or insisted:
            self.check()
        for sock in self._streams:
            with contextlib.suppress(OSError):  # already closed by the client: nothing to end
                sock.shutdown(socket.SHUT_RDWR)


def _socket_of(response: httpx.Response) -> socket.socket | None:
    """The socket under a streamed response (httpcore's ``network_stream`` extension)."""
    network_stream: Any = response.extensions.get("network_stream")
    if network_stream is None:
        return None
    sock = network_stream.get_extra_info("socket")
    return sock if isinstance(sock, socket.socket) else None
