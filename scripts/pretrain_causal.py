"""Pre-train a small family of GPT-NeoX-style (Pythia-style) causal language models from scratch, with checkpoints.

    python scripts/pretrain_causal.py                          # every size, default steps, into runs/causal/
    python scripts/pretrain_causal.py --sizes xs --steps 2000  # the smallest size only (feasible on a CPU)

The causal sibling of ``scripts/pretrain_mlm.py``: the same corpus, the same recipe (batch, lr
schedule, AdamW), the same sizes, the same checkpoints and the same exact resume, with Pythia's
architecture (``GPTNeoXForCausalLM``: parallel residual, rotary embeddings on 25 % of each head,
untied output matrix, no dropout) and Pythia's tokenizer convention: a byte-level BPE of the same
training procedure whose only special token is ``<|endoftext|>`` (bos = eos = unk), with no pad
token and nothing added around a text. Each checkpoint is a standard Hugging Face folder that
``AutoModelForCausalLM``, ``AutoModelForSequenceClassification`` and ``AutoTokenizer`` (and so
``measure-did --model``, which pads with ``<|endoftext|>``) load directly:

    runs/causal/tokenizer/                the shared tokenizer (GPTNeoXTokenizerFast)
    runs/causal/tokens.npy                the tokenized corpus (cache)
    runs/causal/<size>/step-<N>/          config.json, model.safetensors, tokenizer files, pretraining.json
    runs/causal/<size>/log.jsonl          train and valid next-token loss over steps
    runs/causal/<size>/resume.pt          optimizer state of the last checkpoint (a killed run resumes)
    runs/causal/family.json               the sizes trained, the recipe, the checkpoint steps

Corpus: ``english/train.txt`` (7.1 M words) and WikiText-2 valid/test (0.46 M) from
``../shared/data/corpus``; ``english/valid.txt`` is the held-out set for the valid loss.
Each step draws ``--batch-size`` random windows of ``--seq-len`` + 1 tokens from the token stream
(a paragraph per line, ``<|endoftext|>`` after each, windows crossing paragraphs as Pythia's packed
sequences do); the draw depends only on (seed, step), so a resumed run sees exactly the batches an
uninterrupted one would have. The loss is next-token cross-entropy at all ``--seq-len`` positions
of each window (``train_clm_loss``, ``valid_clm_loss``; the held-out windows are fixed).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields, make_dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pretrain_mlm as mlm  # noqa: E402

END_OF_TEXT = "<|endoftext|>"


@dataclass(frozen=True)
class Size(mlm.Size):
    """Architecture of one family member (GPT-NeoX layout, feed-forward = 4 × hidden)."""

    def non_embedding_params(self) -> int:
        """Parameters of the layers (attention qkv and dense, feed-forward, two LayerNorms) and of the
        final LayerNorm; as in Kaplan et al. (2020), the input embedding and the unembedding matrix
        (Pythia's ``embed_out``, ``lm_head`` in transformers 5; untied) are both excluded. A GPT-NeoX layer
        has exactly a RoBERTa layer's parameters, so this is the masked family's count plus the final
        LayerNorm."""
        return super().non_embedding_params() + 2 * self.hidden


# Non-embedding parameters: xs 50 k, s 199 k, m 793 k (15.8×), l 3.2 M (63×): pretrain_mlm.py's sizes.
SIZES = {name: Size(size.layers, size.hidden, size.heads) for name, size in mlm.SIZES.items()}

Recipe = make_dataclass(
    "Recipe", [(f.name, f.type, f.default) for f in fields(mlm.Recipe) if f.name != "mask_prob"], frozen=True,
    namespace={"__module__": __name__,
               "__doc__": "Everything that is the same for every size: pretrain_mlm.py's recipe, without masking."})


def train_tokenizer(paragraphs: list[str], vocab_size: int, out_dir: Path):
    """Train pretrain_mlm.py's byte-level BPE with ``<|endoftext|>`` as its only special token and save it
    as Pythia's ``GPTNeoXTokenizerFast``: bos = eos = unk = ``<|endoftext|>``, no pad token, no special
    tokens added to a text or a pair."""
    from transformers import GPTNeoXTokenizerFast

    bpe = mlm.train_bpe(paragraphs, vocab_size, [END_OF_TEXT])
    tokenizer = GPTNeoXTokenizerFast(tokenizer_object=bpe, bos_token=END_OF_TEXT, eos_token=END_OF_TEXT,
                                     unk_token=END_OF_TEXT, pad_token=None, add_bos_token=False,
                                     add_eos_token=False, model_max_length=512)
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def sample_windows(stream: torch.Tensor, batch: int, seq_len: int, generator: torch.Generator,
                   tokenizer=None) -> torch.Tensor:
    """``[batch, seq_len + 1]`` ids: random windows of the stream, the inputs and their next tokens."""
    return mlm.stream_windows(stream, batch, seq_len + 1, generator)


def build_model(size: Size, tokenizer, recipe):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=size.hidden, num_hidden_layers=size.layers,
        num_attention_heads=size.heads, intermediate_size=4 * size.hidden, max_position_embeddings=recipe.seq_len,
        rotary_pct=0.25, rotary_emb_base=10000, use_parallel_residual=True, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=None,
        hidden_dropout=0.0, attention_dropout=0.0, classifier_dropout=0.0,
    )
    torch.manual_seed(recipe.seed)
    return GPTNeoXForCausalLM(config)


def next_token_loss(model, ids: torch.Tensor, generator=None, tokenizer=None, recipe=None,
                    device=None) -> torch.Tensor:
    """Cross-entropy of predicting ``ids[:, 1:]`` from ``ids[:, :-1]``, at every position."""
    ids = ids.to(device)
    logits = model(input_ids=ids[:, :-1], use_cache=False).logits
    return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())


CAUSAL = mlm.Family(doc=__doc__, folder="causal", loss_name="clm", sizes=SIZES, recipe=Recipe,
                    train_tokenizer=train_tokenizer, windows=sample_windows, build_model=build_model,
                    batch_loss=next_token_loss)


def main(argv=None) -> int:
    return mlm.main(argv, CAUSAL)


if __name__ == "__main__":
    sys.exit(main())
