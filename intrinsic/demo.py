"""Train a real model in a d-dimensional subspace and show what it costs: the quick start.

    python -m intrinsic.demo                    # paraphrase-MiniLM-L3-v2 on MRPC, d = 1000

It wraps the model with ``SubspaceWrapper``, trains θ_d with AdamW on a subset of MRPC train,
reports dev accuracy before and after against the majority-class rate, and saves the subspace
(kilobytes). The full d90 search is ``measure-did`` (coming next).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import SubspaceWrapper
from .tasks import load_task
from .paths import shared_dir


def parse_args(argv=None):
    shared = shared_dir()
    parser = argparse.ArgumentParser(prog="python -m intrinsic.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(shared / "models" / "paraphrase-MiniLM-L3-v2"),
                        help="Hugging Face model ID or local folder (default: the shared MiniLM)")
    parser.add_argument("--data-dir", type=Path, default=shared / "data" / "glue",
                        help="GLUE folder holding MRPC/{train,dev}.tsv")
    parser.add_argument("--d", type=int, default=1000, help="subspace dimension (default 1000)")
    parser.add_argument("--projection", default="fastfood", choices=["fastfood", "dense", "sparse"])
    parser.add_argument("--said", action="store_true", help="structure-aware mode (one λ per tensor)")
    parser.add_argument("--train-samples", type=int, default=512)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-2)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("runs/demo-subspace"),
                        help="where to save θ_d and the config")
    return parser.parse_args(argv)


def encode(tokenizer, split, max_length):
    first, second = zip(*split.texts)
    enc = tokenizer(list(first), list(second), truncation=True, max_length=max_length,
                    padding=True, return_tensors="pt")
    return dict(enc), torch.tensor(split.labels)


@torch.no_grad()
def accuracy(model, inputs, labels, batch_size=128):
    model.eval()
    correct = 0
    for start in range(0, len(labels), batch_size):
        part = {k: v[start:start + batch_size] for k, v in inputs.items()}
        correct += (model(**part).logits.argmax(-1) == labels[start:start + batch_size]).sum().item()
    return correct / len(labels)


def main(argv=None) -> int:
    args = parse_args(argv)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        train, dev = load_task("mrpc", data_dir=args.data_dir, max_train_samples=args.train_samples)
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        torch.manual_seed(args.seed)
        model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
        wrapper = SubspaceWrapper(model, d=args.d, projection=args.projection, said=args.said, seed=args.seed)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    train_x, train_y = encode(tokenizer, train, args.max_length)
    dev_x, dev_y = encode(tokenizer, dev, args.max_length)
    majority = max(dev_y.float().mean().item(), 1 - dev_y.float().mean().item())
    print(f"model {args.model}: D = {wrapper.D:,} parameters, training d = {wrapper.num_trainable():,} "
          f"({args.projection}, {'SAID' if args.said else 'DID'})")
    before = accuracy(wrapper, dev_x, dev_y)

    optimizer = torch.optim.AdamW(wrapper.trainable_parameters(), lr=args.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    wrapper.train()
    with tqdm(range(args.steps), desc="subspace training", unit="step") as bar:
        for _ in bar:
            batch = torch.randint(0, len(train_y), (args.batch_size,), generator=g)
            loss = wrapper(**{k: v[batch] for k, v in train_x.items()}, labels=train_y[batch]).loss
            if not torch.isfinite(loss):
                print(f"error: the loss became {loss.item()}; lower --lr", file=sys.stderr)
                return 1
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = time.perf_counter() - start
    after = accuracy(wrapper, dev_x, dev_y)
    saved = wrapper.save_pretrained(args.output)
    size = sum(f.stat().st_size for f in saved.iterdir())
    print(f"MRPC dev accuracy: {before:.3f} before, {after:.3f} after {args.steps} steps "
          f"({seconds:.0f} s); majority class {majority:.3f}")
    print(f"saved the subspace to {saved}/ ({size / 1024:.1f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
