"""CtrlC: a press never interrupts httpx inside its connection pool; the client stays usable.

Against a real HTTP server on loopback (a thread), with real SIGINTs sent to the main thread.
The first two tests cause the original hazard on purpose: a SIGINT right after httpcore's pool
took its lock (its private ThreadLock, patched; the version is pinned below).
"""

from __future__ import annotations

import os
import select
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpcore
import httpx
import pytest
from httpcore._synchronization import ThreadLock
from httpx_sse import connect_sse

from services.cli.interrupts import CtrlC

BOUND_S = 10.0
HOLD_S = 60.0
"""How long the server holds a stream open without events: longer than any bound here."""


@dataclass
class StreamServer:
    url: str
    stream_ended: threading.Event = field(default_factory=threading.Event)
    close_mid_stream: bool = False


def _handler(server: StreamServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            if self.path == "/ok":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            event = b"data: first\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
            if server.close_mid_stream:
                self.close_connection = True
                return
            # No more events: the client blocks reading until it ends the stream itself.
            select.select([self.connection], [], [], HOLD_S)
            server.stream_ended.set()
            self.close_connection = True

    return Handler


@pytest.fixture
def stream_server() -> Iterator[StreamServer]:
    server = StreamServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def sigint_as_in_a_terminal() -> Iterator[None]:
    """SIGINT raising KeyboardInterrupt, as a CLI started from a terminal has it: a test run
    started as a shell's background job (as CI may be) inherits SIGINT ignored, and CtrlC
    leaves an ignored SIGINT ignored."""
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def press_ctrl_c() -> None:
    """A SIGINT to the main thread (where a terminal's Ctrl-C lands), from another thread."""
    main = threading.main_thread().ident
    assert main is not None
    threading.Thread(target=signal.pthread_kill, args=(main, signal.SIGINT)).start()


@dataclass
class PoolLockTrap:
    """Patches httpcore's pool lock so that the first time it is taken, a SIGINT comes right
    after (where a Ctrl-C can land by chance); remembers that lock."""

    taken: list[ThreadLock] = field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert httpcore.__version__ == "1.0.9", "re-check the patched ThreadLock.__enter__"
        take = ThreadLock.__enter__

        def take_then_sigint(lock: ThreadLock) -> ThreadLock:
            taken = take(lock)
            if not self.taken:
                self.taken.append(lock)
                signal.raise_signal(signal.SIGINT)  # its handler runs here, the lock held
            return taken

        monkeypatch.setattr(ThreadLock, "__enter__", take_then_sigint)

    @property
    def held(self) -> bool:
        return self.taken[0]._lock.locked()


def test_without_ctrl_c_a_sigint_in_the_pool_leaves_its_lock_held(
    stream_server: StreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hazard CtrlC is for: every later request on this client would wait for ever."""
    trap = PoolLockTrap()
    client = httpx.Client(base_url=stream_server.url, timeout=BOUND_S)
    trap.install(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        client.get("/ok")
    assert trap.held
    trap.taken[0]._lock.release()  # only so that the client can be closed
    client.close()


def test_with_ctrl_c_a_sigint_in_the_pool_is_remembered_and_the_client_goes_on(
    stream_server: StreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    trap = PoolLockTrap()
    ctrl_c = CtrlC()
    with (
        ctrl_c.installed(),
        httpx.Client(base_url=stream_server.url, timeout=BOUND_S) as client,
    ):
        trap.install(monkeypatch)
        assert client.get("/ok").text == "ok"
        assert trap.taken
        assert not trap.held
        assert ctrl_c.pending
        assert answered_within_bound(client) == "ok"
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()


def answered_within_bound(client: httpx.Client) -> str:
    """GET /ok on ``client`` from a thread: a pool whose lock was left held would never
    answer (no timeout covers that lock)."""
    answers: list[str] = []
    asker = threading.Thread(target=lambda: answers.append(client.get("/ok").text), daemon=True)
    asker.start()
    asker.join(BOUND_S)
    assert answers, "the client did not answer: its pool was left locked"
    return answers[0]


def read_events_pressing_ctrl_c(client: httpx.Client, ctrl_c: CtrlC, seen: list[str]) -> None:
    """Read /stream; Ctrl-C once its only event came (the next read blocks)."""
    with connect_sse(client, "GET", "/stream") as source, ctrl_c.stream(source.response):
        for sse in source.iter_sse():
            seen.append(sse.data)
            press_ctrl_c()


def test_a_press_during_a_stream_ends_it_and_leaves_the_client_usable(
    stream_server: StreamServer,
) -> None:
    ctrl_c = CtrlC()
    seen: list[str] = []
    with (
        ctrl_c.installed(),
        httpx.Client(base_url=stream_server.url, timeout=BOUND_S) as client,
    ):
        with pytest.raises(KeyboardInterrupt) as pressed:
            read_events_pressing_ctrl_c(client, ctrl_c, seen)
        assert seen == ["first"]
        # The read ended because the press shut the socket down (end of input), not by a
        # timeout: the client's read bound is BOUND_S, the server holds HOLD_S.
        assert isinstance(pressed.value.__context__, httpx.RemoteProtocolError)
        assert stream_server.stream_ended.wait(BOUND_S), "the stream's connection stayed open"
        assert answered_within_bound(client) == "ok"
        assert not ctrl_c.pending


def test_a_transport_error_without_a_press_is_raised_as_it_is(
    stream_server: StreamServer,
) -> None:
    stream_server.close_mid_stream = True
    ctrl_c = CtrlC()
    with (
        ctrl_c.installed(),
        httpx.Client(base_url=stream_server.url, timeout=httpx.Timeout(5, read=None)) as client,
        pytest.raises(httpx.RemoteProtocolError),
        connect_sse(client, "GET", "/stream") as source,
        ctrl_c.stream(source.response),
    ):
        for _ in source.iter_sse():
            pass


def read_at_a_prompt_pressing_ctrl_c(ctrl_c: CtrlC, never_written: int) -> None:
    with ctrl_c.interruptible():
        press_ctrl_c()
        select.select([never_written], [], [], BOUND_S)  # waits for the press, bounded


def test_a_press_at_a_prompt_raises_at_once() -> None:
    ctrl_c = CtrlC()
    never_written, writer = os.pipe()
    try:
        with ctrl_c.installed(), pytest.raises(KeyboardInterrupt):
            read_at_a_prompt_pressing_ctrl_c(ctrl_c, never_written)
    finally:
        os.close(never_written)
        os.close(writer)
    assert not ctrl_c.pending


def test_a_press_elsewhere_is_raised_once_at_the_next_check() -> None:
    ctrl_c = CtrlC()
    with ctrl_c.installed():
        signal.raise_signal(signal.SIGINT)  # during "a request": only remembered
        assert ctrl_c.pending
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()
        ctrl_c.check()  # raised once
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt), ctrl_c.interruptible():
            pass  # entering a prompt raises the press made before it


def test_the_previous_handler_comes_back_and_an_ignored_sigint_stays_ignored() -> None:
    before = signal.getsignal(signal.SIGINT)
    with CtrlC().installed():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with CtrlC().installed() as ctrl_c:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
            assert not ctrl_c.pending
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_press_before_a_stream_starts_is_raised_before_its_read(
    stream_server: StreamServer,
) -> None:
    ctrl_c = CtrlC()
    with (
        ctrl_c.installed(),
        httpx.Client(base_url=stream_server.url, timeout=BOUND_S) as client,
    ):
        with connect_sse(client, "GET", "/stream") as source:
            signal.raise_signal(signal.SIGINT)  # while its response started: remembered
            with pytest.raises(KeyboardInterrupt):
                enter_the_stream(ctrl_c, source.response)
        assert answered_within_bound(client) == "ok"


def enter_the_stream(ctrl_c: CtrlC, response: httpx.Response) -> None:
    with ctrl_c.stream(response):
        pytest.fail("the stream's block was entered with a press pending")


def test_a_second_press_while_one_is_remembered_raises_at_once() -> None:
    """The person insists (a request that does not return)."""
    ctrl_c = CtrlC()
    with ctrl_c.installed():
        signal.raise_signal(signal.SIGINT)
        assert ctrl_c.pending
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert not ctrl_c.pending


def test_a_second_press_during_a_stream_still_waits_for_its_read_to_end(
    stream_server: StreamServer,
) -> None:
    """During a stream the first press already ends the read: a second one (a double tap)
    must not raise inside the client."""
    ctrl_c = CtrlC()
    with (
        ctrl_c.installed(),
        httpx.Client(base_url=stream_server.url, timeout=BOUND_S) as client,
    ):
        with pytest.raises(KeyboardInterrupt) as pressed:
            read_events_pressing_twice(client, ctrl_c)
        assert isinstance(pressed.value.__context__, httpx.RemoteProtocolError)
        assert answered_within_bound(client) == "ok"


def read_events_pressing_twice(client: httpx.Client, ctrl_c: CtrlC) -> None:
    with connect_sse(client, "GET", "/stream") as source, ctrl_c.stream(source.response):
        for _ in source.iter_sse():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
