"""HTTP-date (RFC 9110 §5.6.7): parse all three forms a recipient must accept, format each of them.

::

    IMF-fixdate   Sun, 06 Nov 1994 08:49:37 GMT     the one senders must generate
    rfc850-date   Sunday, 06-Nov-94 08:49:37 GMT    obsolete: two-digit year
    asctime-date  Sun Nov  6 08:49:37 1994          obsolete: C's asctime(), no zone (it is GMT)

HTTP-date is case-sensitive and has no optional whitespace; anything else is not an HTTP-date.
A two-digit rfc850 year names the year with those digits within 50 years of ``now``: more than 50
years ahead means the most recent past such year (RFC 9110 §5.6.7), so parsing takes the recipient's
clock.
The day name is not checked against the date: the grammar does not tie them, and neither do we.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import time
from typing import Literal

Form = Literal["imf-fixdate", "rfc850", "asctime"]

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAYS_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_DAY, _DAY_L, _MON = "|".join(DAYS), "|".join(DAYS_LONG), "|".join(MONTHS)
_TIME = r"(?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)"
_PATTERNS: dict[Form, str] = {
    "imf-fixdate": rf"(?:{_DAY}), (?P<d>\d\d) (?P<mo>{_MON}) (?P<y>\d{{4}}) {_TIME} GMT",
    "rfc850": rf"(?:{_DAY_L}), (?P<d>\d\d)-(?P<mo>{_MON})-(?P<y>\d\d) {_TIME} GMT",
    "asctime": rf"(?:{_DAY}) (?P<mo>{_MON}) (?P<d>\d\d| \d) {_TIME} (?P<y>\d{{4}})",
}
# re.ASCII: \d is 0-9, not any Unicode digit
_FORMS = tuple((form, re.compile(pattern, re.ASCII)) for form, pattern in _PATTERNS.items())
_FIFTY_YEARS_S = 50 * 365.2425 * 86400


def parse_http_date(text: str, *, now: float) -> tuple[float, Form] | None:
    """Epoch seconds and the form ``text`` used, or None when it is not an HTTP-date."""
    for form, pattern in _FORMS:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        year, month, day = int(m["y"]), MONTHS.index(m["mo"]) + 1, int(m["d"])
        hour, minute, second = int(m["h"]), int(m["mi"]), int(m["s"])
        if hour > 23 or minute > 59 or second > 60:  # 60: a leap second (time-of-day allows it)
            return None
        if form == "rfc850":
            year += time.gmtime(now).tm_year // 100 * 100
            # the year with those two digits within 50 years of now (more than 50 years ahead: a
            # century earlier, as RFC 9110 says; as far behind: a century later, by the same logic)
            # (timegm does arithmetic, it does not check the day: that is done below, for the final year)
            guess = calendar.timegm((year, month, day, hour, minute, second))
            if not now - _FIFTY_YEARS_S < guess <= now + _FIFTY_YEARS_S:
                year += -100 if guess > now else 100
        try:
            dt.date(year, month, day)  # the day exists in that month of that year
        except ValueError:
            return None
        epoch = float(calendar.timegm((year, month, day, hour, minute, second)))
        return epoch, form
    return None


def format_http_date(epoch: float, form: Form = "imf-fixdate") -> str:
    """``epoch`` (whole seconds, UTC) written in ``form``."""
    t = time.gmtime(int(epoch))
    hms = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    month = MONTHS[t.tm_mon - 1]
    if form == "imf-fixdate":
        return f"{DAYS[t.tm_wday]}, {t.tm_mday:02d} {month} {t.tm_year:04d} {hms} GMT"
    if form == "rfc850":
        return f"{DAYS_LONG[t.tm_wday]}, {t.tm_mday:02d}-{month}-{t.tm_year % 100:02d} {hms} GMT"
    return f"{DAYS[t.tm_wday]} {month} {t.tm_mday:2d} {hms} {t.tm_year:04d}"
