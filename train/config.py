"""The `[model]`, `[train.*]` and `[eval]` sections of pipeline.toml, as pydantic models.

pipeline/config.py composes these into the whole `Config`; nothing here imports pipeline/.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator

from model.config import PRESETS


class ModelSection(BaseModel):
    """`[model]`: a named preset, and any of its fields replaced. Vocabulary size comes from the tokenizer."""

    model_config = ConfigDict(extra="forbid", strict=True)

    preset: str = "tiny"
    """tiny (CPU tests, demo), 125m, 350m or ct-llm-2b (CT-LLM's architecture)."""
    n_layer: PositiveInt | None = None
    """Transformer blocks; None takes the preset's."""
    n_head: PositiveInt | None = None
    """Attention (query) heads."""
    n_kv_head: PositiveInt | None = None
    """Key/value heads; fewer than n_head is grouped-query attention."""
    d_model: PositiveInt | None = None
    """Hidden size."""
    ffn_hidden: PositiveInt | None = None
    """SwiGLU inner width."""
    max_seq_len: PositiveInt | None = None
    """Context length the RoPE tables are built for."""
    rope_base: float | None = Field(default=None, gt=1)
    """RoPE theta (10000 in LLaMA and CT-LLM)."""
    tie_embeddings: bool | None = None
    """Share the input embedding with the output layer (CT-LLM: untied)."""
    norm_eps: PositiveFloat | None = None
    """RMSNorm epsilon."""
    vocab_multiple: PositiveInt = 1
    """Pad the embedding rows up to a multiple of this (64 or 128 speeds up GPU matmuls); 1 = no padding."""

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        if v not in PRESETS:
            raise ValueError(f"unknown preset {v!r}; choose one of {', '.join(PRESETS)}")
        return v

    def overrides(self) -> dict:
        """Preset fields set in the config (None = keep the preset's)."""
        return self.model_dump(exclude={"preset", "vocab_multiple"}, exclude_none=True)


class _RunSection(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    max_steps: PositiveInt = 1000
    """Last optimizer step; also the length of the LR schedule."""
    checkpoint_every: PositiveInt = 200
    """Optimizer steps between checkpoints; a run also saves at its last step."""
    seed: int = Field(default=1337, ge=0)
    """Seed for the initial weights and the data order."""


class _LoopSection(_RunSection):
    """What every training loop takes: batch, optimizer, schedule, logging, device. Sections redeclare a field
    only where their default differs."""

    batch_size: PositiveInt = 8
    """Sequences (rows) per micro-batch per process."""
    grad_accum: PositiveInt = 1
    """Micro-batches per optimizer step; global batch = batch_size * grad_accum * processes."""
    lr: PositiveFloat = 1e-4
    """Peak learning rate."""
    min_lr: float = Field(default=0.0, ge=0)
    """Floor the schedule decays to."""
    warmup: int = Field(default=0, ge=0)
    """Linear warmup steps."""
    schedule: Literal["cosine", "wsd"] = "cosine"
    """cosine: warmup then cosine to min_lr at max_steps. wsd: warmup, constant, then linear decay to min_lr over
    the last decay_fraction of the steps."""
    decay_fraction: float = Field(default=0.2, gt=0, le=1)
    """wsd only: share of max_steps spent decaying."""
    weight_decay: float = Field(default=0.0, ge=0)
    """AdamW weight decay on matrices (embeddings and linear weights), never on norms."""
    beta1: float = Field(default=0.9, ge=0, lt=1)
    """AdamW beta1."""
    beta2: float = Field(default=0.95, ge=0, lt=1)
    """AdamW beta2."""
    eps: PositiveFloat = 1e-8
    """AdamW epsilon."""
    grad_clip: float = Field(default=1.0, ge=0)
    """Clip the global gradient norm to this; 0 = no clipping."""
    log_every: PositiveInt = 10
    """Steps between log.jsonl rows (the first and last steps are always logged)."""
    keep_last: PositiveInt = 2
    """Checkpoints kept in the run folder (older ones are deleted)."""
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on a GPU that supports it, fp32 otherwise (and always on CPU)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: cuda when available."""
    progress: bool = True
    """Show a progress bar."""

    @model_validator(mode="after")
    def _consistent_schedule(self):
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} is above lr {self.lr}")
        if self.warmup > self.max_steps:
            raise ValueError(f"warmup {self.warmup} is longer than max_steps {self.max_steps}")
        return self


class LoraSection(BaseModel):
    """`[train.pretrain.lora]`, `[train.sft.lora]`, `[train.dpo.lora]`: low-rank adapters instead of full training."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool = False
    """Train LoRA adapters on a frozen model (merged into the weights on export)."""
    rank: PositiveInt = 8
    """Adapter rank r (Chinese-LLaMA-Alpaca: 8)."""
    alpha: PositiveFloat = 32.0
    """Scale numerator: the update is (alpha / rank) * B @ A (Chinese-LLaMA-Alpaca: 32)."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the adapter input (Chinese-LLaMA-Alpaca: 0.05)."""
    targets: list[Literal["q", "k", "v", "o", "gate", "up", "down"]] = ["q", "k", "v", "o", "gate", "up", "down"]
    """Projections that get adapters."""
    train_embeddings: bool = False
    """Also train the embeddings and output layer in full (Chinese-LLaMA's stage 2 after growing the vocabulary)."""


class PretrainSection(_LoopSection):
    """`[train.pretrain]`: next-token pretraining on the Megatron token shards of the tokenize stage."""

    out: str = "train/pretrain"
    """Run folder: checkpoints, log.jsonl, loss.png. Relative paths resolve against run.workdir (with the corpus
    the run was trained on). Rerunning with the same folder resumes from its latest checkpoint."""
    data: list[str] = []
    """Dataset folders (each holding meta.json and train-/valid- shards): names under <run.workdir>/tokenize/ or
    paths. Empty = every folder under <run.workdir>/tokenize/ with a meta.json."""
    weights: dict[str, float] = {}
    """Mixture weight per dataset folder name, replacing the `weight` in its meta.json."""
    tokenizer: str | None = None
    """SentencePiece model the shards were written with; None = <run.workdir>/tokenizer/tokenizer.model, or with
    init_from the start model's tokenizer. With init_from, a tokenizer merged (`pipeline tokenizer merge`) onto the
    start model's grows its embeddings and output layer (new rows = mean of old rows)."""
    init_from: str | None = None
    """Continued pretraining: a run folder (its latest checkpoint), a checkpoint file, or a Hugging Face Llama folder
    (single-file or sharded safetensors, with tokenizer.model), relative to the config file. The run starts at step 0
    from those weights; [model] is not used (the architecture is the start model's). A run folder that already holds
    a checkpoint resumes from it instead. None = a new model from [model]."""
    embedding_only_steps: int = Field(default=0, ge=0)
    """With init_from: train only the embeddings and output layer for this many first steps (Chinese-LLaMA's
    stage 1 after vocabulary growth)."""
    lora: LoraSection = Field(default_factory=LoraSection)
    """With init_from: LoRA adapters on the blocks (Chinese-LLaMA's stage 2: with train_embeddings = true the
    embeddings and output layer train in full); merged into the weights on export."""
    seq_len: PositiveInt | None = None
    """Tokens per training sequence (each sample is seq_len + 1 tokens); None = the model's max_seq_len (with
    init_from: the length the start model was trained with)."""
    lr: PositiveFloat = 2e-4
    """Peak learning rate (CT-LLM: 2e-4)."""
    min_lr: float = Field(default=2e-5, ge=0)
    """Floor the schedule decays to (CT-LLM: 2e-5)."""
    warmup: int = Field(default=100, ge=0)
    """Linear warmup steps (CT-LLM: 2000)."""
    weight_decay: float = Field(default=0.1, ge=0)
    """AdamW weight decay on matrices (embeddings and linear weights), never on norms (CT-LLM: 0.1)."""
    eval_every: int = Field(default=100, ge=0)
    """Steps between validation passes (and at the last step); 0 = only at the last step."""
    eval_batches: int = Field(default=10, ge=0)
    """Micro-batches of batch_size sequences per process per validation pass (a fixed set of
    eval_batches * batch_size * processes sequences from the valid shards); 0 = no validation."""
    keep_last: PositiveInt = 3
    """Checkpoints kept in the run folder (older ones are deleted)."""
    compile: bool = False
    """torch.compile the model."""
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on a GPU that supports it, fp32 otherwise (and always on CPU)."""
    activation_checkpointing: bool = False
    """Recompute each block in the backward pass: less memory, about a third more compute."""
    fsdp: bool = False
    """Shard parameters, gradients and optimizer state over processes (FSDP2) instead of DDP."""

    @model_validator(mode="after")
    def _weights(self) -> PretrainSection:
        for name, w in self.weights.items():
            if w < 0:
                raise ValueError(f"weight of {name!r} is negative: {w}")
        return self

    @model_validator(mode="after")
    def _continued_pretraining(self) -> PretrainSection:
        if self.init_from is None and (self.embedding_only_steps or self.lora.enabled):
            raise ValueError("embedding_only_steps and lora.enabled need init_from (a model to continue from)")
        if self.fsdp and (self.embedding_only_steps or self.lora.enabled):
            # FSDP2 shards a block's parameters together; switching which of them train mid-run is not tried here
            raise ValueError("fsdp = true is not supported with embedding_only_steps or lora.enabled; use DDP")
        return self


class _FinetuneSection(_LoopSection):
    """What SFT and DPO share: where to start, data, optimiser, schedule, LoRA."""

    init_from: str | None = None
    """Run folder (its latest checkpoint), checkpoint file or exported Hugging Face folder to start from, relative to
    the config file; None = the previous stage's run (train.pretrain.out for SFT, train.sft.out for DPO)."""
    data: list[str] = []
    """Files (.jsonl, .json, .parquet) or folders of them."""
    template: Literal["chat", "alpaca"] = "chat"
    """chat: the tokenizer's control tokens <|system|> <|user|> <|assistant|> <|end|>; alpaca: Chinese-LLaMA-Alpaca's
    plain-text prompt ("### Instruction: ... ### Response: "), answers end with EOS."""
    system: str | None = None
    """System message put before every example that has none (chat template only)."""
    lang_field: str = "lang"
    """Column naming an example's language; examples without it are guessed from their share of Han characters."""
    zh_en_ratio: str = "all"
    """Mix by language as CT-LLM's SFT experiments: "A:B" (e.g. "2:1") keeps every Chinese example and samples
    English to A:B (or Chinese, when English runs short); "zh" or "en" keeps one language; "all" keeps everything."""
    seq_len: PositiveInt | None = None
    """Longest example in tokens (longer ones are cut); None = the start checkpoint's training length."""
    lora: LoraSection = Field(default_factory=LoraSection)
    """LoRA adapters."""
    decontaminate: bool = True
    """When stages.decontam is enabled: drop examples holding a test item of its [[stages.decontam.benchmarks]]
    (the corpus stage's index, thresholds and per-field flagging; counted in run.json under benchmark_check)."""

    @field_validator("zh_en_ratio")
    @classmethod
    def _ratio(cls, v: str) -> str:
        parse_ratio(v)
        return v


def parse_ratio(v: str) -> tuple[float, float] | str:
    """ "2:1" -> (2.0, 1.0); "zh", "en", "all" stay as they are."""
    v = v.strip().lower()
    if v in ("zh", "en", "all"):
        return v
    parts = v.split(":")
    try:
        a, b = (float(x) for x in parts)
    except ValueError:
        raise ValueError(f"zh_en_ratio {v!r}: expected A:B (e.g. 2:1), zh, en or all") from None
    if a <= 0 or b <= 0:
        raise ValueError(f"zh_en_ratio {v!r}: both parts must be positive (use zh or en for one language)")
    return a, b


class SftSection(_FinetuneSection):
    """`[train.sft]`: supervised fine-tuning on chat or Alpaca-form examples, loss on the assistant's tokens only."""

    out: str = "train/sft"
    """Run folder (relative to run.workdir): checkpoints, log.jsonl, run.json, loss.png; a rerun resumes from it."""
    max_steps: PositiveInt = 100
    """Last optimizer step; also the length of the LR schedule."""
    checkpoint_every: PositiveInt = 50
    """Optimizer steps between checkpoints; a run also saves at its last step."""
    data: list[str] = ["data/sample/sft"]
    """Files (.jsonl, .json, .parquet) or folders of them: `messages` [{role, content}] or instruction/input/output."""
    zh_en_ratio: str = "2:1"
    """CT-LLM's released SFT model used 2:1 (see _FinetuneSection.zh_en_ratio)."""
    packing: bool = True
    """Pack several examples into each row, each with its own positions and no attention across examples."""
    tokenizer: str | None = None
    """A merged tokenizer (`pipeline tokenizer merge`) that extends the start checkpoint's: the model's embeddings
    and output layer grow to it (new rows = mean of old rows). None = the checkpoint's tokenizer."""
    embedding_only_steps: int = Field(default=0, ge=0)
    """Train only the embeddings and output layer for this many first steps (Chinese-LLaMA's stage 1)."""


class DpoSection(_FinetuneSection):
    """`[train.dpo]`: direct preference optimisation on {prompt, chosen, rejected} pairs."""

    out: str = "train/dpo"
    """Run folder."""
    max_steps: PositiveInt = 50
    """Last optimizer step."""
    checkpoint_every: PositiveInt = 25
    """Optimizer steps between checkpoints."""
    data: list[str] = ["data/sample/dpo"]
    """Files or folders of {prompt, chosen, rejected} rows (prompt: text, or a list of chat messages)."""
    batch_size: PositiveInt = 4
    """Pairs per micro-batch (CT-LLM: 4)."""
    lr: PositiveFloat = 1e-6
    """Peak learning rate (CT-LLM: 1e-6)."""
    weight_decay: float = Field(default=0.1, ge=0)
    """AdamW weight decay (CT-LLM: 0.1)."""
    beta: PositiveFloat = 0.1
    """Strength of the KL penalty towards the reference (TRL default 0.1; CT-LLM 0.5)."""
    sft_weight: float = Field(default=0.0, ge=0)
    """Weight of an added NLL loss on the chosen answers (per token); 0 = pure DPO."""
    precompute_reference: bool = True
    """Compute the reference model's log-probs once before training and free it; false keeps a frozen copy."""
    max_prompt_len: PositiveInt | None = None
    """Longest prompt in tokens (cut from the left); None = half of seq_len."""


class TrainSection(BaseModel):
    """The trainer's runs: pretraining, then SFT, then DPO."""

    model_config = ConfigDict(extra="forbid", strict=True)

    pretrain: PretrainSection = Field(default_factory=PretrainSection)
    sft: SftSection = Field(default_factory=SftSection)
    dpo: DpoSection = Field(default_factory=DpoSection)


class McTaskSection(BaseModel):
    """One `[[eval.tasks]]` table: a multiple-choice file in C-Eval/CMMLU/MMLU layout."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    """Task name in the results table."""
    path: str
    """.jsonl, .csv or .parquet with `question`, option columns A, B, C, D, ... (as many as an item has, up to Z;
    empty = absent) and `answer` (a letter); or `choices` (a list) and `answer` (an index). An optional `subject` (or
    `task`) column gives per-subject accuracy and the few-shot examples' subject."""
    lang: Literal["auto", "zh", "en"] = "auto"
    """Prompt language (答案： or Answer:); auto guesses from each question."""
    shots: int = Field(default=0, ge=0)
    """Solved examples before each question (k-shot, C-Eval/MMLU layout: 5 in their papers); 0 = zero-shot."""
    dev: str | None = None
    """File (same layout) the few-shot examples come from, those of the question's subject first (C-Eval's and
    MMLU's dev split); None = the first `shots` items of each subject of the task, which are then not scored."""


class GenTaskSection(BaseModel):
    """One `[[eval.generation]]` table: prompts answered greedily, scored with BLEU and ROUGE-L against references."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    """Task name in the results table."""
    path: str
    """.jsonl, .json or .parquet rows with `prompt` (text or chat messages; or Alpaca `instruction`/`input`) and
    `reference` (text) or `references` (a list); Alpaca `output` counts as the reference."""
    lang: Literal["auto", "zh", "en"] = "auto"
    """Scoring language: zh scores by characters (sacrebleu tokenize zh, ROUGE-L over characters), en by words;
    auto takes each row's `lang`, else guesses from its reference."""
    max_new_tokens: PositiveInt = 64
    """Tokens generated per answer at most."""
    chat: Literal["auto", "on", "off"] = "auto"
    """on: prompts go through the chat template; off: plain text; auto: on for SFT/DPO runs."""


class GenerateSection(BaseModel):
    """`[eval.generate]`: `pipeline generate --from RUN_DIR --prompt TEXT`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_new_tokens: PositiveInt = 128
    """Tokens to sample at most (stops earlier at <|end|> or EOS)."""
    temperature: float = Field(default=0.8, ge=0)
    """Softmax temperature; 0 = greedy."""
    top_k: int = Field(default=50, ge=0)
    """Sample among the k most likely tokens; 0 = all."""
    top_p: float = Field(default=0.95, gt=0, le=1)
    """Nucleus sampling: the smallest set of tokens holding this much probability; 1 = all."""
    chat: Literal["auto", "on", "off"] = "auto"
    """on: wrap the prompt in the SFT chat template; off: continue the text as is; auto: on for SFT/DPO runs."""
    seed: int = Field(default=0, ge=0)
    """Sampling seed (with --input, line n of the file samples with seed + n, so batching and resuming do not
    change the answers)."""
    repetition_penalty: float = Field(default=1.0, gt=0)
    """CTRL's penalty on tokens already in the context: above 1 makes repeats less likely; 1 = off."""
    stop: list[str] = Field(default_factory=list)
    """Stop strings: generation ends at the first of them, which is cut from the answer."""
    batch_size: PositiveInt = 8
    """Prompts generated together (left-padded) by `pipeline generate --input`."""
    cache: bool = True
    """Use the KV cache (each new token costs one step instead of a rerun of the context)."""


class EvalSection(BaseModel):
    """`[eval]`: `pipeline eval --from RUN_DIR` (a run folder, a checkpoint file or an exported HF folder)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    batches: PositiveInt = 20
    """Micro-batches of validation sequences to average the loss over."""
    batch_size: PositiveInt = 8
    """Sequences per micro-batch."""
    seq_len: PositiveInt | None = None
    """Tokens per sequence; None = the length the checkpoint was trained with."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to run the evaluation."""
    data: list[str] = []
    """Token dataset folders whose valid shards give the loss; empty = those the model was pretrained on."""
    text: list[str] = []
    """Held-out text files (.txt blocks, .jsonl/.parquet with `text` and optional `lang`) for loss and bits per byte
    per language with the model's own tokenizer: comparable across tokenizers."""
    tasks: list[McTaskSection] = []
    """Multiple-choice tasks scored by log-likelihood."""
    generation: list[GenTaskSection] = []
    """Generation tasks (greedy decoding, eval.generate's repetition_penalty and stop strings), scored with BLEU
    and ROUGE-L."""
    mc_mode: Literal["letter", "content"] = "letter"
    """letter: compare the log-likelihood of each answer letter after the lettered options (MMLU/C-Eval style);
    content: of each option's text, per byte."""
    max_items: int = Field(default=0, ge=0)
    """Items per task at most (the first ones); 0 = all."""
    generate: GenerateSection = Field(default_factory=GenerateSection)
    """Sampling settings for `pipeline generate`."""
