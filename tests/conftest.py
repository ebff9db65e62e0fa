"""Tiny models built in code, and the shared real data (MiniLM, MRPC)."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

# Without a GPU, Triton kernels run on its CPU interpreter: this must be set before any kernel
# module is imported (kernels are compiled or interpreted when they are defined).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from intrinsic.paths import shared_dir


def tiny_bert_classifier(num_labels: int = 2):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=64, num_labels=num_labels,
    )
    return BertForSequenceClassification(config).eval()


def tiny_roberta_classifier():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=66, num_labels=3,
    )
    return RobertaForSequenceClassification(config).eval()


def tiny_bert_mlm():
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=64, tie_word_embeddings=True,
    )
    return BertForMaskedLM(config).eval()


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=99, n_positions=64, n_embd=32, n_layer=2, n_head=2, tie_word_embeddings=True)
    return GPT2LMHeadModel(config).eval()


def tiny_mlp(dtype=torch.float32):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(dtype)


def save_tiny_bert_folder(folder, words, **config):
    """Save a loadable model folder: a WordPiece tokenizer over ``words`` and a 1-layer BERT
    classifier (hidden size 16, seeded); ``config`` overrides BertConfig fields."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    torch.manual_seed(0)
    settings = dict(vocab_size=len(words) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=32) | config
    BertForSequenceClassification(BertConfig(**settings)).save_pretrained(folder)
    return folder


def save_tiny_bert_with_minilm_tokenizer(folder, shared, hidden_size: int = 16, max_position_embeddings: int = 128):
    """Save a 1-layer random BERT classifier (seed 0) with the shared MiniLM's real tokenizer to ``folder``."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=hidden_size, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * hidden_size, max_position_embeddings=max_position_embeddings)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(shared / "models" / "paraphrase-MiniLM-L3-v2").save_pretrained(folder)
    return folder


def token_batch(vocab: int = 99, batch: int = 3, length: int = 11):
    g = torch.Generator().manual_seed(1)
    return torch.randint(5, vocab, (batch, length), generator=g)


def pytest_collection_modifyitems(items):
    """Every test that uses the shared data folder, directly or through a fixture, is marked shared_data."""
    for item in items:
        if "shared" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(scope="session")
def shared():
    """The shared data folder; CI must have it, elsewhere its absence skips real-data tests."""
    root = shared_dir()
    if not (root / "models").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data not found at {root}; set INTRINSIC_SHARED_DIR")
        pytest.skip(f"shared data not found at {root}; set INTRINSIC_SHARED_DIR")
    return root


@pytest.fixture(autouse=True)
def close_figures():
    """Close the figures a test drew (pyplot keeps every figure open until closed)."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
