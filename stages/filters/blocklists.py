"""Optional lists, for every document: a URL blocklist file (reason `url_blocklist`; a document without a URL is
never removed by it) and a bad-word list file (reason `bad_words`)."""

from __future__ import annotations

import re
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from stages.filters.scores import Threshold


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

    thresholds = [Threshold("url_blocklist", high=0)]

    def evaluate(self, doc: Document) -> tuple[dict[str, float], str | None]:
        """1.0 for a blocked URL, 0.0 otherwise (also without a URL)."""
        if self._list is None:
            self._list = UrlBlocklist.from_file(self.path)
        blocked = self._list.blocked(doc.metadata.get("url"))
        return {"url_blocklist": float(blocked)}, "url_blocklist" if blocked else None

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return (False, "url_blocklist") if self.evaluate(doc)[1] else True


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

    @property
    def thresholds(self) -> list[Threshold]:
        return [Threshold("bad_words", high=self.max_count)]

    def evaluate(self, doc: Document) -> tuple[dict[str, float], str | None] | None:
        """The number of bad-word occurrences; None for code, which the list does not apply to."""
        if doc.metadata.get("kind") == "code":
            return None
        if not self._loaded:
            lines = Path(self.path).read_text(encoding="utf-8").splitlines()
            self._pattern = bad_words_pattern([w for w in lines if not w.lstrip().startswith("#")])
            self._loaded = True
        count = count_bad_words(doc.text, self._pattern)
        return {"bad_words": float(count)}, "bad_words" if count > self.max_count else None

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        result = self.evaluate(doc)
        return (False, "bad_words") if result is not None and result[1] else True
