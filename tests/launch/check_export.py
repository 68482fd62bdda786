"""Loads an hcl-export file with python/hcl_weights.py (strictly: every key, every shape) and checks
that the encoder computes the features hcl-export recorded for its verification sample (1e-5
relative); with a second file exported --with-head, that its projection head loads strictly too.
usage: check_export.py EXPORTED SAMPLE [EXPORTED_WITH_HEAD]"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import hcl_weights  # noqa: E402

exported, sample = sys.argv[1], sys.argv[2]
meta = hcl_weights.read_metadata(exported)
encoder = hcl_weights.load_encoder(exported).eval()
check = torch.load(sample)
with torch.no_grad():
    features = encoder(check["input"])
expected = check["features"]
assert features.shape == expected.shape == (check["input"].shape[0], meta["feature_dim"]), (features.shape, expected.shape)
error = ((features - expected).abs() / (expected.abs() + 1e-6)).max().item()
assert torch.allclose(features, expected, rtol=1e-5, atol=1e-6), f"features differ: {error:.2e}"
print(f"{meta['arch']} ({meta['stem']} stem, {meta['in_channels']} channels): {len(encoder.state_dict())} tensors "
      f"loaded strictly; features match, worst {error:.1e}")

if len(sys.argv) > 3:
    encoder, head = hcl_weights.load_encoder(sys.argv[3], with_head=True)
    with torch.no_grad():
        z = head.eval()(encoder.eval()(check["input"]))
    assert z.shape == (check["input"].shape[0], meta["config"]["projection-dim"]), z.shape
    print(f"projection head loaded strictly ({len(head.state_dict())} tensors), output {tuple(z.shape)}")
