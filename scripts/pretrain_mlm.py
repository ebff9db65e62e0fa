"""Pre-train a small family of RoBERTa-style masked language models from scratch, with checkpoints.

    python scripts/pretrain_mlm.py                          # every size, default steps, into runs/mlm/
    python scripts/pretrain_mlm.py --sizes xs --steps 2000  # the smallest size only (feasible on a CPU)

One recipe for every size, one byte-level BPE tokenizer trained on the corpus (RoBERTa's kind),
and checkpoints at fixed steps, each a standard Hugging Face folder that ``AutoModel`` and
``AutoTokenizer`` (and so ``measure-did --model``) load directly:

    runs/mlm/tokenizer/                   the shared tokenizer
    runs/mlm/tokens.npy                   the tokenized corpus (cache)
    runs/mlm/<size>/step-<N>/             config.json, model.safetensors, tokenizer files, pretraining.json
    runs/mlm/<size>/log.jsonl             train and valid MLM loss over steps
    runs/mlm/<size>/resume.pt             optimizer state of the last checkpoint (a killed run resumes)

Corpus: ``english/train.txt`` (7.1 M words) and WikiText-2 valid/test (0.46 M) from
``../shared/data/corpus``; ``english/valid.txt`` is the held-out set for the valid loss.
Each step draws ``--batch-size`` random windows of ``--seq-len`` tokens from the token stream
(a paragraph per line, ``</s>`` between them); the draw depends only on (seed, step), so a
resumed run sees exactly the batches an uninterrupted one would have. Masking is RoBERTa's:
15 % of tokens, of which 80 % become ``<mask>``, 10 % a random token, 10 % stay. The LM head runs
only on the masked positions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from intrinsic.paths import shared_path  # noqa: E402

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


@dataclass(frozen=True)
class Size:
    """Architecture of one family member (RoBERTa layout, feed-forward = 4 × hidden)."""

    layers: int
    hidden: int
    heads: int

    def non_embedding_params(self) -> int:
        """Parameters of the encoder layers (attention, feed-forward, their LayerNorms); embeddings excluded."""
        h, f = self.hidden, 4 * self.hidden
        per_layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h
        return self.layers * per_layer


# Non-embedding parameters: xs 50 k, s 199 k, m 793 k (16×), l 3.2 M (64×).
SIZES = {
    "xs": Size(layers=1, hidden=64, heads=2),
    "s": Size(layers=1, hidden=128, heads=2),
    "m": Size(layers=4, hidden=128, heads=4),
    "l": Size(layers=4, hidden=256, heads=4),
}


@dataclass(frozen=True)
class Recipe:
    """Everything that is the same for every size."""

    steps: int = 6000
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 1e-3
    warmup: int = 100
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.98)
    mask_prob: float = 0.15
    vocab_size: int = 8192
    seed: int = 0


def corpus_files(corpus_dir: Path) -> tuple[list[Path], Path]:
    """(training files, held-out file) under ``corpus_dir``, with a clear error if one is missing."""
    train = [corpus_dir / "english" / "train.txt", corpus_dir / "wikitext-2" / "valid.txt",
             corpus_dir / "wikitext-2" / "test.txt"]
    valid = corpus_dir / "english" / "valid.txt"
    for path in train + [valid]:
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; pass --corpus-dir pointing at shared/data/corpus")
    return train, valid


def read_paragraphs(paths: list[Path], max_chars: int | None = None) -> list[str]:
    """Non-empty lines of ``paths``, in order, stopping after ``max_chars`` characters if given."""
    out, total = [], 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                out.append(line)
                total += len(line)
                if max_chars is not None and total >= max_chars:
                    return out
    return out


def train_bpe(paragraphs: list[str], vocab_size: int, special_tokens: list[str]):
    """A byte-level BPE (``tokenizers.ByteLevelBPETokenizer``) of ``vocab_size`` tokens, specials included,
    trained on ``paragraphs`` with min_frequency 2: the one training procedure of every family here."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(paragraphs, vocab_size=vocab_size, min_frequency=2, special_tokens=special_tokens,
                            show_progress=False)
    return bpe


def train_tokenizer(paragraphs: list[str], vocab_size: int, out_dir: Path):
    """Train a byte-level BPE tokenizer (RoBERTa's kind) and save it as a ``RobertaTokenizerFast`` folder."""
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaTokenizerFast

    bpe = train_bpe(paragraphs, vocab_size, SPECIAL_TOKENS)
    bpe.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    tokenizer = RobertaTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                     cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                     model_max_length=512)
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def load_or_train_tokenizer(out: Path, paragraphs: list[str], vocab_size: int, train=train_tokenizer):
    from transformers import AutoTokenizer

    folder = out / "tokenizer"
    if (folder / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(folder)
    t0 = time.time()
    tokenizer = train(paragraphs, vocab_size, folder)
    print(f"trained tokenizer ({len(tokenizer)} tokens) in {time.time() - t0:.0f} s -> {folder}")
    return tokenizer


def token_stream(tokenizer, paragraphs: list[str]) -> np.ndarray:
    """All paragraphs as one uint16/int32 stream of ids, ``</s>`` after each paragraph."""
    eos = tokenizer.eos_token_id
    ids = []
    for start in range(0, len(paragraphs), 10_000):
        for encoding in tokenizer.backend_tokenizer.encode_batch(paragraphs[start:start + 10_000],
                                                                 add_special_tokens=False):
            ids.extend(encoding.ids)
            ids.append(eos)
    dtype = np.uint16 if len(tokenizer) < 2 ** 16 else np.int32
    return np.asarray(ids, dtype=dtype)


def load_or_tokenize(path: Path, tokenizer, paragraphs: list[str]) -> np.ndarray:
    if path.is_file():
        return np.load(path)
    t0 = time.time()
    stream = token_stream(tokenizer, paragraphs)
    np.save(path, stream)
    print(f"tokenized {len(stream):,} tokens in {time.time() - t0:.0f} s -> {path}")
    return stream


def stream_windows(stream: torch.Tensor, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``[batch, length]`` ids: ``batch`` windows of ``length`` consecutive stream tokens at random starts."""
    if len(stream) <= length:
        raise ValueError(f"the corpus has {len(stream)} tokens, fewer than one window of {length}")
    starts = torch.randint(0, len(stream) - length, (batch,), generator=generator)
    return stream[starts[:, None] + torch.arange(length)[None, :]].long()


def sample_windows(stream: torch.Tensor, batch: int, seq_len: int, generator: torch.Generator,
                   bos: int, eos: int) -> torch.Tensor:
    """``[batch, seq_len]`` ids: random windows of ``seq_len − 2`` stream tokens between ``<s>`` and ``</s>``."""
    rows = stream_windows(stream, batch, seq_len - 2, generator)
    ends = lambda value: torch.full((batch, 1), value, dtype=torch.long)  # noqa: E731
    return torch.cat([ends(bos), rows, ends(eos)], dim=1)


def mask_tokens(ids: torch.Tensor, tokenizer, prob: float, generator: torch.Generator):
    """RoBERTa masking. Returns (inputs, mask, targets): ``mask`` marks the positions that are predicted."""
    special = torch.zeros_like(ids, dtype=torch.bool)
    for token_id in tokenizer.all_special_ids:
        special |= ids == token_id
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & ~special
    action = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (action < 0.8)] = tokenizer.mask_token_id
    random_ids = torch.randint(0, len(tokenizer), ids.shape, generator=generator)
    swap = chosen & (action >= 0.8) & (action < 0.9)
    inputs[swap] = random_ids[swap]
    return inputs, chosen, ids[chosen]


def mlm_loss(model, inputs: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the masked positions only (the LM head never sees the other ~85 %)."""
    hidden = model.roberta(input_ids=inputs).last_hidden_state
    logits = model.lm_head(hidden[mask])
    return torch.nn.functional.cross_entropy(logits.float(), targets)


def masked_batch_loss(model, ids: torch.Tensor, generator: torch.Generator, tokenizer, recipe: Recipe,
                      device) -> torch.Tensor:
    """MLM loss of the windows ``ids``, masked with ``generator``."""
    inputs, mask, targets = mask_tokens(ids, tokenizer, recipe.mask_prob, generator)
    return mlm_loss(model, inputs.to(device), mask.to(device), targets.to(device))


def build_model(size: Size, tokenizer, recipe: Recipe):
    from transformers import RobertaConfig, RobertaForMaskedLM

    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=size.hidden, num_hidden_layers=size.layers,
        num_attention_heads=size.heads, intermediate_size=4 * size.hidden,
        max_position_embeddings=recipe.seq_len + 2, type_vocab_size=1, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(recipe.seed)
    return RobertaForMaskedLM(config)


def lr_at(step: int, recipe: Recipe) -> float:
    """Linear warm-up, then linear decay to ``final_lr_fraction`` × lr at ``recipe.steps``."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * (1 - (1 - recipe.final_lr_fraction) * min(1.0, progress))


@dataclass(frozen=True)
class Family:
    """What differs between model families (this masked one, ``pretrain_causal.py``'s causal one);
    the corpus, the training loop, checkpoints, resuming and the command line are shared."""

    doc: str  # the command's description
    folder: str  # default output folder: runs/<folder>/
    loss_name: str  # "mlm": log.jsonl and pretraining.json hold train_mlm_loss and valid_mlm_loss
    sizes: dict[str, Any]  # name -> Size
    recipe: type  # Recipe, or a family's own with the same arguments
    train_tokenizer: Callable  # (paragraphs, vocab_size, folder) -> the saved tokenizer
    windows: Callable  # (stream, batch, seq_len, generator, tokenizer) -> [batch, ·] ids of one step
    build_model: Callable  # (size, tokenizer, recipe) -> model, seeded by recipe.seed
    batch_loss: Callable  # (model, ids, generator, tokenizer, recipe, device) -> scalar loss


@torch.no_grad()
def valid_loss(model, windows: torch.Tensor, tokenizer, recipe: Recipe, device, family: Family) -> float:
    """Loss on fixed held-out windows, with a fixed mask for the MLM (comparable across steps and sizes)."""
    model.eval()
    generator = torch.Generator().manual_seed(12345)
    losses = []
    for chunk in windows.split(recipe.batch_size):
        losses.append(family.batch_loss(model, chunk, generator, tokenizer, recipe, device).item())
    model.train()
    return float(np.mean(losses))


def save_checkpoint(model, tokenizer, folder: Path, info: dict) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "pretraining.json").write_text(json.dumps(info, indent=2) + "\n")


def check_same_recipe(folder: Path, recipe: Recipe) -> None:
    """Refuse to add to ``folder`` when its checkpoints were trained with another recipe.

    Saved steps are never rewritten (a resumed run skips them), so mixing recipes in one folder would
    leave a trajectory whose early checkpoints belong to another run, under the same names.
    """
    current = json.loads(json.dumps(asdict(recipe)))  # as stored: tuples become lists
    for info_path in sorted(folder.glob("step-*/pretraining.json")):
        saved = json.loads(info_path.read_text()).get("recipe")
        if saved is not None and saved != current:
            changed = sorted(k for k in current if saved.get(k) != current[k])
            raise SystemExit(f"{folder} holds checkpoints of another recipe ({', '.join(changed)} differ, "
                             f"first seen in {info_path.parent.name}); pass a new --out or delete {folder}")


def pretrain(name: str, size: Size, recipe: Recipe, out: Path, tokenizer, stream: torch.Tensor,
             valid_windows: torch.Tensor, save_steps: list[int], device: torch.device, progress: bool = True,
             family: Family | None = None, resume_every: int = 250) -> None:
    """Train one size for ``recipe.steps`` steps, saving ``step-<N>/`` at every N in ``save_steps``,
    and the state to resume from (``resume.pt``) there and every ``resume_every`` steps between, so
    a killed run loses at most ``resume_every`` steps."""
    from tqdm.auto import tqdm

    family = family or MLM
    train_key, valid_key = f"train_{family.loss_name}_loss", f"valid_{family.loss_name}_loss"
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    check_same_recipe(folder, recipe)
    model = family.build_model(size, tokenizer, recipe).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=recipe.lr, betas=recipe.betas, eps=1e-6)
    start = 0
    resume = folder / "resume.pt"
    if resume.is_file():
        state = torch.load(resume, map_location=device, weights_only=False)
        if state["recipe"] == asdict(recipe):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start = state["step"]
            print(f"{name}: resuming at step {start}")
        else:
            print(f"{name}: {resume} was made with another recipe; starting over")
    n_params = sum(p.numel() for p in model.parameters())
    if device.type == "cuda":
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        autocast = torch.autocast("cpu", enabled=False)
    log = open(folder / "log.jsonl", "a", encoding="utf-8")
    recent: list[float] = []
    t0 = time.time()
    bar = tqdm(range(start, recipe.steps + 1), desc=f"pretrain {name}", disable=not progress, initial=start,
               total=recipe.steps + 1)
    for step in bar:
        if step in save_steps and not (folder / f"step-{step}" / "pretraining.json").is_file():
            with autocast:
                held_out = valid_loss(model, valid_windows, tokenizer, recipe, device, family)
            info = {"size": name, **asdict(size), "step": step,
                    "tokens_seen": step * recipe.batch_size * recipe.seq_len,
                    valid_key: held_out, train_key: float(np.mean(recent)) if recent else None,
                    "non_embedding_params": size.non_embedding_params(), "params": n_params,
                    "recipe": asdict(recipe), "seconds": time.time() - t0, "device": str(device)}
            save_checkpoint(model, tokenizer, folder / f"step-{step}", info)
            save_resume(resume, model, optimizer, step, recipe)
            log.write(json.dumps({"step": step, valid_key: held_out}) + "\n")
            log.flush()
        elif step > start and step % resume_every == 0:
            save_resume(resume, model, optimizer, step, recipe)
        if step == recipe.steps:
            break
        generator = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
        ids = family.windows(stream, recipe.batch_size, recipe.seq_len, generator, tokenizer)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, recipe)
        with autocast:
            loss = family.batch_loss(model, ids, generator, tokenizer, recipe, device)
        if not torch.isfinite(loss):
            raise RuntimeError(f"{name}: {family.loss_name.upper()} loss is {loss.item()} at step {step}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        recent = (recent + [loss.item()])[-50:]
        if step % 50 == 0:
            log.write(json.dumps({"step": step, train_key: float(np.mean(recent)), "lr": lr_at(step, recipe),
                                  "seconds": time.time() - t0}) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{np.mean(recent):.3f}")
    log.close()


def save_resume(path: Path, model, optimizer, step: int, recipe) -> None:
    """The state after ``step`` updates, written whole or not at all (a kill mid-write keeps the last)."""
    partial = path.with_name(path.name + ".partial")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "recipe": asdict(recipe)}, partial)
    partial.replace(path)


def parse_steps(text: str) -> list[int]:
    steps = sorted({int(s) for s in text.split(",") if s.strip()})
    if not steps or steps[0] < 0:
        raise argparse.ArgumentTypeError(f"--save-steps {text!r}: give non-negative integers separated by commas")
    return steps


MLM = Family(doc=__doc__, folder="mlm", loss_name="mlm", sizes=SIZES, recipe=Recipe, train_tokenizer=train_tokenizer,
             windows=lambda stream, batch, seq_len, generator, tokenizer: sample_windows(
                 stream, batch, seq_len, generator, tokenizer.bos_token_id, tokenizer.eos_token_id),
             build_model=build_model, batch_loss=masked_batch_loss)


def main(argv=None, family: Family = MLM) -> int:
    sizes = family.sizes
    p = argparse.ArgumentParser(description=family.doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["xs", "s", "m"], choices=sorted(sizes),
                   help=f"family members to train (default xs s m: {sizes['xs'].non_embedding_params() / 1e3:.0f} k "
                        f"to {sizes['m'].non_embedding_params() / 1e3:.0f} k non-embedding parameters)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / family.folder,
                   help=f"output folder (default runs/{family.folder})")
    p.add_argument("--corpus-dir", type=Path, help="default: shared/data/corpus")
    p.add_argument("--steps", type=int, default=Recipe.steps, help=f"training steps (default {Recipe.steps})")
    p.add_argument("--save-steps", type=parse_steps, default="0,250,500,1000,2000,3000,4000,6000",
                   help="checkpoint steps, comma separated (default 0,250,500,1000,2000,3000,4000,6000)")
    p.add_argument("--batch-size", type=int, default=Recipe.batch_size)
    p.add_argument("--seq-len", type=int, default=Recipe.seq_len)
    p.add_argument("--lr", type=float, default=Recipe.lr)
    p.add_argument("--vocab-size", type=int, default=Recipe.vocab_size)
    p.add_argument("--seed", type=int, default=Recipe.seed)
    p.add_argument("--max-corpus-chars", type=int, help="read only the first N characters (quick tests)")
    p.add_argument("--valid-windows", type=int, default=128, help="held-out windows for the valid loss (default 128)")
    p.add_argument("--resume-every", type=int, default=250,
                   help="also save the state to resume from every N steps between checkpoints (default 250)")
    p.add_argument("--device", default="auto", help="cpu, cuda … (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    if args.steps <= 0:
        p.error("--steps must be positive")
    if args.resume_every <= 0:
        p.error("--resume-every must be positive")
    if args.no_progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Writing model shards" at every checkpoint
    recipe = family.recipe(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
                    warmup=min(Recipe.warmup, max(1, args.steps // 10)), vocab_size=args.vocab_size, seed=args.seed)
    save_steps = [s for s in args.save_steps if s <= recipe.steps]
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    corpus_dir = args.corpus_dir or shared_path("data", "corpus")
    train_files, valid_file = corpus_files(corpus_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    paragraphs = read_paragraphs(train_files, args.max_corpus_chars)
    tokenizer = load_or_train_tokenizer(args.out, paragraphs, recipe.vocab_size, family.train_tokenizer)
    stream = torch.from_numpy(load_or_tokenize(args.out / "tokens.npy", tokenizer, paragraphs).astype(np.int64))
    valid_paragraphs = read_paragraphs([valid_file], args.max_corpus_chars)
    valid_stream = torch.from_numpy(token_stream(tokenizer, valid_paragraphs).astype(np.int64))
    valid = family.windows(valid_stream, args.valid_windows, recipe.seq_len, torch.Generator().manual_seed(0),
                           tokenizer)
    print(f"corpus: {len(stream):,} training tokens; {recipe.steps} steps × {recipe.batch_size} × {recipe.seq_len} "
          f"= {recipe.steps * recipe.batch_size * recipe.seq_len / len(stream):.2f} epochs; device {device}")
    for name in args.sizes:
        size = sizes[name]
        print(f"{name}: {size.layers} layers × {size.hidden}, {size.non_embedding_params():,} non-embedding parameters")
        pretrain(name, size, recipe, args.out, tokenizer, stream, valid, save_steps, device, not args.no_progress,
                 family, resume_every=args.resume_every)
    # Sizes may be trained by separate commands (one per core): family.json lists all of them.
    family_path = args.out / "family.json"
    listing = json.loads(family_path.read_text()) if family_path.is_file() else {"sizes": {}}
    listing["sizes"].update({n: {**asdict(sizes[n]), "non_embedding_params": sizes[n].non_embedding_params()}
                             for n in args.sizes})
    listing.update(recipe=asdict(recipe), save_steps=save_steps)
    family_path.write_text(json.dumps(listing, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
