"""The README's quick-start run, on a small slice of real data."""

from intrinsic import SubspaceWrapper
from intrinsic.demo import main


def test_demo_trains_and_saves_a_loadable_subspace(shared, tmp_path, capsys):
    out = tmp_path / "subspace"
    code = main(["--steps", "3", "--train-samples", "64", "--batch-size", "8", "--max-length", "32",
                 "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "MRPC dev accuracy" in printed and "majority class 0.684" in printed
    assert sum(f.stat().st_size for f in out.iterdir()) < 8 * 1024

    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        shared / "models" / "paraphrase-MiniLM-L3-v2", num_labels=2
    )
    loaded = SubspaceWrapper.from_pretrained(model, out)
    assert loaded.num_trainable() == 1000 and loaded.theta_d.abs().sum() > 0


def test_demo_missing_data_folder_is_one_clear_error(tmp_path, capsys):
    assert main(["--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--data-dir" in err and "Traceback" not in err
