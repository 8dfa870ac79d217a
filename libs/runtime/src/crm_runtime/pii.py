"""Personal data (PIPL): Chinese phone numbers normalised, and phones, e-mails and ID numbers
masked in free text. Shared by every service: the log filter masks every line with it.

Pure functions, no I/O. Two jobs:

* :func:`normalise_phone` turns whatever a caller, an agent or a partner system typed into one
  canonical form, so that "＋８６ １３８-０００１-８０００", "0086-13800018000" and
  "138 0001 8000" all find the same customer:

  - mobile numbers (11 digits, ``1[3-9]…``) become ``"13800018000"``;
  - landlines become ``"<area code with 0>-<local number>"``, e.g. ``"0755-88886666"`` or
    ``"010-62345678"``. Area codes are ``010`` and ``02x`` (three digits with the 0) or
    ``0[3-9]xx`` (four digits); the local number has 7 or 8 digits and does not start with
    0 or 1.

  Accepted decorations: ``+86`` / ``0086`` / ``86`` prefixes (the landline's leading 0 may be
  present or not after them, ``+86 (0)755 …`` too), spaces, dashes, dots, slashes, brackets,
  full-width digits and punctuation, a leading label (``tel:``, ``电话：``, ``手机:``) and an
  extension at the end (``转123``, ``分机 123``, ``ext. 12``, ``x12``, ``#12``), which is
  dropped. Anything else (other country codes, letters inside the number, service numbers
  such as 400/800/95xxx, too few or too many digits) gives ``None``.

* :func:`mask_phone` and :func:`mask_text` hide personal data for screens and logs not made
  for handling it (PIPL, docs/architecture.md section 4): phone numbers (``138****8000``),
  e-mail addresses (``z***@example.com``) and 18-digit resident ID numbers
  (``440301********1234``: region code and the last four kept, birth date hidden).
  :func:`mask_text` is used by the log filter, so it runs one precompiled regular expression
  over the text and leaves ordinary numbers alone: dates (``2026-03-01``), amounts
  (``5000元``), unit numbers (``3栋2单元1201``), order numbers embedded in longer digit runs.
  A bare 7–8 digit local number (no area code) is only masked when a phone word
  (电话, 手机, 座机, tel, phone, …) stands just before it.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["mask_email", "mask_id_number", "mask_phone", "mask_text", "normalise_phone"]

# --- normalisation -----------------------------------------------------------------------

_LABEL = re.compile(
    r"^\s*(?:tel|phone|mobile|mob|cell|电话|手机|座机|固话|联系电话|手机号|手机号码|电话号码)"
    r"\s*[:：]?\s*",
    re.IGNORECASE,
)
# An extension at the end: 转123, 转 123, 分机123, ext. 12, ext12, x12, #12, ",12" (dialling pause).
_EXTENSION = re.compile(
    r"(?:\s*(?:转|分机|分机号|ext\.?|extension|x|#|,|;)\s*[-:：]?\s*\d{1,6})\s*$",
    re.IGNORECASE,
)
# Characters people put between digits. (NFKC has already turned full-width forms into ASCII.)
_SEPARATORS = re.compile(r"[\s\-\.\(\)\[\]/_\u2010-\u2015\u2212\u30fc\u00b7]+")
_MOBILE = re.compile(r"1[3-9]\d{9}")
# Area code (with the trunk 0) + local number.
_LANDLINE = re.compile(r"(010|02\d|0[3-9]\d{2})([2-9]\d{6,7})")


def _nfkc(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw)


def _national_digits(raw: str) -> str | None:
    """The national number as bare digits (trunk 0 included for landlines), or None."""
    s = _nfkc(raw).strip()
    s = _LABEL.sub("", s)
    s = _EXTENSION.sub("", s)
    s = _SEPARATORS.sub("", s)
    if not s:
        return None
    international = False
    if s.startswith("+"):
        if not s.startswith("+86"):
            return None
        s = s[3:]
        international = True
    elif s.startswith("0086"):
        s = s[4:]
        international = True
    if not s.isdigit() or not s.isascii():
        return None
    if not international and s.startswith("86") and len(s) >= 11:
        # "8613800018000", "86755 8888 6666": the country code without "+".
        s = s[2:]
        international = True
    if international and not s.startswith("0") and not _MOBILE.fullmatch(s):
        # After the country code the landline's trunk 0 is normally left out.
        s = "0" + s
    return s


def normalise_phone(raw: str | None) -> str | None:
    """Canonical Chinese mobile (``13800018000``) or landline (``0755-88886666``), or None."""
    if not raw:
        return None
    digits = _national_digits(raw)
    if digits is None:
        return None
    if _MOBILE.fullmatch(digits):
        return digits
    m = _LANDLINE.fullmatch(digits)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    return None


# --- masking -------------------------------------------------------------------------------


def mask_phone(phone: str) -> str:
    """``13800018000`` → ``138****8000``; ``0755-88886666`` → ``0755-****6666``.

    Raw input is normalised first; something that is not a plausible number has every
    digit but the last four replaced by ``*``.
    """
    canonical = normalise_phone(phone)
    if canonical is None:
        digits = [i for i, ch in enumerate(phone) if ch.isdigit()]
        hide = set(digits[:-4]) if len(digits) > 4 else set(digits)
        return "".join("*" if i in hide else ch for i, ch in enumerate(phone))
    if "-" in canonical:
        area, local = canonical.split("-", 1)
        return f"{area}-{'*' * (len(local) - 4)}{local[-4:]}"
    return f"{canonical[:3]}****{canonical[-4:]}"


def mask_email(email: str) -> str:
    """``zhang.wei@example.com`` → ``z***@example.com``."""
    local, sep, domain = email.partition("@")
    if not sep:
        return email
    return f"{local[:1]}***@{domain}"


def mask_id_number(id_number: str) -> str:
    """``440301199001011234`` → ``440301********1234`` (the birth date is hidden)."""
    return f"{id_number[:6]}{'*' * 8}{id_number[-4:]}"


# Full-width digits and the signs that occur in phone numbers, mapped one character to one
# character, so match positions in the translated copy are positions in the original text.
_FULLWIDTH = str.maketrans(
    {chr(0xFF10 + i): str(i) for i in range(10)}
    | {"＋": "+", "－": "-", "（": "(", "）": ")", "＠": "@", "．": ".", "Ｘ": "X", "ｘ": "x"}
)

# Not inside a longer run of digits or ASCII letters: a number glued to letters is part of
# an identifier (a trace id, a UUID, an order code), not a phone number.
_D = r"(?<![0-9A-Za-z])"
_E = r"(?![0-9A-Za-z])"
_SEP = r"[ \-.\u00a0\u3000]?"
_TEXT_PATTERN = re.compile(
    # e-mail: an ASCII local part and a dotted domain
    r"(?P<email>(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]*@"
    r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*"
    r"\.[A-Za-z]{2,})"
    # 18-digit resident ID: region, birth date 19xx/20xx, sequence, check digit
    rf"|(?P<id>{_D}[1-9]\d{{5}}(?:19|20)\d{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    rf"\d{{3}}[0-9Xx]{_E})"
    # mobile, optionally with +86 / 0086 / 86, grouped 3-4-4 or 3-8 or solid
    rf"|(?P<mobile>{_D}(?:(?:\+|00)?86{_SEP}(?:\(0\))?{_SEP})?"
    rf"1[3-9]\d{_SEP}\d{{4}}{_SEP}\d{{4}}{_E})"
    # landline with an area code: (0755) 8888-6666, 0755-88886666, +86 755 88886666
    rf"|(?P<landline>{_D}(?:(?:\+|00)86{_SEP}(?:\(0\)|0)?{_SEP}\(?|\(?0)"
    rf"(?:10|2\d|[3-9]\d{{2}})\)?{_SEP}[2-9]\d{{2,3}}{_SEP}\d{{4}}{_E})"
    # a bare local number right after a phone word
    r"|(?P<label>(?:电话|手机|座机|固话|联系方式|联系电话|tel|phone|mobile|call me at|call me on)"
    r"[\s:：是为]{0,3})"
    rf"(?P<local>{_D}[2-9]\d{{2,3}}{_SEP}\d{{4}}{_E})",
    re.IGNORECASE,
)


def _replace(text: str, probe: str, m: re.Match[str]) -> str:
    """The masked form of one match; ``probe`` is ``text`` with full-width digits translated."""
    kind = m.lastgroup
    original = text[m.start() : m.end()]
    if kind == "email":
        return mask_email(original)
    if kind == "id":
        return mask_id_number(probe[m.start() : m.end()])
    if kind in ("mobile", "landline"):
        canonical = normalise_phone(m.group(kind))
        return mask_phone(canonical) if canonical else original
    if kind == "local":
        label = text[m.start("label") : m.end("label")]
        return label + mask_phone(m.group("local"))
    return original  # pragma: no cover - every alternative is named


def mask_text(text: str) -> str:
    """Mask every phone number, e-mail address and resident ID number in ``text``."""
    if not text:
        return text
    probe = text.translate(_FULLWIDTH)
    parts: list[str] = []
    last = 0
    for m in _TEXT_PATTERN.finditer(probe):
        parts.append(text[last : m.start()])
        parts.append(_replace(text, probe, m))
        last = m.end()
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)
