"""`TaskCountedFilter`: datatrove's `BaseFilter.run` routing with its bookkeeping counted per task.

`BaseFilter.run` updates datatrove's statistics three or four times per document (`total`, `forwarded` or
`dropped`, `dropped_<reason>`, `doc_len`) and times each call of `filter` with its timer; on the filter stage's
short documents that was a measurable share of the step beyond the rules (issue 13, filter second round; the
ingest stage's `IngestErrors` does the same). Here the same routing (kept documents go on in order, removed ones
to the exclusion writer with `filter_reason`) counts into plain integers and records the totals once, when the
input is exhausted, under the same labels. What stats.json reports is unchanged: it is read from the reader's and
writers' own counts; datatrove's log shows the same totals (a mean per document no longer: one update each).
"""

from __future__ import annotations

import contextlib
from collections import Counter

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.typeshelper import StatHints


class TaskCountedFilter(BaseFilter):
    """A `BaseFilter` (one document at a time) whose `run` counts kept, removed per reason and kept characters in
    plain integers and records them in datatrove's statistics once per task."""

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        forwarded = forwarded_chars = 0
        dropped: Counter = Counter()
        keep = self.filter
        with self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext() as writer:
            for doc in data:
                result = keep(doc)
                kept, reason = result if isinstance(result, tuple) else (result, None)
                if kept:
                    forwarded += 1
                    forwarded_chars += len(doc.text)
                    yield doc
                    continue
                dropped[reason] += 1
                if writer:
                    if reason:
                        doc.metadata["filter_reason"] = reason
                    writer.write(doc, rank)
        total_dropped = dropped.total()
        self.stat_update(StatHints.total, value=forwarded + total_dropped)
        if forwarded:
            self.stat_update(StatHints.forwarded, value=forwarded)
            self.stat_update("doc_len", value=forwarded_chars, unit="doc")
        if total_dropped:
            self.stat_update(StatHints.dropped, value=total_dropped)
        for reason, n in dropped.items():
            if reason:
                self.stat_update(f"dropped_{reason}", value=n)
