"""Language identification with fastText's lid.176 (the model MAP-CC used), loaded offline.

Every document gets `lang` and `lang_score`. A document is kept when its predicted language (after `aliases`) is in
`keep` and its score reaches that language's threshold; MAP-CC only compared the score with 0.4, whatever the
language, so confident Japanese or Korean passed. Removed documents carry `lang_not_kept` or `lang_score_low` and
their predicted language. `kind = "code"` documents are not predicted: they are kept with `lang = "code"`.

The model is `stages/assets/lid.176.ftz` (the compressed lid.176, CC BY-SA 3.0, see `stages/assets/README.md`);
`model` points at another fastText LID model such as the full `lid.176.bin`.
"""

from __future__ import annotations

import re
from pathlib import Path

import fasttext
from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from opencc import OpenCC

from model.han import contains_han
from stages.base import Phase, StageContext
from stages.config.langid import LangidConfig
from stages.io import ReportsCounters

ASSETS = Path(__file__).resolve().parent / "assets"
LID176 = ASSETS / "lid.176.ftz"
LABEL_PREFIX = "__label__"


def flatten(text: str) -> str:
    """One line for fastText (its predict refuses newlines); newlines become spaces so English words stay apart."""
    return text.replace("\n", " ")


def load_model(path: str | Path | None = None):
    fasttext.FastText.eprint = lambda *a, **k: None  # silences the load_model deprecation warning
    return fasttext.load_model(str(path or LID176))


# Kana (without the middle dot ・, which Chinese titles use) and hangul.
_KANA = re.compile(r"[\u3040-\u309f\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")


def han_only(text: str, lang: str) -> bool:
    """True when a ja (ko) label is impossible: Han characters and not one kana (hangul)."""
    script = _KANA if lang == "ja" else _HANGUL
    return contains_han(text) and script.search(text) is None


def decide(labels: tuple[str, ...], probs, aliases: dict[str, str], text: str | None = None) -> tuple[str, float]:
    """The winning language and its score from fastText's top-k labels, summing the labels `aliases` merges.
    With `text`, ja and ko labels on Han text without kana or hangul count as zh (see `han_script_check`)."""
    scores: dict[str, float] = {}
    script_checked: dict[str, bool] = {}
    for label, p in zip(labels, probs):
        lang = label.removeprefix(LABEL_PREFIX)
        lang = aliases.get(lang, lang)
        if text is not None and lang in ("ja", "ko"):
            if lang not in script_checked:
                script_checked[lang] = han_only(text, lang)
            if script_checked[lang]:
                lang = "zh"
        scores[lang] = scores.get(lang, 0.0) + float(p)
    if not scores:
        return "und", 0.0
    lang = max(scores, key=scores.__getitem__)
    return lang, min(scores[lang], 1.0)


class LanguageId(ReportsCounters, BaseFilter):
    """Predicts every document's language in batches; removes documents of other languages or with low scores."""

    name = "🌍 lid.176"
    counter_prefixes = ("langid_",)

    def __init__(self, cfg: LangidConfig, model_path: str | Path | None = None, exclusion_writer=None):
        super().__init__(exclusion_writer, batch_size=cfg.batch_size)
        self.cfg = cfg
        self.model_path = str(model_path) if model_path else None
        self.keep = set(cfg.keep)
        self._model = None
        self._t2s = None

    def __getstate__(self):  # the fastText model is not picklable: each worker loads its own
        state = self.__dict__.copy()
        state["_model"] = state["_t2s"] = None
        return state

    @property
    def model(self):
        if self._model is None:
            self._model = load_model(self.model_path)
        return self._model

    def threshold(self, lang: str) -> float:
        return self.cfg.min_score.get(lang, self.cfg.default_min_score)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        results: list[bool | tuple[bool, str]] = [True] * len(batch)
        texts, where = [], []
        for i, doc in enumerate(batch):
            if doc.metadata.get("kind") == "code":
                doc.metadata["lang"], doc.metadata["lang_score"] = "code", None
                self.stat_update("langid_code_skipped")
            else:
                texts.append(flatten(doc.text))
                where.append(i)
        if not texts:
            return results
        labels, probs = self.model.predict(texts, k=self.cfg.top_k, threshold=0.0)
        for k, (i, lab, prob) in enumerate(zip(where, labels, probs)):
            doc = batch[i]
            lang, score = decide(lab, prob, self.cfg.aliases, texts[k] if self.cfg.han_script_check else None)
            doc.metadata["lang"], doc.metadata["lang_score"] = lang, score
            if lang not in self.keep:
                results[i] = (False, "lang_not_kept")
            elif score < self.threshold(lang):
                results[i] = (False, "lang_score_low")
            else:
                self.stat_update(f"langid_kept_{lang}")
                if lang == "zh" and self.cfg.to_simplified:
                    self._to_simplified(doc)
        return results

    def _to_simplified(self, doc: Document) -> None:
        if self._t2s is None:
            self._t2s = OpenCC("t2s")
        converted = self._t2s.convert(doc.text)
        if converted != doc.text:
            doc.text = converted
            self.stat_update("langid_converted_to_simplified")


def build(ctx: StageContext) -> list[Phase]:
    cfg: LangidConfig = ctx.stage_cfg
    model_path = None
    if cfg.model:
        model_path = ctx.cfg.path(cfg.model)
        if not model_path.is_file():
            raise ValueError(f"{ctx.cfg.file}: stages.langid.model: no such file: {model_path}")
    elif not LID176.is_file():
        raise ValueError(f"the bundled language-ID model is missing: {LID176}")
    # `lang` and `lang_score` are columns of the base schema: langid adds none.
    return [ctx.standard_phase([LanguageId(cfg, model_path)])]
