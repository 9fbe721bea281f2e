"""Portable regular expressions for the wire's dates and times (RFC 3339), shared by the models that
validate records and the JSON Schemas published for them.

Plain alternations only (no look-around, no back-references), so every JSON Schema validator
(ECMA-262, RE2, Python) reads them alike. Month lengths and 29 February of leap years are in the
pattern; a validator that does not check ``format`` still rejects 2026-02-30.

>>> import re
>>> [bool(re.fullmatch(ANY_DATE, d)) for d in ("2024-02-29", "2026-02-29", "2026-04-31", "2099-12-31")]
[True, False, False, True]
>>> [bool(re.fullmatch(TIME_DATE, d)) for d in ("1970-01-01", "1970-01-02", "2099-12-30", "2099-12-31")]
[False, True, True, False]
"""

from __future__ import annotations

from pydantic.config import JsonDict

_D31 = "(?:0[1-9]|[12][0-9]|3[01])"
_D30 = "(?:0[1-9]|[12][0-9]|30)"
_D28 = "(?:0[1-9]|1[0-9]|2[0-8])"
_MONTH_DAY = f"(?:(?:0[13578]|1[02])-{_D31}|(?:0[469]|11)-{_D30}|02-{_D28})"  # 29 February apart
_LEAP_YEAR = "(?:19(?:7[26]|8[048]|9[26])|20(?:[02468][048]|[13579][26]))"  # 1972..2096 (2000 is leap)
_LEAP_DAY = f"{_LEAP_YEAR}-02-29"

ANY_DATE = f"(?:(?:19[7-9][0-9]|20[0-9][0-9])-{_MONTH_DAY}|{_LEAP_DAY})"
"""A real calendar date from 1970-01-01 to 2099-12-31."""

_NOT_JAN_1 = f"(?:01-(?:0[2-9]|[12][0-9]|3[01])|(?:0[3578]|1[02])-{_D31}|(?:0[469]|11)-{_D30}|02-{_D28})"
_NOT_DEC_31 = f"(?:(?:0[13578]|10)-{_D31}|12-{_D30}|(?:0[469]|11)-{_D30}|02-{_D28})"
TIME_DATE = (f"(?:(?:197[1-9]|19[89][0-9]|20[0-8][0-9]|209[0-8])-{_MONTH_DAY}|1970-{_NOT_JAN_1}"
             f"|2099-{_NOT_DEC_31}|{_LEAP_DAY})")
"""The date of a timestamp as written: 1970-01-02 to 2099-12-30, so that whatever its offset the
instant lies within 1970-01-01T00:00Z and 2100-01-01T00:00Z, the range the engine computes with."""

CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
"""hh:mm:ss with up to 9 fractional digits (Java's Instant writes nanoseconds); no leap second."""

OFFSET = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
"""The hh:mm of a numeric offset."""

NO_CONTROL: JsonDict = {"not": {"pattern": "[\\x00-\\x1f\\x7f]"}}
"""Beside every anchored ``pattern`` in a schema: no control character anywhere. ECMA-262 reads ``$``
as the end of the text, Python's ``re.search`` (the ``jsonschema`` package) also before a final
newline; with this, ``"c1\\n"`` is rejected by every validator, as the worker rejects it."""
