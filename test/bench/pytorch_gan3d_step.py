"""The 3DGAN training step in PyTorch, mirroring src/models/gan3d/ (networks.ts, objective.ts) and
src/losses/calo.ts layer for layer, for test/bench/gan3d-step.mjs.

  python3 pytorch_gan3d_step.py [--threads 1] [--reps 3] [--preset paper|small|tiny] [--batch 64]

One step = D on real, D on fake (fakes generated without gradient), G twice through the frozen D,
each followed by an RMSprop update, on 51x51x25 showers (variable-angle geometry). Layout NCDHW with
(D, H, W) = (X, Y, Z). Symmetric ZeroPadding3D is written as the convolution's own padding (what a
PyTorch user writes; same result). Prints one JSON line: parameter counts, median wall and process
CPU time per step over --reps timed steps after one warm-up step.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    # latent, G dense channels, G filters, D filters, batch (objective.ts gan3dPreset)
    'paper': dict(latent=256, gdc=8, gf=[8, 6, 6, 6, 6, 6], df=[16, 8, 8, 8], batch=64),
    'small': dict(latent=256, gdc=2, gf=[4, 4, 4, 4, 4, 4], df=[8, 4, 4, 4], batch=16),
    'tiny': dict(latent=16, gdc=1, gf=[2, 2, 2, 2, 2, 2], df=[2, 2, 2, 2], batch=2),
}
POWER = 0.85
W_BCE, W_ENERGY, W_ANGLE, W_ECAL = 3.0, 0.1, 25.0, 0.1
BN_MOMENTUM = 0.01  # Keras momentum 0.99
BN_EPS = 1e-3


class Generator(nn.Module):
    def __init__(self, latent, gdc, gf):
        super().__init__()
        self.gdc = gdc
        self.dense = nn.Linear(latent, 9 * 9 * 8 * gdc)

        def block(cin, cout, k, pad, bn):
            layers = [nn.Conv3d(cin, cout, k, padding=pad), nn.ReLU()]
            if bn:
                layers.append(nn.BatchNorm3d(cout, eps=BN_EPS, momentum=BN_MOMENTUM))
            return layers

        f0, f1, f2, f3, f4, f5 = gf
        self.body = nn.Sequential(
            *block(gdc, f0, (6, 6, 8), 0, True),  # 54x54x48 -> 49x49x41
            *block(f0, f1, (4, 4, 6), (2, 2, 1), True),  # 50x50x38
            *block(f1, f2, (4, 4, 6), (2, 2, 1), True),  # 51x51x35
            *block(f2, f3, (4, 4, 6), (2, 2, 1), True),  # 52x52x32
            *block(f3, f4, (3, 3, 5), (1, 1, 0), True),  # 52x52x28
            *block(f4, f5, (3, 3, 3), (1, 1, 0), False),  # 52x52x26
            *block(f5, 1, (2, 2, 2), 0, False),  # 51x51x25
        )

    def forward(self, z):
        x = self.dense(z).view(-1, 9, 9, 8, self.gdc).permute(0, 4, 1, 2, 3)  # Keras reshape order, NCDHW
        x = F.interpolate(x, scale_factor=6, mode='nearest')  # UpSampling3D 6x6x6 -> 54x54x48
        return self.body(x)  # [N, 1, 51, 51, 25]


class Discriminator(nn.Module):
    def __init__(self, df, dropout=0.2, leak=0.3):
        super().__init__()
        f0, f1, f2, f3 = df
        k = (5, 6, 6)
        self.leak = leak
        self.c0 = nn.Conv3d(1, f0, k, padding='same')
        self.c1 = nn.Conv3d(f0, f1, k, padding=(0, 0, 1))  # ZeroPadding3D((0, 0, 1)) + valid
        self.c2 = nn.Conv3d(f1, f2, k, padding=(0, 0, 1))
        self.c3 = nn.Conv3d(f2, f3, k)
        self.bn1 = nn.BatchNorm3d(f1, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.bn2 = nn.BatchNorm3d(f2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.bn3 = nn.BatchNorm3d(f3, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.drop = nn.Dropout(dropout)
        feat = f3 * 19 * 18 * 7
        self.fake = nn.Linear(feat, 1)
        self.energy = nn.Linear(feat, 1)

    def forward(self, x):
        a = lambda t: F.leaky_relu(t, self.leak)
        x = self.drop(a(self.c0(x)))
        x = self.drop(self.bn1(a(self.c1(x))))
        x = self.drop(self.bn2(a(self.c2(x))))
        x = self.drop(self.bn3(a(self.c3(x))))
        x = F.avg_pool3d(x, 2)
        # Keras flattens NDHWC: same features, another order (no effect on the cost).
        h = x.flatten(1)
        return self.fake(h).view(-1), self.energy(h).view(-1)


def undo_power(images):
    return torch.relu(images).pow(1.0 / POWER)


def measured_angle(cells):
    # cells [N, 1, X, Y, Z]; as networks.ts measuredAngle.
    eps = 1e-12
    per_yz = cells.sum(dim=(1, 2))  # [N, Y, Z]
    ny, nz = per_yz.shape[1], per_yz.shape[2]
    w = per_yz.sum(1)  # [N, Z]
    ys = torch.arange(ny, dtype=torch.float32).view(1, ny, 1)
    zs = torch.arange(nz, dtype=torch.float32).view(1, nz)
    y_moment = (per_yz * ys).sum(1)
    w_tot = w.sum(1, keepdim=True) + eps
    z_mean = (w * zs).sum(1, keepdim=True) / w_tot
    y_mean = y_moment.sum(1, keepdim=True) / w_tot
    dz = zs - z_mean
    cov = (dz * (y_moment - w * y_mean)).sum(1)
    var_z = (w * dz.square()).sum(1) + eps
    return math.pi / 2 - torch.atan(cov / var_z)


def mape(pred, target):
    return 100 * ((target - pred).abs() / target.abs().clamp_min(1e-7)).mean()


def calo_loss(d, images, label, energy, ecal_target, theta):
    logit, e = d(images)
    cells = undo_power(images)
    ecal = cells.sum(dim=(1, 2, 3, 4))
    angle = measured_angle(cells)
    bce = F.binary_cross_entropy_with_logits(logit, label)
    return W_BCE * bce + W_ENERGY * mape(e, energy) + W_ECAL * mape(ecal, ecal_target) + W_ANGLE * (theta - angle).abs().mean()


def flipped(n, value, p=0.05):
    base = torch.full((n,), float(value))
    return torch.where(torch.rand(n) < p, 1 - base, base)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--preset', default='paper', choices=sorted(PRESETS))
    ap.add_argument('--batch', type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    p = PRESETS[args.preset]
    n = args.batch or p['batch']
    g = Generator(p['latent'], p['gdc'], p['gf'])
    d = Discriminator(p['df'])
    g.train()
    d.train()
    g_opt = torch.optim.RMSprop(g.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    d_opt = torch.optim.RMSprop(d.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    count = lambda m: sum(t.numel() for t in m.parameters() if t.requires_grad)
    params = {'generator': count(g), 'discriminator': count(d), 'phaseD': count(d), 'phaseG': count(g)}

    ecal = 0.3 * torch.relu(torch.randn(n, 1, 51, 51, 25) - 1)
    energy = torch.empty(n).uniform_(0.02, 5)
    theta = torch.empty(n).uniform_(math.pi / 3, 2 * math.pi / 3)
    cond = lambda: torch.cat([energy.view(n, 1), theta.view(n, 1), torch.randn(n, p['latent'] - 2)], 1)
    losses = {}

    def d_phase(name, images, label, ecal_target):
        d_opt.zero_grad(set_to_none=True)
        loss = calo_loss(d, images, label, energy, ecal_target, theta)
        loss.backward()
        d_opt.step()
        losses[name] = loss.item()

    def step():
        with torch.no_grad():
            real_sum = undo_power(ecal).sum(dim=(1, 2, 3, 4))
        d_phase('D_real', ecal, flipped(n, 1), real_sum)
        with torch.no_grad():
            fake = g(cond())
        d_phase('D_fake', fake, flipped(n, 0), 2 * energy)
        for t in d.parameters():
            t.requires_grad_(False)  # G through the frozen D: no D weight gradients
        for name in ('G1', 'G2'):
            g_opt.zero_grad(set_to_none=True)
            loss = calo_loss(d, g(cond()), torch.ones(n), energy, 2 * energy, theta)
            loss.backward()
            g_opt.step()
            losses[name] = loss.item()
        for t in d.parameters():
            t.requires_grad_(True)

    w0 = time.perf_counter()
    step()
    warmup_ms = (time.perf_counter() - w0) * 1e3
    ts, cpu = [], []
    for _ in range(args.reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        step()
        ts.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    med = lambda xs: sorted(xs)[len(xs) // 2] if len(xs) % 2 else sum(sorted(xs)[len(xs) // 2 - 1:len(xs) // 2 + 1]) / 2
    ms, cpu_ms = med(ts), med(cpu)
    print(json.dumps({
        'case': f'gan3d-{args.preset}', 'batch': n, 'torch': torch.__version__, 'threads': args.threads,
        'ms': ms, 'images_per_s': n * 1e3 / ms, 'cpu_ms': cpu_ms, 'images_per_cpu_s': n * 1e3 / cpu_ms,
        'warmup_ms': warmup_ms, 'losses': losses, 'params': params,
    }))


if __name__ == '__main__':
    main()
