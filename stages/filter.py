"""Quality filters, one rule set per language, chosen by the `lang` column that langid set.

- `zh`: MAP-CC's rules (`stages/zh_rules.py`), measured on the NFKC form of the text, cheapest first; the reason
  is `zh_<rule>` for the first rule that fails (`zh_top_2gram`, `zh_dup_5gram` for the n-gram rules).
- `en`: datatrove's GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter and FineWebQualityFilter in
  FineWeb's order and with FineWeb's settings; reasons are datatrove's, prefixed (`en_gopher_rep_top_2_gram`,
  `en_gopher_short_doc`, `en_c4_too_few_sentences`, `en_fineweb_line_punct_ratio`). C4's filter also rewrites the
  text (it drops lines); here it only decides, as docs/architecture.md leaves text changes to the pii and dedup stages.
- `kind = "code"`: the line-length and alphanumeric-share checks of Codex / The Stack (`code_<rule>`).
- other kept languages pass unfiltered (counted as `filter_rules_none`).

Optional for every document: a URL blocklist file (`url_blocklist`; a document without a URL is never removed by
it) and a bad-word list file (`bad_words`). MAP-CC's full-width to ASCII punctuation rewrite is an opt-in step.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from pydantic import BaseModel, ConfigDict, Field, field_validator

from stages import zh_rules
from stages.base import Phase, StageConfig, StageContext


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)


# ---------------------------------------------------------------------------------------------------------------
# Config


class ZhRulesConfig(_Strict):
    """MAP-CC's thresholds (CT-LLM `filter/filter.py`), plus FineWeb-2's duplicated-line share for cmn_Hani."""

    enabled: bool = True
    """false: zh documents pass unfiltered."""
    min_sentences: int = Field(2, ge=0)
    """Sentences a document needs (split at . ! ? ; 。 ！ ？ ； …): MAP-CC's "more than one sentence"."""
    min_length: int = Field(50, ge=0)
    """Characters after NFKC, at least."""
    max_length: int = Field(10_000, ge=1)
    """Characters after NFKC, at most."""
    min_mean_word_length: float = Field(1.3, ge=0)
    """Mean word length (segmenter below, punctuation removed), at least."""
    max_mean_word_length: float = Field(10.0, ge=0)
    """Mean word length, at most: above it are long unbroken strings (hashes, base64, URLs)."""
    segmenter: Literal["jieba-rs", "jieba"] = "jieba-rs"
    """"jieba-rs" (rjieba, about 25x faster) or "jieba" (the Python original MAP-CC used)."""
    max_hash_ratio: float = Field(0.1, ge=0)
    """Runs of # per character, at most."""
    max_ellipsis_ratio: float = Field(0.1, ge=0)
    """Ellipses (…, .., 。。) per character, at most."""
    max_digit_ratio: float = Field(0.3, ge=0)
    """Digits over non-punctuation, non-space characters, at most."""
    max_readmore_lines: float = Field(0.3, ge=0)
    """Share of non-empty lines ending with one of readmore_suffixes, at most."""
    readmore_suffixes: list[str] = Field(default_factory=lambda: list(zh_rules.READMORE_SUFFIXES))
    """Line endings that mark a "read more" link; compared case-insensitively."""
    max_bullet_lines: float = Field(0.9, ge=0)
    """Share of non-empty lines starting with a bullet (• ● ○ ■ □ ▪ ▫ ※ · ➢ ‣ ▶ ◀ ◦ – -), at most."""
    min_punctuation: float = Field(0.0, ge=0)
    """Punctuation per character must be above this (i.e. some punctuation)."""
    min_unique_chars: float = Field(0.1, ge=0)
    """Distinct characters / characters must be above this (penalises long, plain texts)."""
    min_entropy: float = Field(3.0, ge=0)
    """Character unigram entropy (natural log), at least."""
    max_bracket_ratio: float = Field(0.1, ge=0)
    """Characters inside 【】 per character, at most."""
    max_top_ngram: dict[int, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    """n -> the share of word characters the most frequent character n-gram may cover."""
    max_dup_ngram: dict[int, float] = Field(default_factory=lambda: {n: 0.60 for n in range(5, 11)})
    """n -> the share of characters that may lie in character n-grams repeating an earlier one."""
    max_dup_lines: float = Field(0.287, ge=0)
    """Share of non-empty lines repeating an earlier line, at most (FineWeb-2's value for cmn_Hani)."""
    skip: list[str] = Field(default_factory=list)
    """Rule names not applied, e.g. ["unique_chars"]."""

    @field_validator("skip")
    @classmethod
    def _known_rules(cls, v: list[str]):
        unknown = sorted(set(v) - set(zh_rules.RULES))
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; rules are: {', '.join(zh_rules.RULES)}")
        return v

    @field_validator("max_top_ngram", "max_dup_ngram")
    @classmethod
    def _positive_n(cls, v: dict[int, float]):
        if any(n < 1 for n in v):
            raise ValueError("n-gram sizes must be >= 1")
        return v


class GopherRepetitionConfig(_Strict):
    """datatrove's GopherRepetitionFilter; defaults are Gopher's (Rae et al. 2021, table A1), as FineWeb used."""

    enabled: bool = True
    """false switches this filter off."""
    dup_line_frac: float = 0.3
    """Share of lines that repeat an earlier line, at most."""
    dup_para_frac: float = 0.3
    """Share of paragraphs that repeat an earlier one, at most."""
    dup_line_char_frac: float = 0.2
    """Share of characters in repeated lines, at most."""
    dup_para_char_frac: float = 0.2
    """Share of characters in repeated paragraphs, at most."""
    top_n_grams: dict[int, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    """n -> the share of characters the most frequent word n-gram may cover."""
    dup_n_grams: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    """n -> the share of characters that may lie in repeated word n-grams."""


class GopherQualityConfig(_Strict):
    """datatrove's GopherQualityFilter with Gopher's thresholds."""

    enabled: bool = True
    """false switches this filter off."""
    min_doc_words: int = 50
    """Words (not pure punctuation), at least."""
    max_doc_words: int = 100_000
    """Words, at most."""
    min_avg_word_length: float = 3
    """Mean word length in characters, at least."""
    max_avg_word_length: float = 10
    """Mean word length in characters, at most."""
    max_symbol_word_ratio: float = 0.1
    """# and ellipses per word, at most."""
    max_bullet_lines_ratio: float = 0.9
    """Share of lines starting with • or -, at most."""
    max_ellipsis_lines_ratio: float = 0.3
    """Share of lines ending with an ellipsis, at most."""
    max_non_alpha_words_ratio: float = 0.8
    """At least this share of words must contain a letter."""
    min_stop_words: int = 2
    """Distinct stop words a document must contain."""
    stop_words: list[str] = Field(default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have", "with"])
    """Gopher's stop words."""


class C4QualityConfig(_Strict):
    """datatrove's C4QualityFilter as FineWeb ran it (terminal-punctuation line rule off)."""

    enabled: bool = True
    """false switches this filter off."""
    split_paragraph: bool = True
    """Lines are split at newlines (false: at sentences)."""
    remove_citations: bool = True
    """Strip [1], [edit] before checking lines."""
    filter_no_terminal_punct: bool = False
    """Drop lines without terminal punctuation (C4 does; FineWeb: off)."""
    min_num_sentences: int = 5
    """Sentences left after dropping lines, at least."""
    min_words_per_line: int = 3
    """Shorter lines are dropped before counting."""
    max_word_length: int = 1000
    """Lines with a longer word are dropped."""
    filter_lorem_ipsum: bool = True
    """Remove documents containing "lorem ipsum"."""
    filter_javascript: bool = True
    """Drop lines mentioning javascript."""
    filter_curly_bracket: bool = True
    """Remove documents containing {."""
    filter_policy: bool = True
    """Drop cookie and terms-of-use lines."""


class FineWebQualityConfig(_Strict):
    """datatrove's FineWebQualityFilter with FineWeb's thresholds."""

    enabled: bool = True
    """false switches this filter off."""
    line_punct_thr: float = 0.12
    """Share of lines ending with terminal punctuation, at least."""
    line_punct_exclude_zero: bool = False
    """true: a document with no such line at all is not removed by that rule."""
    short_line_thr: float = 0.67
    """Share of short lines (at most short_line_length characters), at most."""
    short_line_length: int = 30
    """A line of at most this many characters is short."""
    char_duplicates_ratio: float = 0.01
    """Share of characters in repeated lines, at most."""
    new_line_ratio: float = 0.3
    """Newlines per word, at most."""


class EnglishConfig(_Strict):
    """English: datatrove's filters in FineWeb's order and settings; reasons en_gopher_rep_*, en_gopher_*, en_c4_*,
    en_fineweb_*. Each table takes enabled = false to switch that filter off."""

    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4_quality: C4QualityConfig = Field(default_factory=C4QualityConfig)
    fineweb_quality: FineWebQualityConfig = Field(default_factory=FineWebQualityConfig)


class CodeConfig(_Strict):
    """Codex (Chen et al. 2021) and The Stack / StarCoder: drop generated or minified files."""

    enabled: bool = True
    """false switches this filter off."""
    max_line_length: int = Field(1000, ge=1)
    """Longest line in characters, at most."""
    max_mean_line_length: float = Field(100, gt=0)
    """Mean line length in characters, at most."""
    min_alnum_ratio: float = Field(0.25, ge=0, le=1)
    """Share of letters and digits, at least."""


class FilterConfig(StageConfig):
    """Quality rules chosen per document by its `lang` (zh, en), and by `kind` for code. A removed document's reason is
    the first rule it failed."""

    zh: ZhRulesConfig = Field(default_factory=ZhRulesConfig)
    en: EnglishConfig = Field(default_factory=EnglishConfig)
    code: CodeConfig = Field(default_factory=CodeConfig)
    url_blocklist: str | None = None
    """File of blocked domains (a line without `/`: the domain and its subdomains) and URL prefixes."""
    bad_words: str | None = None
    """File of words or phrases, one a line; Latin-script entries match whole words, case-insensitively."""
    max_bad_words: int = Field(0, ge=0)
    """A document with more bad-word occurrences than this is removed."""
    ascii_punctuation: bool = False
    """Rewrite full-width punctuation to ASCII in kept zh documents, as MAP-CC did. Changes training text."""


# ---------------------------------------------------------------------------------------------------------------
# Chinese


def zh_checks(cfg: ZhRulesConfig) -> list[tuple[str, Callable[[str], str | None]]]:
    """(rule, check) pairs in the order they run, cheapest first; a check returns the removal reason or None."""

    def over(name: str, fn: Callable[[str], float], limit: float):
        return name, lambda t: f"zh_{name}" if fn(t) > limit else None

    def top_ngrams(t: str) -> str | None:
        for n, limit in sorted(cfg.max_top_ngram.items()):
            if zh_rules.top_ngram_ratio(t, n) > limit:
                return f"zh_top_{n}gram"
        return None

    def dup_ngrams(t: str) -> str | None:
        passed, n, _ = zh_rules.passes_dup_ngrams(t, cfg.max_dup_ngram)
        return None if passed else f"zh_dup_{n}gram"

    def mean_word_length(t: str) -> str | None:
        v = zh_rules.mean_word_length(t, cfg.segmenter)
        return "zh_mean_word_length" if not cfg.min_mean_word_length <= v <= cfg.max_mean_word_length else None

    suffixes = tuple(cfg.readmore_suffixes)
    checks = [
        ("length", lambda t: "zh_length" if not cfg.min_length <= len(t) <= cfg.max_length else None),
        ("sentences", lambda t: "zh_sentences" if zh_rules.sentence_count(t) < cfg.min_sentences else None),
        over("hash_ratio", zh_rules.hash_ratio, cfg.max_hash_ratio),
        over("ellipsis_ratio", zh_rules.ellipsis_ratio, cfg.max_ellipsis_ratio),
        over("bracket_ratio", zh_rules.bracket_ratio, cfg.max_bracket_ratio),
        ("punctuation", lambda t: "zh_punctuation" if zh_rules.punctuation_ratio(t) <= cfg.min_punctuation else None),
        (
            "unique_chars",
            lambda t: "zh_unique_chars" if zh_rules.unique_char_ratio(t) <= cfg.min_unique_chars else None,
        ),
        ("entropy", lambda t: "zh_entropy" if zh_rules.char_entropy(t) < cfg.min_entropy else None),
        over("digit_ratio", zh_rules.digit_ratio, cfg.max_digit_ratio),
        over("readmore_lines", lambda t: zh_rules.readmore_line_ratio(t, suffixes), cfg.max_readmore_lines),
        over("bullet_lines", zh_rules.bullet_line_ratio, cfg.max_bullet_lines),
        over("dup_lines", zh_rules.dup_line_ratio, cfg.max_dup_lines),
        ("top_ngram", top_ngrams),
        ("dup_ngram", dup_ngrams),
        ("mean_word_length", mean_word_length),  # segmentation: the dearest, so last
    ]
    return [(name, check) for name, check in checks if name not in cfg.skip]


class ZhQualityFilter(BaseFilter):
    """MAP-CC's Chinese rules on documents with lang = zh; every other document passes."""

    name = "🀄 MAP-CC zh rules"

    def __init__(self, cfg: ZhRulesConfig, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.cfg = cfg
        self._checks = None  # built in the worker: closures are rebuilt rather than pickled

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_checks"] = None
        return state

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if doc.metadata.get("lang") != "zh" or doc.metadata.get("kind") == "code":
            return True
        if self._checks is None:
            self._checks = zh_checks(self.cfg)
        text = zh_rules.normalize(doc.text)
        for _, check in self._checks:
            if reason := check(text):
                return False, reason
        return True


# ---------------------------------------------------------------------------------------------------------------
# English: datatrove's filters, applied to lang = en only


class EnglishOnly(BaseFilter):
    """Runs one of datatrove's filters on lang = en documents, as a decision only, with a prefixed reason."""

    def __init__(self, inner: BaseFilter, reason_prefix: str, exclusion_writer=None):
        self.name = f"en: {inner.name}"  # before __init__, which names the step's stats
        super().__init__(exclusion_writer)
        self.inner = inner
        self.reason_prefix = reason_prefix

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if doc.metadata.get("lang") != "en" or doc.metadata.get("kind") == "code":
            return True
        probe = Document(text=doc.text, id=doc.id, metadata=doc.metadata)  # C4 rewrites the text it is given
        try:
            kept, reason = get_filter_result(self.inner.filter(probe))
        except ZeroDivisionError:  # a text without a single word
            kept, reason = False, "no_words"
        return True if kept else (False, self.reason_prefix + (reason or "failed"))


def english_filters(cfg: EnglishConfig) -> list[EnglishOnly]:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    steps = []
    if (c := cfg.gopher_repetition).enabled:
        inner = GopherRepetitionFilter(
            dup_line_frac=c.dup_line_frac,
            dup_para_frac=c.dup_para_frac,
            dup_line_char_frac=c.dup_line_char_frac,
            dup_para_char_frac=c.dup_para_char_frac,
            top_n_grams=tuple(sorted(c.top_n_grams.items())),
            dup_n_grams=tuple(sorted(c.dup_n_grams.items())),
            language="en",
        )
        steps.append(EnglishOnly(inner, "en_gopher_rep_"))
    if (c := cfg.gopher_quality).enabled:
        inner = GopherQualityFilter(**c.model_dump(exclude={"enabled"}), language="en")
        steps.append(EnglishOnly(inner, "en_"))  # its reasons already start with gopher_
    if (c := cfg.c4_quality).enabled:
        inner = C4QualityFilter(**c.model_dump(exclude={"enabled"}), language="en")
        steps.append(EnglishOnly(inner, "en_c4_"))
    if (c := cfg.fineweb_quality).enabled:
        inner = FineWebQualityFilter(
            line_punct_thr=c.line_punct_thr,
            line_punct_exclude_zero=c.line_punct_exclude_zero,
            short_line_thr=c.short_line_thr,
            short_line_length=c.short_line_length,
            char_duplicates_ratio=c.char_duplicates_ratio,
            new_line_ratio=c.new_line_ratio,
            language="en",
        )
        steps.append(EnglishOnly(inner, "en_fineweb_"))
    return steps


# ---------------------------------------------------------------------------------------------------------------
# Code


def max_line_length(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def mean_line_length(text: str) -> float:
    lines = text.splitlines()
    return sum(map(len, lines)) / len(lines) if lines else 0.0


def alnum_ratio(text: str) -> float:
    return sum(map(str.isalnum, text)) / len(text) if text else 0.0


class CodeQualityFilter(BaseFilter):
    """Code documents: no line longer than `max_line_length`, a mean line length and a share of alphanumeric
    characters typical of hand-written code (minified bundles, data blobs and generated tables fail)."""

    name = "💻 code"

    def __init__(self, cfg: CodeConfig, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.cfg = cfg

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if doc.metadata.get("kind") != "code":
            return True
        if max_line_length(doc.text) > self.cfg.max_line_length:
            return False, "code_max_line_length"
        if mean_line_length(doc.text) > self.cfg.max_mean_line_length:
            return False, "code_mean_line_length"
        if alnum_ratio(doc.text) < self.cfg.min_alnum_ratio:
            return False, "code_alnum_ratio"
        return True


# ---------------------------------------------------------------------------------------------------------------
# URL blocklist and bad words


def _strip_url(url: str) -> str:
    url = url.strip().lower()
    url = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url)
    return url.removeprefix("www.")


class UrlBlocklist:
    """Domains (the domain and every subdomain) and URL prefixes, scheme and `www.` ignored."""

    def __init__(self, entries: list[str]):
        self.domains: set[str] = set()
        prefixes = []
        for entry in entries:
            entry = _strip_url(entry)
            if not entry:
                continue
            if "/" in entry:
                prefixes.append(entry)
            else:
                self.domains.add(entry.split(":")[0])
        self.prefixes = tuple(prefixes)

    @classmethod
    def from_file(cls, path: str | Path) -> UrlBlocklist:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return cls([line for line in lines if line.strip() and not line.lstrip().startswith("#")])

    def blocked(self, url: str | None) -> bool:
        if not url:
            return False
        url = _strip_url(url)
        host = re.split(r"[/:?#]", url, maxsplit=1)[0]
        parts = host.split(".")
        if any(".".join(parts[i:]) in self.domains for i in range(len(parts))):
            return True
        return bool(self.prefixes) and url.startswith(self.prefixes)


class UrlBlocklistFilter(BaseFilter):
    name = "⛔ URL blocklist"

    def __init__(self, path: str | Path, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.path = str(path)
        self._list: UrlBlocklist | None = None

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self._list is None:
            self._list = UrlBlocklist.from_file(self.path)
        return (False, "url_blocklist") if self._list.blocked(doc.metadata.get("url")) else True


def bad_words_pattern(words: list[str]) -> re.Pattern | None:
    """One regex for the list: Latin-script entries as whole words, others (Chinese) as plain substrings."""
    parts = []
    for w in sorted({w.strip().lower() for w in words if w.strip()}, key=len, reverse=True):
        escaped = re.escape(w)
        parts.append(rf"\b{escaped}\b" if w.isascii() else escaped)
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def count_bad_words(text: str, pattern: re.Pattern | None) -> int:
    return 0 if pattern is None else sum(1 for _ in pattern.finditer(text))


class BadWordsFilter(BaseFilter):
    name = "🤬 bad words"

    def __init__(self, path: str | Path, max_count: int = 0, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.path = str(path)
        self.max_count = max_count
        self._pattern: re.Pattern | None = None
        self._loaded = False

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pattern"], state["_loaded"] = None, False
        return state

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if doc.metadata.get("kind") == "code":
            return True
        if not self._loaded:
            lines = Path(self.path).read_text(encoding="utf-8").splitlines()
            self._pattern = bad_words_pattern([w for w in lines if not w.lstrip().startswith("#")])
            self._loaded = True
        return (False, "bad_words") if count_bad_words(doc.text, self._pattern) > self.max_count else True


# ---------------------------------------------------------------------------------------------------------------
# Bookkeeping and the opt-in rewrite


def rule_set(doc: Document) -> str:
    if doc.metadata.get("kind") == "code":
        return "code"
    lang = doc.metadata.get("lang")
    return lang if lang in ("zh", "en") else "none"


class RuleSetCounter(PipelineStep):
    """Counts documents per rule set (zh, en, code, none) into stats.json's counters."""

    name = "rule sets"
    type = "🧮 - STATS"

    def __init__(self):
        super().__init__()
        self.counters: Counter = Counter()

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.counters = Counter()
        for doc in data or ():
            self.counters[f"filter_rules_{rule_set(doc)}"] += 1
            yield doc


class AsciiPunctuation(PipelineStep):
    """MAP-CC's full-width to ASCII punctuation rewrite on kept zh documents (opt-in)."""

    name = "ASCII punctuation"
    type = "✂️ - FORMAT"

    def __init__(self):
        super().__init__()
        self.counters: Counter = Counter()

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.counters = Counter()
        for doc in data or ():
            if rule_set(doc) == "zh":
                new = zh_rules.to_ascii_punctuation(doc.text)
                if new != doc.text:
                    doc.text = new
                    self.counters["filter_ascii_punctuation_rewritten"] += 1
            yield doc


def build(ctx: StageContext) -> list[Phase]:
    cfg: FilterConfig = ctx.stage_cfg
    steps: list = [RuleSetCounter()]
    for key in ("url_blocklist", "bad_words"):
        value = getattr(cfg, key)
        if value and not ctx.cfg.path(value).is_file():
            raise ValueError(f"{ctx.cfg.file}: stages.filter.{key}: no such file: {ctx.cfg.path(value)}")
    if cfg.url_blocklist:
        steps.append(UrlBlocklistFilter(ctx.cfg.path(cfg.url_blocklist)))
    if cfg.bad_words:
        steps.append(BadWordsFilter(ctx.cfg.path(cfg.bad_words), cfg.max_bad_words))
    if cfg.zh.enabled:
        steps.append(ZhQualityFilter(cfg.zh))
    steps += english_filters(cfg.en)
    if cfg.code.enabled:
        steps.append(CodeQualityFilter(cfg.code))
    if cfg.ascii_punctuation:
        steps.append(AsciiPunctuation())
    return [ctx.standard_phase(steps)]
