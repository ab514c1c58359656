"""LoRA on latent models: the files diffusers writes load into ours with the same output, ours load into diffusers'
``load_lora_weights`` with the same output, several adapters, fuse/unfuse, and clear errors for files that do not fit."""

from __future__ import annotations

import pytest
import torch
from zoo_latent import lora
from zoo_latent.model import LatentTextToImageModel

from zoo_core.errors import WeightsError

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=g)
    t = torch.tensor([10, 700])
    states = torch.randn(2, 7, 32, generator=g)
    return x, t, states


def _pipe(folder):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _diffusers_lora(pipe, directory, *, rank=4, alpha=8, seed=1, with_metadata=True, text_encoder=False):
    """A LoRA file made the way diffusers' train_dreambooth_lora.py makes one (peft adapters, its saving helpers)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    config = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=TARGETS)
    pipe.unet.add_adapter(config)
    kwargs = {}
    if text_encoder:
        from peft import inject_adapter_in_model  # transformers' add_adapter wants a newer peft

        te_config = LoraConfig(
            r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=["q_proj", "v_proj"]
        )
        inject_adapter_in_model(te_config, pipe.text_encoder)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in list(pipe.unet.named_parameters()) + list(pipe.text_encoder.named_parameters()):
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    unet_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    if with_metadata:
        kwargs["unet_lora_adapter_metadata"] = config.to_dict()
    if text_encoder:
        kwargs["text_encoder_lora_layers"] = {
            k.replace(".default.", "."): v for k, v in pipe.text_encoder.state_dict().items() if "lora_" in k
        }
        kwargs["text_encoder_lora_adapter_metadata"] = te_config.to_dict()
    type(pipe).save_lora_weights(directory, unet_lora_layers=unet_layers, safe_serialization=True, **kwargs)
    return directory / lora.LORA_WEIGHTS_NAME


@pytest.mark.parametrize("with_metadata", [True, False])
def test_diffusers_trained_lora_loads_with_same_unet_output(pipeline_dir, tmp_path, with_metadata):
    folder, _ = pipeline_dir
    pipe = _pipe(folder)
    path = _diffusers_lora(pipe, tmp_path, alpha=8 if with_metadata else 4, with_metadata=with_metadata)
    x, t, states = _inputs()
    with torch.no_grad():
        want = pipe.unet(x, t, states).sample  # the adapters are active in diffusers' UNet
        model = LatentTextToImageModel.from_pretrained(folder)
        base = model.unet(x, t, states)
        model.load_lora(path)
        got = model.unet(x, t, states)
    assert (got - base).abs().max() > 1e-2  # the adapter changes the output...
    assert (got - want).abs().max() <= 1e-4  # ...exactly as diffusers applies it


def test_our_lora_file_loads_in_diffusers_load_lora_weights(pipeline_dir, tmp_path):
    folder, _ = pipeline_dir
    model = LatentTextToImageModel.from_pretrained(folder)
    g = torch.Generator().manual_seed(5)
    pairs = {"unet": {}}
    for name, module in model.unet.named_modules():
        if name.endswith(("attn1.to_q", "attn2.to_k", "attn2.to_v", "attn1.to_out.0")):
            pairs["unet"][name] = lora.LoRAPair(
                torch.randn(3, module.in_features, generator=g) * 0.2,
                torch.randn(module.out_features, 3, generator=g) * 0.2,
                alpha=6.0,  # scale 2, folded into up when saved
            )
    path = lora.save_lora_weights(tmp_path, pairs)
    x, t, states = _inputs(1)
    pipe = _pipe(folder)
    pipe.load_lora_weights(str(tmp_path), weight_name=path.name, adapter_name="ours")
    with torch.no_grad():
        want = pipe.unet(x, t, states).sample
        model.load_lora(path)
        got = model.unet(x, t, states)
        # the same layers computed by hand: W x + 2 up down x on each adapted layer
        model.unload_lora()
        for name, pair in pairs["unet"].items():
            layer = dict(model.unet.named_modules())[name]
            layer.weight += 2.0 * pair.up @ pair.down
        by_hand = model.unet(x, t, states)
    assert (got - want).abs().max() <= 1e-4
    assert (got - by_hand).abs().max() <= 1e-4


def test_text_encoder_lora_from_diffusers(pipeline_dir, tmp_path):
    folder, _ = pipeline_dir
    pipe = _pipe(folder)
    path = _diffusers_lora(pipe, tmp_path, text_encoder=True)
    ids = pipe.tokenizer(["a red circle"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        want = pipe.text_encoder(ids).last_hidden_state
        model = LatentTextToImageModel.from_pretrained(folder)
        model.load_lora(path)
        got = model.text_encoder(ids).last_hidden_state
    assert (got - want).abs().max() <= 1e-4


def _old_layouts(state):
    """The keys of a file diffusers saved, in the peft layout and the two older diffusers layouts."""
    peft, processor, compatible = {}, {}, {}
    for key, value in state.items():
        module, updown = key.removesuffix(".weight").rsplit(
            ".lora.", 1
        )  # diffusers writes lora.down / lora.up
        peft[f"{module}.lora_{'A' if updown == 'down' else 'B'}.weight"] = value
        compatible[f"{module}.lora.{updown}.weight"] = value
        attn, proj = (
            module.rsplit(".", 1)
            if not module.endswith("to_out.0")
            else (module[: -len(".to_out.0")], "to_out")
        )
        processor[f"{attn[len('unet.') :]}.processor.{proj}_lora.{updown}.weight"] = (
            value  # no prefix, oldest
        )
    return peft, processor, compatible


def test_older_layouts_give_the_same_output(pipeline_dir, tmp_path):
    from safetensors.torch import load_file

    folder, _ = pipeline_dir
    path = _diffusers_lora(_pipe(folder), tmp_path, alpha=4, with_metadata=False)
    state = load_file(path)
    x, t, states = _inputs(2)
    model = LatentTextToImageModel.from_pretrained(folder)
    outputs = []
    with torch.no_grad():
        for layout in _old_layouts(state):
            model.load_lora(layout, adapter_name="x")
            outputs.append(model.unet(x, t, states))
            model.unload_lora()
    assert all((o - outputs[0]).abs().max() <= 1e-6 for o in outputs[1:])


def test_two_adapters_with_weights_match_diffusers_set_adapters(pipeline_dir, tmp_path):
    folder, _ = pipeline_dir
    a = _diffusers_lora(_pipe(folder), tmp_path / "a", seed=1, with_metadata=False, alpha=4)
    b = _diffusers_lora(_pipe(folder), tmp_path / "b", seed=2, with_metadata=False, alpha=4)
    pipe = _pipe(folder)
    pipe.load_lora_weights(str(a.parent), adapter_name="a")
    pipe.load_lora_weights(str(b.parent), adapter_name="b")
    pipe.set_adapters(["a", "b"], adapter_weights=[0.5, 1.5])
    x, t, states = _inputs(3)
    model = LatentTextToImageModel.from_pretrained(folder)
    with torch.no_grad():
        want = pipe.unet(x, t, states).sample
        base = model.unet(x, t, states)
        model.load_lora(a, scale=0.5, adapter_name="a")
        model.load_lora(b, scale=1.5, adapter_name="b")
        got = model.unet(x, t, states)
        model.fuse_lora()
        fused = model.unet(x, t, states)
        model.unfuse_lora()
        model.set_lora_adapters("a", 1.0)
        only_a = model.unet(x, t, states)
        model.unload_lora()
        after = model.unet(x, t, states)
    assert (got - want).abs().max() <= 1e-4
    assert (fused - got).abs().max() <= 1e-4
    assert (only_a - got).abs().max() > 1e-3
    assert (after - base).abs().max() <= 1e-5 and model.lora_adapters == {}


def test_lora_of_other_shapes_or_architecture_is_refused_and_model_unchanged(pipeline_dir):
    folder, _ = pipeline_dir
    model = LatentTextToImageModel.from_pretrained(folder)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    name = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
    wrong = {
        f"unet.{name}.lora_A.weight": torch.zeros(4, 320),
        f"unet.{name}.lora_B.weight": torch.zeros(64, 4),
    }
    with pytest.raises(WeightsError, match=r"\(4, 320\).*\(4, 64\)"):
        model.load_lora(wrong)
    other = {
        "unet.encoder.blocks.0.q.lora_A.weight": torch.zeros(4, 8),
        "unet.encoder.blocks.0.q.lora_B.weight": torch.zeros(8, 4),
    }
    with pytest.raises(WeightsError, match="another architecture.*encoder.blocks.0.q"):
        model.load_lora(other)
    with pytest.raises(WeightsError, match="not in a LoRA layout.*lora_unet_x"):
        model.load_lora({"lora_unet_x.lora_down.weight": torch.zeros(1)})
    assert model.lora_adapters == {}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
