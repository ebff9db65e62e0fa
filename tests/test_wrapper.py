"""SubspaceWrapper on tiny Hugging Face models built in code and on plain modules."""

import pytest
import torch
from torch.func import functional_call

from intrinsic import SubspaceConfig, SubspaceWrapper
from intrinsic.wrapper import CONFIG_FILE, WEIGHTS_FILE

from .conftest import (
    tiny_bert_classifier,
    tiny_bert_mlm,
    tiny_gpt2,
    tiny_mlp,
    tiny_roberta_classifier,
    token_batch,
)

HF_MODELS = {
    "bert": tiny_bert_classifier,
    "roberta": tiny_roberta_classifier,
    "bert-mlm-tied": tiny_bert_mlm,
    "gpt2-tied": tiny_gpt2,
}
PROJECTIONS = [("fastfood", {}), ("fastfood", {"layout": "per_tensor"}), ("dense", {}), ("sparse", {})]


def unique_parameter_count(model):
    return sum(p.numel() for p in model.parameters())  # .parameters() yields tied tensors once


def logits(model, ids):
    return model(input_ids=ids).logits


def randomize(wrapper, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        wrapper.theta_d.copy_(torch.randn(wrapper.theta_d.shape, generator=g) * 0.5)
        if wrapper.said_scales is not None:
            wrapper.said_scales.copy_(1 + 0.3 * torch.randn(wrapper.said_scales.shape, generator=g))


@pytest.mark.parametrize("arch", HF_MODELS)
@pytest.mark.parametrize("said", [False, True], ids=["DID", "SAID"])
@pytest.mark.parametrize("projection,options", PROJECTIONS, ids=["ff-stacked", "ff-per_tensor", "dense", "sparse"])
def test_zero_subspace_reproduces_the_model_and_trains_exactly_d(arch, said, projection, options):
    model = HF_MODELS[arch]()
    ids = token_batch()
    expected = logits(model, ids)
    wrapper = SubspaceWrapper(model, d=300, projection=projection, said=said, **options)
    assert torch.equal(logits(wrapper, ids), expected)
    assert wrapper.num_trainable() == 300
    assert sum(p.numel() for p in wrapper.trainable_parameters()) == 300
    assert not any(p.requires_grad for p in model.parameters())
    assert wrapper.D == unique_parameter_count(model)


@pytest.mark.parametrize("arch", HF_MODELS)
def test_gradient_reaches_only_the_subspace(arch):
    model = HF_MODELS[arch]()
    wrapper = SubspaceWrapper(model, d=64, said=True)
    randomize(wrapper)
    logits(wrapper, token_batch()).square().mean().backward()
    assert wrapper.theta_d.grad is not None and wrapper.theta_d.grad.abs().sum() > 0
    assert wrapper.said_scales.grad is not None and wrapper.said_scales.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_tied_weights_are_counted_once_and_stay_tied():
    model = tiny_gpt2()
    assert model.lm_head.weight is model.transformer.wte.weight
    wrapper = SubspaceWrapper(model, d=100)
    assert "lm_head.weight" not in wrapper.parameter_names
    randomize(wrapper)
    effective = wrapper.effective_parameters()
    ids = token_batch()
    # Input embedding and output projection both see the one updated tensor.
    inner = {k.removeprefix("transformer."): v for k, v in effective.items() if k.startswith("transformer.")}
    hidden = functional_call(model.transformer, inner, (ids,)).last_hidden_state
    torch.testing.assert_close(logits(wrapper, ids), hidden @ effective["transformer.wte.weight"].T)


@pytest.mark.parametrize("said", [False, True], ids=["DID", "SAID"])
def test_gradcheck_through_the_whole_wrapper_float64(said):
    model = tiny_mlp(torch.float64)
    wrapper = SubspaceWrapper(model, d=12, said=said, projection="fastfood")
    x = torch.randn(4, 5, dtype=torch.float64)
    randomize(wrapper)
    names = ["theta_d"] + (["said_scales"] if said else [])
    inputs = tuple(getattr(wrapper, n).detach().clone().requires_grad_() for n in names)

    def run(*values):
        return functional_call(wrapper, dict(zip(names, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(run, inputs)


def test_print_trainable_parameters(capsys):
    SubspaceWrapper(tiny_mlp(), d=10).print_trainable_parameters()
    assert capsys.readouterr().out == "trainable params: 10 || all params: 66 || trainable%: 15.1515\n"


def test_said_budget_takes_one_scale_per_tensor():
    model = tiny_mlp()
    wrapper = SubspaceWrapper(model, d=10, said=True)  # 4 tensors: λ takes 4, θ_d gets 6
    assert wrapper.said_scales.shape == (4,) and wrapper.theta_d.shape == (6,)
    assert torch.equal(wrapper.said_scales.detach(), torch.ones(4))


def test_save_and_load_are_kilobytes_and_reproduce_outputs(tmp_path):
    ids = token_batch()
    wrapper = SubspaceWrapper(tiny_bert_classifier(), d=1000, said=True, seed=7)
    randomize(wrapper)
    expected = logits(wrapper, ids)
    wrapper.save_pretrained(tmp_path)
    total = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert {f.name for f in tmp_path.iterdir()} == {CONFIG_FILE, WEIGHTS_FILE}
    assert total < 8 * 1024  # d = 1000 floats plus a small JSON
    loaded = SubspaceWrapper.from_pretrained(tiny_bert_classifier(), tmp_path)
    assert loaded.subspace_config == wrapper.subspace_config
    assert loaded.config is loaded.model.config  # the Hugging Face config stays reachable
    assert torch.equal(logits(loaded, ids), expected)


def test_loading_into_another_architecture_is_refused(tmp_path):
    SubspaceWrapper(tiny_bert_classifier(), d=50).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="other parameter names or shapes"):
        SubspaceWrapper.from_pretrained(tiny_roberta_classifier(), tmp_path)
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        SubspaceWrapper.from_pretrained(tiny_bert_classifier(), tmp_path / "missing")


@pytest.mark.parametrize("arch", ["bert", "gpt2-tied"])
def test_merge_and_unload_gives_a_plain_model_with_the_same_outputs(arch):
    model = HF_MODELS[arch]()
    ids = token_batch()
    wrapper = SubspaceWrapper(model, d=200, said=True)
    randomize(wrapper)
    expected = logits(wrapper, ids)
    merged = wrapper.merge_and_unload()
    assert merged is model
    torch.testing.assert_close(logits(merged, ids), expected, rtol=1e-5, atol=1e-5)
    assert all(p.requires_grad for p in merged.parameters())
    with pytest.raises(RuntimeError, match="merged"):
        wrapper(input_ids=ids)


def test_bfloat16_model_trains_a_float32_subspace():
    model = tiny_mlp(torch.bfloat16)
    wrapper = SubspaceWrapper(model, d=8)
    assert wrapper.theta_d.dtype == torch.float32
    wrapper(torch.randn(2, 5, dtype=torch.bfloat16)).float().sum().backward()
    assert wrapper.theta_d.grad.dtype == torch.float32


def test_plain_module_training_lowers_the_loss():
    model = tiny_mlp()
    teacher = tiny_mlp()  # the same network moved in a random direction: a reachable target
    torch.manual_seed(0)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(64, 5)
    y = teacher(x).detach()
    wrapper = SubspaceWrapper(model, d=20)
    optimizer = torch.optim.AdamW(wrapper.trainable_parameters(), lr=0.05)
    losses = []
    for _ in range(50):
        loss = torch.nn.functional.mse_loss(wrapper(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"d": 0}, "positive integer"),
        ({"d": -5}, "positive integer"),
        ({"d": 10**9}, "exceeds the number of parameters"),
        ({"d": 4, "said": True}, "SAID needs d > the number of parameter tensors"),
        ({"d": 10, "projection": "hash"}, "unknown projection"),
        ({}, "needs d"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SubspaceWrapper(tiny_mlp(), **kwargs)


def test_config_round_trips_and_is_exclusive_with_arguments():
    config = SubspaceConfig(d=30, projection="sparse", said=True, seed=4, density=0.2)
    assert SubspaceConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="not both"):
        SubspaceWrapper(tiny_mlp(), d=30, config=config)


def test_excluded_parameters_stay_out_of_theta_and_survive_save_and_load(tmp_path):
    model = tiny_bert_classifier()
    head = [n for n, _ in model.named_parameters() if n.startswith("classifier.")]
    head_size = sum(p.numel() for n, p in model.named_parameters() if n in head)
    wrapper = SubspaceWrapper(model, d=64, seed=1, exclude=head)
    assert wrapper.D == unique_parameter_count(model) - head_size
    assert not set(head) & set(wrapper.parameter_names)
    randomize(wrapper)
    ids = token_batch()
    expected = logits(wrapper, ids)
    wrapper.save_pretrained(tmp_path)
    loaded = SubspaceWrapper.from_pretrained(tiny_bert_classifier(), tmp_path)
    assert loaded.excluded == tuple(sorted(head)) and torch.equal(logits(loaded, ids), expected)
    with pytest.raises(ValueError, match="does not have"):
        SubspaceWrapper(tiny_bert_classifier(), d=8, exclude=["classifier.nope"])
