import os

import numpy as np
import pytest
import torch

from rlexport.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_roundtrip_and_corruption(tmp_path):
    p = tmp_path / "c" / "latest.safetensors"
    tensors = {"param.w": torch.randn(3, 4), "rng": torch.random.get_rng_state(), "obs": np.ones((2, 3), np.float32),
               "done": np.array([True, False])}
    meta = {"global_step": 7, "rng_numpy": np.random.default_rng(1).bit_generator.state}
    save_checkpoint(p, tensors, meta)
    t, m = load_checkpoint(p)
    assert m["global_step"] == 7 and m["rng_numpy"] == meta["rng_numpy"]
    assert torch.equal(t["param.w"], tensors["param.w"]) and t["done"].dtype == torch.bool
    assert [x.name for x in p.parent.iterdir()] == ["latest.safetensors"]  # no temp file left

    data = bytearray(p.read_bytes())
    data[-3] ^= 0xFF  # flip a bit in the tensor bytes
    p.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(p)
    p.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_a_kill_while_the_previous_is_kept_leaves_a_latest(tmp_path, monkeypatch):
    """The checkpoint being replaced becomes ``previous`` without ``latest`` ever going missing:
    a kill (here: the final rename failing) right after that step still finds the old latest."""
    p = tmp_path / "latest.safetensors"
    save_checkpoint(p, {"x": torch.zeros(2)}, {"global_step": 1})
    save_checkpoint(p, {"x": torch.ones(2)}, {"global_step": 2})
    assert load_checkpoint(tmp_path / "previous.safetensors")[1]["global_step"] == 1
    real_replace = os.replace

    def killed_before_the_new_latest(src, dst):
        if str(dst) == str(p):
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_before_the_new_latest)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(p, {"x": torch.full((2,), 3.0)}, {"global_step": 3})
    assert load_checkpoint(p)[1]["global_step"] == 2
    assert load_checkpoint(tmp_path / "previous.safetensors")[1]["global_step"] == 2
    assert sorted(f.name for f in tmp_path.iterdir()) == ["latest.safetensors", "previous.safetensors"]
