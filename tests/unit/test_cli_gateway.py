"""The CLI's requests to the gateway: bounded, and said plainly when they fail."""

from __future__ import annotations

import socket

import httpx
import pytest
import typer

from services.cli.gateway import REQUEST_TIMEOUT, STREAM_TIMEOUT, connect, request


def test_requests_are_bounded_and_streams_are_not() -> None:
    with connect("http://127.0.0.1:1", None) as client:
        assert client.timeout == REQUEST_TIMEOUT
    assert REQUEST_TIMEOUT.read is not None
    assert STREAM_TIMEOUT.read is None


def test_a_gateway_that_never_answers_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with (
            httpx.Client(base_url=url, timeout=httpx.Timeout(5, read=0.2)) as client,
            pytest.raises(typer.Exit) as exited,
        ):
            request(client, "DELETE", "/v1/conversations/c1")
    assert exited.value.exit_code == 3
    assert "no answer from the gateway" in capsys.readouterr().err
