"""Code documents (stages/filters/code.py): every hand-written file of the sample passes; the same files minified
or joined into long lines, and a generated table, fail with the reason of the first rule they break."""

from __future__ import annotations

import pytest
from datatrove.data import Document

from stages.filters.code import CodeConfig, CodeQualityFilter, alnum_ratio, max_line_length, mean_line_length
from tests.conftest import SAMPLE

LODASH_TEMPLATE = SAMPLE / "code" / "javascript" / "lodash" / "template.js"


@pytest.fixture(scope="module")
def sample_code() -> dict[str, str]:
    files = sorted(p for p in (SAMPLE / "code").rglob("*") if p.is_file())
    return {str(p.relative_to(SAMPLE)): p.read_text(encoding="utf-8") for p in files}


def code_doc(text: str, kind: str = "code") -> Document:
    return Document(text=text, id="c", metadata={"kind": kind, "lang": "code" if kind == "code" else "en"})


def test_measures_on_a_real_file():
    text = LODASH_TEMPLATE.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert max_line_length(text) == max(map(len, lines)) <= 120
    assert mean_line_length(text) == pytest.approx(sum(map(len, lines)) / len(lines))
    assert 0.25 < alnum_ratio(text) < 1
    assert max_line_length("") == 0 and mean_line_length("") == 0.0 and alnum_ratio("") == 0.0


def test_every_sample_file_passes(sample_code):
    step = CodeQualityFilter(CodeConfig())
    assert len(sample_code) > 30
    failed = {name: step.filter(code_doc(text)) for name, text in sample_code.items()}
    assert {name: r for name, r in failed.items() if r is not True} == {}


def test_minified_file_fails_on_line_length():
    minified = "".join(line.strip() for line in LODASH_TEMPLATE.read_text(encoding="utf-8").splitlines())
    assert max_line_length(minified) > 1000
    assert CodeQualityFilter(CodeConfig()).filter(code_doc(minified)) == (False, "code_max_line_length")


def test_joined_lines_fail_on_mean_line_length():
    lines = LODASH_TEMPLATE.read_text(encoding="utf-8").splitlines()
    joined = "\n".join(" ".join(lines[i : i + 6]) for i in range(0, len(lines), 6))
    assert max_line_length(joined) <= 1000 and mean_line_length(joined) > 100
    assert CodeQualityFilter(CodeConfig()).filter(code_doc(joined)) == (False, "code_mean_line_length")


def test_generated_table_fails_on_alnum_ratio():
    table = "\n".join("+" + "+".join("-" * 8 for _ in range(6)) + "+" for _ in range(40))
    assert CodeQualityFilter(CodeConfig()).filter(code_doc(table)) == (False, "code_alnum_ratio")


def test_thresholds_come_from_config():
    text = LODASH_TEMPLATE.read_text(encoding="utf-8")
    assert CodeQualityFilter(CodeConfig(max_line_length=100)).filter(code_doc(text)) == (False, "code_max_line_length")
    assert CodeQualityFilter(CodeConfig(max_mean_line_length=30)).filter(code_doc(text)) == (
        False,
        "code_mean_line_length",
    )
    assert CodeQualityFilter(CodeConfig(min_alnum_ratio=0.9)).filter(code_doc(text)) == (False, "code_alnum_ratio")


def test_only_code_documents_are_checked():
    table = "\n".join("+" + "+".join("-" * 8 for _ in range(6)) + "+" for _ in range(40))
    assert CodeQualityFilter(CodeConfig()).filter(code_doc(table, kind="text")) is True
