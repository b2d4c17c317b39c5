"""PII detectors one by one (true hits, near misses, the distractors of issue 5), replacement and overlaps, and the
pii stage through the runner. Documents are real text from the sample corpus; every identifier is synthetic:
identity card numbers get a GB 11643 check character and a real birth date computed here, bank card numbers a Luhn
check digit computed here (independently of stages/pii_rules.py), phone numbers are from unassigned-looking
blocks, emails use example domains."""

from __future__ import annotations

import gzip
import json
import re

import polars as pl
import pyarrow.parquet as pq
import pytest
from datatrove.data import Document

from pipeline import runner
from pipeline.config import ConfigError, load_config
from pipeline.verify import verify
from stages import pii_rules as r
from stages.formats.pdf import extract_pdf
from stages.io import reported_counters
from stages.pii import PiiConfig, PiiRedactor
from tests.conftest import SAMPLE, write_config


def id_card(area: str = "110101", birth: str = "19900307", seq: str = "123") -> str:
    """An 18-digit number with the ISO 7064 MOD 11-2 check character: weights 2^(17-i) mod 11."""
    body = area + birth + seq
    s = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(body))
    check = (12 - s % 11) % 11
    return body + ("X" if check == 10 else str(check))


def luhn(prefix: str) -> str:
    """`prefix` plus the digit that makes it pass the Luhn check."""
    digits = [int(d) for d in prefix][::-1]
    total = sum((d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d for i, d in enumerate(digits))
    return prefix + str((10 - total % 10) % 10)


def wrong_last(number: str) -> str:
    return number[:-1] + ("1" if number[-1] != "1" else "2")


def found(fn, text: str, **kw) -> list[str]:
    return [text[s.start : s.end] for s in fn(text, **kw)]


@pytest.fixture(scope="module")
def host(zh_docs) -> str:
    """A real Chinese paragraph to embed identifiers in."""
    return zh_docs[3][:300]


def embed(host: str, snippet: str) -> str:
    return host[:150] + snippet + host[150:]


# ------------------------------------------------------------------------------------------- validators


def test_test_generators_agree_with_known_values():
    # 11010519491231002X is the GB 11643-1999 standard's own worked example
    assert id_card("110105", "19491231", "002") == "11010519491231002X"
    assert luhn("7992739871") == "79927398713"  # the Luhn algorithm's textbook example
    assert r.valid_id_card("11010519491231002X") and r.luhn_valid("79927398713")


# ------------------------------------------------------------------------------------------- detectors


def test_email(host):
    text = embed(host, "，联系 zhang.san+news@example.com 或 li_si@mail.example.org。")
    assert found(r.find_email, text) == ["zhang.san+news@example.com", "li_si@mail.example.org"]
    for miss in ("user@localhost", "@property", "foo@bar.c", "a..b@example.com", "邮箱：@example.com"):
        assert found(r.find_email, miss) == [], miss


def test_ip_public_only(host):
    text = embed(host, "，DNS 8.8.8.8 与 2001:4860:4860::8888，内网 192.168.1.1、127.0.0.1、10.0.0.8 与 fe80::1。")
    assert found(r.find_ip, text) == ["8.8.8.8", "2001:4860:4860::8888"]
    assert found(r.find_ip, text, public_only=False) == [
        "8.8.8.8",
        "192.168.1.1",
        "127.0.0.1",
        "10.0.0.8",
        "2001:4860:4860::8888",
    ]
    for miss in (
        "version 1.2.3.4",
        "See Section 4.2.13.1, Guided partitioning",
        "第 12.6.2.1 节",
        "4.2.13.1. Guided partitioning",
        "256.1.1.1",
        "01.02.03.04",
        "1.2.3.4.5",
        "sortlist 130.155.0.0",
        "std::vector<int>, a::b, 12:30:45, de:ad:be:ef:00:01",
    ):
        assert found(r.find_ip, miss) == [], miss


def test_cn_mobile(host):
    for number in ("13812345678", "138 1234 5678", "138-1234-5678", "+86 138 1234 5678", "+8613812345678",
                   "0086-13812345678", "86 13812345678"):  # fmt: skip
        assert found(r.find_cn_mobile, embed(host, f"手机{number}联系")) == [number], number
    for miss in (
        "12812345678",  # no mobile block starts 12
        "1381234567",  # ten digits
        "138123456789",  # twelve
        "订单号：202312011380013800",
        "运单号 13812345678",
        "售价￥13812345678",
        "时间戳 1700000000000",
        "https://item.example.com/13812345678.html",
    ):
        assert found(r.find_cn_mobile, miss) == [], miss


def test_cn_landline(host):
    for number in ("010-62345678", "(0571) 8765 4321", "（021）62345678", "0755-2345678转123", "01062345678"):
        assert found(r.find_cn_landline, embed(host, f"电话：{number}。")) == [number], number
    for miss in ("010-6234", "2023-10-01", "010-12345678", "编号 010-62345678", "000-62345678"):
        assert found(r.find_cn_landline, miss) == [], miss


def test_intl_phone(host):
    for number in ("+44 20 7946 0958", "+1-202-555-0143", "+33 1 23 45 67 89", "+819012345678"):
        assert found(r.find_intl_phone, embed(host, f" Tel {number}。")) == [number], number
    for miss in ("+12", "x+2345678901", "+1 2", "invoice +4420794609"):
        assert found(r.find_intl_phone, miss) == [], miss


def test_id_card(host):
    number = id_card()
    with_x = next(
        id_card("440304", "19851120", f"{i:03d}")
        for i in range(1000)
        if id_card("440304", "19851120", f"{i:03d}").endswith("X")
    )
    legacy = "110101" + "900307" + "123"  # 15-digit form: 19YYMMDD birth date, no check character
    for n in (number, with_x, with_x.lower(), legacy):
        assert found(r.find_id_card, embed(host, f"身份证号码{n}，")) == [n], n
    for miss in (
        wrong_last(number),  # wrong check character
        id_card("110101", "19991332", "123"),  # 32nd of the 13th month
        id_card("110101", "20990101", "123"),  # born in the future
        id_card("990101", "19900307", "123"),  # no province 99
        "1101011990030712",  # 16 digits
        "19980101",  # a date
        "110101999999123",  # 15 digits, birth 999999
    ):
        assert found(r.find_id_card, f"号码 {miss} 。") == [], miss


def test_bank_card(host):
    unionpay = luhn("622202123456789012")  # 19 digits
    visa = luhn("411111111111111")  # 16
    grouped = " ".join(re.findall(".{4}", luhn("622848001234567")))
    for n in (unionpay, visa, grouped):
        assert found(r.find_bank_card, embed(host, f"卡号：{n}，")) == [n], n
    for miss in (
        wrong_last(visa),  # fails Luhn
        luhn("123456789012345"),  # no card number starts with 1
        luhn("9787115428020001"),  # starts with 9 (ISBN-like)
        f"订单号 {luhn('622202123456789012')}",
        f"https://shop.example.com/order/{visa}",
        luhn("62220212345678901234"),  # 21 digits
    ):
        assert found(r.find_bank_card, miss) == [], miss


def test_qq_only_after_its_keyword(host):
    for text, qq in (("QQ：12345678", "12345678"), ("qq号 1234567890", "1234567890"), ("扣扣:98765", "98765"),
                     ("QQ群 123456789", "123456789")):  # fmt: skip
        assert found(r.find_qq, embed(host, text)) == [qq], text
    for miss in ("12345678", "QQ2013", "QQ 2011版", "QQ音乐", "qq 1234"):
        assert found(r.find_qq, miss) == [], miss


def test_wechat_only_after_its_keyword(host):
    for text, wx in (("微信：zhang_san88", "zhang_san88"), ("vx: abc123456", "abc123456"), ("VX abc-12345", "abc-12345"),
                     ("加微信号 wang2024", "wang2024"), ("wxid_abcdef123", "wxid_abcdef123")):  # fmt: skip
        assert found(r.find_wechat, embed(host, text)) == [wx], text
    for miss in ("wechat account", "wxWidgets3", "weixin zhangsan", "微信公众号", "WX: abc", "my_vx_abc123"):
        assert found(r.find_wechat, miss) == [], miss


def test_distractors_are_left_alone(zh_docs, en_docs):
    distractors = [
        "出生于19980101，",
        "售价 13800 元，优惠价 ¥1,299.00，",
        "订单号：202312011380013800，运单号 SF1234567890123，",
        "ISBN 978-7-115-42802-8，ISBN 9787115428028，",
        "见 https://github.com/user/repo/issues/13812345678 与 https://item.example.com/100012043978.html，",
        f"错误校验位的号码 {wrong_last(id_card())}，",
        "版本 3.11.7.1，2023-10-01 12:30:45，",
    ]
    text = zh_docs[0][:200] + "".join(distractors) + zh_docs[1][:200]
    assert r.find_pii(text) == []
    for doc in zh_docs[:40] + en_docs[:20]:  # the sample's real text has no personal identifiers of these kinds
        assert [s.type for s in r.find_pii(doc) if s.type not in ("email", "ip")] == []


def test_unit_check_stays_on_the_line_and_reads_whole_words(host):
    card = luhn("621700001234567890")  # a UnionPay card, 19 digits
    # a card number ending a line, the next line starting with 元旦 (New Year's Day): still a card
    text = host[:150] + f"卡号：{card}\n元旦的北京，" + host[150:]
    assert found(r.find_bank_card, text) == [card]
    assert found(r.find_bank_card, f"卡号：{card}\n元旦的北京") == [card]
    assert found(r.find_bank_card, f"卡号：{card}元旦前到账") == [card]  # 元旦 is not 元, on one line either
    assert found(r.find_cn_mobile, "手机13812345678\n万达广场见") == ["13812345678"]
    # a real unit right after the number, on its line, still marks a price
    for priced in (f"{card}元", f"{card} 元", f"{card}\t元", "13812345678 万"):
        assert r.find_pii(priced) == [], priced


def test_numbers_glued_to_ascii_words(host):
    card = luhn("621700001234567890")
    grouped = " ".join(re.findall("....", luhn("622848001234567")))
    # a letter after the number (text extraction joined two fields), with the type's keyword before it
    for text, number in (
        ("电话：13812345678Email：zhang@example.com", "13812345678"),
        (f"卡号：{grouped}ISBN 978-7-115-42802-8", grouped),
        (f"银行卡{card}Name", card),
        ("传真：010-62345678Fax", "010-62345678"),
    ):
        spans = r.find_pii(embed(host, text))
        assert number in [embed(host, text)[x.start : x.end] for x in spans], text
    # a letter before the number
    assert found(r.find_cn_mobile, "Tel13812345678") == ["13812345678"]
    assert found(r.find_cn_mobile, "手机号码:Mobile13812345678") == ["13812345678"]
    # an identity card number carries its own proof (check character, birth date, province)
    assert found(r.find_id_card, f"见{id_card()}Name") == [id_card()]
    # glued numbers without a keyword naming them, or with one naming another kind of number, stay
    for miss in (
        "a3f13812345678bc",  # digits inside a hex string
        "SN13812345678A",  # a part number
        f"deadbeef{card}cafe",
        "ISBN9787115428028",
        "订单号13812345678Email",
        f"订单号：{card}Name",
        "110101900307123abc",  # a valid 15-digit number has no check character: a keyword is needed
        "Tel13812345678元",  # priced
    ):
        assert r.find_pii(miss) == [], miss
    assert found(r.find_id_card, "110101900307123 号") == ["110101900307123"]  # valid when not glued
    assert found(r.find_id_card, "身份证:110101900307123abc") == ["110101900307123"]


def test_full_width_digits_are_found():
    text = "手机：１３８１２３４５６７８，ｑｑ：１２３４５６７８"
    assert [s.type for s in r.find_pii(text)] == ["cn_mobile", "qq"]
    assert r.redact(text, r.find_pii(text)) == "手机：<PHONE>，ｑｑ：<QQ>"


def sample_texts() -> list[str]:
    """Every text document of the sample corpus as ingest reads it: books, notes blocks, articles, code files."""
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        books = [json.loads(line)["content"] for line in f]
    notes = [b.strip() for b in (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n") if b.strip()]
    articles = pq.read_table(SAMPLE / "articles_en.parquet", columns=["text"]).column("text").to_pylist()
    code = [
        p.read_text(encoding="utf-8", errors="replace") for p in sorted((SAMPLE / "code").rglob("*")) if p.is_file()
    ]
    return books + notes + articles + code


@pytest.mark.slow
def test_prefilters_change_no_span_on_the_sample():
    """`find_pii` skips a detector where its prefilter says it cannot match; on every sample document, as it is and
    with one identifier of every kind (and near misses) planted in it, the spans equal those of every detector run
    on the whole text (`find_pii_unfiltered`)."""
    planted = (
        f" 手机 138-1234-5678，+44 20 7946 0958，(0571) 8765 4321，身份证 {id_card()}，{id_card()[:15]}，"
        f"卡号 {luhn('622202100112345678')}，{' '.join(re.findall('....', luhn('411111111111111')))}，ip 8.8.4.4 与 2001:4860::8888，"
        "QQ：12345678，微信：abc_12345，wxid_abcdef123，ｑｑ：１２３４５６７８，zhang@example.com，"
        f"订单号 13812345678，{wrong_last(id_card())}，版本 3.11.7.1 "
        f"电话：13812345678Email，卡号 {luhn('621700001234567890')}ISBN 978-7，a3f13812345678bc，"
        f"{luhn('621700001234567890')}\n元旦 "
    )
    texts = sample_texts()
    assert len(texts) > 2000
    hits = 0
    for i, text in enumerate(texts):
        middle = len(text) // 2
        for probe in (text, text[:middle] + planted + text[middle:]):
            expected = r.find_pii_unfiltered(probe)
            assert r.find_pii(probe) == expected, i
            assert r.find_pii(probe, ["email", "ip"], public_ip_only=False) == r.find_pii_unfiltered(
                probe, ["email", "ip"], public_ip_only=False
            ), i
            hits += len(expected)
    kinds = {s.type for s in r.find_pii_unfiltered("x" + planted)}
    assert kinds == set(r.TYPES), kinds  # every detector is exercised by the planted line
    assert hits > 12 * len(texts)


# ------------------------------------------------------------------------------------------- overlaps, replacement


def test_overlaps_resolve_by_priority_whatever_the_order():
    text = "13812345678@example.com"  # a mobile number as an email's local part
    assert [(s.type, text[s.start : s.end]) for s in r.find_pii(text)] == [("email", text)]
    number = next(
        id_card("440304", "19851120", f"{i:03d}")
        for i in range(1000)
        if r.luhn_valid(id_card("440304", "19851120", f"{i:03d}"))
    )  # an identity card number that also passes Luhn and starts with 4: a "bank card" too
    spans = r.find_bank_card(number) + r.find_id_card(number)
    assert len(spans) == 2
    assert r.resolve_overlaps(spans) == r.resolve_overlaps(spans[::-1]) == [r.Span(0, 18, "id_card")]
    text = "+86 138 1234 5678"  # both a mainland mobile and an E.164 number
    assert [s.type for s in r.find_pii(text)] == ["cn_mobile"]


def test_redaction_keeps_lines_and_uses_configured_placeholders(zh_docs):
    doc = zh_docs[5][:400]
    lines = doc.split("\n")
    lines.insert(1, f"联系人：张三 手机 138-1234-5678 邮箱 zhangsan@example.com 身份证 {id_card()}")
    text = "\n".join(lines)
    spans = r.find_pii(text)
    assert [s.type for s in spans] == ["cn_mobile", "email", "id_card"]
    out = r.redact(text, spans, {"cn_mobile": "<MOBILE>"})
    assert out.split("\n")[1] == "联系人：张三 手机 <MOBILE> 邮箱 <EMAIL> 身份证 <ID_CARD>"
    assert out.count("\n") == text.count("\n") and out.replace(out.split("\n")[1], "") == text.replace(lines[1], "")


def test_redactor_step_counts_code_and_too_much_pii(zh_docs):
    step = PiiRedactor(PiiConfig(max_per_doc=2))
    doc = Document(text=zh_docs[2][:200] + " 手机13812345678，邮箱 a@example.com。", id="a", metadata={"kind": "text"})
    assert step.filter(doc) is True and doc.metadata["pii_count"] == 2 and "<PHONE>" in doc.text
    code = 'AUTHOR = "dev@example.com"\nMAGIC = 13812345678\nSERVER = "203.0.113.9"\nDNS = "8.8.8.8"\n'
    doc = Document(text=code, id="b", metadata={"kind": "code"})
    assert step.filter(doc) is True
    assert doc.text == 'AUTHOR = "<EMAIL>"\nMAGIC = 13812345678\nSERVER = "203.0.113.9"\nDNS = "<IP_ADDRESS>"\n'
    many = Document(text="、".join(f"1381234{i:04d}" for i in range(3)), id="c", metadata={"kind": "text"})
    assert step.filter(many) == (False, "too_much_pii") and "1381234" not in many.text
    assert reported_counters(step) == {"pii_cn_mobile": 4, "pii_email": 2, "pii_ip": 1, "pii_docs_with_pii": 3}
    # each hit is counted once, in datatrove's stats, under pii_<type>; no second tally under the bare type name
    assert step.stats["pii_email"].total == 2 and not set(r.TYPES) & set(step.stats.stats)


def test_unknown_type_is_a_config_error(tmp_path):
    path = write_config(tmp_path, '[stages.pii]\ntypes = ["email", "passport"]\n')
    with pytest.raises(ConfigError, match=r"stages\.pii\.types.*passport"):
        load_config(path)


# ------------------------------------------------------------------------------------------- through the runner


def test_pii_stage_through_runner(tmp_path, zh_docs, en_docs):
    records = [
        {"text": zh_docs[0] + f"\n如有疑问请致电 010-62345678 或发邮件至 service@example.com，身份证 {id_card()}。"},
        {"text": zh_docs[1]},
        {"text": en_docs[2] + "\nContact: +44 20 7946 0958, ops@example.org."},
        {"text": "、".join(f"1381234{i:04d}" for i in range(5)) + "。" + zh_docs[2][:100]},
    ]
    with open(tmp_path / "docs.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)
    body = (
        '[[sources]]\nname = "docs"\npath = "docs.jsonl"\nformat = "jsonl"\n\n'
        "[stages.langid]\nenabled = false\n[stages.filter]\nenabled = false\n[stages.dedup]\nenabled = false\n"
        "[stages.pii]\nmax_per_doc = 4\n"
    )
    cfg = load_config(write_config(tmp_path, body, tasks=1))
    runner.run_stage(cfg, "ingest")
    stats = runner.run_stage(cfg, "pii")
    assert stats["docs_in"] == 4 and stats["kept"] == 3 and stats["removed_by_reason"] == {"too_much_pii": 1}
    assert stats["counters"] == {
        "pii_docs_with_pii": 3,
        "pii_cn_landline": 1,
        "pii_email": 2,
        "pii_id_card": 1,
        "pii_intl_phone": 1,
        "pii_cn_mobile": 5,
    }
    kept = pl.read_parquet(cfg.workdir / "pii" / "kept" / "*.parquet")
    assert kept.schema["pii_count"] == pl.Int32 and sorted(kept["pii_count"]) == [0, 2, 3]
    text = "\n".join(kept["text"])
    assert "<PHONE>" in text and "<EMAIL>" in text and "<ID_CARD>" in text and "example.com" not in text
    gone = pl.read_parquet(cfg.workdir / "pii" / "removed" / "*.parquet")
    assert gone["reason"].to_list() == ["too_much_pii"] and "1381234" not in gone["text"][0]
    assert verify(cfg, quiet=True) == []


def test_title_and_author_columns_are_redacted_too():
    # the bundled Chinese PDF's Author field is a name and an email address (real metadata, not planted)
    pdf = next((SAMPLE / "formats" / "pdf").glob("xpinyin*.pdf"))
    with open(pdf, "rb") as f:
        rec = extract_pdf(f)
    assert rec.author and "@" in rec.author
    doc = Document(text=rec.text[:500], id="p", metadata={"kind": "text", "title": rec.title, "author": rec.author})
    step = PiiRedactor(PiiConfig())
    assert step.filter(doc) is True
    assert "@" not in doc.metadata["author"] and "<EMAIL>" in doc.metadata["author"]
    assert doc.metadata["pii_count"] >= 1 and reported_counters(step).get("pii_email", 0) >= 1
