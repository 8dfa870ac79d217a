"""Masking of personal data (PIPL): phone numbers, e-mail addresses, resident ID numbers.

Used by the log filter every service installs, so no log line ever carries them,
and by screens that are not made for handling them (138****8000).
"""

from __future__ import annotations

import re

# 18-digit resident ID: 6-digit area, 8-digit birth date, 3 digits, check digit.
_ID_CARD = re.compile(r"(?<![0-9])([1-9][0-9]{5})(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}([0-9Xx])(?![0-9])")
# Mobile numbers, optionally prefixed by +86 / 0086 / 86, with separators.
_MOBILE = re.compile(r"(?<![0-9])(?:(?:\+|00)?86[\s-]?)?(1[3-9][0-9])[\s-]?([0-9]{4})[\s-]?([0-9]{4})(?![0-9])")
# Landlines: area code 0xx(x) then a 7-8 digit number, with a separator or brackets.
_LANDLINE = re.compile(r"(?<![0-9])(?:\(0[1-9][0-9]{1,2}\)|0[1-9][0-9]{1,2})[\s-]?([0-9]{3,4})[\s-]?([0-9]{4})(?![0-9-])")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_phone(phone: str) -> str:
    """138****8000: first three and last four digits stay, enough to recognise, not to call."""
    digits = re.sub(r"[^0-9]", "", phone)
    if len(digits) < 7:
        return "****"
    return f"{digits[:3]}****{digits[-4:]}"


def mask_email(email: str) -> str:
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", email)


def mask_text(text: str) -> str:
    """Mask every ID number, phone number and e-mail address found in free text."""
    if not text:
        return text
    text = _ID_CARD.sub(lambda m: f"{m.group(1)}********{m.group(0)[-4:]}", text)
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    text = _LANDLINE.sub(lambda m: f"****{m.group(2)}", text)
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
