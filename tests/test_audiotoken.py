"""AudioToken: embedder, BEATs features, token injection, training and generation (tiny)."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
import torch
from audiobench.methods.audiotoken.beats import TINY_CONFIG, _tiny_checkpoint, load_beats
from audiobench.methods.audiotoken.method import AudioTokenEmbedder
from audiobench.methods.audiotoken.prompt import AudioTokenPrompt

from audiobench.errors import AudiobenchError
from audiobench.models import LoadOptions, ModelZoo
from audiobench.runner import RunSettings, execute
from audiobench.trainer import TrainSettings, train

CPU = LoadOptions(torch.device("cpu"), torch.float32)


def test_parameter_count_is_the_papers():
    embedder = AudioTokenEmbedder(2304, 768)
    assert sum(p.numel() for p in embedder.parameters() if p.requires_grad) == 8_853_507


def test_official_key_layout_round_trip(tmp_path):
    torch.manual_seed(0)
    source = AudioTokenEmbedder(48, 32).eval()
    state = source.state_dict()
    assert set(state) == {
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "fga.un_models.0.embed.weight",
        "fga.un_models.0.embed.bias",
        "fga.un_models.0.feature_reduce.weight",
        "fga.un_models.0.feature_reduce.bias",
        "fga.pp_models.0.embed_X.weight",
        "fga.pp_models.0.embed_X.bias",
        "fga.pp_models.0.embed_Y.weight",
        "fga.pp_models.0.embed_Y.bias",
        "fga.reduce_potentials.0.weight",
    }
    torch.save(state, tmp_path / "embedder_learned_embeds.bin")
    loaded = AudioTokenEmbedder.from_official_checkpoint(tmp_path / "embedder_learned_embeds.bin")
    assert (loaded.fc1.in_features, loaded.fc2.out_features) == (48, 32)
    features = torch.randn(3, 248, 48)
    torch.testing.assert_close(loaded(features), source(features), rtol=0, atol=0)


def test_dropout_acts_only_in_training():
    torch.manual_seed(1)
    embedder = AudioTokenEmbedder(48, 32)
    features = torch.randn(2, 20, 48)
    embedder.eval()
    assert torch.equal(embedder(features), embedder(features))
    embedder.train()
    assert not torch.equal(embedder(features), embedder(features))


def test_pooling_is_a_convex_combination_of_the_projected_features():
    torch.manual_seed(2)
    embedder = AudioTokenEmbedder(8, 4).eval()
    features = torch.randn(1, 5, 8)
    projected = embedder.fc2(embedder.gelu(embedder.fc1(features)))[0]  # (T, C)
    token = embedder(features)[0]
    assert (token >= projected.min(0).values - 1e-6).all()
    assert (token <= projected.max(0).values + 1e-6).all()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: torch.save({"fc1.weight": torch.zeros(3, 3)}, path), "not an AudioToken"),
        (lambda path: path.write_bytes(b"PK\x03\x04 truncated"), "unreadable"),
    ],
)
def test_bad_embedder_checkpoints(tmp_path, make, message):
    make(tmp_path / "bad.bin")
    with pytest.raises(AudiobenchError, match=message):
        AudioTokenEmbedder.from_official_checkpoint(tmp_path / "bad.bin")


def test_wrong_shape_checkpoint_names_the_tensor(tmp_path):
    state = AudioTokenEmbedder(48, 32).state_dict()
    state["fga.pp_models.0.embed_X.weight"] = torch.zeros(16, 32, 1)
    torch.save(state, tmp_path / "bad.bin")
    with pytest.raises(AudiobenchError, match=r"wrong shapes: fga\.pp_models\.0\.embed_X"):
        AudioTokenEmbedder.from_official_checkpoint(tmp_path / "bad.bin")


def test_beats_gives_layers_4_8_12_for_5_seconds(tmp_path):
    beats = load_beats(_tiny_checkpoint())
    audio = torch.randn(2, 80_000) * 0.1
    features = beats.layer_features(audio)
    width = TINY_CONFIG["encoder_embed_dim"]
    assert features.shape == (2, 248, 3 * width)
    hidden = beats.beats(audio, wav_lens=torch.ones(2))[0]
    torch.testing.assert_close(features[..., width : 2 * width], hidden[8].transpose(0, 1))
    assert not torch.allclose(features[0], features[1])  # the input matters
    assert torch.equal(features, beats.layer_features(audio))


def test_beats_refuses_a_truncated_checkpoint(tmp_path):
    (tmp_path / "beats.pt").write_bytes(_tiny_checkpoint().read_bytes()[:2000])
    with pytest.raises(AudiobenchError, match="unreadable"):
        load_beats(tmp_path / "beats.pt")


@pytest.fixture(scope="module")
def tiny_sd():
    return ModelZoo("tiny", CPU).load("sd")


def test_injection_changes_only_positions_from_the_placeholder_on(tiny_sd):
    prompt = AudioTokenPrompt(tiny_sd.tokenizer, tiny_sd.text_encoder)
    ids = prompt.input_ids(1)[0].tolist()
    position = ids.index(prompt.placeholder_id)
    assert position == 5  # <start> a photo of a <*>
    tokens = torch.randn(2, tiny_sd.text_encoder.config.hidden_size)
    with torch.no_grad():
        encoded = prompt.encode(tokens)
    assert torch.equal(encoded[0, :position], encoded[1, :position])  # causal: before is fixed
    assert not torch.allclose(encoded[0, position:], encoded[1, position:])
    with torch.no_grad():
        again = prompt.encode(tokens[:1])
    torch.testing.assert_close(again[0], encoded[0])
    with pytest.raises(IndexError):  # outside `encode` the placeholder is no known token
        tiny_sd.text_encoder(prompt.input_ids(1))


def test_gradients_reach_the_embedder_and_nothing_else(tiny_sd):
    prompt = AudioTokenPrompt(tiny_sd.tokenizer, tiny_sd.text_encoder)
    for module in (tiny_sd.unet, tiny_sd.text_encoder, tiny_sd.vae):
        module.requires_grad_(False)
    embedder = AudioTokenEmbedder(48, tiny_sd.text_encoder.config.hidden_size)
    embeds = prompt.encode(embedder(torch.randn(2, 30, 48)))
    latents = torch.randn(2, 4, 16, 16)
    tiny_sd.unet(latents, torch.tensor([10, 500]), embeds).sample.pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in embedder.parameters())
    frozen = [*tiny_sd.unet.parameters(), *tiny_sd.text_encoder.parameters()]
    assert all(p.grad is None for p in frozen)


TRAIN_OPTIONS = {"steps": 6, "batch_size": 2, "checkpoint_every": 3, "lr": 1e-3}


def train_settings(demo_dir, out, **changes) -> TrainSettings:
    """Tiny-profile AudioToken training; `changes` may be settings or training options."""
    options = {key: changes.pop(key, value) for key, value in TRAIN_OPTIONS.items()}
    values = dict(method="audiotoken", data_dir=demo_dir, out=out, profile="tiny")
    as_text = {key: str(value) for key, value in options.items()}
    return TrainSettings(**{**values, **changes}, options=as_text)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resume_continues_bit_identically(demo_dir, tmp_path):
    # Fill the feature cache first: a run that computes features allocates memory differently,
    # and CPU kernels may then round differently in the last bit.
    train(train_settings(demo_dir, tmp_path / "warm-up", steps=1))
    straight = train(train_settings(demo_dir, tmp_path / "straight"))
    train(train_settings(demo_dir, tmp_path / "resumed", steps=3))
    with pytest.raises(AudiobenchError, match="use --resume"):
        train(train_settings(demo_dir, tmp_path / "resumed"))
    resumed = train(train_settings(demo_dir, tmp_path / "resumed", resume=True))
    name = "embedder_learned_embeds.bin"
    assert digest(resumed / name) == digest(straight / name)
    assert (resumed / "loss.csv").read_text() == (straight / "loss.csv").read_text()
    assert len(list((resumed / "checkpoints").glob("step-*"))) == 2


def test_classification_loss_is_learned(demo_dir, tmp_path):
    out = train(
        train_settings(
            demo_dir,
            tmp_path,
            method="audiotoken-cl",
            steps=60,
            batch_size=4,
            checkpoint_every=60,
            lr=3e-3,
        )
    )
    log = pd.read_csv(out / "loss.csv")
    first, last = log.iloc[:5].mean(), log.iloc[-5:].mean()
    assert (log.cl > 0).all()
    assert last.cl < 0.5 * first.cl  # the token moves onto its label's embedding
    assert last.l1 < first.l1 * 1.5


@pytest.mark.parametrize("method", ["audiotoken", "audiotoken-cl"])
def test_train_then_generate_then_evaluate(demo_dir, tmp_path, method):
    from audiobench.evaluation import EvaluateSettings, evaluate

    ckpt = train(train_settings(demo_dir, tmp_path / "ckpt", method=method, steps=2))
    settings = RunSettings(
        method=method,
        data_dir=demo_dir,
        out=tmp_path / "runs",
        profile="tiny",
        batch_size=4,
        options={"steps": "2"},
        checkpoint=ckpt,
    )
    first = execute(settings)
    assert first.ok == 12
    images = sorted((first.run_dir / "images").glob("*.png"))
    again = execute(RunSettings(**{**settings.__dict__, "out": tmp_path / "again"}))
    assert [digest(p) for p in images] == [
        digest(p) for p in sorted((again.run_dir / "images").glob("*.png"))
    ]
    result = evaluate(EvaluateSettings(first.run_dir, metrics=("ais", "iis")))
    assert result["metrics"]["ais"]["n"] == 12


def test_paper_profile_needs_a_checkpoint(demo_dir, tmp_path, cli):
    code, _, err = cli(
        "train",
        "--method",
        "reference",
        "--data",
        demo_dir,
        "--profile",
        "tiny",
        "--out",
        tmp_path / "ckpt",
    )
    assert code == 2 and "'reference' is not trainable" in err


def test_loading_speechbrain_leaves_the_process_alone():
    import subprocess
    import sys

    # A fresh interpreter: speechbrain applies its quirks only once per process.
    script = (
        "import torch\n"
        "before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)\n"
        "import audiobench.methods.audiotoken.xvector\n"
        "from audiobench.methods.audiotoken.beats import _tiny_checkpoint, load_beats\n"
        "load_beats(_tiny_checkpoint())\n"
        "import speechbrain.core\n"
        "after = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)\n"
        "assert after == before, (before, after)\n"
        "import sys\n"  # module scans (as hypothesis does) must not trip lazy imports
        "[getattr(module, '__file__', None) for module in list(sys.modules.values())]\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
