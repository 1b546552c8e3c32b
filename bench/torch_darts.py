#!/usr/bin/env python3
"""PyTorch twin of evosearch's darts-like network (DESIGN.md section 3).

Used for three things:
  params  - print parameter counts and FLOPs of architectures, the reference
            values that nets/darts_test.go asserts (`python3 torch_darts.py params ARCH...`)
  train   - the train-cpu peer benchmark: images/s training DARTS_V2 C=16 L=5
            on 32x32x3 batches of 64 (`python3 torch_darts.py train`)
  proxy   - the proxy-50 peer (GPU host): reads genomes from a JSON file

Written for PyTorch 1.13 (Debian's python3-torch) and newer.
"""
import json, math, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


class FactorizedReduce(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.a = nn.Conv2d(cin, cout // 2, 1, stride=2, bias=False)
        self.b = nn.Conv2d(cin, cout // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(x)
        return self.bn(torch.cat([self.a(x), self.b(x[:, :, 1:, 1:])], 1))


def sep_conv(c, k, stride):
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c),
        nn.ReLU(), nn.Conv2d(c, c, k, 1, k // 2, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))


def dil_conv(c, k, stride):
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, stride, k - 1, dilation=2, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class Attention(nn.Module):
    """Multi-head self-attention over the HxW positions (DESIGN.md section 3)."""

    def __init__(self, c, stride, heads):
        super().__init__()
        self.pool = nn.AvgPool2d(2) if stride == 2 else None
        self.qkv = nn.Conv2d(c, 3 * c, 1, bias=False)
        self.proj = nn.Conv2d(c, c, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.heads = heads

    def forward(self, x):
        if self.pool is not None:
            x = self.pool(x)
        n, c, h, w = x.shape
        d = c // self.heads
        q, k, v = self.qkv(x).reshape(n, 3, self.heads, d, h * w).unbind(1)
        att = torch.softmax(q.transpose(2, 3) @ k / math.sqrt(d), dim=-1)  # n, heads, hw(query), hw(key)
        out = (v @ att.transpose(2, 3)).reshape(n, c, h, w)
        return self.bn(self.proj(out))


def make_op(name, c, stride, heads):
    if name == "none":
        return Zero(stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if name.startswith("sep_conv_"):
        return sep_conv(c, int(name[-1]), stride)
    if name.startswith("dil_conv_"):
        return dil_conv(c, int(name[-1]), stride)
    if name == "attention":
        return Attention(c, stride, heads)
    raise ValueError(name)


class Cell(nn.Module):
    def __init__(self, edges, cpp, cp, c, reduction, reduction_prev, heads):
        super().__init__()
        self.pre0 = FactorizedReduce(cpp, c) if reduction_prev else ReLUConvBN(cpp, c)
        self.pre1 = ReLUConvBN(cp, c)
        self.inputs = [i for _, i in edges]
        self.ops = nn.ModuleList(make_op(op, c, 2 if reduction and i < 2 else 1, heads) for op, i in edges)

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        for k in range(4):
            states.append(self.ops[2 * k](states[self.inputs[2 * k]]) + self.ops[2 * k + 1](states[self.inputs[2 * k + 1]]))
        return torch.cat(states[2:], 1)


def effective_c(c, arch):
    heads = max(arch.get("heads", 1), 1)
    width = arch.get("hparams", {}).get("width", 1.0) or 1.0
    uses_attention = any(op == "attention" for op, _ in arch["normal"] + arch["reduce"])
    m = 2 * heads // math.gcd(2, heads) if uses_attention else 2
    return max(int(round(c * width / m)) * m, m)


class Network(nn.Module):
    def __init__(self, arch, c=16, layers=5, in_ch=3, classes=10):
        super().__init__()
        heads = max(arch.get("heads", 1), 1)
        c = effective_c(c, arch)
        cur = 3 * c
        self.stem = nn.Sequential(nn.Conv2d(in_ch, cur, 3, padding=1, bias=False), nn.BatchNorm2d(cur))
        cpp, cp, cc = cur, cur, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                cc *= 2
            edges = arch["reduce"] if reduction else arch["normal"]
            self.cells.append(Cell(edges, cpp, cp, cc, reduction, reduction_prev, heads))
            reduction_prev = reduction
            cpp, cp = cp, 4 * cc
        self.classifier = nn.Linear(cp, classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


def count_flops(model, x):
    """Forward FLOPs of one sample: multiply-adds of convs, linears and attention's two products, times 2."""
    total = [0]

    def conv_hook(m, inp, out):
        total[0] += 2 * out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin_hook(m, inp, out):
        total[0] += 2 * m.in_features * m.out_features

    def att_hook(m, inp, out):
        _, c, h, w = out.shape
        total[0] += 2 * 2 * (h * w) ** 2 * c

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
        elif isinstance(m, Attention):
            hooks.append(m.register_forward_hook(att_hook))
    model.eval()
    with torch.no_grad():
        model(x[:1])
    for h in hooks:
        h.remove()
    return total[0]


DARTS_V2 = {"space": "darts-like",
            "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
                       ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
            "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
                       ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]]}


def cmd_params(argv):
    """params [--c C --layers L --in CxHxW --classes K] ARCH.json...  (no file: DARTS_V2)"""
    c, layers, shape, classes, files = 16, 5, (3, 32, 32), 10, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--c", "--layers", "--classes"):
            v = int(argv[i + 1]); i += 2
            c, layers, classes = (v, layers, classes) if a == "--c" else (c, v, classes) if a == "--layers" else (c, layers, v)
        elif a == "--in":
            shape = tuple(int(t) for t in argv[i + 1].split("x")); i += 2
        else:
            files.append(a); i += 1
    archs = [(f, json.load(open(f))) for f in files] or [("DARTS_V2", DARTS_V2)]
    for name, arch in archs:
        net = Network(arch, c, layers, shape[0], classes)
        params = sum(p.numel() for p in net.parameters())
        flops = count_flops(net, torch.zeros(1, *shape))
        print(json.dumps({"arch": name, "c": c, "layers": layers, "in": list(shape), "classes": classes, "params": params, "flops": flops}))


def cmd_train(argv):
    """train [--steps S --batch B --threads N --device cpu|cuda]: images/s training DARTS_V2 C=16 L=5 on
    random 32x32x3 data.

    --threads sets torch's intra-op threads; without it torch keeps its default, which is 1 on some
    builds (Debian's python3-torch here) whatever the core count, so pass the core count to compare
    with evosearch on all cores."""
    steps, batch = 20, 64
    if "--steps" in argv:
        steps = int(argv[argv.index("--steps") + 1])
    if "--batch" in argv:
        batch = int(argv[argv.index("--batch") + 1])
    if "--threads" in argv:
        torch.set_num_threads(int(argv[argv.index("--threads") + 1]))
    dev = argv[argv.index("--device") + 1] if "--device" in argv else "cpu"
    torch.manual_seed(1)
    net = Network(DARTS_V2).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    x, y = torch.randn(batch, 3, 32, 32, device=dev), torch.randint(0, 10, (batch,), device=dev)
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    net.train()

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5)
        opt.step()

    for _ in range(3):
        step()
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    dt = time.perf_counter() - t
    print(json.dumps({"bench": "train-torch", "device": dev, "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "images_per_s": round(steps * batch / dt, 1), "steps": steps, "batch": batch}))


if __name__ == "__main__":
    cmds = {"params": cmd_params, "train": cmd_train}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit("usage: torch_darts.py params|train ...")
    cmds[sys.argv[1]](sys.argv[2:])
