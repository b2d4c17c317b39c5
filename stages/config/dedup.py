"""`[stages.dedup]`: exact, MinHash and similar-line deduplication (stages/dedup.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from stages.config.base import StageConfig

# bands x rows at most: 8x the published settings (MAP-CC 9x13, FineWeb 14x8), far past where the S-curve still
# sharpens usefully, and small enough that signature memory stays bounded per document.
MAX_PERMUTATIONS = 1024

# The values a preset gives the keys not set beside it. "default" is the field defaults below.
DEDUP_PRESETS: dict[str, dict] = {
    "default": {},
    "mapcc": {"bands": 9, "rows": 13, "verify": "none"},
}


class DedupConfig(StageConfig):
    """Exact duplicates, then MinHash near duplicates, then near-repeated lines inside a document (MAP-CC's order)."""

    exact: bool = True
    """Remove exact duplicates (after the folding below) first."""
    exact_normalize: Literal["none", "whitespace", "whitespace_case"] = "whitespace_case"
    """What counts as the same text: byte-identical, or equal after collapsing whitespace (and case folding)."""
    minhash: bool = True
    """Remove near duplicates with MinHash LSH."""
    char_ngram: int = Field(13, ge=1)
    """Shingle size in characters for Chinese text (MAP-CC: 13)."""
    word_ngram: int = Field(5, ge=1)
    """Shingle size in words for other text (datatrove/FineWeb: 5)."""
    preset: Literal["default", "mapcc"] = "default"
    """Named MinHash settings; bands, rows, verify and verify_threshold set beside it override the preset's.
    "default": 14 x 7 bands and exact verification at 0.85 (recall ~0.99 just above 0.85, see BENCHMARKS.md);
    "mapcc": MAP-CC's 9 x 13 bands with every candidate merged unverified (a pair at Jaccard 0.85 is a candidate
    69% of the time)."""
    bands: int = Field(14, ge=1)
    """LSH bands (see rows)."""
    rows: int = Field(7, ge=1)
    """bands x rows permutations (at most 1024); a pair is a candidate when one band matches, with probability
    1 - (1 - J**rows)**bands at Jaccard J. 14 x 7 (98 permutations, fewer than MAP-CC's 117): 0.9955 at J = 0.85,
    0.70 at 0.7 (verification removes those); MAP-CC's 9 x 13: 0.69 at 0.85."""
    verify: Literal["none", "signature", "exact"] = "exact"
    """How a candidate pair from a shared band is confirmed before it is merged: "none" accepts every candidate
    (MAP-CC); "signature" compares the full signatures (estimated Jaccard, no extra pass); "exact" computes the
    exact Jaccard of the two shingle sets (one more pass over the input, shingling only candidate documents).
    Either check runs in `verify_parts` tasks, each over the pairs of its share of the documents."""
    verify_threshold: float = Field(0.85, ge=0, le=1)
    """The (estimated or exact) Jaccard a candidate pair needs to be merged. See BENCHMARKS.md for the precision
    and recall of each mode."""
    verify_parts: int = Field(1, ge=1)
    """Verification tasks: candidate pairs go to part hash(first document) % verify_parts, and a task holds only the
    shingle sets of its pairs' documents (about 8 bytes per character of each), so its memory falls as this
    rises. Raise it with the corpus, like bucket_parts."""
    cluster_parts: int = Field(1, ge=1)
    """Tasks that choose the keeper of each duplicate group: groups go to part hash(group) % cluster_parts, and a
    task holds only its groups' members and their ids (the one clusters task before it holds integers only)."""
    bucket_parts: int = Field(1, ge=1)
    """Tasks per band (and for the exact keys): each keeps the keys with key % bucket_parts == its part, so a
    bucket task holds 16 bytes x documents / bucket_parts. The signatures step writes its keys already split by
    part, so a bucket task reads only its own part. Raise it with the corpus (datatrove's workers per bucket)."""
    similar_lines: bool = True
    """Drop lines that nearly repeat an earlier line of the same document (MAP-CC); code documents are skipped."""
    line_max_distance: float = Field(0.1, ge=0, le=1)
    """Edit distance at most this share of the longer line's length counts as a repeat."""
    line_exact_only_below: int = Field(15, ge=0)
    """Lines shorter than this many characters are dropped only when exactly equal."""
    line_max_candidates: int = Field(2000, ge=1)
    """Earlier lines each line is compared with (bounds the work on pathological documents)."""

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data):
        if isinstance(data, dict) and data.get("preset") in DEDUP_PRESETS:
            data = {**DEDUP_PRESETS[data["preset"]], **data}
        return data

    @model_validator(mode="after")
    def _something_to_do(self):
        if self.enabled and not (self.exact or self.minhash or self.similar_lines):
            raise ValueError("dedup is enabled but exact, minhash and similar_lines are all false")
        if self.bands * self.rows > MAX_PERMUTATIONS:
            raise ValueError(
                f"bands x rows = {self.bands * self.rows} permutations; at most {MAX_PERMUTATIONS} (memory per document "
                "grows with it: rows = 100000 took 11 GB for 5 documents)"
            )
        return self
