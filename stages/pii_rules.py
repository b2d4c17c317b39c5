"""PII detectors: one pure function per type, each returning the spans it finds, and the replacement.

Every detector is `find_<type>(text) -> list[Span]`. Precision matters as much as recall, so the number detectors
validate what they match (GB 11643 check digit and birth date for identity cards, Luhn for bank cards, octet ranges
and global scope for IP addresses) and share three guards against numbers that are not about a person:
- digit boundaries: a match never starts or ends inside a longer run of digits (or letters, for ids), so an
  18-digit order number does not yield a phone number from its middle;
- URLs: numbers inside a URL (`https://.../item/13812345678.html`) are left alone (emails and IPs are still
  found there: an IP host is an address);
- context: a number right after a keyword naming another kind of number (订单号, 运单号, ISBN, order, tracking
  ...) or next to a currency sign or unit (¥, 元) is left alone.
`find_pii` runs the detectors and resolves overlaps deterministically (see `resolve_overlaps`); `redact` replaces
spans with typed placeholders, so the text keeps its structure (no line is deleted).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import date
from typing import NamedTuple

# TYPES: the detector types in priority order (overlapping spans: the earlier type wins), beside PiiConfig
from stages.config.pii import TYPES


class Span(NamedTuple):
    start: int
    end: int
    type: str


DEFAULT_PLACEHOLDERS = {
    "email": "<EMAIL>",
    "id_card": "<ID_CARD>",
    "bank_card": "<BANK_CARD>",
    "ip": "<IP_ADDRESS>",
    "cn_mobile": "<PHONE>",
    "intl_phone": "<PHONE>",
    "cn_landline": "<PHONE>",
    "qq": "<QQ>",
    "wechat": "<WECHAT>",
}

_URL = re.compile(r"(?:https?|ftp)://[^\s<>\"'，。）】]+|www\.[^\s<>\"'，。）】]+", re.IGNORECASE)
# A keyword naming a number that is not personal, within a few characters before the match.
_VETO_BEFORE = re.compile(
    r"(订单|单号|运单|快递|物流|包裹|编号|流水号|交易号|序列号|批号|工单|发票|条码|型号|货号|票号|准考证|学号|工号|"
    r"isbn|issn|doi|order|tracking|invoice|serial|sku|ref|no\.|#)[^\n]{0,6}$",
    re.IGNORECASE,
)
_CURRENCY_BEFORE = re.compile(r"[¥￥$€£]\s*$")
# A unit right after the number, on the same line (a number ending a line is not priced by the next line's first
# word), and not the first character of a word: 元旦, 元宵, 元素, 元首 ... are not 元 (yuan).
_UNIT_AFTER = re.compile(
    r"^[ \t\u3000]*(元(?![旦宵素首件朝代老帅气音])|块|万|亿|美元|円|人民币|rmb|usd|次|个|件|字|页|kb|mb|gb)",
    re.IGNORECASE,
)
# A keyword naming the type of a number, shortly before it on the same line. Text extraction glues numbers to ASCII
# words (电话：13812345678Email, 卡号 6217...1234ISBN); a number touching a letter is taken only when such a
# keyword names it (an 18-digit identity card number's check character is evidence enough), so a digit run inside a hash or
# a part number (a3f13812345678bc, SN13812345678) is not.
_TYPE_KEYWORD_BEFORE = {
    "cn_mobile": re.compile(r"(电话|手机|联系|致电|热线|tel|phone|mobile|cell|call)[^\n]{0,8}$", re.IGNORECASE),
    "cn_landline": re.compile(r"(电话|座机|联系|致电|热线|传真|tel|phone|fax|call)[^\n]{0,8}$", re.IGNORECASE),
    "bank_card": re.compile(r"(卡号|银行卡|储蓄卡|信用卡|账号|帐号|card|account|acct)[^\n]{0,8}$", re.IGNORECASE),
    "id_card": re.compile(r"(身份证|证件|证号|id)[^\n]{0,8}$", re.IGNORECASE),
}
_ASCII_LETTER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

# Province-level codes: the first two digits of a resident identity card number (GB/T 2260).
_PROVINCES = {
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54,
    61, 62, 63, 64, 65, 71, 81, 82, 83, 91,
}  # fmt: skip
_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_ID_CHECK = "10X98765432"


# ------------------------------------------------------------------------------------------- validators


def id_check_digit(first17: str) -> str:
    """GB 11643-1999 check character of an 18-digit identity card number: ISO 7064 MOD 11-2."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS)) % 11]


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        return date(1900, 1, 1) <= date(year, month, day) <= date.today()
    except ValueError:
        return False


def valid_id_card(number: str) -> bool:
    """18-digit (check digit, birth date) or legacy 15-digit (birth date 19YYMMDD) resident identity card number."""
    if len(number) == 18:
        if int(number[:2]) not in _PROVINCES or not number[:17].isdigit():
            return False
        if not _valid_date(int(number[6:10]), int(number[10:12]), int(number[12:14])):
            return False
        return id_check_digit(number[:17]) == number[17].upper()
    if len(number) == 15 and number.isdigit():
        return int(number[:2]) in _PROVINCES and _valid_date(
            1900 + int(number[6:8]), int(number[8:10]), int(number[10:12])
        )
    return False


# ------------------------------------------------------------------------------------------- guards


def url_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _URL.finditer(text)]


def _inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


def _vetoed(text: str, start: int, end: int) -> bool:
    """A number that a keyword before it (订单号, ISBN ...), a currency sign or a unit after it marks as not personal."""
    before = text[max(0, start - 16) : start]
    return bool(
        _VETO_BEFORE.search(before) or _CURRENCY_BEFORE.search(before) or _UNIT_AFTER.match(text[end : end + 4])
    )


def _glued(text: str, start: int, end: int) -> bool:
    """The number touches an ASCII letter on either side (13812345678Email, Tel13812345678)."""
    return (start > 0 and text[start - 1] in _ASCII_LETTER) or (end < len(text) and text[end] in _ASCII_LETTER)


def _named_before(text: str, start: int, kind: str) -> bool:
    keyword = _TYPE_KEYWORD_BEFORE.get(kind)
    return keyword is not None and keyword.search(text[max(0, start - 20) : start]) is not None


def _number_spans(
    pattern: re.Pattern, text: str, kind: str, check: Callable[[str], bool] | None = None, group: int = 0
) -> list[Span]:
    """Matches of a number pattern that pass `check` (on the digits) and are not in a URL or vetoed by context.
    A match touching an ASCII letter (the patterns allow it, see `_B`) is kept only when a keyword of its type is
    before it, or when it is an identity card number (its check character is the evidence)."""
    urls = None
    out = []
    for m in pattern.finditer(text):
        start, end = m.span(group)
        digits = re.sub(r"[^0-9Xx]", "", m.group(group))
        if check is not None and not check(digits):
            continue
        if (
            _glued(text, start, end)
            and not (len(digits) == 18 and kind == "id_card")
            and not _named_before(text, start, kind)
        ):
            continue
        if urls is None:
            urls = url_spans(text)
        if _inside(urls, start, end) or _vetoed(text, start, end):
            continue
        out.append(Span(start, end, kind))
    return out


# ------------------------------------------------------------------------------------------- detectors

# Boundaries of a number: no letter, digit, `_` or `+` just before it and no letter or digit just after (ASCII
# only, so 手机13812345678联系 matches), and not the fraction or integer part of a decimal (3.14159265359).
_B = r"(?<![\w+])(?<!\d\.)"
_E = r"(?![\w])(?!\.\d)"
# The same, but letting an ASCII letter touch the number: text extraction glues numbers to words (电话：
# 13812345678Email). `_number_spans` decides such matches by the keyword before them (see `_glued`).
_B_GLUED = r"(?<![\d_+])(?<!\d\.)"
_E_GLUED = r"(?![\d_])(?!\.\d)"

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![A-Za-z0-9-])",
    re.ASCII,
)


def find_email(text: str) -> list[Span]:
    """user@example.com; the local part may not end with a dot, the domain needs a letter TLD."""
    return [Span(*m.span(), "email") for m in _EMAIL.finditer(text) if ".." not in m.group()]


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)", re.ASCII)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])", re.ASCII
)
# Dotted numbers that are versions or section numbers: "version 1.2.3.4", "Section 4.2.13.1", "第 12.6.2.1 节".
_NOT_IP_BEFORE = re.compile(r"(version|ver\.|版本号?|section|sec\.|§|chapter|chap\.|第|见)\W{0,2}$", re.IGNORECASE)
_NOT_IP_AFTER = re.compile(r"^\s*(节|章|小节)")
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


def _not_an_address(text: str, start: int, end: int) -> bool:
    if text[start:end].endswith(".0"):
        return True
    if _NOT_IP_BEFORE.search(text[max(0, start - 12) : start]) or _NOT_IP_AFTER.match(text[end : end + 4]):
        return True
    line_start = text.rfind("\n", 0, start) + 1
    return not text[line_start:start].strip() and text[end : end + 2] in (". ", ".\t")


def find_ip(text: str, public_only: bool = True) -> list[Span]:
    """IPv4 and IPv6 addresses. With `public_only`, private, loopback, link-local, documentation and other
    reserved ranges are left alone, and IPv6 must be global unicast (2000::/3): `std::` or `a::b` in code are not
    addresses. Not addresses either: leading-zero octets, network numbers ending in .0, versions (version 1.2.3.4)
    and section numbers (Section 4.2.13.1, 第 12.6.2.1 节, a heading line starting `4.2.13.1. `)."""
    out = []
    for m in _IPV4.finditer(text):
        try:
            addr = ipaddress.IPv4Address(m.group())
        except ValueError:
            continue  # octet > 255 or a leading zero
        if _not_an_address(text, m.start(), m.end()):
            continue
        if public_only and not addr.is_global:
            continue
        out.append(Span(*m.span(), "ip"))
    for m in _IPV6.finditer(text):
        s = m.group()
        if s.count(":") < 2 or s in ("::",):
            continue
        try:
            addr6 = ipaddress.IPv6Address(s)
        except ValueError:
            continue
        if public_only and not (addr6.is_global and addr6 in _GLOBAL_UNICAST):
            continue
        if not public_only and len([g for g in s.split(":") if g]) < 3:
            continue  # `a::b`: too little to be told from code
        out.append(Span(*m.span(), "ip"))
    return out


# 1[3-9]X XXXX XXXX, with an optional +86 / 0086 / 86 prefix and spaces or dashes between the groups.
_CN_MOBILE = re.compile(_B_GLUED + r"(?:(?:\+|00)?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}" + _E_GLUED, re.ASCII)


def find_cn_mobile(text: str) -> list[Span]:
    """Mainland mobile numbers: 13812345678, 138 1234 5678, 138-1234-5678, +86 138 1234 5678, 0086-138..."""
    return _number_spans(_CN_MOBILE, text, "cn_mobile", _mobile_digits_ok)


def _mobile_digits_ok(digits: str) -> bool:
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return len(digits) == 11


# Area code 010, 02X or 0[3-9]XX (optionally in brackets), a local number of 7-8 digits starting 2-9, and an
# optional extension. Without a separator the whole run must be exactly area + local digits.
_CN_LANDLINE = re.compile(
    _B_GLUED + r"(?:\(0(?:10|2\d|[3-9]\d{2})\)|（0(?:10|2\d|[3-9]\d{2})）|0(?:10|2\d|[3-9]\d{2}))[ -]?"
    r"[2-9]\d{2,3}[ -]?\d{4}(?:\s*(?:转|ext\.?|-)\s*\d{1,5})?" + _E_GLUED,
    re.IGNORECASE | re.ASCII,
)


def find_cn_landline(text: str) -> list[Span]:
    """Landlines with an area code: 010-12345678, (0571) 8765 4321, 0755 2345678 转 123."""
    return _number_spans(_CN_LANDLINE, text, "cn_landline", lambda d: 10 <= len(d) <= 17)


# E.164: +, country code and subscriber number, 8 to 15 digits in all, spaces, dots or dashes between groups.
_E164 = re.compile(_B + r"\+[1-9]\d{0,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}" + _E, re.ASCII)


def find_intl_phone(text: str) -> list[Span]:
    """International numbers in E.164 form: +44 20 7946 0958, +1-202-555-0143, +8613812345678."""
    return _number_spans(_E164, text, "intl_phone", lambda d: 8 <= len(d) <= 15)


_ID_18 = re.compile(
    _B_GLUED + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]" + _E_GLUED, re.ASCII
)
_ID_15 = re.compile(_B_GLUED + r"[1-9]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}" + _E_GLUED, re.ASCII)


def find_id_card(text: str) -> list[Span]:
    """Resident identity card numbers: 18 digits with a valid GB 11643 check character (0-9 or X), a real birth
    date and a province code; or the legacy 15-digit form (province code and a real 19YYMMDD birth date)."""
    return _number_spans(_ID_18, text, "id_card", valid_id_card) + _number_spans(_ID_15, text, "id_card", valid_id_card)


_BANK_CARD = re.compile(
    _B_GLUED + r"(?:[3-6]\d{15,18}|[3-6]\d{3}(?:[ -]\d{4}){3}(?:[ -]?\d{1,3})?)" + _E_GLUED, re.ASCII
)


def find_bank_card(text: str) -> list[Span]:
    """Bank card numbers: 16-19 digits starting 3-6 (UnionPay 62, Visa 4, Mastercard 5, Amex/JCB 3), optionally in
    groups of four, passing the Luhn check."""
    return _number_spans(_BANK_CARD, text, "bank_card", lambda d: 16 <= len(d) <= 19 and luhn_valid(d))


_QQ = re.compile(r"(?<![A-Za-z])(?:QQ|qq|Qq|扣扣)\s*(?:号码|号|群|账号)?\s*[:：是为]?\s*([1-9]\d{4,10})(?!\d)")


def find_qq(text: str) -> list[Span]:
    """QQ numbers (5-11 digits) only right after their keyword: `QQ：12345678`, `qq号 12345678`. Only the number
    is replaced, the keyword stays."""
    if "qq" not in text.lower() and "扣扣" not in text:
        return []
    urls = url_spans(text)
    return [Span(*m.span(1), "qq") for m in _QQ.finditer(text) if not _inside(urls, *m.span(1))]


_WECHAT = re.compile(
    r"(?<![A-Za-z])(微信|威信|薇信|V信|v信|WeChat|wechat|Wechat|weixin|VX|vx|Vx|WX|wx|Wx)(\s*(?:号|ID|id)?\s*)([:：])?\s*"
    r"([A-Za-z][-_A-Za-z0-9]{5,19})(?![-_A-Za-z0-9])"
)
_WECHAT_KEYS = ("微信", "威信", "薇信", "v信", "wechat", "weixin", "vx", "wx")
_WXID = re.compile(r"(?<![A-Za-z0-9_])wxid_[A-Za-z0-9]{6,20}(?![A-Za-z0-9_])")


def find_wechat(text: str) -> list[Span]:
    """WeChat ids (6-20 characters, starting with a letter) only right after a keyword (微信, VX, vx, wx, WeChat
    ...), and WeChat's internal `wxid_...` ids anywhere. Without a colon the id must hold a digit, `_` or `-`, so
    `wechat account` is not an id, and a Latin keyword needs a space or colon before the id (`wxWidgets3` is not
    one). A phone number given as the id (`vx 13812345678`) is found as a phone number."""
    lower = text.lower()
    if not any(k in lower for k in _WECHAT_KEYS):
        return []
    urls = url_spans(text)
    out = []
    for m in _WECHAT.finditer(text):
        keyword, gap, colon, ident = m.group(1), m.group(2), m.group(3), m.group(4)
        if colon is None and not re.search(r"[\d_-]", ident):
            continue
        if keyword.isascii() and colon is None and not gap:
            continue
        if not _inside(urls, *m.span(4)):
            out.append(Span(*m.span(4), "wechat"))
    out += [Span(*m.span(), "wechat") for m in _WXID.finditer(text) if not _inside(urls, *m.span())]
    return out


DETECTORS: dict[str, Callable[[str], list[Span]]] = {
    "email": find_email,
    "id_card": find_id_card,
    "bank_card": find_bank_card,
    "ip": find_ip,
    "cn_mobile": find_cn_mobile,
    "intl_phone": find_intl_phone,
    "cn_landline": find_cn_landline,
    "qq": find_qq,
    "wechat": find_wechat,
}


# ------------------------------------------------------------------------------------------- combine and replace


def resolve_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Non-overlapping spans in text order. Spans are taken by type priority (`TYPES` order), then longer first,
    then earlier first; a span overlapping one already taken is dropped. The result is the same whatever order the
    detectors ran in."""
    rank = {t: i for i, t in enumerate(TYPES)}
    taken: list[Span] = []
    for s in sorted(set(spans), key=lambda s: (rank.get(s.type, len(rank)), s.start - s.end, s.start)):
        if all(s.end <= t.start or t.end <= s.start for t in taken):
            taken.append(s)
    return sorted(taken)


_FULL_WIDTH = re.compile(r"[０-９Ａ-Ｚａ-ｚ＠＋]")


# Prefilters: for each type, a necessary condition of any match of its detector, far cheaper than the detector's
# own patterns (which start with look-behinds, so the regex engine tries them at every position of the text). A
# type whose prefilter fails on a text cannot have a span in it, so its detector is not run; where it passes, the
# detector runs on the whole text as before, so the spans are exactly the detectors' (tests/test_pii.py compares
# `find_pii` with `find_pii_unfiltered` on every document of the sample). Each pattern here is its detector's
# pattern with the boundary look-arounds, optional prefixes and suffixes taken away. On the sample's Chinese
# documents 11% hold three digits in a row and fewer than 1% pass the prefilter of a number type.
_THREE_DIGITS = re.compile(r"\d\d\d", re.ASCII)  # every number type but ip and intl_phone needs this
# id_card (15/18 digits), bank_card: \d{15} or four groups of four, written with the four digits both start with
# taken out of the alternation (the same matches; the engine tries one branch fewer at every digit)
_LONG_NUMBER = re.compile(r"\d{4}(?:\d{11}|[ -]\d{4}[ -]\d{4}[ -]\d{4})", re.ASCII)
_PLUS_DIGIT = re.compile(r"\+[1-9]")  # intl_phone: E.164 starts with + and a digit 1-9
_MOBILE_CORE = re.compile(r"1[3-9]\d[ -]?\d{4}[ -]?\d{4}", re.ASCII)
_LANDLINE_CORE = re.compile(r"0(?:10|2\d|[3-9]\d{2})[)）]?[ -]?[2-9]\d{2,3}[ -]?\d{4}", re.ASCII)
_IPV4_CORE = re.compile(r"\d\.\d{1,3}\.\d{1,3}\.\d", re.ASCII)
_IPV6_CORE = re.compile(r":[0-9A-Fa-f]{0,4}:")  # two colons with at most four hex digits between them


class _Prefilter:
    """The prefilters of one text, each search run at most once (id_card and bank_card share theirs)."""

    __slots__ = ("text", "three_digits", "_long_number")

    def __init__(self, text: str):
        self.text = text
        self.three_digits = _THREE_DIGITS.search(text) is not None
        self._long_number: bool | None = None

    def long_number(self) -> bool:
        if self._long_number is None:
            self._long_number = self.three_digits and _LONG_NUMBER.search(self.text) is not None
        return self._long_number

    def may_hold(self, kind: str) -> bool:
        """False only when the detector of `kind` cannot find anything in the text (see the prefilters above)."""
        text = self.text
        if kind == "email":
            return "@" in text
        if kind in ("id_card", "bank_card"):
            return self.long_number()
        if kind == "cn_mobile":
            return self.three_digits and _MOBILE_CORE.search(text) is not None
        if kind == "cn_landline":
            return self.three_digits and _LANDLINE_CORE.search(text) is not None
        if kind == "intl_phone":
            return "+" in text and _PLUS_DIGIT.search(text) is not None
        if kind == "ip":
            return ("." in text and _IPV4_CORE.search(text) is not None) or (
                ":" in text and _IPV6_CORE.search(text) is not None
            )
        if kind == "qq":  # the keyword is case-sensitive in _QQ
            return "QQ" in text or "qq" in text or "Qq" in text or "扣扣" in text
        if kind == "wechat":  # every keyword holds 信, x/X or "echat"; wxid_ holds x
            return "信" in text or "x" in text or "X" in text or "echat" in text
        return True


def _probe(text: str) -> str:
    """Full-width digits and letters (１３８…, ｑｑ) are matched through their NFKC form when it keeps every
    character's position; otherwise the text is searched as it is."""
    if _FULL_WIDTH.search(text):
        probe = unicodedata.normalize("NFKC", text)
        if len(probe) == len(text):
            return probe
    return text


def _detect(kind: str, probe: str, public_ip_only: bool) -> list[Span]:
    return find_ip(probe, public_only=public_ip_only) if kind == "ip" else DETECTORS[kind](probe)


def find_pii(text: str, types: Iterable[str] = TYPES, public_ip_only: bool = True) -> list[Span]:
    """All PII spans of the given types, overlaps resolved. Each detector runs only where its prefilter passes."""
    probe = _probe(text)
    prefilter = _Prefilter(probe)
    spans: list[Span] = []
    for t in types:
        if prefilter.may_hold(t):
            spans += _detect(t, probe, public_ip_only)
    return resolve_overlaps(spans)


def find_pii_unfiltered(text: str, types: Iterable[str] = TYPES, public_ip_only: bool = True) -> list[Span]:
    """`find_pii` without the prefilters: every detector on the whole text. The reference the prefilters are
    checked against."""
    probe = _probe(text)
    return resolve_overlaps([s for t in types for s in _detect(t, probe, public_ip_only)])


def redact(text: str, spans: list[Span], placeholders: dict[str, str] | None = None) -> str:
    """`text` with each (non-overlapping, sorted) span replaced by its type's placeholder."""
    placeholders = {**DEFAULT_PLACEHOLDERS, **(placeholders or {})}
    parts, pos = [], 0
    for s in spans:
        parts.append(text[pos : s.start])
        parts.append(placeholders[s.type])
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts)
