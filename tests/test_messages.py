"""``ameli_otp.messages``: a sentence for every refusal, in French and English."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ameli_otp import Issued, Reason, Refused, Verified
from ameli_otp.messages import (
    HELP,
    LANGS,
    MESSAGES,
    SPAM_HINT,
    duration_words,
    help_lines,
    message,
)


def test_langs() -> None:
    assert LANGS == ("fr", "en")
    assert set(MESSAGES) == set(LANGS) == set(HELP) == set(SPAM_HINT)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_has_a_message(reason: Reason, lang: str) -> None:
    text = message(reason, lang)
    assert text.strip() == text
    assert text
    assert text == MESSAGES[lang][reason]
    assert message(Refused(reason), lang) == text  # nothing to add without retry/attempts
    assert message(reason.value, lang) == text  # the plain string value works too


def test_french_is_the_default() -> None:
    assert message(Reason.EXPIRED) == MESSAGES["fr"][Reason.EXPIRED]
    assert "expiré" in message(Reason.EXPIRED)
    assert "expired" in message(Reason.EXPIRED, "en")
    assert help_lines() == HELP["fr"]


def test_messages_differ_between_reasons_and_languages() -> None:
    for lang in LANGS:
        assert len(set(MESSAGES[lang].values())) == len(Reason)
    assert all(MESSAGES["fr"][r] != MESSAGES["en"][r] for r in Reason)


@pytest.mark.parametrize(
    ("retry_after", "fr", "en"),
    [
        (timedelta(minutes=42), "dans 42 minutes.", "in 42 minutes."),
        (timedelta(minutes=1), "dans 1 minute.", "in 1 minute."),
        # rounded up: the person is never told to come back too early
        (timedelta(minutes=41, milliseconds=1), "dans 42 minutes.", "in 42 minutes."),
        (timedelta(seconds=59, milliseconds=500), "dans 1 minute.", "in 1 minute."),
        (timedelta(milliseconds=1), "dans 1 seconde.", "in 1 second."),
        (timedelta(seconds=42), "dans 42 secondes.", "in 42 seconds."),
        (timedelta(hours=24), "dans 24 heures.", "in 24 hours."),
        (timedelta(hours=1, minutes=5), "dans 1 heure et 5 minutes.", "in 1 hour and 5 minutes."),
        (
            timedelta(hours=23, seconds=1),
            "dans 23 heures et 1 minute.",
            "in 23 hours and 1 minute.",
        ),
        (timedelta(days=3), "dans 3 jours.", "in 3 days."),
        (timedelta(days=2, hours=1), "dans 2 jours et 1 heure.", "in 2 days and 1 hour."),
    ],
)
def test_retry_after_in_words(retry_after: timedelta, fr: str, en: str) -> None:
    for reason in (Reason.TOO_MANY_CODES, Reason.ACCOUNT_LOCKED):
        refused = Refused(reason, retry_after=retry_after)
        assert message(refused) == f"{MESSAGES['fr'][reason]} Réessayez {fr}"
        assert message(refused, "en") == f"{MESSAGES['en'][reason]} Try again {en}"


@pytest.mark.parametrize(
    ("left", "fr", "en"),
    [
        (2, "Il vous reste 2 essais.", "2 attempts left."),
        (1, "Il vous reste 1 essai.", "1 attempt left."),
    ],
)
def test_attempts_left(left: int, fr: str, en: str) -> None:
    refused = Refused(Reason.WRONG_CODE, attempts_left=left)
    assert message(refused) == f"{MESSAGES['fr'][Reason.WRONG_CODE]} {fr}"
    assert message(refused, "en") == f"{MESSAGES['en'][Reason.WRONG_CODE]} {en}"


@pytest.mark.parametrize("bad", ["de", "FR", "", "fr_FR"])
def test_bad_lang_raises_value_error_naming_lang(bad: str) -> None:
    with pytest.raises(ValueError, match="lang"):
        message(Reason.EXPIRED, bad)
    with pytest.raises(ValueError, match="lang"):
        help_lines(bad)
    with pytest.raises(ValueError, match="lang"):
        duration_words(timedelta(minutes=1), bad)


def test_lang_that_is_not_a_str_raises_type_error() -> None:
    with pytest.raises(TypeError, match="lang"):
        message(Reason.EXPIRED, None)  # type: ignore[arg-type]


def test_only_refusals_have_messages() -> None:
    from datetime import UTC, datetime

    issued = Issued(code="123456", expires_at=datetime.now(UTC), remaining=4)
    for result in (issued, Verified(), None, 3):
        with pytest.raises(TypeError, match="result_or_reason"):
            message(result)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="result_or_reason"):
        message("not_a_reason")  # type: ignore[arg-type]


def test_duration_words_checks_its_argument() -> None:
    with pytest.raises(TypeError, match="delta"):
        duration_words(60)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta"):
        duration_words(timedelta(seconds=-1))
    assert duration_words(timedelta(0)) == "0 seconde"
    assert duration_words(timedelta(0), "en") == "0 seconds"


@pytest.mark.parametrize("lang", LANGS)
def test_help_lines_give_the_sheet_s_ways_out(lang: str) -> None:
    lines = help_lines(lang)
    text = "\n".join(lines)
    assert lines[0] == SPAM_HINT[lang]
    for needle in ("France Services", "Mon agenda / Prendre un rendez-vous", "AmeliBot"):
        assert needle in text
    assert "forum" in text
    assert all(line and line == line.strip() for line in lines)


def test_catalogue_is_read_only() -> None:
    with pytest.raises(TypeError):
        MESSAGES["fr"][Reason.EXPIRED] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        HELP["de"] = ()  # type: ignore[index]
