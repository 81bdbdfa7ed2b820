import json
import shutil

import pytest
import torch

from courseutils.core.errors import ModelError
from courseutils.model.loader import load_model, model_card, resolve_model


def test_tinycode_loads_with_card(tinycode):
    model, tok = tinycode
    assert model.config.model_type == "llama"
    assert model.config.hidden_size % 256 == 0 and model.config.intermediate_size % 256 == 0
    ids = tok("def f(x):\n    return x")["input_ids"]
    assert ids[0] == tok.bos_token_id
    card = model_card("tinycode")
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert len(card["corpus"]["sha256"]) == 64 and card["validation_perplexity"] > 1


def test_local_directory_loads(tiny_llama_dir):
    assert resolve_model(tiny_llama_dir) == ("local", str(tiny_llama_dir))
    model, tok = load_model(tiny_llama_dir, device="cpu")
    assert model.config.num_hidden_layers == 1 and len(tok) == model.config.vocab_size


def test_hub_id_loads_from_the_hub_cache(tiny_llama_dir, monkeypatch):
    """The hub path is real transformers hub loading, fed from a local cache snapshot (offline)."""
    from huggingface_hub import constants

    repo = "course-test/tiny-llama"
    base = constants.HF_HUB_CACHE
    folder = f"{base}/models--course-test--tiny-llama"
    shutil.rmtree(folder, ignore_errors=True)
    commit = "0" * 40
    shutil.copytree(tiny_llama_dir, f"{folder}/snapshots/{commit}")
    import os
    os.makedirs(f"{folder}/refs", exist_ok=True)
    with open(f"{folder}/refs/main", "w") as f:
        f.write(commit)
    assert resolve_model(repo) == ("hub", repo)
    model, _ = load_model(repo, device="cpu")
    reference, _ = load_model(tiny_llama_dir, device="cpu")
    ids = torch.tensor([[0, 5, 9, 100]])
    assert torch.equal(model(ids).logits, reference(ids).logits)
    # what a Colab user does: COURSE_MODEL names the hub model, and every load_model() without a name gets it
    monkeypatch.setenv("COURSE_MODEL", repo)
    assert resolve_model() == ("hub", repo)
    by_env, _ = load_model(device="cpu")
    assert torch.equal(by_env(ids).logits, reference(ids).logits)


@pytest.mark.parametrize("env, gpu, expected", [("auto", True, "cuda"), ("auto", False, "cpu"), ("", True, "cuda"),
                                                ("cpu", True, "cpu"), ("CUDA", True, "cuda")])
def test_cuda_is_picked_automatically(env, gpu, expected, monkeypatch):
    """COURSE_DEVICE=auto (or unset) is CUDA when torch sees a GPU, as on a Colab GPU runtime; cpu forces the CPU."""
    from courseutils.core.config import get_device

    monkeypatch.setenv("COURSE_DEVICE", env)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert get_device() == expected


@pytest.mark.parametrize("name, match", [("./no/such/dir", "no such directory"), ("not a model", "hub id"),
                                         ("", "hub id")])
def test_bad_names(name, match):
    with pytest.raises(ModelError, match=match):
        resolve_model(name)


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelError, match="config.json"):
        resolve_model(tmp_path)


def test_non_llama_model_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100)).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="gpt2"):
        load_model(tmp_path, device="cpu")


def test_cuda_request_without_gpu_is_an_error():
    from courseutils.core.config import get_device
    from courseutils.core.errors import CourseError

    if torch.cuda.is_available():
        assert get_device("cuda") == "cuda"
    else:
        with pytest.raises(CourseError, match="CUDA"):
            get_device("cuda")
    with pytest.raises(CourseError, match="device"):
        get_device("tpu")
