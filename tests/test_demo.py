"""``ameli-otp demo``: the sheet's story runs, every step behaves as the rules say."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from ameli_otp import SecurityCodes, Verified
from ameli_otp.__main__ import main
from ameli_otp._demo import run


def test_demo_in_french_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "✗" not in out
    assert lines[0].startswith("Démo ameli-otp")
    # every line after the title is one step, prefixed with the simulated time
    assert all(line.startswith("[2025-") for line in lines[1:])
    assert "[2025-02-03 09:00:00] ✓ Mot de passe accepté (simulé" in out
    assert "valable jusqu'à 09:15:00 (codes encore possibles dans l'heure : 4)" in out
    assert "ce navigateur est mémorisé (jeton " in out
    assert "[2025-02-04 08:30:00] ✓ Le lendemain, même ordinateur" in out
    assert "[2025-02-04 10:15:00] ✓ Je tape" in out
    assert "Ce code de sécurité a expiré" in out
    assert "Réessayez dans 20 minutes." in out
    assert "Un code utilisé pour se connecter ne compte plus" in out
    assert "Essai n°10" in out
    assert "Votre compte est bloqué" in out
    assert "Réessayez dans 24 heures." in out
    assert "Réessayez dans 23 heures." in out
    assert "France Services" in out
    assert "Mon agenda / Prendre un rendez-vous" in out
    assert "AmeliBot" in out
    assert "forum" in out
    assert "spams" in out
    assert "(unlock)" in out
    assert "[2025-08-05 09:01:29.999] ✓ 183 jours moins 1 milliseconde" in out
    assert lines[-1].endswith("✓ Les 48 étapes se sont passées comme le disent les règles.")


def test_demo_in_english(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "✗" not in out
    assert "Password accepted (simulated: ameli_otp does no password checking)" in out
    assert "This security code has expired" in out
    assert "Try again in 20 minutes." in out
    assert "Attempt #10" in out
    assert "Try again in 24 hours." in out
    assert "the trust is over" in out
    assert out.splitlines()[-1].endswith("✓ All 48 steps behaved as the rules say.")


def test_demo_prints_only_a_prefix_of_the_device_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run("en")
    line = next(x for x in capsys.readouterr().out.splitlines() if "(token " in x)
    shown = line.split("(token ", 1)[1].split("…", 1)[0]
    assert len(shown) == 8


def test_demo_codes_are_typed_with_a_space(capsys: pytest.CaptureFixture[str]) -> None:
    run("en")
    line = next(x for x in capsys.readouterr().out.splitlines() if "tick «" in x)
    typed = line.split("I type « ", 1)[1].split(" »", 1)[0]
    assert len(typed) == 7
    assert typed[3] == " "
    assert typed.replace(" ", "").isdigit()


def test_a_step_that_breaks_the_rules_fails_the_demo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def always_right(self: SecurityCodes, *args: object, **kwargs: object) -> Verified:
        return Verified(device_token=None)

    monkeypatch.setattr(SecurityCodes, "verify_code", always_right)
    out = io.StringIO()
    assert run("fr", out) == 1
    text = out.getvalue()
    assert "✗" in text
    assert "ne se sont pas passées comme le disent les règles" in text.splitlines()[-1]


def test_demo_refuses_an_unknown_language(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--lang", "de"])
    assert exc.value.code == 2
    assert "--lang" in capsys.readouterr().err
    with pytest.raises(ValueError, match="lang"):
        run("de")


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_demo_degrades_on_a_terminal_without_unicode() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    assert run("fr", out) == 0
    out.flush()
    assert b"[2025-02-03 09:00:00] ? Mot de passe accept? (simul?" in raw.getvalue()


def test_python_m_ameli_otp_demo() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ameli_otp", "demo"],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert "Les 48 étapes".encode() in proc.stdout


def test_the_support_desk_chapter(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("en") == 0
    out = capsys.readouterr().out
    assert "✗" not in out
    assert "Paul (1720369012345)" in out
    assert "10 wrong codes, 4 codes asked for; the 10th locks the account" in out
    assert "✓ His own computer is still recognised" in out
    assert (
        "[2025-03-10 09:23:20] ✓ Paul calls the support desk. The agent runs « ameli-otp "
        "inspect 1720369012345 »: locked until 2025-03-11 09:03:20 UTC, 4 codes in the hour, "
        "2 trusted browsers."
    ) in out
    # the desk sees the lines `ameli-otp inspect` prints
    assert (
        "| Locked:                until 2025-03-11 09:03:20 UTC (23 hours and 40 minutes left)"
        in out
    )
    assert "| Codes in the window:   4" in out
    assert "| Trusted browsers:      2" in out
    desk = [x for x in out.splitlines() if "trusted since" in x]
    assert len(desk) == 2
    assert "trusted since 2025-03-01 18:00:00 UTC, until 2025-08-31 18:00:00 UTC" in desk[0]
    sold = desk[1].split("|", 1)[1].split()[0]
    assert f"« ameli-otp revoke 1720369012345 {sold} ») → revoked" in out
    assert "→ unlocked; a second time → nothing to unlock." in out
    assert "codes still allowed this hour: 0, since the 4 codes asked for" in out
    assert "✓ The token left on the old laptop is no longer recognised." in out
    assert "✓ 2 locks, 2 unlocks, 1 browser revoked" in out


def test_the_story_is_counted_by_the_prometheus_hook(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("prometheus_client")
    assert run("en") == 0
    out = capsys.readouterr().out
    assert "(ameli_otp.metrics.prometheus_hook, a Prometheus registry of its own)" in out
    assert (
        'ameli_otp_events_total{factor="email",kind="account_locked",reason="account_locked"} 2.0'
    ) in out
    assert 'ameli_otp_events_total{factor="email",kind="code_issued",reason=""} 19.0' in out
    assert 'ameli_otp_events_total{factor="email",kind="device_revoked",reason=""} 1.0' in out


def test_the_demo_runs_without_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # the base install has only attrs: the story counts its events with a plain hook
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "ameli_otp.metrics", raising=False)
    out = io.StringIO()
    assert run("fr", out) == 0
    text = out.getvalue()
    assert "un hook simple : avec pip install 'ameli-otp[metrics]'" in text
    assert "account_locked reason=account_locked: 2" in text
    assert "account_unlocked reason=-: 2" in text
    assert text.splitlines()[-1].endswith(
        "✓ Les 48 étapes se sont passées comme le disent les règles."
    )


def test_a_desk_that_unlocks_nothing_fails_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SecurityCodes, "unlock", lambda self, account: False)
    out = io.StringIO()
    assert run("en", out) == 1
    text = out.getvalue()
    assert "✗ The agent unlocks the account" in text
