import json

import pytest

from courseutils.model.loader import TinycodeConfig, load_model
from courseutils.model.train import TrainConfig, train_tinycode


@pytest.mark.slow
def test_short_retrain_runs_and_loss_falls(tmp_path):
    cfg = TrainConfig(steps=12, batch_size=4, seq_len=64, warmup=2, lr=3e-3, eval_ctx=64, eval_chunks=2,
                      model=TinycodeConfig(vocab_size=512, intermediate_size=256, num_hidden_layers=1,
                                           num_attention_heads=2, num_key_value_heads=1))
    out = tmp_path / "tc"
    card = train_tinycode(out, cfg, progress=False, max_train_chars=150_000)
    curve = card["loss_curve"]
    assert len(curve) == 12
    assert curve[-1] < curve[0] - 0.5, curve           # it learns something in 12 steps
    assert {"config.json", "model.safetensors", "tokenizer.json", "model_card.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "model_card.json").read_text())["corpus"]["sha256"] == card["corpus"]["sha256"]
    model, tok = load_model(out, device="cpu")
    assert len(tok) == 512 and model.config.num_hidden_layers == 1
    assert [p.name for p in tmp_path.iterdir()] == ["tc"]   # no temporary or old copy left beside it


@pytest.mark.slow
def test_training_is_reproducible(tmp_path):
    cfg = TrainConfig(steps=3, batch_size=2, seq_len=32, warmup=1, eval_ctx=32, eval_chunks=1,
                      model=TinycodeConfig(vocab_size=384, intermediate_size=256, num_hidden_layers=1,
                                           num_attention_heads=2, num_key_value_heads=1))
    a = train_tinycode(tmp_path / "a", cfg, progress=False, max_train_chars=60_000)
    b = train_tinycode(tmp_path / "b", cfg, progress=False, max_train_chars=60_000)
    assert a["loss_curve"] == b["loss_curve"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
