"""The `pipeline` command. Every subcommand takes `--config` (default ./pipeline.toml) and `--set key=value`."""

from __future__ import annotations

import argparse
import errno
import os
import sys

from pipeline.config import STAGE_ORDER, Config, ConfigError, load_config


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="pipeline.toml", help="config file (default: ./pipeline.toml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set executor.tasks=8 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="MAP-CC style corpus builder (ingest, langid, filter, dedup, pii, decontam, tokenizer, "
        "tokenize) with an attached LLaMA-style trainer.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run one stage, or `all` stages in order")
    p.add_argument("stage", choices=[*STAGE_ORDER, "all"])
    p.add_argument("--force", action="store_true", help="redo the stage(s) from scratch")
    p.add_argument(
        "--wait",
        action="store_true",
        help="slurm: wait for the submitted jobs, then report failed tasks with their logs (exit 1 if any)",
    )
    _common(p)

    for name, help_ in [
        ("status", "each stage's state and counts"),
        ("verify", "check that no document was lost: in = kept + removed, unique ids, readable shards"),
        ("report", "write a Markdown + PNG report of the run"),
    ]:
        p = sub.add_parser(name, help=help_)
        _common(p)
        if name == "verify":
            p.add_argument("--deep", action="store_true", help="also read every row of every shard")

    p = sub.add_parser("sample", help="print a few documents a stage removed for a reason (or kept), with their scores")
    p.add_argument("stage", choices=STAGE_ORDER)
    p.add_argument("--reason", help="removal reason, e.g. zh_entropy (default: any reason)")
    p.add_argument("-n", type=int, default=5, help="documents to print (default 5)")
    p.add_argument("--kept", action="store_true", help="draw from the stage's kept documents instead")
    p.add_argument("--seed", type=int, help="random seed of the draw (default: run.seed)")
    p.add_argument("--chars", type=int, default=300, help="characters of text to print per document (default 300)")
    _common(p)

    p = sub.add_parser("config", help="print the effective configuration (after --set) as annotated TOML")
    p.add_argument("--defaults", action="store_true", help="print every key with its default and documentation instead")
    _common(p)

    p = sub.add_parser("train", help="train: pretrain, sft or dpo")
    p.add_argument("mode", choices=["pretrain", "sft", "dpo"])
    _common(p)

    p = sub.add_parser(
        "eval", help="bits per byte, k-shot multiple choice, BLEU/ROUGE-L of a run or export; writes eval.json there"
    )
    p.add_argument("--from", dest="run_dir", required=True)
    _common(p)

    p = sub.add_parser("generate", help="sample text from a run or export: one prompt, or a JSONL file of them")
    p.add_argument("--from", dest="run_dir", required=True)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="one prompt; the answer goes to stdout")
    what.add_argument("--input", help="JSONL, one object a line with `prompt` or `messages`")
    p.add_argument("--output", help="with --input: JSONL answers, one a line in input order; a rerun resumes")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _common(p)

    p = sub.add_parser("dpo-pairs", help="preference pairs: SFT reference answers chosen, a weak model's rejected")
    p.add_argument("--from", dest="run_dir", required=True, help="the weak model: a run folder, checkpoint or export")
    p.add_argument("--input", required=True, help="SFT data: JSONL/JSON/Parquet with `messages` or Alpaca fields")
    p.add_argument("--output", required=True, help="JSONL pairs {prompt, chosen, rejected, lang}")
    p.add_argument(
        "--max-similarity", type=float, default=0.9, help="drop pairs whose answers are this similar (difflib ratio)"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _common(p)

    p = sub.add_parser("export", help="export a run as a Hugging Face LlamaForCausalLM folder")
    p.add_argument("--from", dest="run_dir", required=True)
    p.add_argument("--to", dest="hf_dir", required=True)
    _common(p)

    p = sub.add_parser("quality", help="quality classifier tools: train")
    qsub = p.add_subparsers(dest="quality_command", required=True)
    q = qsub.add_parser(
        "train",
        help="train the quality stage's fastText classifier: a reference set (positive) against raw pages (negative)",
    )
    q.add_argument("--positive", required=True, help="folder, glob or file of Parquet/JSONL(.gz) documents to keep")
    q.add_argument("--negative", required=True, help="folder, glob or file of Parquet/JSONL(.gz) raw documents")
    q.add_argument("--out", required=True, help="the model file (M.bin); M.bin.json gets sizes, held-out metrics")
    q.add_argument("--positive-sources", help="comma-separated: only rows whose `source` column is one of these")
    q.add_argument("--negative-sources", help="comma-separated: only rows whose `source` column is one of these")
    q.add_argument("--text-field", default="text", help="column or JSON field of the text (default: text)")
    q.add_argument("--id-field", default="id", help="column or JSON field of the id (default: id; else file:row)")
    q.add_argument(
        "--normalization",
        choices=["han_chars", "whitespace"],
        default="han_chars",
        help="han_chars: every Han character a token (default); whitespace: DCLM's space-separated tokens",
    )
    # 10 epochs at lr 0.5: on the sample corpus (held-out ROC AUC 0.99) 5 epochs at 0.1 left every score within
    # 0.49-0.51 (AUC 0.77); large sets need fewer passes (DCLM's fastText ran fastText's defaults)
    q.add_argument("--epochs", type=int, default=10)
    q.add_argument("--lr", type=float, default=0.5)
    q.add_argument("--wordNgrams", dest="word_ngrams", type=int, default=2, help="token n-grams (DCLM: 2)")
    q.add_argument("--dim", type=int, default=32, help="vector size (model size: (words + bucket) x dim x 4 B)")
    q.add_argument("--min-count", type=int, default=2, help="tokens seen fewer times are dropped")
    q.add_argument(
        "--bucket", type=int, default=2_000_000, help="hash buckets of the n-grams (fastText's default; fewer diverged)"
    )
    q.add_argument("--holdout", type=float, default=0.1, help="share held out by id hash for the metrics")
    q.add_argument("--seed", type=int, help="default: run.seed of the config")
    q.add_argument(
        "--no-balance", dest="balance", action="store_false", help="do not repeat the smaller set to the larger's size"
    )
    _common(q)

    p = sub.add_parser(
        "ablate", help="train the same small model on each stage's output; compare them on held-out text ([ablate])"
    )
    p.add_argument("--force", action="store_true", help="redo variants whose settings changed (else refused)")
    _common(p)

    p = sub.add_parser("tokenizer", help="tokenizer tools: merge, compare")
    tsub = p.add_subparsers(dest="tokenizer_command", required=True)
    m = tsub.add_parser("merge", help="append the pieces of B missing from A (Chinese-LLaMA-Alpaca)")
    m.add_argument("--base", required=True)
    m.add_argument("--add", required=True)
    m.add_argument("--out", required=True)
    _common(m)
    c = tsub.add_parser("compare", help="characters and bytes per token of several models on a text file")
    c.add_argument("models", nargs="+")
    c.add_argument("--text", required=True)
    _common(c)
    return parser


DEFAULTS_TITLE = """`pipeline config --defaults`: every key with its default, documented, generated from the config models.
Valid TOML: loaded as a config file it gives exactly the defaults. A commented-out key is unset by default.
A config file needs only the keys it changes (and its [[sources]])."""
EFFECTIVE_TITLE = """`pipeline config`: the effective configuration of {file} {overrides}
Every key, whether set in the file or left at its default, documented. Valid TOML: it loads back to the same
configuration. A commented-out key is unset. Relative paths are as written: they resolve against the folder
of that file."""


def check_workdir_writable(cfg: Config) -> None:
    """Stops a run before any work when run.workdir cannot be written (read-only, not a folder, no permission),
    with the key and the reason, instead of a traceback from deep inside the first writer."""
    workdir = cfg.workdir
    probe = workdir / f".write-test-{os.getpid()}"
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"{cfg.file}: run.workdir: cannot write to {workdir}: {e.strerror or e}") from None


def quality_train_command(cfg: Config, args: argparse.Namespace) -> int:
    """`pipeline quality train`: reads both sets, trains, prints the held-out metrics."""
    from stages.quality import read_documents, train_classifier  # see main(): only this command uses them

    def sources(arg: str | None) -> list[str] | None:
        return [s.strip() for s in arg.split(",") if s.strip()] if arg else None

    try:
        positive = list(read_documents(args.positive, args.text_field, args.id_field, sources(args.positive_sources)))
        negative = list(read_documents(args.negative, args.text_field, args.id_field, sources(args.negative_sources)))
        summary = train_classifier(
            positive,
            negative,
            args.out,
            normalization=args.normalization,
            epochs=args.epochs,
            lr=args.lr,
            word_ngrams=args.word_ngrams,
            dim=args.dim,
            min_count=args.min_count,
            bucket=args.bucket,
            seed=cfg.run.seed if args.seed is None else args.seed,
            holdout_share=args.holdout,
            balance=args.balance,
        )
    except ValueError as e:
        raise ConfigError(f"quality train: {e}") from None
    sizes, m = summary["documents"], summary["held_out"]
    print(
        f"quality train: {sizes['positive']['train']:,} positive / {sizes['negative']['train']:,} negative training "
        f"documents; held out {m['positive']:,} + {m['negative']:,}: accuracy {m['accuracy']}, precision "
        f"{m['precision']}, recall {m['recall']} (at 0.5), ROC AUC {m['roc_auc']}; {summary['seconds']} s"
    )
    print(f"model: {args.out} ({summary['model_bytes'] / 2**20:.1f} MiB); summary: {args.out}.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Each command imports what only it uses in its own branch: every `pipeline` process pays for this module's
    # imports before its first document (process start, BENCHMARKS.md "Third pass").
    from pipeline.runner import StageError, TaskFailure

    try:
        if args.command == "config" and args.defaults:
            from pipeline.config_toml import to_toml

            if args.overrides:
                raise ConfigError("config --defaults prints the code's defaults; it takes no --set")
            print(to_toml(Config(), DEFAULTS_TITLE), end="")
            return 0
        cfg = load_config(args.config, args.overrides, check_paths=args.command in ("run", "ablate"))
        if args.command == "config":
            from pipeline.config_toml import to_toml

            title = EFFECTIVE_TITLE.format(file=cfg.file, overrides=" ".join(f"--set {o}" for o in args.overrides))
            print(to_toml(cfg, title), end="")
            return 0
        if args.command == "run":
            from pipeline import runner

            check_workdir_writable(cfg)
            if args.stage == "all":
                results = runner.run_all(cfg, force=args.force, wait=args.wait)
            else:
                results = [runner.run_stage(cfg, args.stage, force=args.force, wait=args.wait)]
            failed = [f for r in results if r for f in r.get("failed_files", [])]
            if failed:
                print(f"pipeline: {len(failed)} input file(s) could not be read:", file=sys.stderr)
                for f in failed:
                    print(f"  {f['file']}: {f['error']}", file=sys.stderr)
                return 1
            return 0
        if args.command == "status":
            from pipeline.status import print_status

            print_status(cfg)
            return 0
        if args.command == "verify":
            from pipeline.verify import verify

            problems = verify(cfg, deep=args.deep)
            return 1 if problems else 0
        if args.command == "sample":
            from pipeline.sample import format_documents, sample_documents

            df = sample_documents(cfg, args.stage, args.reason, args.n, kept=args.kept, seed=args.seed)
            print(format_documents(df, args.chars), end="")
            return 0
        if args.command == "report":
            from pipeline.report import write_report

            path = write_report(cfg)
            print(f"report written to {path}")
            return 0
        # train.cli is imported only by the commands that need it: it brings torch (measured: `import train.cli`
        # 7.0 s against 2.6 s for `import pipeline.config` on the 2-core dev machine), which corpus commands never use.
        if args.command == "train":
            from pipeline.benchmark_check import finetune_benchmark_check
            from train.cli import train_command

            check = finetune_benchmark_check(cfg) if args.mode in ("sft", "dpo") else None
            try:
                return train_command(cfg, args.mode, benchmark_check=check)
            except NotImplementedError as e:
                print(f"pipeline: {e}", file=sys.stderr)
                return 2
        if args.command == "ablate":  # imported here for the reason above: it trains
            from pipeline.ablate import ablate, ablate_dir, print_results

            check_workdir_writable(cfg)
            print_results(ablate(cfg, force=args.force), ablate_dir(cfg))
            return 0
        if args.command == "eval":
            from train.cli import eval_command

            return eval_command(cfg, args.run_dir)
        if args.command == "generate":
            from train.cli import generate_command

            if (args.input is None) != (args.output is None):
                raise ConfigError("generate: --input and --output go together")
            return generate_command(cfg, args.run_dir, args.prompt, args.input, args.output, args.progress)
        if args.command == "dpo-pairs":
            from train.cli import dpo_pairs_command

            return dpo_pairs_command(cfg, args.run_dir, args.input, args.output, args.max_similarity, args.progress)
        if args.command == "export":
            from train.cli import export_command

            return export_command(cfg, args.run_dir, args.hf_dir)
        if args.command == "quality":
            return quality_train_command(cfg, args)
        if args.command == "tokenizer":
            from model.vocab import compare_command, merge_command

            if args.tokenizer_command == "merge":
                return merge_command(args.base, args.add, args.out)
            return compare_command(args.models, args.text)
    except TaskFailure as e:  # the work ran and failed: 1, as a failed local task exits
        print(f"pipeline: {e}", file=sys.stderr)
        return 1
    except (ConfigError, StageError) as e:
        print(f"pipeline: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        # a folder that became unwritable mid-run (permissions, read-only or full file system): say which file
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC) or not e.filename:
            raise
        print(f"pipeline: cannot write {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
