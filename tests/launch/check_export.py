"""Loads an hcl-export file into torchvision's ResNet-18 (CIFAR stem) with strict=True and checks
that it computes the features hcl-export recorded for its verification sample (1e-5 relative).
usage: check_export.py EXPORTED SAMPLE IN_CHANNELS [EXPORTED_WITH_HEAD]"""
import sys

import torch
import torchvision

exported, sample, channels = sys.argv[1], sys.argv[2], int(sys.argv[3])
state = torch.load(exported)
model = torchvision.models.resnet18()
model.conv1 = torch.nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
model.maxpool = torch.nn.Identity()
model.fc = torch.nn.Identity()
model.load_state_dict(state, strict=True)
model.eval()
check = torch.load(sample)
with torch.no_grad():
    features = model(check["input"])
expected = check["features"]
error = ((features - expected).abs() / (expected.abs() + 1e-6)).max().item()
assert torch.allclose(features, expected, rtol=1e-5, atol=1e-6), f"features differ: {error:.2e}"
print(f"torchvision resnet18 loaded {len(state)} tensors (strict); features match, worst {error:.1e}")

if len(sys.argv) > 4:
    with_head = torch.load(sys.argv[4])
    head = {k[len("head."):]: v for k, v in with_head.items() if k.startswith("head.")}
    g = torch.nn.Sequential(torch.nn.Linear(512, 512, bias=False), torch.nn.BatchNorm1d(512),
                            torch.nn.ReLU(inplace=True), torch.nn.Linear(512, 128, bias=True))
    g.load_state_dict(head, strict=True)
    encoder = {k: v for k, v in with_head.items() if not k.startswith("head.")}
    model.load_state_dict(encoder, strict=True)
    print(f"projection head loaded ({len(head)} tensors) into the reference's nn.Sequential")
