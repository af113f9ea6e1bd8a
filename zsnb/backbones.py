"""Backbones: a diffusers UNet with what it needs to see an image (VAE or identity, text, noise schedule).

`load_backbone("sd15")` loads real weights with diffusers `from_pretrained` from the local Hugging Face
cache or a local diffusers folder, never downloading unless `download=True`; `weights="random"` builds the
same architecture from the configs shipped in `zsnb/configs/` with seeded random weights, offline (the
structural test bed and the untrained control); `"organism"` is the project's own small model, trained
on `zsnb.world` and shipped in the package.

diffusers (and zsnb.extract, which needs it) is imported by the functions that build or run a UNet, not at
import time: the name tables (SPECS, KNOWN_NAMES, `family_of`) serve `python -m zsnb ... --help` without it.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from zsnb import vit
from zsnb.errors import UnknownNameError, WeightsUnavailable, ZsnbError
from zsnb.protocol import Capture, Needs

if TYPE_CHECKING:  # imported where a UNet is built or run (see the module docstring)
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

CONFIG_DIR = Path(__file__).parent / "configs"
DTYPES: dict[str, torch.dtype] = {"float64": torch.float64, "fp64": torch.float64, "float32": torch.float32,
                                  "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
                                  "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Spec:
    """What zsnb knows about a named backbone."""

    hub_id: str
    family: str  # "sd1": one CLIP text encoder; "sdxl": two, plus pooled text and size conditioning
    resolution: int  # native input side in pixels
    random_config: str | None  # folder in zsnb/configs/ to build random weights from


SPECS: dict[str, Spec] = {
    "sd14": Spec("CompVis/stable-diffusion-v1-4", "sd1", 512, "sd15"),  # SD1.4 and SD1.5 share the architecture
    "sd15": Spec("stable-diffusion-v1-5/stable-diffusion-v1-5", "sd1", 512, "sd15"),
    "sd21-base": Spec("stabilityai/stable-diffusion-2-1-base", "sd1", 512, "sd21-base"),
    "ssd-1b": Spec("segmind/SSD-1B", "sdxl", 1024, "ssd-1b"),
    "sdxl": Spec("stabilityai/stable-diffusion-xl-base-1.0", "sdxl", 1024, "sdxl"),
}
KNOWN_NAMES = (*SPECS, "organism", *vit.NAMES)


@dataclass
class Conditioning:
    """Text conditioning for one prompt: encoder states (1, L, D) and SDXL's extra inputs (or None)."""

    encoder_hidden_states: torch.Tensor
    added_cond_kwargs: dict[str, torch.Tensor] | None = None

    def expand(self, batch: int) -> Conditioning:
        """The same conditioning repeated for a batch of `batch` inputs."""
        extra = None if self.added_cond_kwargs is None else {
            k: v.expand(batch, *v.shape[1:]) for k, v in self.added_cond_kwargs.items()}
        return Conditioning(self.encoder_hidden_states.expand(batch, -1, -1), extra)


@dataclass
class Backbone:
    """A UNet ready for capture: encode an image, noise it, condition it, run it."""

    name: str
    unet: UNet2DConditionModel
    vae: AutoencoderKL | None  # None: pixel space (the organism), the "VAE" is the identity
    scheduler: DDPMScheduler  # only its noise schedule is used (add_noise)
    encode_prompt: Callable[[str], Conditioning]
    resolution: int
    weights: str  # "pretrained", "random" or "trained"
    family: str  # "sd1" (SD1.x, SD2.x), "sdxl" (SDXL, SSD-1B) or "organism": picks the methods' defaults

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def latent_scale(self) -> float:
        """The VAE's scaling factor (1 in pixel space)."""
        return 1.0 if self.vae is None else float(self.vae.config.scaling_factor)

    @property
    def latent_resolution(self) -> int:
        """Side of the UNet input for an image of `resolution` pixels."""
        return self.resolution // self.vae_factor

    @property
    def vae_factor(self) -> int:
        """Pixels per latent cell (8 for SD's VAE, 1 in pixel space)."""
        return 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    def attention_layers(self, kind: str = "self", resolution: int | None = None) -> dict[int, list[str]]:
        """Names of attention layers ("self": attn1, "cross": attn2) grouped by map side at native input."""
        return attention_layers(self.unet, self.latent_resolution, kind, resolution)

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] to the UNet input (B, C, h, w): the VAE posterior mean times its scale."""
        if self.vae is None:
            return (images * 2 - 1).to(self.device, self.dtype)
        x = (images * 2 - 1).to(self.device, self.vae.dtype)
        return (self.vae.encode(x).latent_dist.mean * self.latent_scale).to(self.dtype)

    @property
    def weights_id(self) -> str:
        """The organism's file hash, else the UNet's hub id or folder, with the weights kind."""
        if self.family == "organism" and self.weights != "random":
            from zsnb import organism

            return "organism sha256:" + hashlib.sha256(organism.UNET_FILE.read_bytes()).hexdigest()[:16]
        return f"{self.unet.config.get('_name_or_path', self.name)} ({self.weights})"

    @property
    def weight_bytes(self) -> int:
        """Bytes of the UNet's weights (the VAE and text encoders are small beside them and run once)."""
        return sum(p.numel() * p.element_size() for p in self.unet.parameters())

    def tap_shape(self, tap: str) -> tuple[int, int]:
        """(map side at the native input, channels) of a feature tap (an alias or an attention layer name)."""
        from zsnb.extract import resolve_tap

        layer = resolve_tap(self.unet, tap)
        side = next(s for kind in ("self", "cross") for s, names in self.attention_layers(kind).items()
                    if layer in names)
        return side, self.unet.get_submodule(layer).to_out[0].out_features

    @torch.no_grad()
    def capture(self, images: torch.Tensor, needs: Needs) -> Capture:
        """(N, 3, S, S) in [0, 1] -> one UNet batch holding every timestep (and one per noise draw), recorded."""
        from zsnb import extract

        ts = _check_timesteps(self.scheduler.config.num_train_timesteps, needs.timesteps)
        side = images.shape[-1]
        multiple = self.vae_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)  # every downsample divides
        if side <= 0 or side % multiple or images.shape[-2] != side:
            raise ZsnbError(f"size={side} must be a positive multiple of {multiple} for this UNet; "
                            f"its native size is {self.resolution}.")
        taps = {tap: extract.resolve_tap(self.unet, tap) for tap in needs.features}
        chosen = {kind: [n for res, names in self.attention_layers(kind).items()
                         if needs.resolutions is None or res in needs.resolutions for n in names]
                  for kind in ("self", "cross")}
        if needs.resolutions is not None and needs.kinds and not any(chosen[k] for k in needs.kinds):
            raise ZsnbError(f"resolutions={needs.resolutions} matches no attention layer; available: "
                            f"{sorted(self.attention_layers('self'))}.")
        map_layers = {n for kind in needs.kinds for n in chosen[kind]}
        latents = self.encode_image(images)  # (N, C, h, w)
        n = latents.shape[0]
        x = latents.repeat(len(ts), 1, 1, 1)
        t = torch.tensor(ts, device=self.device).repeat_interleave(n)
        cond = self.encode_prompt(needs.prompt).expand(x.shape[0])
        maps: dict[str, torch.Tensor] = {}
        outputs: dict[str, torch.Tensor] = {}
        for draw in range(needs.draws):
            x_t = extract.add_seeded_noise(self.scheduler, x, t, needs.seed + draw) if needs.noise == "seeded" else x
            got_maps, got_outputs = extract.record(self.unet, x_t, t, cond, map_layers, set(taps.values()),
                                                   needs.stop_after, needs.block)
            for got, total in ((got_maps, maps), (got_outputs, outputs)):
                for name, value in got.items():
                    total[name] = value if draw == 0 else total[name].add_(value)
        if needs.draws > 1:
            for total in (maps, outputs):
                for value in total.values():
                    value.div_(needs.draws)
        return Capture(ts, n, maps, outputs, taps, [n for n in chosen["self"] if n in map_layers],
                       [n for n in chosen["cross"] if n in map_layers], images)


def _check_timesteps(n_train: int, timesteps: Sequence[int]) -> tuple[int, ...]:
    """Timesteps as a tuple of distinct ints inside the scheduler's range [0, n_train)."""
    ts = tuple(int(t) for t in timesteps)
    if not ts or any(not 0 <= t < n_train for t in ts) or any(t != t0 for t, t0 in zip(ts, timesteps, strict=True)):
        raise ZsnbError(f"timesteps={tuple(timesteps)} must be integers in [0, {n_train - 1}] for this "
                        "scheduler (DiffSeg uses 300, DiffCut 50).")
    if len(set(ts)) != len(ts):
        raise ZsnbError(f"timesteps={ts} repeats a timestep; pass each once.")
    return ts


def attention_layers(unet: UNet2DConditionModel, latent_res: int, kind: str = "self",
                     resolution: int | None = None) -> dict[int, list[str]]:
    """Attention module names of `unet` by the side of their spatial map, for a latent of side latent_res."""
    suffix = {"self": "attn1", "cross": "attn2"}.get(kind)
    if suffix is None:
        raise ZsnbError(f"kind={kind!r} is not an attention kind; use 'self' or 'cross'.")
    deepest = len(unet.config.block_out_channels) - 1
    layers: dict[int, list[str]] = {}
    for proc_name in unet.attn_processors:
        name = proc_name.removesuffix(".processor")
        if not name.endswith(suffix):
            continue
        m = re.match(r"(down|up)_blocks\.(\d+)\.", name)
        level = deepest if m is None else int(m[2]) if m[1] == "down" else deepest - int(m[2])
        layers.setdefault(latent_res >> level, []).append(name)
    if resolution is not None:
        if resolution not in layers:
            raise UnknownNameError(f"no {kind}-attention at resolution {resolution}; available: {sorted(layers)}.")
        return {resolution: layers[resolution]}
    return dict(sorted(layers.items(), reverse=True))


def _place(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Move a model to device, and cast it only when its dtype differs."""
    model = model.to(device)
    if next(model.parameters()).dtype == dtype:
        return model
    if getattr(model, "_keep_in_fp32_modules", None):
        return model.to(dtype)  # diffusers keeps those modules in float32 (and says so)
    # diffusers warns on every dtype cast, even with no module to keep in float32 (the UNet, the VAE and the
    # organism have none): cast as a plain torch module.
    return torch.nn.Module.to(model, dtype)


def _check_device_dtype(device: str | torch.device, dtype: torch.dtype | str | None,
                        cpu_dtype: torch.dtype = torch.float32) -> tuple[torch.device, torch.dtype]:
    """Validate the device and pick a dtype (cpu_dtype on CPU, float16 on GPU unless given; names accepted)."""
    if isinstance(dtype, str):
        if dtype.removeprefix("torch.") not in DTYPES:
            raise ZsnbError(f"dtype={dtype!r} is not a dtype name; use one of {', '.join(map(repr, DTYPES))} "
                            "or a torch dtype (torch.float32, torch.float16, torch.bfloat16).")
        dtype = DTYPES[dtype.removeprefix("torch.")]
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ZsnbError(f"device={device!r} is not a torch device; use 'cpu' or 'cuda'.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ZsnbError(f"device={device!r} but CUDA is not available here; use device='cpu' (the organism "
                        "runs there in seconds) or run on a machine with a GPU.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ZsnbError(f"device={device!r} but MPS is not available here; use device='cpu'.")
    if dtype is None:
        dtype = cpu_dtype if dev.type == "cpu" else torch.float16
    if dtype not in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        raise ZsnbError(f"dtype={dtype} is not supported; use torch.float32, torch.float16 or torch.bfloat16 "
                        "(or torch.float64 on the CPU).")
    if dev.type == "cpu" and dtype == torch.float16:
        raise ZsnbError("dtype=torch.float16 on the CPU is slow and unsupported by some ops; use torch.float32 "
                        "(or torch.bfloat16) on the CPU, float16 on a GPU.")
    return dev, dtype


def _empty_prompt_ids(config: dict, tokenizer_pad_is_eos: bool) -> torch.Tensor:
    """Token ids of the empty prompt without a tokenizer file: BOS, EOS, then padding, (1, max_len)."""
    # CLIP's BPE vocabulary puts <|startoftext|> and <|endoftext|> last; "!" (id 0) pads SDXL's second tokenizer.
    bos, eos = config["vocab_size"] - 2, config["vocab_size"] - 1
    pad = eos if tokenizer_pad_is_eos else 0
    ids = torch.full((1, config["max_position_embeddings"]), pad, dtype=torch.long)
    ids[0, :2] = torch.tensor([bos, eos])
    return ids


def _prompt_encoder(family: str, encoders: list, tokenizers: list | None, resolution: int,
                    device: torch.device, dtype: torch.dtype) -> Callable[[str], Conditioning]:
    """A function prompt -> Conditioning for SD1.x/2.x (one CLIP) or SDXL (two CLIPs, pooled, size ids)."""
    cache: dict[str, Conditioning] = {}

    @torch.no_grad()
    def encode(prompt: str) -> Conditioning:
        if prompt in cache:
            return cache[prompt]
        if tokenizers is None and prompt:
            raise ZsnbError("random-weight backbones have no tokenizer files, so only the empty prompt works; "
                            "use prompt='' or load pretrained weights.")
        ids = []
        for i, enc in enumerate(encoders):
            if tokenizers is None:
                ids.append(_empty_prompt_ids(enc.config.to_dict(), tokenizer_pad_is_eos=i == 0))
            else:
                tok = tokenizers[i]
                ids.append(tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True,
                               return_tensors="pt").input_ids)
        if family == "sd1":
            states = encoders[0](ids[0].to(device))[0]
            cond = Conditioning(states.to(dtype))
        else:
            # SDXL: penultimate hidden states of both encoders side by side; pooled output of the second.
            outs = [enc(x.to(device), output_hidden_states=True) for enc, x in zip(encoders, ids, strict=True)]
            states = torch.cat([o.hidden_states[-2] for o in outs], dim=-1)
            size = torch.tensor([[resolution, resolution, 0, 0, resolution, resolution]], device=device)
            cond = Conditioning(states.to(dtype), {"text_embeds": outs[1].text_embeds.to(dtype),
                                                   "time_ids": size.to(dtype)})
        cache[prompt] = cond
        return cond

    return encode


def _vae_dtype(config: dict, dtype: torch.dtype) -> torch.dtype:
    """The dtype the VAE runs in: float32 when its config says force_upcast (diffusers' default: True)."""
    # SDXL's VAE overflows in float16, hence the flag; loading straight in this dtype avoids a cast back.
    return torch.float32 if config.get("force_upcast", True) else dtype


@contextmanager
def _loading_output(progress: bool) -> Iterator[None]:
    """Silence the weight-loading progress bars of diffusers, transformers and huggingface_hub unless progress;
    and one deprecation warning diffusers' own hub lookups trigger."""
    import huggingface_hub.utils
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    restore = [enable for enable, was_on in (
        (diffusers_logging.enable_progress_bar, diffusers_logging.is_progress_bar_enabled()),
        (transformers_logging.enable_progress_bar, transformers_logging.is_progress_bar_enabled()),
        (huggingface_hub.utils.enable_progress_bars, not huggingface_hub.utils.are_progress_bars_disabled()),
    ) if was_on and not progress]
    if not progress:
        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        huggingface_hub.utils.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            # diffusers (0.42) passes huggingface_hub's deprecated `local_dir_use_symlinks` on every hub lookup:
            # not ours to fix, and nothing a user can act on.
            warnings.filterwarnings("ignore", message="The `local_dir_use_symlinks` argument is deprecated",
                                    category=UserWarning)
            yield
    finally:
        for enable in restore:
            enable()


def _check_local_folder(path: Path) -> None:
    """Raise WeightsUnavailable unless `path` looks like a diffusers model folder."""
    if not (path / "model_index.json").is_file() and not (path / "unet" / "config.json").is_file():
        raise WeightsUnavailable(
            f"{str(path)!r} is a folder but not a diffusers model folder: it has neither model_index.json nor "
            f"unet/config.json. Pass a folder saved by diffusers' save_pretrained (unet/, vae/, scheduler/, "
            f"text_encoder/, tokenizer/), or a backbone name: {', '.join(KNOWN_NAMES)}.")


def _load_pretrained(source: str, spec: Spec, device: torch.device, dtype: torch.dtype, download: bool) -> tuple:
    """UNet, VAE, scheduler, prompt encoder from a hub id (cached) or a local diffusers folder."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    kw = {"local_files_only": not download}
    try:
        unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype, **kw)
        vae_config = AutoencoderKL.load_config(source, subfolder="vae", **kw)
        vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=_vae_dtype(vae_config, dtype), **kw)
        scheduler = DDPMScheduler.from_pretrained(source, subfolder="scheduler", **kw)
        family = "sdxl" if unet.config.addition_embed_type == "text_time" else "sd1"
        names = ["text_encoder"] + (["text_encoder_2"] if family == "sdxl" else [])
        classes = [CLIPTextModel, CLIPTextModelWithProjection]
        encoders = [cls.from_pretrained(source, subfolder=n, torch_dtype=dtype, **kw).to(device)
                    for cls, n in zip(classes, names, strict=False)]
        tokenizers = [CLIPTokenizer.from_pretrained(source, subfolder=n.replace("text_encoder", "tokenizer"), **kw)
                      for n in names]
    except (OSError, ValueError) as err:
        if Path(source).is_dir():
            raise WeightsUnavailable(
                f"the local folder {source!r} could not be loaded as a diffusers model ({type(err).__name__}: "
                f"{err}). It needs unet/, vae/, scheduler/, text_encoder/ and tokenizer/ (SDXL: also "
                "text_encoder_2/ and tokenizer_2/) as written by diffusers' save_pretrained.") from err
        raise WeightsUnavailable(
            f"weights for {source!r} are not available offline ({type(err).__name__}). Download them once with "
            f"`hf download {spec.hub_id}` (or `huggingface-cli download {spec.hub_id}`) on a machine with "
            f"internet, pass a local diffusers folder instead, or call load_backbone(..., download=True). "
            "The 'organism' backbone and weights='random' run anywhere, offline.") from err
    resolution = unet.config.sample_size * 2 ** (len(vae.config.block_out_channels) - 1)
    encode = _prompt_encoder(family, encoders, tokenizers, resolution, device, dtype)
    return unet, vae, scheduler, encode, resolution


def _build_random(spec: Spec, device: torch.device, dtype: torch.dtype, seed: int) -> tuple:
    """The same architecture from the shipped configs, with seeded random weights (no download)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = CONFIG_DIR / str(spec.random_config)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(json.loads((folder / "unet.json").read_text()))
    vae = AutoencoderKL.from_config(json.loads((folder / "vae.json").read_text()))  # float32, as it runs
    scheduler = DDPMScheduler.from_config(json.loads((folder / "scheduler.json").read_text()))
    encoders = [CLIPTextModel(CLIPTextConfig(**json.loads((folder / "text_encoder.json").read_text())))]
    if spec.family == "sdxl":
        cfg2 = CLIPTextConfig(**json.loads((folder / "text_encoder_2.json").read_text()))
        encoders.append(CLIPTextModelWithProjection(cfg2))
    encoders = [e.to(device, dtype).eval() for e in encoders]
    encode = _prompt_encoder(spec.family, encoders, None, spec.resolution, device, dtype)
    return unet, vae, scheduler, encode, spec.resolution


def _load_organism(device: torch.device, dtype: torch.dtype, weights: str, seed: int) -> Backbone:
    """The shipped organism (weights="pretrained") or its untrained twin (weights="random")."""
    from safetensors.torch import load_file

    from zsnb import organism

    if weights == "random":
        unet = organism.build_unet(seed)
    else:
        if not organism.UNET_FILE.exists():
            raise WeightsUnavailable(f"organism weights are missing at {organism.UNET_FILE}; reinstall zsnb or "
                                     "retrain them with `python -m zsnb.organism.train --export`.")
        unet = organism.build_unet(seed)
        unet.load_state_dict({k: v.float() for k, v in load_file(str(organism.UNET_FILE)).items()})
    unet = _place(unet, device, dtype).eval().requires_grad_(False)
    cond = Conditioning(organism.null_conditioning(1, dtype, str(device)))
    return Backbone("organism", unet, None, organism.build_scheduler(), lambda prompt: cond,
                    organism.RESOLUTION, "trained" if weights == "pretrained" else "random", "organism")


def family_of(name_or_path: str) -> str:
    """The family of a named backbone or local diffusers folder, without loading weights ("sd1", "sdxl", ...)."""
    if name_or_path in vit.NAMES:
        return "vit"
    if name_or_path == "organism":
        return "organism"
    if name_or_path in SPECS:
        return SPECS[name_or_path].family
    config = Path(name_or_path) / "unet" / "config.json"
    if config.is_file():
        return "sdxl" if json.loads(config.read_text()).get("addition_embed_type") == "text_time" else "sd1"
    raise UnknownNameError(f"unknown backbone {name_or_path!r}; known: {', '.join(KNOWN_NAMES)}, or the "
                           "path of a local diffusers folder (with unet/, vae/, text_encoder/, scheduler/).")


def load_backbone(name_or_path: str, device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None,
                  weights: str = "pretrained", *, seed: int = 0, download: bool = False,
                  progress: bool = True) -> Backbone | vit.VitBackbone:
    """Load a named backbone (see KNOWN_NAMES) or a local diffusers folder; weights="random" builds offline.

    dtype: a torch dtype or its name ("float32", "bfloat16", ...); None: float32 on CPU (float64
    for the organism), float16 on GPU.
    progress=False silences the weight-loading progress bars.
    """
    if name_or_path in vit.NAMES:  # not a UNet: the ONNX ViT-S/14 (zsnb.vit)
        return vit.load(name_or_path, device, dtype, weights)
    if weights not in ("pretrained", "random"):
        raise ZsnbError(f"weights={weights!r}; use 'pretrained' (real weights) or 'random' (untrained control).")
    # The organism is small enough to run in float64 on a CPU, where its results are then the same on every CPU.
    organism_cpu = torch.float64 if name_or_path == "organism" else torch.float32
    dev, dtype = _check_device_dtype(device, dtype, organism_cpu)
    if name_or_path == "organism":
        return _load_organism(dev, dtype, weights, seed)
    if name_or_path in SPECS:
        spec, source = SPECS[name_or_path], SPECS[name_or_path].hub_id
    elif Path(name_or_path).is_dir():
        _check_local_folder(Path(name_or_path))
        spec, source = Spec(str(name_or_path), "sd1", 512, None), str(name_or_path)
    else:
        raise UnknownNameError(f"unknown backbone {name_or_path!r}; known: {', '.join(KNOWN_NAMES)}, or the "
                               "path of a local diffusers folder (with unet/, vae/, text_encoder/, scheduler/).")
    if weights == "random":
        if spec.random_config is None:
            with_configs = [n for n, s in SPECS.items() if s.random_config]
            raise ZsnbError(f"no shipped config for random {name_or_path!r}; random weights exist for "
                            f"{', '.join(with_configs)} and 'organism'.")
        unet, vae, scheduler, encode, resolution = _build_random(spec, dev, dtype, seed)
    else:
        with _loading_output(progress):
            unet, vae, scheduler, encode, resolution = _load_pretrained(source, spec, dev, dtype, download)
    unet = _place(unet, dev, dtype).eval().requires_grad_(False)
    vae = _place(vae, dev, _vae_dtype(dict(vae.config), dtype)).eval().requires_grad_(False)
    family = "sdxl" if unet.config.addition_embed_type == "text_time" else "sd1"  # a local folder's, too
    return Backbone(str(name_or_path), unet, vae, scheduler, encode, resolution, weights, family)
