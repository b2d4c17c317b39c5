"""English: datatrove's GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter and FineWebQualityFilter in
FineWeb's order and with FineWeb's settings, on lang = en documents only. Reasons are datatrove's, prefixed
(`en_gopher_rep_top_2_gram`, `en_gopher_short_doc`, `en_c4_too_few_sentences`, `en_fineweb_line_punct_ratio`).
C4's filter also rewrites the text (it drops lines); here it only decides, as docs/architecture.md leaves text
changes to the pii and dedup stages."""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, ELLIPSIS, END_PUNCTUATION, POLICY_SUBSTRINGS
from datatrove.pipeline.filters.gopher_repetition_filter import (
    find_all_duplicate,
    find_duplicates,
    find_top_duplicate,
    get_n_grams,
)
from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION, split_into_sentences

from stages.config.filter import (
    C4QualityConfig,
    EnglishConfig,
    FineWebQualityConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
)
from stages.filters.scores import Threshold


class EnglishOnly(BaseFilter):
    """Runs one of datatrove's filters on lang = en documents, as a decision only, with a prefixed reason. The
    reference `EnglishQualityFilter` is checked against (each of datatrove's filters tokenizes the text again)."""

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
    """datatrove's four filters themselves, one step each: the reference for `EnglishQualityFilter`."""
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
        inner = FineWebQualityFilter(**c.model_dump(exclude={"enabled"}), language="en")
        steps.append(EnglishOnly(inner, "en_fineweb_"))
    return steps


# ---------------------------------------------------------------------------------------------------------------
# The four filters' measures from one tokenization: the stage's English filter, and the `scores` column.
#
# Each of datatrove's filters splits the text into words again with spaCy (Gopher repetition, Gopher quality and
# FineWeb: the whole text; C4: each kept line into sentences), which was 70-80% of the filter stage's time on
# English. Below, the text is split into words once and every value datatrove computes is computed from it with
# datatrove's own helpers, in datatrove's order, so that the decisions are datatrove's (tests/test_filter_en.py
# compares them on every English sample document; BENCHMARKS.md on the 0.1 GB scale corpus).

_PARAGRAPHS = re.compile(r"\n{2,}")  # GopherRepetitionFilter.paragraph_exp
_LINES = re.compile("\n+")  # GopherRepetitionFilter._line_splitter
_STOP_CHARS = tuple(TERMINAL_PUNCTUATION)  # FineWebQualityFilter's default stop_chars


@dataclass
class EnglishTokens:
    """One spaCy tokenization of a document: datatrove's words, and per token its start, text and is_punct, from
    which C4's per-line sentence count is taken (spaCy's sentencizer, replayed on the line's tokens)."""

    words: list[str]
    starts: list[int] | None  # None: the text had to be altered to tokenize (datatrove's "IS_ALPHA" fallback)
    texts: list[str]
    is_punct: list[bool]
    punct_chars: frozenset[str]


# Lexemes the English tokenizer may hold before it is replaced by a fresh one. datatrove tokenizes inside spaCy's
# memory_zone, which forgets every new word after each document, and re-creating them was 40% of the tokenizer's time
# (cProfile, `Vocab._new_lexeme`); keeping them made tokenizing 2.7-3x faster (198 English web documents), and this
# bound (about 90 MiB, measured with 192k random words) keeps a worker's memory from growing with the corpus. The
# tokens do not depend on what the vocabulary holds.
MAX_CACHED_LEXEMES = 200_000


class _SpacyEnglish:
    """spaCy's blank English pipeline with the sentencizer, as datatrove's `SpaCyTokenizer("en")` builds it."""

    nlp = None

    @classmethod
    def get(cls):
        if cls.nlp is None or len(cls.nlp.vocab) > MAX_CACHED_LEXEMES:
            # spaCy is imported on first use, as datatrove's word tokenizers do: `import spacy` costs about a second
            # and most `pipeline` commands never tokenize English.
            import spacy

            cls.nlp = spacy.blank("en")
            cls.nlp.add_pipe("sentencizer")
        return cls.nlp


def english_tokens(text: str) -> EnglishTokens:
    """The words datatrove's English filters split a text into (`split_into_words(text, "en")`: spaCy's blank
    English tokenizer, whitespace tokens dropped), tokenized once. Only the tokenizer runs (the sentencizer pipe
    does not change tokens; it is replayed per line by `_line_sentences`)."""
    nlp = _SpacyEnglish.get()
    punct_chars = frozenset(nlp.get_pipe("sentencizer").punct_chars)
    nlp.max_length = len(text) + 10
    try:
        doc, exact = nlp.make_doc(text), True
    except Exception:
        if "IS_ALPHA" not in text:  # datatrove's SpaCyTokenizer retries only this case
            raise
        doc, exact = nlp.make_doc(text.replace("IS_ALPHA", "")), False
    texts, starts, is_punct = [], [], []
    for token in doc:
        texts.append(token.text)
        starts.append(token.idx)
        is_punct.append(token.is_punct)
    words = [w for w in (t.strip() for t in texts) if w]
    return EnglishTokens(words, starts if exact else None, texts, is_punct, punct_chars)


def english_words(text: str) -> list[str]:
    return english_tokens(text).words


def _line_sentences(tokens: EnglishTokens, start: int, end: int) -> int:
    """Sentences spaCy's sentencizer finds in text[start:end], from the document's tokens in that span. spaCy
    tokenizes each whitespace-delimited piece on its own, so a line's tokens inside the document are the line's
    tokens alone (tests/test_filter_en.py checks the counts against `split_into_sentences` line by line)."""
    lo, hi = bisect_left(tokens.starts, start), bisect_left(tokens.starts, end)
    sentences, seen_period = 1, False
    for j in range(lo, hi):
        in_punct_chars = tokens.texts[j] in tokens.punct_chars
        if seen_period and not tokens.is_punct[j] and not in_punct_chars:
            sentences += 1
            seen_period = False
        elif in_punct_chars:
            seen_period = True
    return sentences


# A measure returns (scores, reason, undefined): the values by field, the reason its filter gives (None: kept) and
# the fields datatrove would divide by zero on (it raises, which EnglishOnly turns into `<prefix>no_words`).
Measured = tuple[dict[str, float | None], str | None]


def _decide(scores: dict, thresholds: list[Threshold], undefined: set[str], no_words: str) -> str | None:
    for t in thresholds:
        if t.field in undefined and (t.low is not None or t.high is not None):
            return no_words
        if t.fails(scores.get(t.field)):
            return t.field
    return None


def _enabled(value):
    """datatrove skips a check whose threshold is falsy (`if self.max_... and ratio > self.max_...`)."""
    return value if value else None


def gopher_repetition_thresholds(c: GopherRepetitionConfig) -> list[Threshold]:
    p = "en_gopher_rep_"
    return [
        Threshold(p + "dup_para_frac", high=_enabled(c.dup_para_frac)),
        Threshold(p + "dup_para_char_frac", high=_enabled(c.dup_para_char_frac)),
        Threshold(p + "dup_line_frac", high=_enabled(c.dup_line_frac)),
        Threshold(p + "dup_line_char_frac", high=_enabled(c.dup_line_char_frac)),
        *(Threshold(f"{p}top_{n}_gram", high=v) for n, v in sorted(c.top_n_grams.items())),
        *(Threshold(f"{p}duplicated_{n}_n_grams", high=v) for n, v in sorted(c.dup_n_grams.items())),
    ]


def gopher_repetition(text: str, words: list[str], c: GopherRepetitionConfig) -> Measured:
    """GopherRepetitionFilter's values: duplicated paragraphs and lines (share of items, share of characters),
    the top word n-gram's share of characters (null without an n-gram) and the share in duplicated n-grams."""
    p = "en_gopher_rep_"
    thresholds = gopher_repetition_thresholds(c)
    if not text:
        return dict.fromkeys((t.field for t in thresholds), None), p + "empty"
    paragraphs = _PARAGRAPHS.split(text.strip())
    para_dups, para_chars = find_duplicates(paragraphs)
    lines = _LINES.split(text)
    line_dups, line_chars = find_duplicates(lines)
    scores: dict[str, float | None] = {
        p + "dup_para_frac": para_dups / len(paragraphs),
        p + "dup_para_char_frac": para_chars / len(text),
        p + "dup_line_frac": line_dups / len(lines),
        p + "dup_line_char_frac": line_chars / len(text),
    }
    for n in sorted(c.top_n_grams):
        n_grams = get_n_grams(words, n)
        scores[f"{p}top_{n}_gram"] = find_top_duplicate(n_grams) / len(text) if n_grams else None
    for n in sorted(c.dup_n_grams):
        scores[f"{p}duplicated_{n}_n_grams"] = find_all_duplicate(words, n) / len(text)
    return scores, _decide(scores, thresholds, set(), p + "no_words")


def gopher_quality_thresholds(c: GopherQualityConfig) -> list[Threshold]:
    p = "en_gopher_"
    return [
        Threshold(p + "short_doc", low=_enabled(c.min_doc_words)),
        Threshold(p + "long_doc", high=_enabled(c.max_doc_words)),
        Threshold(p + "below_avg_threshold", low=_enabled(c.min_avg_word_length)),
        Threshold(p + "above_avg_threshold", high=_enabled(c.max_avg_word_length)),
        Threshold(p + "too_many_hashes", high=_enabled(c.max_symbol_word_ratio)),
        Threshold(p + "too_many_ellipsis", high=_enabled(c.max_symbol_word_ratio)),
        Threshold(p + "too_many_bullets", high=_enabled(c.max_bullet_lines_ratio)),
        Threshold(p + "too_many_end_ellipsis", high=_enabled(c.max_ellipsis_lines_ratio)),
        Threshold(p + "below_alpha_threshold", low=_enabled(c.max_non_alpha_words_ratio)),
        Threshold(p + "enough_stop_words", low=_enabled(c.min_stop_words)),
    ]


def gopher_quality(text: str, words: list[str], c: GopherQualityConfig) -> Measured:
    """GopherQualityFilter's values: words that are not pure punctuation (short_doc and long_doc), their mean
    length (null without one), # and ellipses per word, shares of bullet and ellipsis-ending lines, the share of
    words with a letter, and the number of distinct stop words."""
    p = "en_gopher_"
    n_words = len(words)
    lengths = [len(w) for w in words if any(ch not in PUNCTUATION_SET for ch in w)]
    mean_length = float(np.mean(lengths)) if lengths else None  # datatrove: np.mean([]) is nan, which never fails
    lines = text.splitlines()
    per_word = n_words or None
    per_line = len(lines) or None
    scores: dict[str, float | None] = {
        p + "short_doc": float(len(lengths)),
        p + "long_doc": float(len(lengths)),
        p + "below_avg_threshold": mean_length,
        p + "above_avg_threshold": mean_length,
        p + "too_many_hashes": text.count("#") / per_word if per_word else None,
        p + "too_many_ellipsis": (text.count("...") + text.count("…")) / per_word if per_word else None,
        p + "too_many_bullets": (
            sum(s.lstrip().startswith("•") or s.lstrip().startswith("-") for s in lines) / per_line
            if per_line
            else None
        ),
        p + "too_many_end_ellipsis": (
            sum(s.rstrip().endswith("...") or s.rstrip().endswith("…") for s in lines) / per_line if per_line else None
        ),
        p + "below_alpha_threshold": (
            sum(any(ch.isalpha() for ch in w) for w in words) / per_word if per_word else None
        ),
        p + "enough_stop_words": float(len(set(c.stop_words).intersection(words))),
    }
    undefined = {
        k for k, v in scores.items() if v is None and k not in (p + "below_avg_threshold", p + "above_avg_threshold")
    }
    return scores, _decide(scores, gopher_quality_thresholds(c), undefined, "en_no_words")


def c4_quality_thresholds(c: C4QualityConfig) -> list[Threshold]:
    p = "en_c4_"
    return [
        Threshold(p + "lorem_ipsum", high=0 if c.filter_lorem_ipsum else None),
        Threshold(p + "curly_bracket", high=0 if c.filter_curly_bracket else None),
        Threshold(p + "too_few_sentences", low=c.min_num_sentences),
    ]


def c4_quality(text: str, c: C4QualityConfig, tokens: EnglishTokens | None = None) -> Measured:
    """C4QualityFilter's values: lines (among those its line rules keep) with "lorem ipsum" and with "{", and the
    sentences in the lines it keeps, counted as if those two document rules were off, so that a removed document
    still has its count. The reason is datatrove's: the first line that trips a document rule, else too few
    sentences. With `tokens` (the document's), a line's sentences are counted from them, else by spaCy again."""
    p = "en_c4_"
    if c.split_paragraph:
        lines = text.splitlines(keepends=True)
    else:
        lines, tokens = split_into_sentences(text, "en"), None
    sentences = lorem = curly = 0
    reason = None
    offset = 0
    for raw in lines:
        start, offset = offset, offset + len(raw)
        line = raw.strip()
        start += len(raw) - len(raw.lstrip())
        original = line
        words = line.split()
        if c.max_word_length != -1 and any(len(word) > c.max_word_length for word in words):
            continue
        if c.remove_citations:
            line = CITATION_REGEX.sub("", line)
        if c.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
            continue
        if len(words) < c.min_words_per_line:
            continue
        line_l = line.lower()
        if "lorem ipsum" in line_l:
            lorem += 1
            if c.filter_lorem_ipsum and reason is None:
                reason = p + "lorem_ipsum"
        if c.filter_javascript and "javascript" in line_l:
            continue
        if "{" in line:
            curly += 1
            if c.filter_curly_bracket and reason is None:
                reason = p + "curly_bracket"
        if c.filter_policy and any(s in line_l for s in POLICY_SUBSTRINGS):
            continue
        if not c.split_paragraph:
            sentences += 1
        elif tokens is not None and tokens.starts is not None and line == original:
            sentences += _line_sentences(tokens, start, start + len(line))
        else:  # a citation was cut out of the line: it no longer lies in the document as it is
            sentences += len(split_into_sentences(line, "en"))
    scores = {
        p + "lorem_ipsum": float(lorem),
        p + "curly_bracket": float(curly),
        p + "too_few_sentences": float(sentences),
    }
    if reason is None and sentences < c.min_num_sentences:
        reason = p + "too_few_sentences"
    return scores, reason


def fineweb_quality_thresholds(c: FineWebQualityConfig) -> list[Threshold]:
    p = "en_fineweb_"
    return [
        Threshold(p + "line_punct_ratio", low=c.line_punct_thr),
        Threshold(p + "short_line_ratio", high=c.short_line_thr),
        Threshold(p + "char_dup_ratio", high=c.char_duplicates_ratio),
        Threshold(p + "list_ratio", high=c.new_line_ratio),
    ]


def fineweb_quality(text: str, words: list[str], c: FineWebQualityConfig) -> Measured:
    """FineWebQualityFilter's values: shares of non-empty lines ending in terminal punctuation and of short lines,
    characters in duplicated lines per character (newlines not counted), and newlines per word."""
    p = "en_fineweb_"
    thresholds = fineweb_quality_thresholds(c)
    lines = [line for line in text.split("\n") if line.strip() != ""]
    if not lines:
        return dict.fromkeys((t.field for t in thresholds), None), p + "empty"
    scores: dict[str, float | None] = {
        p + "line_punct_ratio": sum(1 for line in lines if line.endswith(_STOP_CHARS)) / len(lines),
        p + "short_line_ratio": sum(1 for line in lines if len(line) <= c.short_line_length) / len(lines),
        p + "char_dup_ratio": find_duplicates(lines)[1] / len(text.replace("\n", "")),
        p + "list_ratio": text.count("\n") / len(words) if words else None,
    }
    if c.line_punct_exclude_zero and scores[p + "line_punct_ratio"] == 0:
        thresholds[0] = Threshold(p + "line_punct_ratio")  # datatrove: a document without such a line passes it
    return scores, _decide(scores, thresholds, {p + "list_ratio"} if not words else set(), p + "no_words")


class EnglishQualityFilter(BaseFilter):
    """datatrove's Gopher repetition, Gopher quality, C4 and FineWeb filters in FineWeb's order on lang = en
    documents, from one split into words, measuring every rule (the `scores` column); every other document
    passes. Decisions and reasons are those of `english_filters` (datatrove's filters one by one)."""

    name = "🔤 en: Gopher, C4, FineWeb"

    def __init__(self, cfg: EnglishConfig, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.cfg = cfg

    @property
    def thresholds(self) -> list[Threshold]:
        c = self.cfg
        out = []
        if c.gopher_repetition.enabled:
            out += gopher_repetition_thresholds(c.gopher_repetition)
        if c.gopher_quality.enabled:
            out += gopher_quality_thresholds(c.gopher_quality)
        if c.c4_quality.enabled:
            out += c4_quality_thresholds(c.c4_quality)
        if c.fineweb_quality.enabled:
            out += fineweb_quality_thresholds(c.fineweb_quality)
        return out

    def evaluate(self, doc: Document) -> tuple[dict[str, float | None], str | None] | None:
        """Every rule's value and the first failing rule's reason; None for a document that is not English."""
        if doc.metadata.get("lang") != "en" or doc.metadata.get("kind") == "code":
            return None
        c, text = self.cfg, doc.text
        if not any(f.enabled for f in (c.gopher_repetition, c.gopher_quality, c.c4_quality, c.fineweb_quality)):
            return None
        tokens = english_tokens(text)
        words = tokens.words
        scores: dict[str, float | None] = {}
        reasons = []
        if c.gopher_repetition.enabled:
            reasons.append(_merge(scores, gopher_repetition(text, words, c.gopher_repetition)))
        if c.gopher_quality.enabled:
            reasons.append(_merge(scores, gopher_quality(text, words, c.gopher_quality)))
        if c.c4_quality.enabled:
            reasons.append(_merge(scores, c4_quality(text, c.c4_quality, tokens)))
        if c.fineweb_quality.enabled:
            reasons.append(_merge(scores, fineweb_quality(text, words, c.fineweb_quality)))
        return scores, next((r for r in reasons if r), None)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        result = self.evaluate(doc)
        if result is None or result[1] is None:
            return True
        return False, result[1]


def _merge(scores: dict, measured: Measured) -> str | None:
    scores.update(measured[0])
    return measured[1]
