"""Loads hcl-export's files in Python: every encoder hcl trains, as a torch.nn.Module whose
state_dict keys are exactly those of the export (loaded with strict=True), and the projection head
when the export holds it.

    import hcl_weights
    encoder = hcl_weights.load_encoder("encoder.pt")        # reads encoder.pt.json beside it
    features = encoder.eval()(images)                         # N x feature_dim
    encoder, head = hcl_weights.load_encoder("with_head.pt", with_head=True)

The metadata file (EXPORT.json, written by hcl-export) says which encoder it is: "arch" (resnet18,
resnet34, resnet50: torchvision's ResNets; small: SmallConvNet below), "stem" (cifar: a 3x3 stride-1
first convolution and no max-pool; imagenet: torchvision's 7x7 stride-2 convolution and max-pool),
"in_channels", "feature_dim" and "config" (the training options: projection-dim, head-hidden).
Images are float tensors N x in_channels x H x W, normalised as hcl normalises them (the dataset's
mean and standard deviation; "config" names the dataset). Needs torch; torchvision for the ResNets.
"""
import json

import torch
from torch import nn


class SmallConvNet(nn.Module):
    """hcl's `small` encoder (model/encoder.cpp): three 3x3 convolutions without bias (32 channels,
    stride 1; 64, stride 2; 128, stride 2; padding 1), each followed by BatchNorm2d and ReLU, then
    global average pooling: 128 features. Keys body.0 ... body.7, as hcl exports them."""

    def __init__(self, in_channels):
        super().__init__()
        layers, width = [], in_channels
        for out, stride in ((32, 1), (64, 2), (128, 2)):
            layers += [nn.Conv2d(width, out, 3, stride, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            width = out
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.body(x), 1), 1)


def build_encoder(arch, stem, in_channels):
    """The encoder `arch` with `stem` and `in_channels`, untrained, with hcl's parameter names."""
    if arch == "small":
        return SmallConvNet(in_channels)
    import torchvision

    resnets = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34,
               "resnet50": torchvision.models.resnet50}
    if arch not in resnets:
        raise ValueError(f"unknown arch {arch!r}: hcl exports {', '.join(['small', *resnets])}")
    model = resnets[arch]()
    if stem == "cifar":
        model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif stem == "imagenet":
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    else:
        raise ValueError(f"unknown stem {stem!r}: cifar or imagenet")
    model.fc = nn.Identity()
    return model


def build_head(feature_dim, hidden, out):
    """hcl's projection head (the reference's g): Linear without bias, BatchNorm1d, ReLU, Linear."""
    return nn.Sequential(nn.Linear(feature_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out, bias=True))


def read_metadata(path):
    """The JSON hcl-export writes beside `path` (path + ".json")."""
    with open(path + ".json") as f:
        return json.load(f)


def load_encoder(path, with_head=False, map_location="cpu"):
    """The exported encoder (and, with with_head=True, its projection head) with its weights loaded
    strictly: a key missing or left over, or a shape that differs, raises an error."""
    meta = read_metadata(path)
    state = torch.load(path, map_location=map_location)
    encoder = build_encoder(meta["arch"], meta["stem"], meta["in_channels"])
    head_state = {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
    encoder.load_state_dict({k: v for k, v in state.items() if not k.startswith("head.")}, strict=True)
    if not with_head:
        return encoder
    if not meta.get("with_head") or not head_state:
        raise ValueError(f"{path} holds no projection head (export it with hcl-export --with-head)")
    config = meta["config"]
    head = build_head(meta["feature_dim"], config["head-hidden"], config["projection-dim"])
    head.load_state_dict(head_state, strict=True)
    return encoder, head
