"""Facts of the 2004 Windows XP fleet that scenarios start from (see docs/domain.md).

Language shares and the release dates of the nine languages that came after launch are our
assumptions (the seed article only says ~16 languages at launch and 25 planned); scenarios may
override the shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Language:
    """One of the 25 languages SP2 shipped in."""

    code: str
    share: float  # share of the XP install base
    sp2_release: datetime  # when Automatic Updates could offer SP2 in this language
    utc_offset_hours: int  # the time zone of the language's main region


def _utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


LAUNCH = _utc(2004, 8, 18)

LANGUAGES: tuple[Language, ...] = (
    Language("en", 0.455, LAUNCH, -5),
    Language("de", 0.080, LAUNCH, 1),
    Language("ja", 0.090, LAUNCH, 9),
    Language("fr", 0.060, LAUNCH, 1),
    Language("es", 0.050, LAUNCH, 1),
    Language("it", 0.030, LAUNCH, 1),
    Language("nl", 0.020, LAUNCH, 1),
    Language("sv", 0.010, LAUNCH, 1),
    Language("pt-BR", 0.025, LAUNCH, -3),
    Language("ko", 0.020, LAUNCH, 9),
    Language("zh-CN", 0.045, LAUNCH, 8),
    Language("zh-TW", 0.015, LAUNCH, 8),
    Language("zh-HK", 0.005, LAUNCH, 8),
    Language("da", 0.005, LAUNCH, 1),
    Language("no", 0.005, LAUNCH, 1),
    Language("fi", 0.005, LAUNCH, 2),
    Language("pl", 0.015, _utc(2004, 9, 1), 1),
    Language("ru", 0.020, _utc(2004, 9, 1), 3),
    Language("cs", 0.005, _utc(2004, 9, 8), 1),
    Language("hu", 0.005, _utc(2004, 9, 8), 1),
    Language("tr", 0.010, _utc(2004, 9, 15), 2),
    Language("el", 0.005, _utc(2004, 9, 15), 2),
    Language("pt", 0.005, _utc(2004, 9, 22), 0),
    Language("ar", 0.010, _utc(2004, 9, 29), 3),
    Language("he", 0.005, _utc(2004, 9, 29), 2),
)

LANGUAGE_CODES: tuple[str, ...] = tuple(lang.code for lang in LANGUAGES)
EDITIONS: tuple[str, ...] = ("home", "pro")
UPDATES: tuple[str, ...] = ("xpsp2", "kb884020")  # SP2, then its first hotfix (offered to machines with SP2)
AU_SETTINGS: tuple[str, ...] = ("automatic", "download_notify", "notify", "off")  # Automatic Updates' four options
CONNECTIONS: tuple[str, ...] = ("dialup", "broadband")
ONLINE_PROFILES: tuple[str, ...] = ("home", "office", "always_on")  # when it is on (model/online_hours.py)

# Package sizes (docs/domain.md).
MB = 1_000_000
SP2_SIZES = {"home": 80 * MB, "pro": 100 * MB}  # express install through Windows Update
KB884020_SIZE = 400_000  # small; the exact size is not known, a few hundred KB
NETWORK_INSTALL_SIZE = 265 * MB  # the full package administrators deploy themselves (from Aug 9)

# Automatic Updates detection cycle: 22 h minus a random 0-20 %.
DETECTION_HOURS = 22.0
DETECTION_JITTER = 0.20
MEAN_INTERVAL_S = DETECTION_HOURS * 3600 * (1 - DETECTION_JITTER / 2)


_BY_CODE = {lang.code: lang for lang in LANGUAGES}


def language(code: str) -> Language:
    """The Language with this code (KeyError if SP2 never shipped in it)."""
    return _BY_CODE[code]  # the reference server asks on every check

# The seed article's figures a replay is held to: (date, real machines with SP2, what was said).
SEED_FIGURES: tuple[tuple[datetime, float, str], ...] = (
    (_utc(2004, 9, 17), 20e6, "~20 million have SP2 (Microsoft, Sep 17)"),
    (_utc(2004, 10, 18), 100e6, "goal: 100 million through AU two months after Aug 18"),
)
XP_INSTALL_BASE = 210e6  # XP licences sold by March 2004 (seed article)
