"""A denoiser snapshot with its network's output layer zeroed: the ``gaussian_skip`` prior's fitted Gaussian alone.

    python benchmarks/zero_network.py run.ep1.pt run.ep0.pt

Used for the epoch-0 rows of the learning curves of the ``*64-uno`` priors (UNO denoisers: the last layer of
``uno.projection``, in both the raw and the EMA weights); the snapshot records epoch 0.
"""
import sys

import torch


def main(src: str, dst: str) -> None:
    ck = torch.load(src, map_location="cpu", weights_only=False)
    sd = ck["state_dict"]
    keys = [k for k in sd if ".uno.projection.fcs.1." in k]
    if not keys:
        raise SystemExit(f"{src}: no UNO projection layer found (only UNO denoisers are handled)")
    for k in keys:
        sd[k] = torch.zeros_like(sd[k])
    if ck.get("training"):
        ck["training"] = dict(ck["training"], epoch=0)
    torch.save(ck, dst)


if __name__ == "__main__":
    main(*sys.argv[1:3])
