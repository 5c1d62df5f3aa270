"""The support desk's command line, run as a subprocess against a real Valkey server.

``python -m ameli_otp inspect|unlock|devices|revoke``: the account is set up by the
test through the library, on a prefix of its own; the command reads and changes
it as the desk would, with the secret from a file or from the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ameli_otp import SecurityCodes, Verified
from ameli_otp._support_cli import _Usage, parse_secrets
from tests import servers

SECRET = "the service's secret, 32 bytes at least: " + "s" * 8
NIR = "1850775123456"
HOME, LAPTOP = "home / Firefox", "laptop / Chrome"


class Run:
    """One finished command: its exit status and what it printed."""

    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self) -> Any:
        return json.loads(self.out)


def ameli_otp(*args: str, env: dict[str, str] | None = None) -> Run:
    """``python -m ameli_otp ARGS``, with none of our variables but those in ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AMELI_OTP_")}
    proc = subprocess.run(
        [sys.executable, "-m", "ameli_otp", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**base, "PYTHONIOENCODING": "utf-8", **(env or {})},
        timeout=60,
        check=False,
    )
    return Run(proc)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n", encoding="utf-8")
    return path


@pytest.fixture
def prefix() -> str:
    """A key prefix of the test's own: the session's server is shared."""
    return f"cli-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def service(redis_url: str, prefix: str) -> Iterator[SecurityCodes]:
    """The service's own ``SecurityCodes`` on the session's server."""
    from ameli_otp import RedisBackend

    backend = RedisBackend.from_url(redis_url, prefix=prefix)
    yield SecurityCodes(backend, secret=SECRET)
    backend.client.close()


def trust(codes: SecurityCodes, fingerprint: str) -> str:
    issued = codes.request_code(NIR)
    result = codes.verify_code(NIR, issued.code, remember_device=True, fingerprint=fingerprint)  # type: ignore[union-attr]
    assert isinstance(result, Verified)
    assert result.device_token is not None
    granted = round(time.time() * 1000)
    while round(time.time() * 1000) == granted:  # the next grant gets a later millisecond,
        pass  # so that "the later grant" names one device (at most a millisecond of waiting)
    return result.device_token


def lock(codes: SecurityCodes) -> None:
    """Ten wrong codes in a row, three per code: four codes asked, the account locked."""
    for guess in range(10):
        if guess % 3 == 0:
            code = codes.request_code(NIR).code  # type: ignore[union-attr]
        codes.verify_code(NIR, str((int(code) + 1) % 10**6).zfill(6))
    assert codes.inspect(NIR).locked_until is not None


@pytest.fixture
def locked(service: SecurityCodes) -> tuple[str, str]:
    """The account trusts two browsers, then is locked; its two device tokens."""
    tokens = trust(service, HOME), trust(service, LAPTOP)
    lock(service)
    return tokens


def desk(
    command: str, *args: str, url: str, prefix: str, secret_file: Path, lang: str = "en"
) -> Run:
    return ameli_otp(
        command,
        *args,
        "--redis-url",
        url,
        "--prefix",
        prefix,
        "--secret-file",
        str(secret_file),
        "--lang",
        lang,
    )


# -- inspect ---------------------------------------------------------------------------------
@pytest.mark.redis
def test_inspect_a_locked_account(
    service: SecurityCodes, locked: tuple[str, str], redis_url: str, prefix: str, secret_file: Path
) -> None:
    status = service.inspect(NIR)
    run = desk("inspect", NIR, url=redis_url, prefix=prefix, secret_file=secret_file)
    assert run.code == 0, run.err
    assert run.err == ""
    lines = run.out.splitlines()
    assert lines[0].startswith(f"Account {NIR} (account_ref ")
    assert status.locked_until is not None
    until = f"{status.locked_until:%Y-%m-%d %H:%M:%S}"
    assert any(x.startswith("Locked:") and f"until {until}" in x for x in lines)
    assert "Codes in the window:   4" in lines
    assert "Active code:           none" in lines  # the lock cancelled it
    assert "Trusted browsers:      2" in lines
    for device in status.devices:
        assert f"  {device.device_id}  trusted since " in run.out
    assert "hours" in run.out  # the lock's time left, in words


@pytest.mark.redis
def test_inspect_in_french_by_default(
    locked: tuple[str, str], redis_url: str, prefix: str, secret_file: Path
) -> None:
    run = ameli_otp(
        "inspect",
        NIR,
        "--redis-url",
        redis_url,
        "--prefix",
        prefix,
        "--secret-file",
        str(secret_file),
    )
    assert run.code == 0, run.err
    assert "Bloqué :                 jusqu'au " in run.out
    assert "Navigateurs de confiance : 2" in run.out


@pytest.mark.redis
def test_inspect_json(
    service: SecurityCodes, locked: tuple[str, str], redis_url: str, prefix: str, secret_file: Path
) -> None:
    status = service.inspect(NIR)
    run = desk("inspect", NIR, "--json", url=redis_url, prefix=prefix, secret_file=secret_file)
    assert run.code == 0, run.err
    data = run.json()
    assert data["locked"] is True
    assert status.locked_until is not None
    assert datetime.fromisoformat(data["locked_until"]) == status.locked_until
    assert datetime.fromisoformat(data["locked_until"]).tzinfo is not None
    now = datetime.fromisoformat(data["at"])
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)
    assert 86_000 < data["lock_left_seconds"] <= 86_400  # seconds
    assert data["next_code_at"] == data["locked_until"]
    assert data["codes_counting"] == 4
    assert data["consecutive_failures"] == 0
    assert data["active_code"] is None
    assert [d["device_id"] for d in data["devices"]] == [d.device_id for d in status.devices]
    for got, device in zip(data["devices"], status.devices, strict=True):
        assert datetime.fromisoformat(got["granted_at"]) == device.granted_at
        assert datetime.fromisoformat(got["expires_at"]) == device.expires_at
    assert len(data["account_ref"]) == 16
    assert NIR not in run.out  # the JSON names the account by its pseudonym only


@pytest.mark.redis
def test_inspect_shows_the_active_code_never_the_code(
    service: SecurityCodes, redis_url: str, prefix: str, secret_file: Path
) -> None:
    issued = service.request_code(NIR)
    service.verify_code(NIR, "000000" if issued.code != "000000" else "111111")  # type: ignore[union-attr]
    run = desk("inspect", NIR, "--json", url=redis_url, prefix=prefix, secret_file=secret_file)
    assert run.code == 0, run.err
    code = run.json()["active_code"]
    assert code["attempts_left"] == 2
    assert code["expired"] is False
    assert datetime.fromisoformat(code["expires_at"]) == issued.expires_at  # type: ignore[union-attr]
    assert issued.code not in run.out  # type: ignore[union-attr]
    human = desk("inspect", NIR, url=redis_url, prefix=prefix, secret_file=secret_file)
    assert "attempts left: 2" in human.out
    assert issued.code not in human.out  # type: ignore[union-attr]


@pytest.mark.redis
def test_the_account_id_is_normalised(
    locked: tuple[str, str], redis_url: str, prefix: str, secret_file: Path
) -> None:
    typed = desk(
        "inspect",
        "185 077 512 3456",
        "--json",
        url=redis_url,
        prefix=prefix,
        secret_file=secret_file,
    )
    plain = desk("inspect", NIR, "--json", url=redis_url, prefix=prefix, secret_file=secret_file)
    assert typed.code == plain.code == 0
    assert typed.json()["locked"] is True
    assert typed.json()["account_ref"] == plain.json()["account_ref"]


# -- unlock ----------------------------------------------------------------------------------
@pytest.mark.redis
def test_unlock_then_nothing_to_unlock(
    service: SecurityCodes, locked: tuple[str, str], redis_url: str, prefix: str, secret_file: Path
) -> None:
    run = desk("unlock", NIR, url=redis_url, prefix=prefix, secret_file=secret_file)
    assert run.code == 0, run.err
    assert run.out == f"Unlocked: the lock and the failure count of {NIR} are lifted.\n"
    assert service.inspect(NIR).locked_until is None
    assert service.request_code(NIR).ok  # the person gets a code again
    again = desk("unlock", NIR, url=redis_url, prefix=prefix, secret_file=secret_file)
    assert again.code == 1  # nothing to change
    assert again.out.startswith("Nothing to unlock:")
    machine = desk("unlock", NIR, "--json", url=redis_url, prefix=prefix, secret_file=secret_file)
    assert machine.code == 1
    assert machine.json()["unlocked"] is False


# -- devices and revoke ----------------------------------------------------------------------
@pytest.mark.redis
def test_devices(
    service: SecurityCodes, locked: tuple[str, str], redis_url: str, prefix: str, secret_file: Path
) -> None:
    ids = [d.device_id for d in service.inspect(NIR).devices]
    run = desk("devices", NIR, url=redis_url, prefix=prefix, secret_file=secret_file)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0] == f"Trusted browsers of {NIR}: 2"
    assert [x.split()[0] for x in lines[1:]] == ids  # oldest grant first
    machine = desk("devices", NIR, "--json", url=redis_url, prefix=prefix, secret_file=secret_file)
    assert [d["device_id"] for d in machine.json()["devices"]] == ids


@pytest.mark.redis
def test_revoke_one_device_by_its_id(
    service: SecurityCodes, locked: tuple[str, str], redis_url: str, prefix: str, secret_file: Path
) -> None:
    home, laptop = locked
    sold = service.inspect(NIR).devices[1].device_id  # the laptop: the later grant
    run = desk("revoke", NIR, sold, url=redis_url, prefix=prefix, secret_file=secret_file)
    assert run.code == 0, run.err
    assert run.out == f"Revoked: browser {sold} is no longer trusted for {NIR}.\n"
    assert not service.is_trusted_device(NIR, laptop, LAPTOP)
    assert service.is_trusted_device(NIR, home, HOME)
    again = desk(
        "revoke", NIR, sold, "--json", url=redis_url, prefix=prefix, secret_file=secret_file
    )
    assert again.code == 1
    assert (again.json()["device_id"], again.json()["revoked"]) == (sold, 0)
    junk = desk(
        "revoke", NIR, "not-a-device", url=redis_url, prefix=prefix, secret_file=secret_file
    )
    assert junk.code == 1
    assert "ameli-otp devices" in junk.out


@pytest.mark.redis
def test_revoke_all(
    service: SecurityCodes, locked: tuple[str, str], redis_url: str, prefix: str, secret_file: Path
) -> None:
    run = desk(
        "revoke", NIR, "--all", "--json", url=redis_url, prefix=prefix, secret_file=secret_file
    )
    assert run.code == 0, run.err
    assert run.json()["revoked"] == 2
    assert service.inspect(NIR).devices == ()
    again = desk("revoke", NIR, "--all", url=redis_url, prefix=prefix, secret_file=secret_file)
    assert again.code == 1
    assert again.out == f"Nothing to revoke: {NIR} has no trusted browser.\n"


def test_revoke_needs_a_device_id_or_all(secret_file: Path) -> None:
    url = "redis://127.0.0.1:1/0"
    for args in ([NIR], [NIR, "x" * 22, "--all"]):
        run = desk("revoke", *args, url=url, prefix="p", secret_file=secret_file)
        assert run.code == 2
        assert "either a DEVICE_ID or --all" in run.err


# -- where the secret and the URL come from --------------------------------------------------
@pytest.mark.redis
def test_the_secret_and_the_url_from_the_environment(
    locked: tuple[str, str], redis_url: str, prefix: str
) -> None:
    env = {"AMELI_OTP_SECRET": SECRET, "AMELI_OTP_REDIS_URL": redis_url}
    run = ameli_otp("inspect", NIR, "--prefix", prefix, "--json", env=env)
    assert run.code == 0, run.err
    assert run.json()["locked"] is True


@pytest.mark.redis
def test_a_rotation_list_names_records_by_its_last_secret(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    from ameli_otp import RedisBackend

    new, old = "a newer secret, 32 bytes or more........", SECRET
    backend = RedisBackend.from_url(redis_url, prefix=prefix)
    service = SecurityCodes(backend, secret=[new, old])  # rotating: the newest first
    lock(service)
    backend.client.close()
    both, newest = tmp_path / "both", tmp_path / "newest"
    both.write_text(f"{new}\n{old}\n", encoding="utf-8")
    newest.write_text(f"{new}\n", encoding="utf-8")
    run = desk("inspect", NIR, "--json", url=redis_url, prefix=prefix, secret_file=both)
    assert run.json()["locked"] is True
    # with the newest alone, the records have other names: an account the store never saw
    alone = desk("inspect", NIR, "--json", url=redis_url, prefix=prefix, secret_file=newest)
    assert alone.json()["locked"] is False
    assert alone.json()["codes_counting"] == 0


@pytest.mark.redis
def test_a_bytes_secret_as_hex_or_base64(redis_url: str, prefix: str, tmp_path: Path) -> None:
    import base64

    from ameli_otp import RedisBackend

    raw = bytes(range(32))
    backend = RedisBackend.from_url(redis_url, prefix=prefix)
    lock(SecurityCodes(backend, secret=raw))
    backend.client.close()
    for line in (f"hex:{raw.hex()}", "base64:" + base64.urlsafe_b64encode(raw).decode()):
        path = tmp_path / "secret"
        path.write_text(line + "\n", encoding="utf-8")
        run = desk("inspect", NIR, "--json", url=redis_url, prefix=prefix, secret_file=path)
        assert run.code == 0, run.err
        assert run.json()["locked"] is True


def test_parse_secrets() -> None:
    assert parse_secrets("a\r\n\nb\n", "f") == ["a", "b"]
    assert parse_secrets("hex:00ff\nbase64:AP8\n", "f") == [b"\x00\xff", b"\x00\xff"]
    with pytest.raises(_Usage, match="holds no secret"):
        parse_secrets("\n\n", "f")
    with pytest.raises(_Usage, match="line 2: not valid hex") as exc:
        parse_secrets("fine\nhex:zz-secret-zz\n", "f")
    assert "secret-zz" not in str(exc.value)  # never quoted


def test_refuses_to_run_without_a_secret() -> None:
    run = ameli_otp("inspect", NIR, "--redis-url", "redis://127.0.0.1:1/0")
    assert run.code == 2
    assert run.out == ""
    assert "ameli-otp inspect: error: no secret" in run.err
    assert "--secret-file PATH" in run.err
    assert "AMELI_OTP_SECRET" in run.err
    assert "shell history" in run.err


def test_a_secret_given_as_an_argument_is_refused(secret_file: Path) -> None:
    value = "typed-on-the-command-line-" + "z" * 16
    for args in (["--secret", value], [f"--secret={value}"]):
        run = ameli_otp("unlock", NIR, "--redis-url", "redis://127.0.0.1:1/0", *args)
        assert run.code == 2
        assert "--secret is not an option" in run.err
        assert "shell history" in run.err
        assert value not in run.err + run.out
    # and no option takes one: --help lists --secret-file only
    for command in ("inspect", "unlock", "devices", "revoke"):
        shown = ameli_otp(command, "--help").out
        assert "--secret-file PATH" in shown
        assert "--secret " not in shown.replace("--secret-file", "")


def test_an_empty_or_unreadable_secret_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n", encoding="utf-8")
    url = "redis://127.0.0.1:1/0"
    run = desk("inspect", NIR, url=url, prefix="p", secret_file=empty)
    assert run.code == 2
    assert "holds no secret" in run.err
    run = desk("inspect", NIR, url=url, prefix="p", secret_file=tmp_path / "missing")
    assert run.code == 2
    assert "cannot read the secret file" in run.err
    short = tmp_path / "short"
    short.write_text("too short\n", encoding="utf-8")
    run = desk("inspect", NIR, url=url, prefix="p", secret_file=short)
    assert run.code == 2
    assert "at least 32 bytes" in run.err
    assert "too short" not in run.err


def test_refuses_to_run_without_a_url(secret_file: Path) -> None:
    run = ameli_otp("inspect", NIR, "--secret-file", str(secret_file))
    assert run.code == 2
    assert "--redis-url URL or set AMELI_OTP_REDIS_URL" in run.err


def test_a_bad_account_id(secret_file: Path) -> None:
    run = desk("inspect", "   ", url="redis://127.0.0.1:1/0", prefix="p", secret_file=secret_file)
    assert run.code == 2
    assert "account" in run.err


# -- store failures --------------------------------------------------------------------------
@pytest.mark.parametrize("cluster", [False, True], ids=["standalone", "cluster"])
def test_a_store_where_nothing_listens_exits_3(secret_file: Path, cluster: bool) -> None:
    url = f"redis://127.0.0.1:{servers.free_port()}/0"
    extra = ["--cluster"] if cluster else []
    run = desk("inspect", NIR, *extra, url=url, prefix="p", secret_file=secret_file)
    assert run.code == 3
    assert run.out == ""
    assert run.err.startswith("ameli-otp inspect: error: the store failed: ")
    assert "connect" in run.err.lower()
    assert "Traceback" not in run.err


@pytest.mark.redis
def test_a_server_that_may_evict_exits_3(secret_file: Path) -> None:
    with servers.standalone(["--maxmemory-policy", "allkeys-lru"]) as server:
        url = f"redis://127.0.0.1:{server.port}/0"
        run = desk("unlock", NIR, url=url, prefix="p", secret_file=secret_file)
    assert run.code == 3
    assert "the store failed" in run.err
    assert "maxmemory-policy" in run.err


@pytest.mark.redis
def test_inspect_on_a_cluster(cluster_url: str, secret_file: Path, prefix: str) -> None:
    from ameli_otp import RedisBackend

    backend = RedisBackend.from_url(cluster_url, prefix=prefix, cluster=True)
    lock(SecurityCodes(backend, secret=SECRET))
    backend.client.close()
    run = desk(
        "inspect",
        NIR,
        "--cluster",
        "--json",
        url=cluster_url,
        prefix=prefix,
        secret_file=secret_file,
    )
    assert run.code == 0, run.err
    assert run.json()["locked"] is True
    unlock = desk(
        "unlock", NIR, "--cluster", url=cluster_url, prefix=prefix, secret_file=secret_file
    )
    assert unlock.code == 0, unlock.err


@pytest.mark.redis
def test_a_terminal_without_unicode(
    locked: tuple[str, str], redis_url: str, prefix: str, secret_file: Path
) -> None:
    args = ["inspect", NIR, "--redis-url", redis_url, "--prefix", prefix]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMELI_OTP_")}
    proc = subprocess.run(
        [sys.executable, "-m", "ameli_otp", *args, "--secret-file", str(secret_file)],
        capture_output=True,
        env={**env, "PYTHONIOENCODING": "ascii"},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"Bloqu? :" in proc.stdout
