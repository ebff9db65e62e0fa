"""A real run: paraphrase-MiniLM-L3-v2 on 256 MRPC training pairs, d = 1000, DID and SAID."""

import pytest
import torch

from intrinsic import SubspaceWrapper
from intrinsic.tasks import load_task

pytestmark = pytest.mark.slow  # trains the real MiniLM: a minute or more per case

D_SUBSPACE = 1000
STEPS = 12


@pytest.fixture(scope="module")
def mrpc_batch(shared):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shared / "models" / "paraphrase-MiniLM-L3-v2")
    train, _ = load_task("mrpc", data_dir=shared / "data" / "glue", max_train_samples=256)
    assert len(train) == 256
    first, second = zip(*train.texts, strict=True)
    encoded = tokenizer(list(first), list(second), truncation=True, max_length=64, padding=True,
                        return_tensors="pt")
    return dict(encoded), torch.tensor(train.labels)


def load_minilm(shared):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)  # the classification head is freshly initialised
    return AutoModelForSequenceClassification.from_pretrained(
        shared / "models" / "paraphrase-MiniLM-L3-v2", num_labels=2
    )


@torch.no_grad()
def training_loss(model, inputs, labels):
    model.eval()
    return model(**inputs, labels=labels).loss.item()


@pytest.mark.parametrize("said", [False, True], ids=["DID", "SAID"])
def test_subspace_training_lowers_the_training_loss(shared, mrpc_batch, said):
    inputs, labels = mrpc_batch
    model = load_minilm(shared)
    wrapper = SubspaceWrapper(model, d=D_SUBSPACE, said=said, seed=0)
    assert wrapper.num_trainable() == D_SUBSPACE
    assert wrapper.D == sum(p.numel() for p in model.parameters()) > 17_000_000
    before = training_loss(wrapper, inputs, labels)
    optimizer = torch.optim.AdamW(wrapper.trainable_parameters(), lr=3e-2, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    wrapper.train()
    for _ in range(STEPS):
        batch = torch.randint(0, len(labels), (32,), generator=g)
        loss = wrapper(**{k: v[batch] for k, v in inputs.items()}, labels=labels[batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = training_loss(wrapper, inputs, labels)
    assert after < before - 0.03, (before, after)
    assert all(p.grad is None for p in model.parameters())  # θ₀ stayed frozen
