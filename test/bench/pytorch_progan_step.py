#!/usr/bin/env python3
"""PyTorch side of the conditional-ProGAN training-step benchmark (run by test/bench/progan-step.mjs).

The same model and step as the tfjs side (src/models/progan/networks.ts, src/layers/*, src/losses/wgan-gp.ts,
src/models/progan/objective.ts, src/models/wae/networks.ts), written in plain PyTorch, NCHW. One step at
corner side R, stable phase (alpha = 1), on full images 2R x 2R:
  1. the frozen WAE encoder (eval mode: batch-norm moving statistics, no grad) encodes the known
     corners tl, tr, bl in one call;
  2. D phase: a fake corner from G (no grad), WGAN-GP + drift for the global D (the 2R image with
     the fake pasted at the bottom right) and the local D (the corner alone), weighted 0.5 / 0.5;
     Adam over the variables both Ds use at this resolution;
  3. G phase: -(0.5 Dg(fake image) + 0.5 Dl(fake corner)), D frozen; Adam over G's active variables;
  4. EMA of every generator variable (decay 0.999).

Prints a JSON line {"case": "params", ...} with the parameter counts, then one JSON line per case:
{"case": "progan32", "ms": median wall ms per step, "images_per_s", "cpu_ms", "images_per_cpu_s", ...}.

    /usr/bin/python3 test/bench/pytorch_progan_step.py --threads 1 --cases 32,64 --batches 8,4 --reps 2
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The paper preset (src/models/progan/config.ts).
Z_DIM = 2048
LATENT_DIM = 2048
FMAP_BASE = 8192
FMAP_MAX = 512
MBSTD_GROUP = 4
GP_WEIGHT = 10.0
DRIFT = 0.001
GLOBAL_WEIGHT = 0.5
LR_G = 1e-3
LR_D = 1e-3
BETAS = (0.0, 0.99)
ADAM_EPS = 1e-8
EMA_DECAY = 0.999


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


def features(stage):
    return max(1, min(FMAP_BASE // 2 ** stage, FMAP_MAX))


def nf(res):
    """Channels at a resolution: stage log2(res) - 1, as proganChannelsAt."""
    return features(int(round(math.log2(res))) - 1)


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def pixel_norm(x):
    return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


def upscale(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downscale(x):
    return F.avg_pool2d(x, 2)


def fade(old, new, alpha):
    # Both paths are computed at alpha = 1 as on the tfjs side (the old one gets zero gradients).
    return old * (1 - alpha) + new * alpha


class EqConv2d(nn.Module):
    """Stride-1 'same' conv, weight N(0, 1) scaled at run time by gain / sqrt(k*k*cin), zero bias."""

    def __init__(self, cin, cout, k, gain=math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = gain / math.sqrt(k * k * cin)
        self.pad = k // 2

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)


class EqDense(nn.Module):
    def __init__(self, cin, cout, gain=math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = gain / math.sqrt(cin)

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, self.bias)


class Generator(nn.Module):
    """concat(noise, 3 latents) -> 4x4 -> pixel norm -> conv 4x4 -> blocks 8..R -> ToRGB, fade at R."""

    def __init__(self, max_res, channels):
        super().__init__()
        nf4 = nf(4)
        self.input_size = Z_DIM + 3 * LATENT_DIM
        self.uses_dense = self.input_size != 16 * nf4
        L = nn.ModuleDict()
        if self.uses_dense:
            L["b4_dense"] = EqDense(self.input_size, 16 * nf4, math.sqrt(2) / 4)
        L["b4_conv"] = EqConv2d(nf4, nf4, 3)
        L["b4_torgb"] = EqConv2d(nf4, channels, 1, 1.0)
        r = 8
        while r <= max_res:
            L[f"b{r}_conv0"] = EqConv2d(nf(r // 2), nf(r), 3)
            L[f"b{r}_conv1"] = EqConv2d(nf(r), nf(r), 3)
            L[f"b{r}_torgb"] = EqConv2d(nf(r), channels, 1, 1.0)
            r *= 2
        self.L = L

    def active(self, res):
        names = ["b4_conv"] + (["b4_dense"] if self.uses_dense else [])
        r = 8
        while r <= res:
            names += [f"b{r}_conv0", f"b{r}_conv1"]
            r *= 2
        names.append(f"b{res}_torgb")
        if res > 4:
            names.append(f"b{res // 2}_torgb")
        return [p for n in names for p in self.L[n].parameters()]

    def block(self, x, r):
        x = upscale(x)
        x = pixel_norm(lrelu(self.L[f"b{r}_conv0"](x)))
        return pixel_norm(lrelu(self.L[f"b{r}_conv1"](x)))

    def forward(self, noise, conds, res, alpha):
        z = torch.cat([noise] + conds, 1)
        n, nf4 = z.shape[0], nf(4)
        if self.uses_dense:
            z = lrelu(self.L["b4_dense"](z))
        # The tfjs side reshapes to NHWC [N, 4, 4, nf]; same mapping here, then NCHW (contiguous,
        # so PyTorch runs its default layout rather than channels-last).
        x = pixel_norm(z.view(n, 4, 4, nf4).permute(0, 3, 1, 2).contiguous())
        x = pixel_norm(lrelu(self.L["b4_conv"](x)))
        if res == 4:
            return self.L["b4_torgb"](x)
        r = 8
        while r < res:
            x = self.block(x, r)
            r *= 2
        cur = self.block(x, res)
        old = upscale(self.L[f"b{res // 2}_torgb"](x))
        return fade(old, self.L[f"b{res}_torgb"](cur), alpha)


def minibatch_stddev(x, group):
    """Group n = gi * M + mi (reshape [G, M, ...]) as the tfjs side; one extra feature map."""
    n, c, h, w = x.shape
    g = min(group, n)
    while n % g:
        g -= 1
    m = n // g
    y = x.view(g, m, c, h, w)
    y = y - y.mean(0, keepdim=True)
    y = torch.sqrt(torch.mean(y * y, 0) + 1e-8)  # [M, C, H, W]
    y = y.mean([1, 2, 3]).view(m, 1, 1, 1).repeat(g, 1, h, w)  # [N, 1, H, W]
    return torch.cat([x, y], 1)


class Discriminator(nn.Module):
    """FromRGB + lrelu -> blocks (conv, conv, 2x box downscale) with fade -> mbstd -> conv -> dense -> dense(1)."""

    def __init__(self, max_res, channels):
        super().__init__()
        nf4 = nf(4)
        L = nn.ModuleDict()
        L["b4_fromrgb"] = EqConv2d(channels, nf4, 1)
        L["b4_conv"] = EqConv2d(nf4 + 1, nf4, 3)
        L["b4_dense0"] = EqDense(16 * nf4, features(0))
        L["b4_dense1"] = EqDense(features(0), 1, 1.0)
        r = 8
        while r <= max_res:
            L[f"b{r}_fromrgb"] = EqConv2d(channels, nf(r), 1)
            L[f"b{r}_conv0"] = EqConv2d(nf(r), nf(r), 3)
            L[f"b{r}_conv1"] = EqConv2d(nf(r), nf(r // 2), 3)
            r *= 2
        self.L = L

    def active(self, res):
        names = ["b4_conv", "b4_dense0", "b4_dense1"]
        r = 8
        while r <= res:
            names += [f"b{r}_conv0", f"b{r}_conv1"]
            r *= 2
        names.append(f"b{res}_fromrgb")
        if res > 4:
            names.append(f"b{res // 2}_fromrgb")
        return [p for n in names for p in self.L[n].parameters()]

    def block(self, x, r):
        x = lrelu(self.L[f"b{r}_conv0"](x))
        return downscale(lrelu(self.L[f"b{r}_conv1"](x)))

    def forward(self, img, alpha):
        h = img.shape[-1]
        x = lrelu(self.L[f"b{h}_fromrgb"](img))
        if h > 4:
            x = self.block(x, h)
            old = lrelu(self.L[f"b{h // 2}_fromrgb"](downscale(img)))
            x = fade(old, x, alpha)
            r = h // 2
            while r > 4:
                x = self.block(x, r)
                r //= 2
        x = minibatch_stddev(x, MBSTD_GROUP)
        x = lrelu(self.L["b4_conv"](x))
        flat = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # NHWC flatten, as the tfjs side
        return self.L["b4_dense1"](lrelu(self.L["b4_dense0"](flat)))


class Encoder(nn.Module):
    """WAE encoder: 3x3 stem (no bias) -> k x (3x3 s2 conv 'same', BN eps 1e-3, lrelu) -> dense."""

    def __init__(self, res, channels, filters):
        super().__init__()
        self.stem = nn.Conv2d(channels, filters[0], 3, 1, 1, bias=False)
        layers, prev = [], filters[0]
        for f in filters:
            layers += [nn.Conv2d(prev, f, 3, 2, 0, bias=False), nn.BatchNorm2d(f, eps=1e-3, momentum=0.01)]
            prev = f
        self.blocks = nn.ModuleList(layers)
        self.dense = nn.Linear(16 * prev, LATENT_DIM)

    def forward(self, x):
        x = self.stem(x)
        for i in range(0, len(self.blocks), 2):
            # TF 'same' padding at stride 2 on an even side pads one row/column at the end only.
            x = lrelu(self.blocks[i + 1](self.blocks[i](F.pad(x, (0, 1, 0, 1)))))
        return self.dense(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1))


def encoder_filters(res):
    """The `paper` WAE preset has no filter list: the default 32, 64, ... (cap 512), log2(R/4) blocks."""
    return [min(32 * 2 ** i, 512) for i in range(int(round(math.log2(res / 4))))]


def count(params):
    return sum(p.numel() for p in params)


def corners(x):
    r = x.shape[-1] // 2
    return x[:, :, :r, :r], x[:, :, :r, r:], x[:, :, r:, :r], x[:, :, r:, r:]


def assemble(tl, tr, bl, br):
    return torch.cat([torch.cat([tl, tr], 3), torch.cat([bl, br], 3)], 2)


def d_loss(d, real, fake, alpha):
    """WGAN-GP with drift: mean D(fake) - mean D(real) + 10 (||grad D(xhat)|| - 1)^2 + 0.001 D(real)^2."""
    d_real = d(real, alpha).view(-1)
    d_fake = d(fake, alpha).view(-1)
    eps = torch.rand(real.shape[0], 1, 1, 1)
    xhat = (real + eps * (fake - real)).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(d(xhat, alpha).sum(), xhat, create_graph=True)
    norm = torch.sqrt(torch.sum(g * g, [1, 2, 3]) + 1e-12)
    penalty = torch.mean((norm - 1) ** 2) * GP_WEIGHT
    drift = torch.mean(d_real * d_real) * DRIFT
    return d_fake.mean() - d_real.mean() + penalty + drift


def make_step(res, batch, channels):
    G = Generator(res, channels)
    Dg = Discriminator(2 * res, channels)
    Dl = Discriminator(res, channels)
    E = Encoder(res, channels, encoder_filters(res)).eval()
    for p in E.parameters():
        p.requires_grad_(False)
    ema = [p.detach().clone() for p in G.parameters()]
    d_params = Dg.active(2 * res) + Dl.active(res)
    g_params = G.active(res)
    opt_d = torch.optim.Adam(d_params, lr=LR_D, betas=BETAS, eps=ADAM_EPS)
    opt_g = torch.optim.Adam(g_params, lr=LR_G, betas=BETAS, eps=ADAM_EPS)
    x = torch.rand(batch, channels, 2 * res, 2 * res) * 2 - 1
    alpha = torch.tensor(1.0)
    wg, wl = GLOBAL_WEIGHT, 1 - GLOBAL_WEIGHT
    enc_stats = [b for name, b in E.named_buffers() if "running" in name]
    params = {
        "G": count(G.parameters()),
        "Dglobal": count(Dg.parameters()),
        "Dlocal": count(Dl.parameters()),
        "encoder": count(E.parameters()) + count(enc_stats),
        "encoder_trainable": count(E.parameters()),
        "phaseD": count(d_params),
        "phaseG": count(g_params),
    }

    def set_requires_grad(ps, on):
        for p in ps:
            p.requires_grad_(on)

    def step():
        n = x.shape[0]
        with torch.no_grad():
            tl, tr, bl, br = corners(x)
            conds = list(E(torch.cat([tl, tr, bl], 0)).chunk(3, 0))  # the frozen encoder, once per batch
        reals = x.clone()  # as the tfjs side's stepInputs (no downscale at the largest resolution)
        tl, tr, bl, br = corners(reals)

        # D phase: the fake is a constant.
        with torch.no_grad():
            fake = G(torch.randn(n, Z_DIM), conds, res, alpha)
        loss_d = wg * d_loss(Dg, reals, assemble(tl, tr, bl, fake), alpha) + wl * d_loss(Dl, br, fake, alpha)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward(inputs=d_params)
        opt_d.step()

        # G phase: D frozen, so no weight gradients are computed for it (tfjs differentiates w.r.t. G's variables only).
        set_requires_grad(d_params, False)
        fake = G(torch.randn(n, Z_DIM), conds, res, alpha)
        loss_g = -wg * Dg(assemble(tl, tr, bl, fake), alpha).mean() - wl * Dl(fake, alpha).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward(inputs=g_params)
        opt_g.step()
        set_requires_grad(d_params, True)

        # EMA of every generator variable: avg <- v + (avg - v) * decay.
        with torch.no_grad():
            for s, p in zip(ema, G.parameters()):
                s.lerp_(p, 1 - EMA_DECAY)
        return loss_d.item(), loss_g.item()

    return step, params


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cases", default="32,64,128", help="corner resolutions R")
    p.add_argument("--batches", default="", help="batch per case (same order as --cases) or one for all; default 8/4/2 at R = 32/64/128")
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--params-only", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu or cuda (the GPU check: scripts/gpu-check.sh)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 on CUDA (default off)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = setup_device(a.device, a.tf32)
    torch.manual_seed(0)
    cases = [int(c) for c in a.cases.split(",")]
    given = [int(b) for b in a.batches.split(",") if b]
    batches = [given[i] if len(given) > 1 else given[0] if given else {32: 8, 64: 4, 128: 2}.get(r, 4) for i, r in enumerate(cases)]
    for res, batch in zip(cases, batches):
        step, params = make_step(res, batch, a.channels)
        print(json.dumps({"case": "params", "resolution": res, **params}), flush=True)
        if a.params_only:
            continue
        reset_peak(dev)
        losses = step()  # warm-up
        times, cpu_times = [], []
        for _ in range(a.reps):
            c0 = time.process_time()
            t0 = time.perf_counter()
            losses = step()
            times.append((time.perf_counter() - t0) * 1e3)
            cpu_times.append((time.process_time() - c0) * 1e3)
        ms = statistics.median(times)
        cpu_ms = statistics.median(cpu_times)
        print(json.dumps({"case": f"progan{res}", "resolution": res, "batch": batch, "ms": ms, "images_per_s": batch * 1e3 / ms,
                          "cpu_ms": cpu_ms, "images_per_cpu_s": batch * 1e3 / cpu_ms, "reps": a.reps,
                          "losses": {"d": losses[0], "g": losses[1]}, "threads": torch.get_num_threads(),
                          "torch": torch.__version__, "device": str(dev), "peak_bytes": peak_bytes(dev)}), flush=True)


if __name__ == "__main__":
    main()
