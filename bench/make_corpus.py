"""Build a large mixed corpus with ground truth for scale runs of the whole flow.

    .venv/bin/python bench/make_corpus.py --size 1GB --out /work/scale_data/corpus-1g [--cache DIR] [--seed N]
    .venv/bin/python bench/make_corpus.py --size 5MB --out /tmp/c --sample-only   # offline: bundled sample only

What it writes under --out (never into the repository; generated data is not committed):

    jsonl/part-00000.jsonl.gz ...   source `cc_jsonl`: {"doc_id", "text", "url"} per line (gzip, mtime 0)
    parquet/part-00000.parquet ...  source `news_parquet`: columns doc_id, text, url (zstd)
    warc/part-00000.warc.gz ...     source `web_warc`: WARC/1.0 HTML responses (per-record gzip)
    ground_truth.parquet            one row per document: id as ingest assigns it, category, and what was planted
    sources.toml                    the [[sources]] tables for pipeline.toml (paths relative to --out)
    manifest.json                   size, seed, counts per category and format, the text pools used

`--size` is the UTF-8 size of the documents' text (the HTML around WARC pages not counted). Documents are made from
real text only: paragraphs of the bundled sample (data/sample: books_zh, notes_zh, articles_en) and, unless
--sample-only, the classical poems of the npm package chinese-poetry 2.0.1 (MIT compilation of public-domain texts:
全唐诗/全宋诗 in dist/quantangshi, 宋词 in dist/songci), downloaded once with `npm pack` into --cache. An original
document is a random selection of paragraphs of one pool (so that originals do not overlap by more than a shared
paragraph); the other categories are made from originals or real fragments:

    original    a document as above (kept by every stage, barring the quality filters' own judgement)
    exact_dup   a copy of an original, byte-identical or with whitespace/case changes only
    near_dup    a Chinese original with characters replaced until its character-13-gram Jaccard (dedup's shingles)
                reaches the target (0.95, 0.9, 0.85 or 0.7); `jaccard` holds the value reached
    junk        a page the quality rules exist for, built from real fragments: a line repeated, a bare fragment,
                a digit table, a checksum list, a "read more" link list, an English navigation menu
    pii         an original with identifiers planted (email, mainland mobile, ID card with a valid check digit,
                UnionPay card passing Luhn, public IPv4); `pii_values` holds them
    bench       an original with one benchmark item pasted in (data/sample/benchmarks: MMLU into English,
                CHARM into Chinese), the item the decontam stage is configured with

Everything is deterministic: fixed seed, sorted inputs, one random stream per document, fixed gzip/WARC headers.
"""

from __future__ import annotations

import argparse
import csv
import glob
import gzip
import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stages.dedup_rules import char_shingles  # noqa: E402  (after the repo root is on sys.path)

SAMPLE = REPO / "data" / "sample"
POETRY_SPEC = "chinese-poetry@2.0.1"
POETRY_TGZ = "chinese-poetry-2.0.1.tgz"
DEFAULT_CACHE = Path(os.environ.get("MAPCC_CORPUS_CACHE", Path.home() / ".cache" / "mapcc-corpus"))

# Share of documents per category; near duplicates and PII as seen in crawls, a small benchmark leak.
CATEGORY_SHARES = {"original": 0.72, "exact_dup": 0.08, "near_dup": 0.08, "junk": 0.07, "pii": 0.03, "bench": 0.02}
NEAR_DUP_TARGETS = (0.95, 0.9, 0.85, 0.7)
JACCARD_TOLERANCE = 0.01  # the edit search stops within this distance of the target
# Share of original documents per text pool (with --sample-only the classical pool is the sample's own).
POOL_SHARES = {"zh_modern": 0.4, "zh_classical": 0.4, "en": 0.2}
# Share of documents per format; WARC is small because HTML extraction is ~50x slower per MB than JSONL.
FORMAT_SHARES = {"jsonl": 0.57, "parquet": 0.40, "warc": 0.03}
SOURCE_NAMES = {"jsonl": "cc_jsonl", "parquet": "news_parquet", "warc": "web_warc"}
JUNK_KINDS = ("repeated_line", "short", "digits", "hashes", "readmore", "en_menu")
WARC_DATE = datetime(2024, 3, 1, 8, 0, 0, tzinfo=UTC)
UUID_NS = uuid.UUID("0d6b8f7e-6a2c-4c1e-9a55-3f1e2d4c5b6a")
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(B|KB|MB|GB|TB)?\s*$", re.IGNORECASE)
_HAN = re.compile(r"[\u3400-\u9fff]")


def parse_size(text: str) -> int:
    m = _SIZE_RE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"--size {text!r}: expected a number with B, KB, MB, GB or TB (e.g. 1GB)")
    unit = (m.group(2) or "B").upper()
    return int(float(m.group(1)) * {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}[unit])


# ----------------------------------------------------------------------------------------------- text pools


def _chunks(text: str, min_chars: int = 200, max_chars: int = 1200) -> list[str]:
    """Consecutive lines merged into paragraphs of at least min_chars (a long line stays whole up to max_chars)."""
    out, cur, n = [], [], 0
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        cur.append(line[:max_chars])
        n += len(cur[-1])
        if n >= min_chars:
            out.append("\n".join(cur))
            cur, n = [], 0
    if cur and n >= min_chars // 2:
        out.append("\n".join(cur))
    return out


def sample_pools() -> dict[str, list[str]]:
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        books = [json.loads(line) for line in f]
    modern, classical = [], []
    for b in books:  # the classical texts have no URL (see SOURCES.md); the technical docs and man pages have one
        (classical if b.get("url") is None else modern).extend(_chunks(b["content"]))
    notes = [b.strip() for b in (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n") if b.strip()]
    classical.extend(n for n in notes if len(n) >= 40)
    en = []
    for text in pq.read_table(SAMPLE / "articles_en.parquet", columns=["text"]).column("text").to_pylist():
        en.extend(_chunks(text, 300, 2000))
    return {"zh_modern": modern, "zh_classical": classical, "en": en}


def fetch_poetry(cache: Path, download: bool) -> Path:
    """The extracted chinese-poetry package under cache/npm, downloaded with `npm pack` if missing."""
    tgz = cache / "npm" / POETRY_TGZ
    dest = cache / "npm" / "chinese-poetry-2.0.1"
    if dest.is_dir() and (dest / "package" / "dist").is_dir():
        return dest / "package" / "dist"
    if not tgz.exists():
        if not download:
            raise SystemExit(
                f"make_corpus: the extra Chinese text is not in the cache ({tgz} is missing) and --no-download was "
                f"given. Run once with network access (it runs `npm pack {POETRY_SPEC}` into {tgz.parent}), point "
                f"--cache at a folder holding {POETRY_TGZ}, or pass --sample-only to use only data/sample."
            )
        tgz.parent.mkdir(parents=True, exist_ok=True)
        print(f"make_corpus: downloading {POETRY_SPEC} into {tgz.parent} (npm pack, ~85 MB)", file=sys.stderr)
        try:
            subprocess.run(["npm", "pack", "--silent", POETRY_SPEC], cwd=tgz.parent, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            raise SystemExit(
                f"make_corpus: cannot download {POETRY_SPEC} into {tgz.parent} ({e}); the extra Chinese text needs "
                f"npm and network access once, or pass --sample-only to use only data/sample"
            ) from None
    tmp = dest.with_name(dest.name + ".tmp")
    with tarfile.open(tgz) as tf:
        tf.extractall(tmp, filter="data")
    tmp.rename(dest)
    return dest / "package" / "dist"


def poetry_units(dist: Path) -> list[str]:
    """One unit per poem or ci: title, author, lines (全唐诗/全宋诗 and 宋词), in sorted file order."""
    units = []
    files = sorted(glob.glob(str(dist / "quantangshi" / "poet.*.json"))) + sorted(
        glob.glob(str(dist / "songci" / "ci.song.*.json"))
    )
    for path in files:
        with open(path, encoding="utf-8") as f:
            for p in json.load(f):
                lines = [s.strip() for s in p.get("paragraphs") or [] if s and s.strip()]
                title = (p.get("title") or p.get("rhythmic") or "").strip()
                text = "\n".join([f"《{title}》", f"作者：{p.get('author', '').strip()}", *lines])
                if len(lines) >= 2 and 40 <= len(text) <= 2000 and "□" not in text:
                    units.append(text)
    return units


# ----------------------------------------------------------------------------------------------- documents


@dataclass
class Doc:
    id_value: str  # doc_id in JSONL/Parquet; the WARC id is assigned when the record is written
    fmt: str
    text: str
    url: str
    title: str
    truth: dict = field(default_factory=dict)


def build_original(rng: random.Random, pool: list[str], sep: str) -> tuple[list[int], str]:
    target = rng.randint(800, 5000)
    picks: list[int] = []
    n = 0
    while n < target and len(picks) < 40:
        i = rng.randrange(len(pool))
        if i not in picks:
            picks.append(i)
            n += len(pool[i])
    return picks, sep.join(pool[i] for i in picks)


def jaccard(a: str, b: str) -> float:
    sa, sb = char_shingles(a, 13), char_shingles(b, 13)
    inter = len(np.intersect1d(sa, sb, assume_unique=True))
    return inter / (len(sa) + len(sb) - inter) if len(sa) + len(sb) else 1.0


def near_duplicate(rng: random.Random, text: str, target: float) -> tuple[str, float]:
    """Replace characters at random Han positions (with other characters of the text) until the character-13-gram
    Jaccard with the original is within JACCARD_TOLERANCE of target: binary search on the number replaced."""
    positions = [i for i, c in enumerate(text) if _HAN.match(c)]
    rng.shuffle(positions)
    han = [text[i] for i in positions]
    replacement = [han[rng.randrange(len(han))] for _ in positions]

    def edit(m: int) -> str:
        chars = list(text)
        for k in range(m):
            i = positions[k]
            chars[i] = replacement[k] if replacement[k] != chars[i] else ("某" if chars[i] != "某" else "甲")
        return "".join(chars)

    lo, hi = 1, len(positions)
    best = (text, 1.0)
    while lo <= hi:
        mid = (lo + hi) // 2
        cand = edit(mid)
        j = jaccard(text, cand)
        if abs(j - target) < abs(best[1] - target):
            best = (cand, j)
        if abs(j - target) <= JACCARD_TOLERANCE:
            break
        if j > target:
            lo = mid + 1
        else:
            hi = mid - 1
    return best


def whitespace_case_variant(rng: random.Random, text: str) -> str:
    """The same text as far as exact dedup's whitespace_case folding goes: spaces, blank lines, letter case."""
    lines = text.split("\n")
    out = []
    for line in lines:
        if rng.random() < 0.3:
            line = line + "  "
        if rng.random() < 0.2:
            out.append("")
        out.append(line.upper() if rng.random() < 0.1 else line)
    return "\n".join(out)


# PII values: formats as issued, values random (no real person's data).
_SURNAMES = ["wang", "li", "zhang", "liu", "chen", "yang", "zhao", "huang", "zhou", "wu", "xu", "sun", "ma", "zhu"]
_GIVEN = ["wei", "fang", "na", "min", "jing", "lei", "qiang", "jun", "yang", "yan", "jie", "tao", "ming", "chao"]
_MAIL_DOMAINS = ["163.com", "126.com", "qq.com", "sina.com", "gmail.com", "outlook.com", "foxmail.com"]
_AREA_CODES = ["110101", "310104", "440305", "510107", "330106", "420102", "320102", "610113", "370202", "210102"]
_IP_FIRST = [36, 39, 42, 58, 59, 60, 61, 101, 106, 111, 112, 114, 116, 119, 120, 121, 123, 180, 183, 202, 218, 221]
_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def pii_value(rng: random.Random, kind: str) -> str:
    if kind == "email":
        sep = rng.choice([".", "_", ""])
        return f"{rng.choice(_SURNAMES)}{sep}{rng.choice(_GIVEN)}{rng.randint(1, 9999)}@{rng.choice(_MAIL_DOMAINS)}"
    if kind == "cn_mobile":
        return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))
    if kind == "id_card":
        birth = datetime(1950, 1, 1) + timedelta(days=rng.randrange(20000))
        body = rng.choice(_AREA_CODES) + birth.strftime("%Y%m%d") + f"{rng.randrange(1000):03d}"
        check = "10X98765432"[sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]
        return body + check
    if kind == "bank_card":
        length = rng.choice([16, 19])
        body = "62" + "".join(rng.choice("0123456789") for _ in range(length - 3))
        total = 0
        for k, c in enumerate(reversed(body)):  # Luhn: double every second digit from the right of the full number
            d = int(c) * (2 if k % 2 == 0 else 1)
            total += d - 9 if d > 9 else d
        return body + str((10 - total % 10) % 10)
    if kind == "ip":
        return f"{rng.choice(_IP_FIRST)}.{rng.randint(1, 254)}.{rng.randint(1, 254)}.{rng.randint(1, 254)}"
    raise ValueError(kind)


_PII_ZH = {
    "email": ["如有疑问，请发邮件至 {v} 联系我们。", "作者邮箱：{v}。", "投稿请寄 {v}，我们会尽快回复。"],
    "cn_mobile": ["联系电话：{v}。", "有意者请致电 {v} 咨询。", "报名请拨打手机 {v}。"],
    "id_card": ["申请人身份证号码：{v}。", "身份证号 {v}，请核对。"],
    "bank_card": ["汇款账号（银行卡号）：{v}。", "请转账至银行卡 {v}。"],
    "ip": ["镜像服务器地址为 {v}。", "登录来源 IP：{v}。"],
}
_PII_EN = {
    "email": ["For questions, write to {v}.", "Contact the maintainer at {v}."],
    "ip": ["The mirror is reachable at {v}.", "Requests came from {v} during the test."],
}


def plant(rng: random.Random, text: str, sentences: list[str], sep: str) -> str:
    parts = text.split(sep)
    for s in sentences:
        parts.insert(rng.randint(1, len(parts)), s)
    return sep.join(parts)


def junk_doc(rng: random.Random, kind: str, pools: dict[str, list[str]]) -> str:
    zh = pools["zh_modern"] + pools["zh_classical"]

    def zh_line(min_len: int = 8) -> str:
        for _ in range(100):
            lines = [ln for ln in rng.choice(zh).split("\n") if len(ln) >= min_len]
            if lines:
                return rng.choice(lines)
        return rng.choice(zh)

    if kind == "repeated_line":
        return "\n".join([zh_line(10)] * rng.randint(15, 40))
    if kind == "short":
        line = zh_line(12)
        return line[: rng.randint(10, min(40, len(line)))]
    if kind == "digits":
        rows = []
        for _ in range(rng.randint(20, 60)):
            w = zh_line(4)
            start = rng.randrange(max(1, len(w) - 4))
            nums = " ".join(f"{rng.uniform(0, 10000):.2f}" for _ in range(rng.randint(3, 6)))
            rows.append(f"{w[start : start + rng.randint(2, 4)]} {nums}")
        return "\n".join(rows)
    if kind == "hashes":
        words = re.findall(r"[a-z]{4,12}", rng.choice(pools["en"]).lower()) or ["file"]
        rows = []
        for _ in range(rng.randint(20, 50)):
            digest = "".join(rng.choice("0123456789abcdef") for _ in range(64))
            rows.append(f"{digest}  {rng.choice(words)}-{rng.randint(1, 99)}.{rng.randint(0, 20)}.tar.gz")
        return "\n".join(rows)
    if kind == "readmore":
        return "\n".join(
            f"{zh_line(12)[: rng.randint(8, 20)]}…{rng.choice(['展开', '更多'])}" for _ in range(rng.randint(10, 30))
        )
    if kind == "en_menu":
        words = re.findall(r"[A-Za-z]{3,12}", rng.choice(pools["en"])) or ["Home"]
        return "\n".join(
            " ".join(rng.choice(words).capitalize() for _ in range(rng.randint(1, 3)))
            for _ in range(rng.randint(30, 80))
        )
    raise ValueError(kind)


def load_bench_items() -> dict[str, list[dict]]:
    """The decontam stage's benchmark items, rendered as they would be pasted (question, then lettered options)."""
    mmlu = []
    with open(SAMPLE / "benchmarks" / "mmlu.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            mmlu.append({"name": "mmlu", "id": r["id"], "text": _render_item(r)})
    charm = []
    with open(SAMPLE / "benchmarks" / "charm_zh.csv", encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            charm.append({"name": "charm_zh", "id": r["id"], "text": _render_item(r)})
    return {"en": mmlu, "zh": charm}


def _render_item(r: dict) -> str:
    opts = [f"{k}. {r[k]}" for k in "ABCDEF" if r.get(k)]
    return "\n".join([r["question"].strip(), *opts])


# ----------------------------------------------------------------------------------------------- writers


class ShardWriters:
    """Round-robin shards per format, all open at once; a document goes to the next shard of its format."""

    def __init__(self, out: Path, shards: dict[str, int], row_group: int = 2000):
        self.out = out
        self.shards = shards
        self.row_group = row_group
        self.next = dict.fromkeys(shards, 0)
        self.jsonl = []
        for i in range(shards["jsonl"]):
            path = out / "jsonl" / f"part-{i:05d}.jsonl.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            raw = open(path, "wb")  # noqa: SIM115  (closed in close())
            self.jsonl.append((raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)))
        self.schema = pa.schema([("doc_id", pa.string()), ("text", pa.string()), ("url", pa.string())])
        self.parquet = []
        for i in range(shards["parquet"]):
            path = out / "parquet" / f"part-{i:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.parquet.append([pq.ParquetWriter(path, self.schema, compression="zstd"), []])
        self.warc = []
        for i in range(shards["warc"]):
            path = out / "warc" / f"part-{i:05d}.warc.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            raw = open(path, "wb")  # noqa: SIM115  (closed in close())
            self.warc.append([raw, WARCWriter(raw, gzip=True), 0])
        self.records = 0

    def write(self, doc: Doc) -> tuple[str, str]:
        """Write one document; returns (pipeline id, shard path relative to out)."""
        shard = self.next[doc.fmt]
        self.next[doc.fmt] = (shard + 1) % self.shards[doc.fmt]
        source = SOURCE_NAMES[doc.fmt]
        if doc.fmt == "jsonl":
            line = json.dumps({"doc_id": doc.id_value, "text": doc.text, "url": doc.url}, ensure_ascii=False)
            self.jsonl[shard][1].write((line + "\n").encode("utf-8"))
            return f"{source}:{doc.id_value}", f"jsonl/part-{shard:05d}.jsonl.gz"
        if doc.fmt == "parquet":
            w = self.parquet[shard]
            w[1].append((doc.id_value, doc.text, doc.url))
            if len(w[1]) >= self.row_group:
                self._flush_parquet(w)
            return f"{source}:{doc.id_value}", f"parquet/part-{shard:05d}.parquet"
        w = self.warc[shard]
        body = _html(doc.title, doc.text).encode("utf-8")
        headers = StatusAndHeaders(
            "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
            protocol="HTTP/1.1",
        )  # fmt: skip
        self.records += 1
        date = (WARC_DATE + timedelta(seconds=self.records)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rec = w[1].create_warc_record(
            doc.url,
            "response",
            payload=io.BytesIO(body),
            http_headers=headers,
            warc_headers_dict={
                "WARC-Date": date,
                "WARC-Record-ID": f"<urn:uuid:{uuid.uuid5(UUID_NS, doc.id_value)}>",
            },
        )
        w[1].write_record(rec)
        w[2] += 1
        rel = f"part-{shard:05d}.warc.gz"
        return f"{source}:{rel}:{w[2]}", f"warc/{rel}"

    def _flush_parquet(self, w: list) -> None:
        ids, texts, urls = zip(*w[1], strict=True)
        w[0].write_table(pa.table([list(ids), list(texts), list(urls)], schema=self.schema))
        w[1] = []

    def close(self) -> None:
        for raw, gz in self.jsonl:
            gz.close()
            raw.close()
        for w in self.parquet:
            if w[1]:
                self._flush_parquet(w)
            w[0].close()
        for raw, _, _ in self.warc:
            raw.close()


def _html(title: str, text: str) -> str:
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # noqa: E731
    paras = "\n".join(f"<p>{esc(p)}</p>" for p in text.split("\n") if p.strip())
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        + esc(title)
        + '</title></head>\n<body><nav><a href="/">首页</a> <a href="/archive">归档</a></nav>\n<article><h1>'
        + esc(title)
        + "</h1>\n"
        + paras
        + "\n</article><footer>© 2024</footer></body></html>\n"
    )


# ----------------------------------------------------------------------------------------------- main


def generate(size: int, out: Path, seed: int, cache: Path | None, sample_only: bool, download: bool) -> dict:
    t0 = time.time()
    pools = sample_pools()
    pool_note = {k: len(v) for k, v in pools.items()}
    if not sample_only:
        assert cache is not None
        poems = poetry_units(fetch_poetry(cache, download))
        pools["zh_classical"] = pools["zh_classical"] + poems
        pool_note["zh_classical (+chinese-poetry)"] = len(poems)
    seps = {"zh_modern": "\n", "zh_classical": "\n\n", "en": "\n\n"}
    bench_items = load_bench_items()
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"make_corpus: {out} exists and is not empty; give a new --out folder")
    out.mkdir(parents=True, exist_ok=True)

    # Enough shards that 16 tasks each get whole files of every format, more as the corpus grows (~64 MB each).
    n_jsonl = max(16, round(size * FORMAT_SHARES["jsonl"] / 64e6))
    n_parquet = max(16, round(size * FORMAT_SHARES["parquet"] / 64e6))
    n_warc = max(4, round(size * FORMAT_SHARES["warc"] / 64e6))
    writers = ShardWriters(out, {"jsonl": n_jsonl, "parquet": n_parquet, "warc": n_warc})
    master = random.Random(seed)
    categories, cat_weights = zip(*CATEGORY_SHARES.items(), strict=True)
    pool_names, pool_weights = zip(*POOL_SHARES.items(), strict=True)
    originals: list[tuple[str, str, list[int], str, str]] = []  # (id, pool, picks, fmt, pipeline id)
    rows: list[dict] = []
    written = 0
    index = 0
    while written < size:
        rng = random.Random(master.getrandbits(64))
        category = rng.choices(categories, cat_weights)[0]
        if category in ("exact_dup", "near_dup"):
            # near copies of Chinese JSONL/Parquet originals only: a WARC original's text is what HTML extraction
            # makes of its page, so the planted Jaccard would not be the Jaccard dedup sees
            candidates = (
                originals if category == "exact_dup" else [o for o in originals if o[1] != "en" and o[3] != "warc"]
            )
            if not candidates:
                category = "original"
        doc_id = f"d{index:09d}"
        index += 1
        truth: dict = {"category": category}
        if category in ("original", "pii", "bench"):
            pool = rng.choices(pool_names, pool_weights)[0]
            picks, text = build_original(rng, pools[pool], seps[pool])
            lang = "en" if pool == "en" else "zh"
            fmt = rng.choices(list(FORMAT_SHARES), list(FORMAT_SHARES.values()))[0]
            if category == "pii":
                fmt = "parquet" if fmt == "warc" else fmt
                table = _PII_EN if lang == "en" else _PII_ZH
                kinds = rng.sample(sorted(table), k=min(len(table), rng.randint(2, 4)))
                values = [pii_value(rng, k) for k in kinds]
                sentences = [rng.choice(table[k]).format(v=v) for k, v in zip(kinds, values, strict=True)]
                text = plant(rng, text, sentences, seps[pool])
                truth.update(pii_types=kinds, pii_values=values)
            elif category == "bench":
                fmt = "parquet" if fmt == "warc" else fmt
                item = rng.choice(bench_items[lang])
                text = plant(rng, text, [item["text"]], seps[pool])
                truth.update(bench_name=item["name"], bench_item_id=item["id"], bench_text=item["text"])
            truth.update(pool=pool)
        elif category == "exact_dup":
            oid, pool, picks, ofmt, opid = candidates[rng.randrange(len(candidates))]
            text = seps[pool].join(pools[pool][i] for i in picks)
            if rng.random() < 0.5:
                text = whitespace_case_variant(rng, text)
                truth["variant"] = "whitespace_case"
            else:
                truth["variant"] = "identical"
            lang = "en" if pool == "en" else "zh"
            fmt = "warc" if ofmt == "warc" else rng.choice(["jsonl", "parquet"])
            if fmt == "warc":
                truth["variant"] = "identical"  # the page body is copied as it is: only the URL differs
                text = seps[pool].join(pools[pool][i] for i in picks)
            truth.update(pool=pool, original_id=opid)
        elif category == "near_dup":
            oid, pool, picks, ofmt, opid = candidates[rng.randrange(len(candidates))]
            base = seps[pool].join(pools[pool][i] for i in picks)
            target = rng.choice(NEAR_DUP_TARGETS)
            text, jac = near_duplicate(rng, base, target)
            lang, fmt = "zh", rng.choice(["jsonl", "parquet"])
            truth.update(pool=pool, original_id=opid, target_jaccard=target, jaccard=round(jac, 4))
        else:
            kind = rng.choice(JUNK_KINDS)
            text = junk_doc(rng, kind, pools)
            lang = "en" if kind in ("en_menu", "hashes") else "zh"
            fmt = rng.choice(["jsonl", "parquet"])
            truth.update(junk_kind=kind, pool=None)
            picks = []
        title = text.split("\n", 1)[0][:60]
        url = f"https://{'www' if fmt != 'warc' else 'web'}.example-{rng.randrange(500):03d}.cn/{doc_id}.html"
        pid, shard = writers.write(Doc(doc_id, fmt, text, url, title))
        if category == "original":
            originals.append((doc_id, truth["pool"], picks, fmt, pid))
        nbytes = len(text.encode("utf-8"))
        written += nbytes
        rows.append({"id": pid, "doc_id": doc_id, "format": fmt, "shard": shard, "lang": lang, "text_bytes": nbytes,
                     **truth})  # fmt: skip
    writers.close()

    columns = {
        "id": pa.string(), "doc_id": pa.string(), "category": pa.string(), "format": pa.string(),
        "shard": pa.string(), "lang": pa.string(), "pool": pa.string(), "text_bytes": pa.int64(),
        "variant": pa.string(), "original_id": pa.string(), "target_jaccard": pa.float64(), "jaccard": pa.float64(),
        "junk_kind": pa.string(), "pii_types": pa.list_(pa.string()), "pii_values": pa.list_(pa.string()),
        "bench_name": pa.string(), "bench_item_id": pa.string(), "bench_text": pa.string(),
    }  # fmt: skip
    table = pa.table({k: [r.get(k) for r in rows] for k in columns}, schema=pa.schema(list(columns.items())))
    tmp = out / "ground_truth.parquet.tmp"
    pq.write_table(table, tmp, compression="zstd")
    tmp.rename(out / "ground_truth.parquet")

    sources = "".join(
        f'[[sources]]\nname = "{SOURCE_NAMES[f]}"\npath = "{f}"\nformat = "{f}"\n'
        + ('text_field = "text"\nid_field = "doc_id"\nurl_field = "url"\n' if f != "warc" else 'glob = "*.warc.gz"\n')
        + 'kind = "text"\n\n'
        for f in ("jsonl", "parquet", "warc")
    )
    (out / "sources.toml").write_text(sources, encoding="utf-8")
    counts: dict = {}
    for r in rows:
        counts.setdefault(r["category"], 0)
        counts[r["category"]] += 1
    manifest = {
        "size_requested": size,
        "text_bytes": written,
        "documents": len(rows),
        "seed": seed,
        "sample_only": sample_only,
        "categories": dict(sorted(counts.items())),
        "formats": {f: sum(r["format"] == f for r in rows) for f in FORMAT_SHARES},
        "shards": writers.shards,
        "pools": pool_note,
        "seconds": round(time.time() - t0, 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, required=True, help="text size, e.g. 10MB, 0.3GB, 1GB")
    ap.add_argument("--out", type=Path, required=True, help="new folder for the corpus (not inside the repository)")
    ap.add_argument("--seed", type=int, default=20240301)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"download cache (default {DEFAULT_CACHE})")
    ap.add_argument("--sample-only", action="store_true", help="use only data/sample (offline, no download)")
    ap.add_argument("--no-download", action="store_true", help="fail instead of downloading a missing package")
    args = ap.parse_args(argv)
    manifest = generate(args.size, args.out, args.seed, args.cache, args.sample_only, not args.no_download)
    print(json.dumps(manifest, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
