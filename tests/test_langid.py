"""Language ID with the bundled lid.176: predictions on real text, the keep/remove decision, code, Traditional."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest
from datatrove.data import Document

from stages.io import reported_counters
from stages.langid import LID176, LangidConfig, LanguageId, decide, flatten, han_only, load_model
from tests.conftest import SAMPLE

# Article 1 of the Universal Declaration of Human Rights in the UN's official versions.
UDHR_EN = (
    "All human beings are born free and equal in dignity and rights. They are endowed with reason and conscience "
    "and should act towards one another in a spirit of brotherhood."
)
UDHR_ZH = "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。"
UDHR_ZH_HANT = "人人生而自由，在尊嚴和權利上一律平等。他們賦有理性和良心，並應以兄弟關係的精神相對待。"
UDHR_KO = "모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다. 인간은 천부적으로 이성과 양심을 부여받았으며 서로 형제애의 정신으로 행동하여야 한다."
# Natsume Soseki, 吾輩は猫である (1905), its first lines.
NEKO = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。"


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def tang_poem() -> str:
    """A Tang poem from the sample's notes that lid.176 labels Japanese."""
    blocks = (SAMPLE / "notes_zh.txt").read_text(encoding="utf-8").split("\n\n")
    return next(b.strip() for b in blocks if "赠郭给事" in b)


@pytest.fixture(scope="module")
def apache_manpage() -> str:
    """A Chinese man page that is mostly English options (ab, from the sample's manpages-zh)."""
    with gzip.open(SAMPLE / "books_zh.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line)["content"] for line in f]
    return next(d for d in docs if "Apache HTTP 服务器性能测试工具" in d)


def top(model, text: str) -> tuple[str, float]:
    labels, probs = model.predict(flatten(text), k=1)
    return labels[0].removeprefix("__label__"), float(probs[0])


def run_langid(docs: list[Document], **cfg) -> list:
    step = LanguageId(LangidConfig(**cfg))
    return step, step.filter_batch(docs)


def doc(text: str, kind: str = "text") -> Document:
    return Document(text=text, id=text[:10], metadata={"kind": kind, "lang": None, "lang_score": None})


def test_bundled_model_is_lid176():
    assert LID176.stat().st_size == 938_013
    digest = hashlib.sha256(LID176.read_bytes()).hexdigest()
    assert digest == "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"
    assert "CC BY-SA 3.0" in (LID176.parent / "README.md").read_text(encoding="utf-8")


def test_predictions_on_real_sentences(model):
    assert top(model, UDHR_ZH)[0] == "zh"
    assert top(model, UDHR_EN)[0] == "en"
    lang, score = top(model, UDHR_ZH_HANT)
    assert lang == "zh" and score > 0.9  # Traditional Chinese is zh for lid.176
    assert top(model, NEKO)[0] == "ja"
    assert top(model, UDHR_KO)[0] == "ko"


def test_flatten_keeps_words_apart(model):
    two_lines = "All human beings are born free\nand equal in dignity and rights."
    assert flatten(two_lines) == "All human beings are born free and equal in dignity and rights."
    with pytest.raises(ValueError):
        model.predict(two_lines)  # why flattening is needed


def test_decide_merges_aliases_and_checks_script():
    labels = ("__label__wuu", "__label__zh", "__label__en")
    assert decide(labels, [0.5, 0.3, 0.1], {}) == ("wuu", 0.5)
    lang, score = decide(labels, [0.5, 0.3, 0.1], {"wuu": "zh"})
    assert lang == "zh" and score == pytest.approx(0.8)
    # ja on Han text without kana is zh; on real Japanese it stays ja
    assert han_only("鹿门月照开烟树，忽到庞公栖隐处。", "ja") and not han_only(NEKO, "ja")
    assert han_only("《感遇・其一》 张九龄", "ja")  # ・ (a dot Chinese titles use) is not kana
    assert han_only(UDHR_ZH, "ko") and not han_only(UDHR_KO + UDHR_ZH, "ko")
    assert decide(("__label__ja", "__label__zh"), [0.6, 0.3], {}, "鹿门月照开烟树")[0] == "zh"
    assert decide(("__label__ja", "__label__zh"), [0.6, 0.3], {}, NEKO)[0] == "ja"
    assert decide((), [], {}) == ("und", 0.0)


def test_kept_and_removed_with_reasons(tang_poem, apache_manpage):
    docs = [doc(UDHR_ZH), doc(UDHR_EN), doc(UDHR_ZH_HANT), doc(NEKO), doc(tang_poem), doc(apache_manpage)]
    step, results = run_langid(docs)
    assert results[:3] == [True, True, True]
    assert results[3] == (False, "lang_not_kept") and docs[3].metadata["lang"] == "ja"
    assert results[4] is True and docs[4].metadata["lang"] == "zh"  # the Tang poem, by the script check
    assert results[5] == (False, "lang_score_low") and docs[5].metadata["lang"] == "en"
    assert docs[5].metadata["lang_score"] < 0.65
    assert all(0 < d.metadata["lang_score"] <= 1 for d in docs)
    counters = reported_counters(step)
    assert counters["langid_kept_zh"] == 3 and counters["langid_kept_en"] == 1


def test_label_is_checked_not_only_the_score(tang_poem):
    # MAP-CC kept anything scoring >= 0.4; here a confident Japanese text is removed when ja is not kept
    d = doc(NEKO)
    _, results = run_langid([d])
    assert d.metadata["lang_score"] > 0.4 and results == [(False, "lang_not_kept")]
    _, results = run_langid([doc(NEKO)], keep=["zh", "en", "ja"])
    assert results == [True]
    # without the script check, the Tang poem is "Japanese"
    d = doc(tang_poem)
    _, results = run_langid([d], han_script_check=False)
    assert results == [(False, "lang_not_kept")] and d.metadata["lang"] == "ja"


def test_thresholds_per_language(apache_manpage):
    page = doc(apache_manpage)  # lid.176: en, about 0.39
    assert run_langid([page], min_score={"zh": 0.4, "en": 0.3})[1] == [True]
    assert 0.3 < page.metadata["lang_score"] < 0.5
    assert run_langid([page], min_score={"zh": 0.4})[1] == [(False, "lang_score_low")]  # en: default 0.5
    assert run_langid([page], min_score={"zh": 0.4}, default_min_score=0.3)[1] == [True]
    with pytest.raises(ValueError, match="min_score.zh"):
        LangidConfig(min_score={"zh": 1.5})


def test_code_skips_langid():
    source = (SAMPLE / "code").rglob("*.py").__next__().read_text(encoding="utf-8")
    d = doc(source, kind="code")
    step, results = run_langid([d, doc(UDHR_ZH)])
    assert results == [True, True]
    assert d.metadata["lang"] == "code" and d.metadata["lang_score"] is None
    assert reported_counters(step)["langid_code_skipped"] == 1


def test_traditional_to_simplified_option():
    d = doc(UDHR_ZH_HANT)
    step, results = run_langid([d], to_simplified=True)
    assert results == [True] and d.text == UDHR_ZH
    assert reported_counters(step)["langid_converted_to_simplified"] == 1
    d = doc(UDHR_ZH_HANT)
    run_langid([d])  # off by default: the text is untouched
    assert d.text == UDHR_ZH_HANT


def test_batches_give_the_same_answers_as_single_documents(tang_poem, apache_manpage):
    texts = [UDHR_ZH, UDHR_EN, NEKO, tang_poem, apache_manpage, UDHR_KO]
    batch = [doc(t) for t in texts]
    _, together = run_langid(batch, batch_size=4)
    for t, b, r in zip(texts, batch, together):
        single = doc(t)
        _, alone = run_langid([single])
        assert alone == [r] and single.metadata == b.metadata


def test_step_pickles_without_its_model():
    import pickle

    step = LanguageId(LangidConfig())
    step.filter_batch([doc(UDHR_EN)])
    clone = pickle.loads(pickle.dumps(step))
    assert clone._model is None
    assert clone.filter_batch([doc(UDHR_EN)]) == [True]
