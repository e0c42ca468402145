#!/usr/bin/env python3
"""PyTorch side of the native-backend benchmark (run by test/bench/steps.mjs).

Same networks, shapes, batch and thread count as the tfjs side; prints one JSON line per case:
{"case": ..., "ms": median wall ms per step, "images_per_s": ..., "cpu_ms": median process CPU ms
per step, "images_per_cpu_s": ..., "reps": ...}.

    /usr/bin/python3 test/bench/pytorch_steps.py --threads 1 --cases wae,progan32 --reps 3
    python3 test/bench/pytorch_steps.py --device cuda --cases wae --batch 16   # on a GPU; adds "peak_bytes"
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def setup_device(name, tf32):
    """--device cpu|cuda: new tensors and parameters are made on that device (torch.set_default_device).
    On CUDA, TF32 is off unless --tf32 (fp32 math like proggan's cuda backend by default) and cuDNN
    picks its fastest algorithms (benchmark mode, as proggan's backend times cudnnFind* once per shape)."""
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch.cuda.is_available() is False (no GPU, driver, or a CPU-only PyTorch)")
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
    torch.set_default_device(dev)
    return dev


def reset_peak(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_bytes(dev):
    """Peak bytes held by tensors since reset_peak (torch.cuda.max_memory_allocated), or None on CPU."""
    if dev.type != "cuda":
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def wae_models():
    """REFERENCE.md section 1 at 128x128x1: stem, 5 stride-2 blocks, dense 2048; mirrored decoder."""
    filters = [32, 64, 128, 256, 512]
    enc = [nn.Conv2d(1, 32, 3, 1, 1, bias=False)]
    prev = 32
    for f in filters:
        enc += [nn.Conv2d(prev, f, 3, 2, 1, bias=False), nn.BatchNorm2d(f, momentum=0.01, eps=1e-3), nn.LeakyReLU(0.2)]
        prev = f
    enc += [nn.Flatten(), nn.Linear(16 * 512, 2048)]
    dec = [nn.Linear(2048, 16 * 512), nn.Unflatten(1, (512, 4, 4))]
    prev = 512
    for f in [256, 128, 64, 32, 32]:
        dec += [nn.ConvTranspose2d(prev, f, 3, 2, 1, output_padding=1, bias=False), nn.BatchNorm2d(f, momentum=0.01, eps=1e-3), nn.LeakyReLU(0.2)]
        prev = f
    dec += [nn.Conv2d(32, 1, 3, 1, 1)]
    return nn.Sequential(*enc), nn.Sequential(*dec)


def wae_step(batch):
    enc, dec = wae_models()
    x = torch.rand(batch, 1, 128, 128) * 2 - 1
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=5e-5, betas=(0.5, 0.999), eps=1e-7)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(dec(enc(x)), x)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def pixel_norm(x):
    return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


def progan_block(batch, res, ch):
    """Generator block at `res`: nearest 2x upsample, 2 x (eq-lr 3x3 conv, leaky relu 0.2, pixel norm)."""
    g = torch.Generator(device=torch.get_default_device()).manual_seed(1)
    w0 = torch.randn(ch, ch, 3, 3, generator=g).requires_grad_()
    w1 = torch.randn(ch, ch, 3, 3, generator=g).requires_grad_()
    b0 = torch.zeros(ch, requires_grad=True)
    b1 = torch.zeros(ch, requires_grad=True)
    scale = math.sqrt(2.0 / (9 * ch))
    x = torch.randn(batch, ch, res // 2, res // 2, generator=g).requires_grad_()
    wl = torch.rand(batch, ch, res, res, generator=g) * 2 - 1

    def step():
        for t in (w0, w1, b0, b1, x):
            t.grad = None
        y = F.interpolate(x, scale_factor=2, mode="nearest")
        y = pixel_norm(F.leaky_relu(F.conv2d(y, w0 * scale, b0, padding=1), 0.2))
        y = pixel_norm(F.leaky_relu(F.conv2d(y, w1 * scale, b1, padding=1), 0.2))
        loss = torch.sum(y * wl)
        loss.backward()
        return loss.item()

    return step


def conv3d_block(batch):
    """3DGAN discriminator head on 51x51x25: conv3d 16 (5,6,6) + lrelu, conv3d 8 (5,6,6) + lrelu + BN."""
    c1 = nn.Conv3d(1, 16, (5, 6, 6), padding="same")
    c2 = nn.Conv3d(16, 8, (5, 6, 6), padding="same")
    bn = nn.BatchNorm3d(8, momentum=0.01, eps=1e-3)
    x = torch.rand(batch, 1, 51, 51, 25)
    wl = torch.rand(batch, 8, 51, 51, 25) * 2 - 1
    params = list(c1.parameters()) + list(c2.parameters()) + list(bn.parameters())

    def step():
        for p in params:
            p.grad = None
        y = F.leaky_relu(c1(x), 0.2)
        y = bn(F.leaky_relu(c2(y), 0.2))
        loss = torch.sum(y * wl)
        loss.backward()
        return loss.item()

    return step


CASES = {
    "wae": lambda a: (wae_step(a.batch), a.batch),
    "progan32": lambda a: (progan_block(a.progan_batch, 32, 512), a.progan_batch),
    "progan64": lambda a: (progan_block(a.progan_batch, 64, 256), a.progan_batch),
    "progan128": lambda a: (progan_block(a.progan_batch, 128, 128), a.progan_batch),
    "conv3d": lambda a: (conv3d_block(a.conv3d_batch), a.conv3d_batch),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--progan-batch", type=int, default=4)
    p.add_argument("--conv3d-batch", type=int, default=8)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--device", default="cpu", help="cpu or cuda (the GPU check: scripts/gpu-check.sh)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA (default off)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = setup_device(a.device, a.tf32)
    torch.manual_seed(0)
    for name in a.cases.split(","):
        step, batch = CASES[name](a)
        reset_peak(dev)
        step()  # warm-up
        times, cpu_times = [], []
        for _ in range(a.reps):
            c0 = time.process_time()
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
            cpu_times.append((time.process_time() - c0) * 1e3)
        ms = statistics.median(times)
        cpu_ms = statistics.median(cpu_times)
        print(json.dumps({"case": name, "ms": ms, "images_per_s": batch * 1e3 / ms, "cpu_ms": cpu_ms,
                          "images_per_cpu_s": batch * 1e3 / cpu_ms, "reps": a.reps, "batch": batch,
                          "threads": torch.get_num_threads(), "torch": torch.__version__,
                          "device": str(dev), "peak_bytes": peak_bytes(dev)}), flush=True)


if __name__ == "__main__":
    main()
