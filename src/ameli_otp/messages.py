"""What to tell the person at the login page, in French (default) and English.

A small catalogue of plain data: one short sentence per :class:`~ameli_otp.Reason`,
and the help the practical sheet gives when the service cannot be used (France
Services, a phone appointment, AmeliBot, the ameli forum, the spam folder)::

    from ameli_otp.messages import message, help_lines

    result = codes.request_code(nir)
    if not result.ok:
        show(message(result))            # "... Réessayez dans 42 minutes."
        show(*help_lines("fr"))

The sentences name no number of the policy (15 minutes, 5 codes): an integrator
may change those. Only what a :class:`~ameli_otp.Refused` carries is shown: the
wait (``retry_after``, rounded **up**, so that the person is never told to come
back before the refusal is over) and the attempts left.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType

from ._results import Reason, Refused

__all__ = [
    "HELP",
    "LANGS",
    "MESSAGES",
    "SPAM_HINT",
    "duration_words",
    "help_lines",
    "message",
]

#: the languages of the catalogue; the first is the default
LANGS: tuple[str, ...] = ("fr", "en")

#: one sentence per refusal reason, per language
MESSAGES: Mapping[str, Mapping[Reason, str]] = MappingProxyType(
    {
        "fr": MappingProxyType(
            {
                Reason.TOO_MANY_CODES: (
                    "Vous avez demandé trop de codes de sécurité sans les utiliser "
                    "pour vous connecter."
                ),
                Reason.NO_CODE: "Aucun code de sécurité n'est en cours : demandez un nouveau code.",
                Reason.EXPIRED: "Ce code de sécurité a expiré : demandez un nouveau code.",
                Reason.WRONG_CODE: "Ce code de sécurité est incorrect.",
                Reason.TOO_MANY_ATTEMPTS: (
                    "Trop d'essais avec ce code de sécurité : demandez un nouveau code."
                ),
                Reason.MALFORMED_CODE: (
                    "Ce n'est pas un code de sécurité : recopiez les chiffres reçus par e-mail."
                ),
                Reason.ACCOUNT_LOCKED: (
                    "Votre compte est bloqué après trop de codes de sécurité incorrects."
                ),
                Reason.TOO_SOON: (
                    "Un code de sécurité vient de vous être envoyé : consultez votre boîte "
                    "mail avant d'en demander un autre."
                ),
                Reason.DAILY_LIMIT: ("Vous avez demandé trop de codes de sécurité aujourd'hui."),
                Reason.BUDGET_EXHAUSTED: (
                    "Le service reçoit trop de demandes de codes de sécurité en ce moment."
                ),
                Reason.NO_AUTHENTICATOR: (
                    "Aucune application d'authentification n'est associée à votre compte."
                ),
                Reason.CODE_REUSED: (
                    "Ce code a déjà servi : attendez le code suivant de votre application."
                ),
                Reason.NO_RECOVERY_CODES: (
                    "Il ne vous reste aucun code de secours : contactez votre caisse."
                ),
            }
        ),
        "en": MappingProxyType(
            {
                Reason.TOO_MANY_CODES: (
                    "You have asked for too many security codes without using them to log in."
                ),
                Reason.NO_CODE: "There is no security code in progress: ask for a new code.",
                Reason.EXPIRED: "This security code has expired: ask for a new code.",
                Reason.WRONG_CODE: "This security code is wrong.",
                Reason.TOO_MANY_ATTEMPTS: (
                    "Too many attempts with this security code: ask for a new code."
                ),
                Reason.MALFORMED_CODE: (
                    "This is not a security code: copy the digits you received by email."
                ),
                Reason.ACCOUNT_LOCKED: (
                    "Your account is locked after too many wrong security codes."
                ),
                Reason.TOO_SOON: (
                    "A security code was just sent to you: check your mailbox before "
                    "asking for another one."
                ),
                Reason.DAILY_LIMIT: "You have asked for too many security codes today.",
                Reason.BUDGET_EXHAUSTED: (
                    "The service is receiving too many requests for security codes right now."
                ),
                Reason.NO_AUTHENTICATOR: "No authenticator app is set up for your account.",
                Reason.CODE_REUSED: (
                    "This code was already used: wait for the next code of your app."
                ),
                Reason.NO_RECOVERY_CODES: (
                    "You have no recovery codes left: contact your health insurance office."
                ),
            }
        ),
    }
)

#: the sheet's first tip ("Bon à savoir !"), when the email does not arrive
SPAM_HINT: Mapping[str, str] = MappingProxyType(
    {
        "fr": "Pensez à vérifier si l'e-mail n'est pas arrivé dans vos spams.",
        "en": "Check whether the email went to your spam folder.",
    }
)

#: what the sheet offers when the service cannot be used, per language
HELP: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "fr": (
            SPAM_HINT["fr"],
            "Rendez-vous dans la France Services la plus proche de votre domicile "
            "(carte : https://anct-carto.github.io/france_services/).",
            "Prenez un rendez-vous téléphonique depuis votre compte ameli, "
            "rubrique « Mon agenda / Prendre un rendez-vous ».",
            "Posez votre question à AmeliBot, l'assistant virtuel : "
            "l'icône bleue en bas à droite de la page.",
            "Consultez le forum ameli, espace de discussion et d'entraide, "
            "accessible dès la page d'accueil d'ameli.fr (https://forum-assures.ameli.fr/).",
        ),
        "en": (
            SPAM_HINT["en"],
            "Go to the France Services office nearest your home "
            "(map: https://anct-carto.github.io/france_services/).",
            "Book a phone appointment from your ameli account, "
            "under « Mon agenda / Prendre un rendez-vous » (My calendar / Book an appointment).",
            "Ask AmeliBot, the virtual assistant: the blue icon at the bottom right of the page.",
            "Visit the ameli forum, for discussion and mutual help, "
            "linked from the ameli.fr home page (https://forum-assures.ameli.fr/).",
        ),
    }
)

_RETRY = MappingProxyType({"fr": "Réessayez dans {wait}.", "en": "Try again in {wait}."})
_ATTEMPTS = MappingProxyType(
    {
        "fr": ("Il vous reste {n} essai.", "Il vous reste {n} essais."),
        "en": ("{n} attempt left.", "{n} attempts left."),
    }
)
# (singular, plural) of each unit; French uses the singular for 0 and 1, English for 1 only
_UNITS = MappingProxyType(
    {
        "fr": {
            "day": ("jour", "jours"),
            "hour": ("heure", "heures"),
            "minute": ("minute", "minutes"),
            "second": ("seconde", "secondes"),
        },
        "en": {
            "day": ("day", "days"),
            "hour": ("hour", "hours"),
            "minute": ("minute", "minutes"),
            "second": ("second", "seconds"),
        },
    }
)
_AND = MappingProxyType({"fr": "et", "en": "and"})


def _lang(lang: object) -> str:
    if not isinstance(lang, str):
        raise TypeError(f"lang must be a str, not {type(lang).__name__}")
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {', '.join(map(repr, LANGS))}, got {lang!r}")
    return lang


def _plural(lang: str, n: int) -> bool:
    return n > 1 if lang == "fr" else n != 1


def _count(lang: str, n: int, unit: str) -> str:
    singular, plural = _UNITS[lang][unit]
    return f"{n} {plural if _plural(lang, n) else singular}"


def duration_words(delta: timedelta, lang: str = "fr") -> str:
    """``delta`` in words, rounded **up**: ``"42 minutes"``, ``"1 heure et 5 minutes"``.

    Under a minute it counts seconds; under an hour, minutes; under two days,
    hours and minutes; beyond, days and hours. Rounding up means that a person
    who waits the time shown is never refused again for the same reason.

    Raises ``TypeError`` if ``delta`` is not a ``timedelta``, ``ValueError`` if it
    is negative or ``lang`` is not one of :data:`LANGS`.
    """
    lang = _lang(lang)
    if not isinstance(delta, timedelta):
        raise TypeError(f"delta must be a datetime.timedelta, not {type(delta).__name__}")
    if delta < timedelta(0):
        raise ValueError(f"delta must not be negative, got {delta!r}")
    seconds = math.ceil(delta / timedelta(seconds=1))
    if seconds < 60:
        return _count(lang, seconds, "second")
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return _count(lang, minutes, "minute")
    if minutes < 48 * 60:
        hours, minutes = divmod(minutes, 60)
        return _two(lang, hours, "hour", minutes, "minute")
    days, hours = divmod(math.ceil(minutes / 60), 24)
    return _two(lang, days, "day", hours, "hour")


def _two(lang: str, big: int, big_unit: str, small: int, small_unit: str) -> str:
    """``"1 heure et 5 minutes"``, or ``"2 heures"`` when there is nothing small."""
    words = _count(lang, big, big_unit)
    return f"{words} {_AND[lang]} {_count(lang, small, small_unit)}" if small else words


def message(result_or_reason: Reason | Refused, lang: str = "fr") -> str:
    """The sentence to show for a refusal, in ``lang`` (``"fr"`` or ``"en"``).

    ``result_or_reason`` is a :class:`~ameli_otp.Reason` (or its string value,
    ``"expired"``) or a :class:`~ameli_otp.Refused`. For a ``Refused``, the wait
    (``retry_after``) and the attempts left (``attempts_left``) are added:
    ``"... Réessayez dans 42 minutes."``, ``"... 2 attempts left."``.

    Raises ``ValueError`` naming ``lang`` for a language not in :data:`LANGS`, and
    ``TypeError`` for anything that is not a refusal (an ``Issued`` or a ``Verified``
    has nothing to explain).
    """
    lang = _lang(lang)
    retry_after: timedelta | None = None
    attempts_left: int | None = None
    if isinstance(result_or_reason, Refused):
        reason = result_or_reason.reason
        retry_after = result_or_reason.retry_after
        attempts_left = result_or_reason.attempts_left
    elif isinstance(result_or_reason, str):
        try:
            reason = Reason(result_or_reason)
        except ValueError:
            raise ValueError(
                f"result_or_reason must be a Reason, got {result_or_reason!r}"
            ) from None
    else:
        raise TypeError(
            "result_or_reason must be an ameli_otp.Reason or Refused, "
            f"not {type(result_or_reason).__name__}"
        )
    parts = [MESSAGES[lang][reason]]
    if attempts_left is not None:
        singular, plural = _ATTEMPTS[lang]
        parts.append((plural if _plural(lang, attempts_left) else singular).format(n=attempts_left))
    if retry_after is not None:
        parts.append(_RETRY[lang].format(wait=duration_words(retry_after, lang)))
    return " ".join(parts)


def help_lines(lang: str = "fr") -> tuple[str, ...]:
    """The sheet's help when the service cannot be used, one line per way out.

    The spam-folder tip first, then France Services, a phone appointment
    (« Mon agenda / Prendre un rendez-vous »), AmeliBot and the ameli forum.
    Raises ``ValueError`` naming ``lang`` for a language not in :data:`LANGS`.
    """
    return HELP[_lang(lang)]
