"""The filter stage: quality rules chosen per document by the `lang` column that langid set (by `kind` for code),
one rule family per module of `stages/filters/`:

- `zh` (`filters/zh.py`): MAP-CC's rules (`stages/zh_rules.py`), measured on the NFKC form of the text, cheapest
  first; the reason is `zh_<rule>` for the first rule that fails (`zh_top_2gram`, `zh_dup_5gram` for the n-grams).
- `en` (`filters/en.py`): datatrove's GopherRepetitionFilter, GopherQualityFilter, C4QualityFilter and
  FineWebQualityFilter in FineWeb's order and with FineWeb's settings; reasons are datatrove's, prefixed
  (`en_gopher_rep_top_2_gram`, `en_gopher_short_doc`, `en_c4_too_few_sentences`, `en_fineweb_line_punct_ratio`).
  C4's filter also rewrites the text (it drops lines); here it only decides, as docs/architecture.md leaves text
  changes to the pii and dedup stages.
- `kind = "code"` (`filters/code.py`): the line-length and alphanumeric-share checks of Codex / The Stack
  (`code_<rule>`).
- other kept languages pass unfiltered (counted as `filter_rules_none`).

Optional for every document (`filters/blocklists.py`): a URL blocklist file (`url_blocklist`; a document without a
URL is never removed by it) and a bad-word list file (`bad_words`). MAP-CC's full-width to ASCII punctuation
rewrite is an opt-in step of this module.

The families run as one step, `ScoredRules`: each family that applies to a document measures all of its rules, also
after the first one that fails, into the `scores` struct column (`filters/scores.py`; kept and removed documents
alike, one float per rule named as its reason, null where a rule does not apply), and the reason is the first
failing rule in the order above (lists, zh, en, code). The English family splits a document into words once for
all four of datatrove's filters (`EnglishQualityFilter`), with datatrove's decisions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter

from stages import zh_rules
from stages.base import Phase, StageContext
from stages.config.filter import FilterConfig
from stages.filters.blocklists import BadWordsFilter, UrlBlocklistFilter
from stages.filters.code import CodeQualityFilter
from stages.filters.en import EnglishQualityFilter
from stages.filters.routing import TaskCountedFilter
from stages.filters.scores import SCORES_COLUMN, Threshold, scores_type
from stages.filters.zh import ZhQualityFilter
from stages.io import ReportsCounters

# ---------------------------------------------------------------------------------------------------------------
# Bookkeeping and the opt-in rewrite


def rule_set(doc: Document) -> str:
    if doc.metadata.get("kind") == "code":
        return "code"
    lang = doc.metadata.get("lang")
    return lang if lang in ("zh", "en") else "none"


class RuleSetCounter(ReportsCounters, PipelineStep):
    """Counts documents per rule set (zh, en, code, none) into stats.json's counters."""

    name = "rule sets"
    type = "🧮 - STATS"
    counter_prefixes = ("filter_rules_",)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # Counted here and recorded once when the input ends: a datatrove stat update per document was a share of
        # the stage's time beyond the rules (issue 13); the counters are the same totals.
        counts: Counter = Counter()
        for doc in data or ():
            counts[rule_set(doc)] += 1
            yield doc
        for name, n in counts.items():
            self.stat_update(f"filter_rules_{name}", value=n)


class AsciiPunctuation(ReportsCounters, PipelineStep):
    """MAP-CC's full-width to ASCII punctuation rewrite on kept zh documents (opt-in)."""

    name = "ASCII punctuation"
    type = "✂️ - FORMAT"
    counter_prefixes = ("filter_ascii_punctuation_",)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data or ():
            if rule_set(doc) == "zh":
                new = zh_rules.to_ascii_punctuation(doc.text)
                if new != doc.text:
                    doc.text = new
                    self.stat_update("filter_ascii_punctuation_rewritten")
            yield doc


class ScoredRules(TaskCountedFilter):
    """Every rule family that applies to a document measures all its rules into the document's `scores` (kept and
    removed documents alike, so thresholds can be tuned from the output); the reason is the first failing rule of
    the first family, in the order url_blocklist, bad_words, zh, en, code."""

    name = "📏 quality rules"

    def __init__(self, families: list[BaseFilter], exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.families = families
        self.score_fields = [t.field for t in self.thresholds]  # none: no rule measured, no `scores` column

    @property
    def thresholds(self) -> list[Threshold]:
        return [t for family in self.families for t in family.thresholds]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        scores: dict[str, float | None] = {}
        reason = None
        for family in self.families:
            result = family.evaluate(doc)
            if result is not None:
                scores.update(result[0])
                reason = reason or result[1]
        if self.score_fields:
            doc.metadata[SCORES_COLUMN] = scores
        return (False, reason) if reason else True


def rule_families(cfg: FilterConfig, resolve: Callable[[str], Path] = Path) -> list[BaseFilter]:
    """The stage's rule families in decision order, built from `[stages.filter]`; `resolve` turns a configured file
    into its path (the list files are read when the first document arrives)."""
    families: list[BaseFilter] = []
    if cfg.url_blocklist:
        families.append(UrlBlocklistFilter(resolve(cfg.url_blocklist)))
    if cfg.bad_words:
        families.append(BadWordsFilter(resolve(cfg.bad_words), cfg.max_bad_words))
    if cfg.zh.enabled:
        families.append(ZhQualityFilter(cfg.zh))
    families.append(EnglishQualityFilter(cfg.en))
    if cfg.code.enabled:
        families.append(CodeQualityFilter(cfg.code))
    return families


def build(ctx: StageContext) -> list[Phase]:
    cfg: FilterConfig = ctx.stage_cfg
    for key in ("url_blocklist", "bad_words"):
        value = getattr(cfg, key)
        if value and not ctx.cfg.path(value).is_file():
            raise ValueError(f"{ctx.cfg.file}: stages.filter.{key}: no such file: {ctx.cfg.path(value)}")
    rules = ScoredRules(rule_families(cfg, ctx.cfg.path))
    steps: list = [RuleSetCounter(), rules]
    if cfg.ascii_punctuation:
        steps.append(AsciiPunctuation())
    fields = rules.score_fields
    new_columns = [pa.field(SCORES_COLUMN, scores_type(fields))] if fields else []
    return [ctx.standard_phase(steps, new_columns=new_columns)]
