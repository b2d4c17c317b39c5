"""`[stages.pii]`: PII replacement (stages/pii.py, detectors in stages/pii_rules.py)."""

from __future__ import annotations

from pydantic import Field, field_validator

from stages.config.base import StageConfig

# Types in priority order: when two spans overlap, the earlier type wins (then the longer span, then the earlier).
# A validated identity card beats a Luhn-valid card number of the same digits; an email beats the phone number
# that forms its local part (13812345678@163.com). Here, not in pii_rules.py, so that a config loads without
# compiling the detectors; pii_rules imports it.
TYPES = ["email", "id_card", "bank_card", "ip", "cn_mobile", "intl_phone", "cn_landline", "qq", "wechat"]


class PiiConfig(StageConfig):
    """Replaces personal identifiers with typed placeholders (detectors: stages/pii_rules.py)."""

    types: list[str] = Field(default_factory=lambda: list(TYPES))
    """Detectors run on text documents, from: email, id_card (18 digits with the GB 11643 check digit and a valid
    birth date, or the legacy 15-digit form), bank_card (16-19 digits passing Luhn), ip, cn_mobile, intl_phone
    (E.164), cn_landline (with an area code), qq, wechat (these two only after their keywords)."""
    code_types: list[str] = Field(default_factory=lambda: ["email", "ip"])
    """Detectors run on `kind = "code"` documents (numbers in code are left alone)."""
    placeholders: dict[str, str] = Field(default_factory=dict)
    """Replacement per type, overriding the defaults (<EMAIL>, <ID_CARD>, <BANK_CARD>, <IP_ADDRESS>, <PHONE> for
    the three phone types, <QQ>, <WECHAT>)."""
    public_ip_only: bool = True
    """Replace only public IP addresses; private, loopback, link-local and documentation ranges stay."""
    max_per_doc: int | None = Field(None, ge=0)
    """Remove a document with more PII hits than this (reason too_much_pii); None keeps every document."""

    @field_validator("types", "code_types")
    @classmethod
    def _known_types(cls, v: list[str]):
        unknown = sorted(set(v) - set(TYPES))
        if unknown:
            raise ValueError(f"unknown PII type(s) {unknown}; types are: {', '.join(TYPES)}")
        return v

    @field_validator("placeholders")
    @classmethod
    def _known_placeholder_types(cls, v: dict[str, str]):
        unknown = sorted(set(v) - set(TYPES))
        if unknown:
            raise ValueError(f"placeholders for unknown type(s) {unknown}; types are: {', '.join(TYPES)}")
        return v
