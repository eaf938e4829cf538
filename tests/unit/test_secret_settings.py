"""No secret in a startup error or a log line: settings errors never echo what was given,
access logs keep the path only, and a key's owner name is an HMAC under a server secret."""

from __future__ import annotations

import hashlib
import logging

import pytest
from pydantic import SecretStr, ValidationError

from services.common.log_setup import configure_logging
from services.gateway.access import Access
from services.gateway.settings import GatewaySettings
from services.orchestrator.settings import OrchestratorSettings

KEY = "ck-unit-5e0c7d9a1b2f4836"
AMQP_PASSWORD = "amqp-pass-0b7e4c19d2"
OPENAI_KEY = "sk-unit-secret-61f0aa"
OWNER_SECRET = "owner-unit-secret-3c8e0f5a9b7d1e24"


@pytest.fixture(autouse=True)
def _restore_root_logger() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_bad_key_list_does_not_print_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSIM_API_KEYS", f"{KEY},short")
    monkeypatch.setenv("CONVSIM_OWNER_SECRET", OWNER_SECRET)
    with pytest.raises(ValidationError) as caught:
        GatewaySettings()
    text = str(caught.value)
    assert "CONVSIM_API_KEYS" in text  # it still says what is wrong
    assert KEY not in text
    assert "input_value" not in text


def test_an_orchestrator_settings_error_shows_no_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSIM_AMQP_URL", f"amqp://u:{AMQP_PASSWORD}@localhost:5672/")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("CONVSIM_SIMULATION_DEADLINE_S", "3600")
    monkeypatch.setenv("CONVSIM_REQUEST_LEASE_S", "60")  # a model-level error: the whole input
    with pytest.raises(ValidationError) as caught:
        OrchestratorSettings()
    text = str(caught.value)
    assert "CONVSIM_REQUEST_LEASE_S" in text
    assert "input_value" not in text
    for secret in (AMQP_PASSWORD, OPENAI_KEY, "amqp://u:"):
        assert secret not in text


def test_api_keys_start_without_an_owner_secret_and_wait_for_the_shared_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVSIM_API_KEYS", KEY)
    monkeypatch.delenv("CONVSIM_OWNER_SECRET", raising=False)
    settings = GatewaySettings()  # API keys alone are enough, as before
    access = Access(settings.api_keys, token_ttl_s=60)
    assert access.needs_owner_secret
    with pytest.raises(RuntimeError):
        access.owner_of_key(KEY)
    access.use_owner_secret(SecretStr(OWNER_SECRET))
    assert not access.needs_owner_secret
    assert access.owner_of_key(KEY) is not None
    monkeypatch.setenv("CONVSIM_OWNER_SECRET", "too-short")
    with pytest.raises(ValidationError):
        GatewaySettings()
    monkeypatch.setenv("CONVSIM_OWNER_SECRET", OWNER_SECRET)
    assert GatewaySettings().owner_secret == SecretStr(OWNER_SECRET)


def test_a_keys_owner_is_an_hmac_under_the_server_secret() -> None:
    def owner(secret: str) -> str | None:
        access = Access([SecretStr(KEY)], token_ttl_s=60, owner_secret=SecretStr(secret))
        return access.owner_of_key(KEY)

    named = owner(OWNER_SECRET)
    assert named is not None
    assert named.startswith("key-")
    assert named == owner(OWNER_SECRET)  # every replica with the secret agrees
    assert named != owner(OWNER_SECRET + "x")
    assert named != "key-" + hashlib.sha256(KEY.encode()).hexdigest()[:20]  # not guessable


def test_access_logs_keep_the_path_without_its_query(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the gateway (uvicorn with log_config=None); uvicorn servers started by other tests
    # (the fakes, with uvicorn's own logging config) leave this logger on a handler of its own.
    for name in ("uvicorn", "uvicorn.access"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [])
        monkeypatch.setattr(logger, "propagate", True)
        monkeypatch.setattr(logger, "disabled", False)
        monkeypatch.setattr(logger, "level", logging.NOTSET)
    configure_logging("gateway", "INFO", "json")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        "/v1/simulations/s-1/events?access_token=tok.en-secret",
        "1.1",
        200,
    )
    err = capsys.readouterr().err
    assert "/v1/simulations/s-1/events" in err
    assert "tok.en-secret" not in err
    assert "access_token" not in err
