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
