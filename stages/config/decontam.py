"""`[stages.decontam]`: benchmark decontamination (stages/decontam.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stages.config.base import StageConfig, StrictModel


class BenchmarkFile(StrictModel):
    """One benchmark file whose test items are searched for (bundled: real items with their licences, see
    data/sample/SOURCES.md)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """Benchmark name: the value in `contaminated_by` and the counter suffix."""
    path: str
    """File, relative to the config file."""
    format: Literal["jsonl", "parquet", "csv"]
    """jsonl | parquet | csv."""
    fields: list[str] = Field(min_length=1)
    """Columns whose values form one item (question, choices, answer, passage); list values count as fields."""


class DecontamConfig(StageConfig):
    """Removes (or cuts out) benchmark test items found in documents, by n-gram overlap."""

    enabled: bool = False
    """Off unless switched on: the stage needs benchmark files (pipeline.toml switches it on with the bundled
    sample benchmarks). Enabled with no benchmarks is an error."""
    benchmarks: list[BenchmarkFile] = Field(default_factory=list)
    """One `[[stages.decontam.benchmarks]]` table per benchmark file whose test items are searched for."""
    mode: Literal["drop", "cut"] = "drop"
    """drop: remove flagged documents (reason contaminated); cut: remove the matched spans with cut_margin."""
    en_ngram: int = Field(13, ge=1)
    """Word n-gram length for space-separated text: 13, as GPT-3 (Brown et al. 2020) and NeMo Curator."""
    zh_ngram: int = Field(8, ge=1)
    """Character n-gram length for Chinese: 8, measured with `bench/bench_pii_decontam.py --choose-n` on the
    sample corpus (1,907 Chinese documents: books_zh, notes_zh) and the 42 CHARM items, each pasted into a real
    document whole, with every 30th or 15th character changed (OCR errors, variant characters), or question only;
    threshold 0.3:

        n    benchmark n-grams   clean docs sharing   clean docs   highest clean   found: whole  1/30  1/15  question
             in clean docs       any n-gram           flagged      doc share
        5    0.7%                10                   0            0.13            42  42  42  40
        6    0.4%                2                    0            0.11            42  42  42  39
        8    0.2%                1                    0            0.07            42  42  42  39
        10   0.1%                1                    0            0.03            42  42  42  39
        12   0.0%                0                    0            0.00            42  42  13  39
        13   0.0%                0                    0            0.00            42  41   4  39

    Below 8, idioms and stock phrases put benchmark n-grams into ever more clean documents (10 at n=5); from 12
    on, one changed character in 15 hides most items (an n-gram survives only if none of its characters changed:
    (15-n)/15 of them). 8 keeps (15-8)/15 = 47% of an edited item's n-grams, well above the threshold, and shares
    n-grams with one clean document only, through a real quotation (the item quotes 夕阳无限好，只是近黄昏, which
    is in the Tang poems): 0.07 of that item."""
    min_field_units: dict[str, int] = Field(default_factory=lambda: {"en": 8, "zh": 8})
    """A field shorter than the n-gram length counts as one n-gram of its own length when it has at least this many
    words (en) or characters (zh); shorter fields are not indexed."""
    threshold: float = Field(0.3, gt=0, le=1)
    """Share of an item's distinct n-grams that must occur in a document to flag it. Measured as for `zh_ngram`
    (CHARM, zh n = 8; and the 285 MMLU items against the 84 articles_en documents, word 13-grams): whole pastes
    reach 1.0; the highest share any clean document reaches for any item is 0.07 (zh, the quotation above) and 0.00
    (en). Items found at each threshold (whole / every 30th unit changed / every 15th / question only):

        threshold   zh (42 items)       en (273 indexable items)
        0.2         42  42  42  41      273  271  150  238
        0.3         42  42  42  39      273  271  106  226
        0.5         42  42  31  37      273  264   77  210
        0.7         42  41   2  29      273  172   48  196

    0.3 still finds items pasted without their options or with light edits, and is four times the highest share
    a clean document reached, so a document sharing a common phrase or one sentence with a long item (a few
    percent of its n-grams) is not flagged."""
    per_field: bool = True
    """Also flag a document holding one field of an item (its question, or one option) without the rest: a test
    prompt copied alone is the contamination that matters, and when the answer or passage fields are long it stays
    under `threshold` of the whole item. false: only whole-item shares count."""
    field_threshold: float = Field(0.8, gt=0, le=1)
    """per_field: share of a field's specific n-grams (those no other item holds, so a stem shared by a task's
    questions, such as CHARM's 以下陈述是否包含时代错误..., counts for nothing) that must occur in a document."""
    field_min_ngrams: int = Field(4, ge=1)
    """per_field: specific n-grams a field needs to be flagged on its own (4: a Chinese field of 11 characters past
    its shared stem, an English one of 16 words); shorter fields count only within the whole item, so a common
    stem (下列说法正确的是, one 8-gram) or a short option planted in a document does not flag it."""
    cut_margin: int = Field(200, ge=0)
    """mode = cut: characters removed on either side of a matched n-gram (NeMo Curator: 200)."""
    max_splits: int = Field(10, ge=0)
    """mode = cut: a document needing more cuts than this is removed instead (NeMo Curator: 10)."""
