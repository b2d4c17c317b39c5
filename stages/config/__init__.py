"""The stage config classes (`[stages.<name>]`, `[tokenizer]`, `[tokens]`), one module per stage, apart from the
stages themselves.

pipeline/config.py builds the whole `Config` from these. They import pydantic and nothing heavier, so loading a
config (every `pipeline` command, before its first document) does not import the stages' libraries (jieba, regex,
fastText, SentencePiece, pyarrow, datatrove's filters, ...): a command imports only the stage module it runs
(BENCHMARKS.md, "Fourth pass: process start"). Each stage module imports its class from here, and the old name
(`stages.dedup.DedupConfig`, ...) stays importable from it.
"""
