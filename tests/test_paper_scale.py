"""Paper scale without the weights: manifests against the authors' code, published sizes,
Lightning checkpoints read safely, the `paper` loaders run from a weights folder, and
`models fetch` without a network."""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import types
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import yaml
from audiobench.methods.audiotoken.embedder import AudioTokenEmbedder
from audiobench.methods.wav2clip_vqgan.method import TINY_DDCONFIG, VQGAN, load_taming_vqgan

from audiobench.errors import AudiobenchError
from audiobench.models import LoadOptions, ModelZoo, classifier, clip, imagebind, inception
from audiobench.models.checkpoints import load_state_dict
from audiobench.models.clip import ClipEncoder
from audiobench.models.imagebind import TINY_DIMS, ImageBindAudioEncoder, ImageBindVisionEncoder
from audiobench.models.inventory import roles_in_use
from audiobench.models.manifest import check_files, manifest_document, role_manifest
from audiobench.models.zoo import modules_of, registered_roles
from tests.conftest import HANG_SECONDS, run_subprocess

FIXTURES = Path(__file__).parent / "fixtures" / "manifests"
CPU = LoadOptions(torch.device("cpu"), torch.float32)
roles_in_use()  # registers every method's roles


@pytest.mark.parametrize(
    "role", ["imagebind_audio", "imagebind_vision", "vqgan", "wav2clip", "beats", "xvector"]
)
def test_manifests_match_the_authors_code(role):
    """Key lists made from the authors' own model code at the published size
    (tests/fixtures/manifests/make_manifests.py) against what audiobench's loaders read."""
    authors = json.loads((FIXTURES / f"{role}.json").read_text())
    assert authors["role"] == role
    ours = manifest_document(role)
    assert ours["role"] == role
    assert ours["keys"] == authors["keys"]


def test_the_embedder_matches_the_authors_code():
    authors = json.loads((FIXTURES / "embedder.json").read_text())
    with torch.device("meta"):
        embedder = AudioTokenEmbedder(3 * 768, 768)
    ours = {key: list(value.shape) for key, value in embedder.state_dict().items()}
    assert ours == authors["keys"]
    assert sum(value.numel() for value in embedder.parameters()) == 8_853_507  # the paper's


def _parameters(shapes: dict[str, tuple[int, ...]], skip: tuple[str, ...] = ()) -> int:
    return sum(
        int(torch.tensor(shape).prod()) if shape else 1
        for key, shape in shapes.items()
        if not key.endswith(skip)
    )


def test_paper_random_builds_the_published_sizes():
    """Parameter counts of the published models, from the embedded configs (independent
    figures: SD v1.4's model cards and ImageBind's and taming's code)."""
    sd = role_manifest("sd")
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert _parameters(sd["unet"]) == 859_520_964
    assert _parameters(sd["vae"]) == 83_653_863
    assert _parameters(sd["text_encoder"]) == 123_060_480
    assert sd["unet"]["conv_in.weight"] == (320, 4, 3, 3)  # 64 x 64 latents of 512 px images
    unclip = role_manifest("unclip")
    assert unclip["unet"]["class_embedding.linear_1.weight"] == (1280, 2048)  # 1024-d embeds x 2
    assert unclip["text_encoder"]["final_layer_norm.weight"] == (1024,)  # OpenCLIP ViT-H text
    assert "image_encoder" not in unclip  # never loaded: the baseline passes image_embeds
    assert _parameters(role_manifest("vqgan")[""]) == 76_073_859
    imagebind = role_manifest("imagebind_audio")[""]
    assert imagebind["modality_heads.audio.2.weight"] == (1024, 768)
    assert _parameters(role_manifest("imagebind_vision")[""]) == 632_829_440
    assert _parameters(role_manifest("clip_l14")["model"]) == 427_616_513
    assert _parameters(role_manifest("classifier")["model"], buffers) == 86_567_656


_META_TENSORS_AFTER_THE_BEATS_MANIFEST = """
import sys, torch
import audiobench.methods.audiotoken.method
from audiobench.models.manifest import role_manifest
role_manifest("beats")
print([f"{name}.{attr}" for name, module in list(sys.modules.items()) if module is not None
       for attr, value in list(vars(module).items())
       if isinstance(value, torch.Tensor) and value.is_meta])
"""


def test_a_manifest_leaves_no_library_tensor_on_the_meta_device():
    """A library first imported while a manifest is built on the meta device would keep the
    tensors it makes at import time there for the whole process: BEATs' manifest, first in a
    fresh interpreter, put torchaudio's Kaldi EPSILON there, and every fbank (ImageBind's and
    BEATs' preprocessing) then failed. Afterwards no module holds a meta tensor."""
    result = subprocess.run(
        [sys.executable, "-c", _META_TENSORS_AFTER_THE_BEATS_MANIFEST],
        capture_output=True,
        text=True,
        timeout=HANG_SECONDS,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_manifest_command_prints_components_for_pipelines(cli):
    code, out, _ = cli("models", "manifest", "sd", "--json")
    document = json.loads(out)
    assert code == 0 and set(document) == {"role", "components"}
    assert set(document["components"]) == {"unet", "vae", "text_encoder"}
    assert document["components"]["unet"]["conv_in.weight"] == [320, 4, 3, 3]
    code, out, _ = cli("models", "manifest", "vqgan", "--json")
    document = json.loads(out)
    assert code == 0 and set(document) == {"role", "keys"}
    assert not any(key.startswith("loss.") for key in document["keys"])
    code, out, _ = cli("models", "manifest", "beats")
    assert code == 0 and "encoder.pos_conv.0.weight_g\t" in out


def test_deep_check_names_missing_unexpected_and_misshapen_keys(tmp_path, cli):
    """A paper-size X-vector file passes; damaged copies are named before anything runs."""
    weights = tmp_path / "weights"
    state = ModelZoo("paper-random", CPU).load("xvector").network.state_dict()
    (weights / "xvector").mkdir(parents=True)
    target = weights / "xvector" / "embedding_model.ckpt"
    torch.save(state, target)
    [check] = check_files("xvector", target)
    assert check.ok, check.describe()

    damaged = dict(state)
    del damaged["blocks.0.conv.weight"]
    damaged["blocks.16.w.weight"] = torch.zeros(7, 3000)
    damaged["extra.weight"] = torch.zeros(1)
    torch.save(damaged, target)
    [check] = check_files("xvector", target)
    assert check.missing == ["blocks.0.conv.weight"] and check.unexpected == ["extra.weight"]
    assert check.misshapen == ["blocks.16.w.weight (7, 3000) (expected (512, 3000))"]
    code, out, _ = cli("models", "check", "--deep", "--weights-dir", weights)
    assert code == 1
    assert "mismatch" in out
    assert "weight files that do not fit their loader: xvector" in out


def test_deep_check_reads_a_lightning_checkpoint_with_its_filter(tmp_path):
    """The VQGAN's file: the `state_dict` entry of a Lightning checkpoint, `loss.*` ignored."""
    folder = tmp_path / "vqgan"
    _lightning_checkpoint(folder, VQGAN(8, 64, TINY_DDCONFIG))
    [check] = check_files("vqgan", folder)
    assert check.file == folder / "last.ckpt"
    assert not any(key.startswith("loss.") for key in check.unexpected)  # filtered, as loading
    assert check.misshapen  # a tiny model against the published manifest
    assert "quantize.embedding.weight (64, 8) (expected (16384, 256))" in check.misshapen


class _FakeLightning:
    """Builds a checkpoint as PyTorch Lightning 1.x saves it, without Lightning installed:
    classes under Lightning's qualified names in modules that exist only while saving."""

    names: ClassVar[dict[str, str]] = {
        "pytorch_lightning.callbacks.model_checkpoint": "ModelCheckpoint",
        "pytorch_lightning.utilities.parsing": "AttributeDict",
    }

    def __enter__(self):
        self.classes = {}
        for module_name in ("pytorch_lightning", "pytorch_lightning.callbacks"):
            sys.modules[module_name] = types.ModuleType(module_name)
        for module_name, class_name in self.names.items():
            module = types.ModuleType(module_name)
            base = dict if class_name == "AttributeDict" else object
            cls = type(class_name, (base,), {"__module__": module_name})
            setattr(module, class_name, cls)
            sys.modules[module_name] = module
            self.classes[class_name] = cls
        return self.classes

    def __exit__(self, *exc):
        for module_name in [*self.names, "pytorch_lightning.callbacks", "pytorch_lightning"]:
            del sys.modules[module_name]


def _lightning_checkpoint(folder: Path, model: VQGAN) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    state["loss.discriminator.main.0.weight"] = torch.zeros(4, 3, 4, 4)
    with _FakeLightning() as classes:
        hyper = classes["AttributeDict"](embed_dim=8, n_embed=64)
        checkpoint = {
            "epoch": 3,
            "global_step": 1200,
            "pytorch-lightning_version": "1.0.8",
            "callbacks": {classes["ModelCheckpoint"]: {"best_model_score": torch.tensor(0.5)}},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 4.5e-6, "params": [0]}]}],
            "lr_schedulers": [],
            "state_dict": state,
            "hyper_parameters": hyper,
            "args": argparse.Namespace(base=["configs/model.yaml"], seed=23),
        }
        torch.save(checkpoint, folder / "last.ckpt")
    config = {"model": {"params": {"embed_dim": 8, "n_embed": 64, "ddconfig": TINY_DDCONFIG}}}
    (folder / "model.yaml").write_text(yaml.safe_dump(config))


def test_a_lightning_checkpoint_decodes_exactly_like_its_state_dict(tmp_path):
    torch.manual_seed(5)
    source = VQGAN(8, 64, TINY_DDCONFIG).eval()
    _lightning_checkpoint(tmp_path / "vqgan", source)
    assert "pytorch_lightning" not in sys.modules
    raw = (tmp_path / "vqgan" / "last.ckpt").read_bytes()
    assert b"pytorch_lightning.callbacks.model_checkpoint" in raw  # as Lightning 1.x writes it
    loaded = load_taming_vqgan(tmp_path / "vqgan" / "last.ckpt", tmp_path / "vqgan" / "model.yaml")
    codes = torch.randint(64, (2, 8, 8))
    torch.testing.assert_close(loaded.decode_code(codes), source.decode_code(codes), rtol=0, atol=0)
    assert "pytorch_lightning" not in sys.modules  # nothing was imported to read it
    # and through the zoo's paper path, from a weights folder (the yaml decides the size)
    zoo = ModelZoo("paper", CPU, tmp_path)
    torch.testing.assert_close(zoo.load("vqgan").decode_code(codes), source.decode_code(codes))


class _Payload:
    """Unpickling this runs `os.system`: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_checkpoint_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "callbacks": _Payload(marker)}, path)
    with pytest.raises(AudiobenchError) as refused:
        load_state_dict(path, key="state_dict")
    message = str(refused.value)
    assert "was refused" in message and "system" in message
    assert "truncated" not in message and "corrupt" not in message
    assert not marker.exists()
    # a plain pickle (torch's legacy format, protocol 2) of the same payload is refused too
    with open(tmp_path / "plain.pt", "wb") as handle:
        pickle.dump({"callbacks": _Payload(marker)}, handle, protocol=2)
    with pytest.raises(AudiobenchError, match="was refused"):
        load_state_dict(tmp_path / "plain.pt")
    assert not marker.exists()


def test_a_truncated_checkpoint_is_still_called_truncated(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(AudiobenchError, match="unreadable \\(truncated, corrupt"):
        load_state_dict(path)


ROLES_SIZED_BY_THEIR_FILES = ("sd", "unclip", "beats", "xvector", "wav2clip", "vqgan")


def test_paper_loaders_run_from_a_weights_folder(tmp_path):
    """The `paper` code paths of the roles whose loaders take their sizes from the files,
    fed files in the published formats: diffusers folders, BEATs' {'cfg', 'model'}, taming's
    yaml + Lightning checkpoint, speechbrain's X-vector, the paper-size Wav2CLIP."""
    from audiobench.methods.audiotoken.beats import _tiny_checkpoint

    weights = tmp_path / "weights"
    tiny = ModelZoo("tiny", CPU)
    tiny.load("sd").save_pretrained(weights / "sd")
    tiny.load("unclip").save_pretrained(weights / "unclip")
    (weights / "beats").mkdir(parents=True)
    (weights / "beats" / "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt").write_bytes(
        _tiny_checkpoint().read_bytes()
    )
    (weights / "xvector").mkdir()
    torch.save(
        tiny.load("xvector").network.state_dict(), weights / "xvector" / "embedding_model.ckpt"
    )
    (weights / "wav2clip").mkdir()
    paper_size = ModelZoo("paper-random", CPU).load("wav2clip")
    torch.save(paper_size.state_dict(), weights / "wav2clip" / "Wav2CLIP.pt")
    _lightning_checkpoint(weights / "vqgan", tiny.load("vqgan"))

    zoo = ModelZoo("paper", CPU, weights)
    for role in ROLES_SIZED_BY_THEIR_FILES:
        model = zoo.load(role)
        assert zoo.identify(role).path.startswith(str(weights)), role
    prompt = torch.zeros(1, 77, 32)
    image = zoo.load("sd")(prompt_embeds=prompt, num_inference_steps=1, output_type="pt").images
    assert image.shape == (1, 3, 64, 64)
    embeds = torch.zeros(1, 32)
    image = zoo.load("unclip")(image_embeds=embeds, num_inference_steps=1, output_type="pt").images
    assert image.shape == (1, 3, 64, 64)
    audio = torch.zeros(1, 16_000)
    torch.testing.assert_close(zoo.load("wav2clip").embed([audio[0]]), paper_size.embed([audio[0]]))
    assert zoo.load("beats").layer_features(audio).shape[-1] == 3 * 16
    assert model is zoo.load("vqgan")


def _clip_probe(encoder: ClipEncoder) -> torch.Tensor:
    size = encoder.image_size
    images = encoder.embed_pixels(torch.randn(2, 3, size, size))
    return torch.cat([images, encoder.embed_texts(["a dog barks", "rain on a roof"])])


# What each role computes on a fixed random input: features, embeddings or logits.
PROBES: dict[str, Callable[[Any], torch.Tensor]] = {
    "inception": lambda model: model.features(
        torch.randint(256, (1, 3, 64, 64), dtype=torch.uint8)
    ),
    "imagebind_audio": lambda model: model.embed([torch.randn(32_000) * 0.1]),
    "imagebind_vision": lambda model: model.embed_pixels(torch.randn(2, 3, 224, 224)),
    "classifier": lambda model: model.model(torch.randn(2, 3, 224, 224)),
    **dict.fromkeys(("clip_b32", "clip_l14", "clip_l14_336"), _clip_probe),
}
# Where the published files go (WEIGHTS/...), under their published names and formats. One
# imagebind_huge.pth holds both branches, and the vision role takes the audio role's copy.
PUBLISHED_FILES = {
    "inception": f"inception/{inception.CHECKPOINT}",
    "imagebind_audio": f"imagebind_audio/{imagebind.CHECKPOINT}",
    "imagebind_vision": f"imagebind_audio/{imagebind.CHECKPOINT}",
    "classifier": "classifier/model.safetensors",
    "clip_b32": "clip_b32/open_clip_pytorch_model.bin",
    "clip_l14": "clip_l14/open_clip_model.safetensors",
    "clip_l14_336": "clip_l14_336/open_clip_model.safetensors",
}


def _probe(role: str, model: Any) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.no_grad():
        return PROBES[role](model)


def test_paper_loaders_of_named_architectures_run_from_a_weights_folder(tmp_path, monkeypatch):
    """The `paper` code paths of the roles whose architecture is fixed by name (open_clip's
    and timm's model names, ImageBind huge's sizes, torch-fidelity's Inception), fed the tiny
    models' weights as files with the published names and layouts, which must give exactly
    the tiny models' outputs. The one call that fixes each architecture is handed the tiny
    profile's sizes (Inception's tiny profile is already the published architecture); all
    else runs as with the published files: locating, checking and reading each file, and the
    libraries' own loading, key conversions and strict matching. With
    `test_paper_loaders_run_from_a_weights_folder`, every registered role's `paper` path has
    run, and a new role fails here until one of the two runs it."""
    import open_clip
    import timm
    from safetensors.torch import save_file

    assert {*ROLES_SIZED_BY_THEIR_FILES, *PROBES} == set(registered_roles())
    tiny = ModelZoo("tiny", CPU)
    files: dict[Path, dict[str, torch.Tensor]] = {}
    for role, name in PUBLISHED_FILES.items():
        [(_, module)] = modules_of(tiny.load(role))
        files.setdefault(tmp_path / "weights" / name, {}).update(module.state_dict())
    for path, state in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".safetensors":
            save_file(state, path)
        else:
            torch.save(state, path)

    for encoder in (ImageBindAudioEncoder, ImageBindVisionEncoder):
        official = encoder.from_official_checkpoint
        monkeypatch.setattr(encoder, "from_official_checkpoint", partial(official, **TINY_DIMS))
    monkeypatch.setattr(timm, "create_model", partial(timm.create_model, **classifier.TINY_SIZE))
    towers = {
        model.spec.architecture: clip.tiny_towers(model.spec)
        for model in map(tiny.load, PROBES)
        if isinstance(model, ClipEncoder)
    }
    create_clip = open_clip.create_model
    monkeypatch.setattr(
        open_clip,
        "create_model",
        lambda name, **kwargs: create_clip(name, **kwargs, **towers[name]),
    )

    zoo = ModelZoo("paper", CPU, tmp_path / "weights")
    for role in PROBES:
        assert zoo.identify(role).path == str(tmp_path / "weights" / PUBLISHED_FILES[role])
        assert torch.equal(_probe(role, zoo.load(role)), _probe(role, tiny.load(role))), role
    assert zoo.load("classifier").model.pretrained_cfg["file"] == zoo.identify("classifier").path


def test_models_fetch_without_a_network_lists_every_role_and_exits_1(tmp_path):
    """Every role is tried (none stops the others), the table names each, and no traceback."""
    closed = "http://127.0.0.1:9"  # nothing listens there: connections are refused at once
    result = run_subprocess(
        "models",
        "fetch",
        "--weights-dir",
        tmp_path,
        env={
            "HF_HUB_OFFLINE": "1",
            "https_proxy": closed,
            "HTTPS_PROXY": closed,
            "TORCH_HOME": str(tmp_path / "torch"),
        },
        timeout=HANG_SECONDS,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for role in roles_in_use():
        assert f"{role}: failed" in result.stdout, role
    assert "still missing:" in result.stdout


class _RangeServer:
    """A loopback HTTP server for one file that honours `Range: bytes=N-` (as the hosts of
    the published weights do) and records the ranges it was asked for."""

    def __init__(self, payload: bytes, fail_after: int | None = None) -> None:
        import http.server
        import threading

        server_self = self
        self.payload, self.fail_after, self.ranges = payload, fail_after, []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                start = 0
                header = self.headers.get("Range")
                server_self.ranges.append(header)
                if header:
                    start = int(header.removeprefix("bytes=").removesuffix("-"))
                body = server_self.payload[start:]
                self.send_response(206 if header else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server_self.fail_after is not None and not header:
                    self.wfile.write(body[: server_self.fail_after])
                    self.wfile.flush()
                    self.connection.close()  # the connection drops mid-download
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/weights.pth"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_downloads_resume_and_check_the_published_hash(tmp_path, monkeypatch):
    import hashlib

    from audiobench.models.zoo import download_file

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    payload = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256(payload).hexdigest()
    target = tmp_path / "inception" / "weights.pth"
    with _RangeServer(payload, fail_after=300_000) as url:
        with pytest.raises(AudiobenchError, match="stopped at 300000 of 1048576 bytes"):
            download_file(url, target, sha256_prefix=digest[:8])
        partial = target.with_name("weights.pth.part")
        assert not target.exists() and 0 < partial.stat().st_size < len(payload)
    resumed_from = partial.stat().st_size
    server = _RangeServer(payload)
    with server as url:
        assert download_file(url, target, sha256_prefix=digest[:8]) == target
    assert server.ranges == [f"bytes={resumed_from}-"]  # only the rest was asked for
    assert target.read_bytes() == payload and not partial.exists()
    with _RangeServer(payload) as url:
        wrong = tmp_path / "other" / "weights.pth"
        with pytest.raises(AudiobenchError, match="not the published 00000000"):
            download_file(url, wrong, sha256_prefix="00000000")
        assert not wrong.exists() and not wrong.with_name("weights.pth.part").exists()
