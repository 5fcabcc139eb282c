"""The reference surrogate: the embedded default editor, trained in this repository.

A StarGAN-architecture generator (conv_dim 16, 6 residual blocks, resize-conv decoder) at
64 px, trained by ``train_reference.py`` on scikit-image sample images to perform five
synthesis edits. It is a stand-in with the fragility of a GAN editor, never a claim about
real deepfake models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypedDict

import torch

from grasp_guard.models.editor import EditorInfo
from grasp_guard.models.reference_edits import EDIT_NAMES
from grasp_guard.models.stargan import Generator, StarGANEditor


class ReferenceConfig(TypedDict):
    conv_dim: int
    repeat_num: int
    resolution: int
    upsampler: Literal["transpose", "resize"]


REFERENCE_CONFIG: ReferenceConfig = {
    "conv_dim": 16, "repeat_num": 6, "resolution": 64, "upsampler": "resize",
}
REFERENCE_WEIGHTS = Path(__file__).parent / "weights" / "reference.pt"


def build_reference_generator() -> Generator:
    return Generator(
        conv_dim=REFERENCE_CONFIG["conv_dim"],
        c_dim=len(EDIT_NAMES),
        repeat_num=REFERENCE_CONFIG["repeat_num"],
        upsampler=REFERENCE_CONFIG["upsampler"],
    )


def reference_info() -> EditorInfo:
    return EditorInfo("reference", REFERENCE_CONFIG["resolution"], EDIT_NAMES, reference=True)


def load_reference(path: Path = REFERENCE_WEIGHTS) -> StarGANEditor:
    """The trained reference surrogate, frozen, ready for the defense."""
    generator = build_reference_generator()
    generator.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    editor = StarGANEditor(generator, reference_info())
    editor.eval().freeze()
    return editor
