#!/usr/bin/env python3
"""PyTorch peer of evosearch's proxy-50 benchmark (DESIGN.md section 7).

evosearch scores a generation of candidate architectures by training each one
briefly ("proxy training"), and its GPU path trains the whole generation at
once. This script measures what the usual Python NAS tooling does instead:
train the same genomes in PyTorch one network at a time, in P worker
processes that share the GPU, each worker taking the next genome from a
shared queue.

The recipe is evosearch's: the darts-like network of torch_darts.py (C=16,
L=5 cells, 10 classes), synthetic CIFAR-shaped data (3x32x32, 5,000 train /
1,000 val), 5 epochs of batch 64 (the last batch of an epoch is smaller:
5000 = 78*64 + 8), SGD lr 0.025 momentum 0.9 weight decay 3e-4 with a cosine
schedule to 0 stepped every batch over the whole run, gradient-norm clip 5,
no augmentation. A genome's own "hparams" (lr, weight_decay, width) replace
the defaults as in evosearch. After training, the batch-norm running
statistics are re-estimated as the cumulative average over 10 training
batches (train mode, no gradient), then the network is scored in evaluation
mode on the validation images in batches of 128.

Input: the JSON file that `evosearch bench population --emit-genomes FILE`
writes: the recipe's numbers (c, layers, classes, in, train, val, epochs,
batch, lr, momentum, weight_decay, clip, bn_calibration, seed) and "genomes",
a list of architecture objects as torch_darts.py reads them. Missing recipe
keys take the defaults above; unknown keys are ignored.

Data: generated in every worker from a torch.Generator seeded by the file's
seed, so every process and every device sees the same images, and kept
resident on the device (no DataLoader). The generator follows the idea of
evosearch's data.Synthetic (not its exact pixels: the random streams
differ): each class has a smooth random texture (per channel, three plane
waves of 2 to 6 cycles per image), and each image shows its class texture
shifted by up to 1/8 of the side at a random contrast, plus one of 16
class-independent distractor textures, plus pixel noise, rounded to 0..255
and normalised with the training set's channel statistics. A CNN learns it
well above chance. Epoch e's batch order is a permutation drawn from a
generator seeded by (seed, e), the same for every genome.

Timing: the wall clock starts when every worker is ready (torch imported,
data on the device, no network built yet; building counts) and stops when
the last genome's result arrives. Each genome's "seconds" runs from building
its network to its validation accuracy. The loss is summed on the device and
read once per epoch, so a NaN is noticed at the end of the epoch it appears
in; the genome then stops with status "diverged".

Commands (JSON lines on stdout, progress and errors on stderr):

  python3 bench/torch_population.py run FILE [--device cuda|cpu] [--procs P]
      [--limit K] [--epochs E] [--channels-last] [--amp none|bf16] [--compile] [--tf32]
    One line per genome, in the order they finish:
      {"bench":"population-torch","genome":i,"status":"ok"|"diverged"|"oom"|"invalid"|"failed",
       "fitness":acc,"seconds":s,"loss_curve":[per-epoch mean loss],...}
    then a summary:
      {"bench":"population-torch","device":...,"torch":...,"procs":P,"genomes":K,"epochs":E,
       "wall_s":...,"evals_per_gpu_hour":K*3600/wall_s,"images_per_s":...,"mean_fitness":...,...}
    mean_fitness averages the genomes whose status is "ok". --compile wraps
    each network in torch.compile; if that fails the summary carries
    "error" and the exit status is 1.

  python3 bench/torch_population.py sweep FILE [--device cuda] [--procs 1,2,4,8] [--limit K] [run options]
    Runs `run` once per procs value, one after the other in subprocesses,
    prints each summary and then {"bench":"population-torch-best",...}
    naming the configuration with the most evaluations per GPU-hour.

  python3 bench/torch_population.py selftest
    A quick check on the CPU (about 20 s on 2 cores): 2 genomes of
    testdata_population/genomes3.json, 1 epoch, 256/64 images, 2 worker
    processes; asserts that every output line parses and that fitness is in
    [0, 1], plus checks of the data generator and the input validation.
    Prints "selftest ok" and exits 0, or names the failed check and exits 1.

Exit status: 0 success, 1 failure, 2 usage error. Written for PyTorch 1.13
(Debian's python3-torch, CPU) and PyTorch 2.x with CUDA; it needs nothing
beyond the standard library and torch.
"""
import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from torch_darts import Network  # noqa: E402

BENCH = "population-torch"
PREFIX = "torch_population: "

# The recipe of DESIGN.md section 7's proxy-50; a population file may
# override any of these.
DEFAULTS = {"c": 16, "layers": 5, "classes": 10, "in": [3, 32, 32], "train": 5000, "val": 1000, "epochs": 5,
            "batch": 64, "lr": 0.025, "momentum": 0.9, "weight_decay": 3e-4, "clip": 5.0, "bn_calibration": 10,
            "seed": 1}

OPS = {"none", "skip_connect", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
       "dil_conv_5x5", "attention"}
NODES = 4  # intermediate nodes per cell; Network reads exactly 2*NODES edges

# Knobs of the synthetic set, the values evosearch's data.Synthetic uses.
WAVES, MIN_FREQ, MAX_FREQ = 3, 2.0, 6.0
DISTRACTORS, CLASS_AMP, DIST_AMP, NOISE = 16, 40.0, 50.0, 30.0

EVAL_BATCH = 128
FIXTURE = os.path.join(HERE, "testdata_population", "genomes3.json")


class PopulationError(Exception):
    """A problem with the input file or the run, reported as one message."""


# --------------------------------------------------------------------------
# Input

def load_population(path):
    """Reads and checks a population file; returns the recipe dict with a
    "genomes" list. Every problem with the recipe is reported at once; a bad
    genome is not an error here (it becomes an "invalid" result)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise PopulationError(f"{path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise PopulationError(f"{path}: not JSON: line {e.lineno} col {e.colno}: {e.msg}") from e
    if not isinstance(doc, dict):
        raise PopulationError(f"{path}: top level is {type(doc).__name__}, want an object")
    cfg = dict(DEFAULTS)
    problems = []
    for key, default in DEFAULTS.items():
        if key not in doc:
            continue
        v = doc[key]
        if key == "in":
            if not (isinstance(v, list) and len(v) == 3 and all(_is_int(t) and t > 0 for t in v)):
                problems.append(f'"in" is {json.dumps(v)}, want [channels, height, width] of positive integers')
                continue
        elif isinstance(default, int):
            if not _is_int(v) or v < (0 if key in ("bn_calibration", "seed") else 1):
                problems.append(f'"{key}" is {json.dumps(v)}, want a {"non-negative" if key in ("bn_calibration", "seed") else "positive"} integer')
                continue
        else:
            if not _is_num(v) or v < 0 or (key == "lr" and v == 0):
                problems.append(f'"{key}" is {json.dumps(v)}, want a {"positive" if key == "lr" else "non-negative"} number')
                continue
        cfg[key] = v
    genomes = doc.get("genomes")
    if not isinstance(genomes, list) or not genomes:
        problems.append('"genomes" must be a non-empty list of architecture objects')
    if problems:
        raise PopulationError(f"{path}: " + "; ".join(problems))
    cfg["genomes"] = genomes
    return cfg


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def arch_problem(arch):
    """Returns why arch cannot be built into a darts-like network, or None."""
    if not isinstance(arch, dict):
        return f"genome is {type(arch).__name__}, want an object"
    for cell in ("normal", "reduce"):
        edges = arch.get(cell)
        if not isinstance(edges, list) or len(edges) != 2 * NODES:
            return f'"{cell}" must list {2 * NODES} edges'
        for j, e in enumerate(edges):
            if not (isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and _is_int(e[1])):
                return f'{cell} edge {j} is {json.dumps(e)}, want ["op", input]'
            if e[0] not in OPS:
                return f'{cell} edge {j}: unknown op "{e[0]}"'
            if not 0 <= e[1] < j // 2 + 2:
                return f"{cell} edge {j}: input {e[1]} out of range 0..{j // 2 + 1}"
    heads = arch.get("heads", 1)
    if not _is_int(heads) or heads < 0:
        return f'"heads" is {json.dumps(heads)}, want a non-negative integer'
    hp = arch.get("hparams", {})
    if not isinstance(hp, dict):
        return '"hparams" must be an object'
    for k in ("lr", "weight_decay", "width"):
        if k in hp and (not _is_num(hp[k]) or hp[k] < 0):
            return f'hparams "{k}" is {json.dumps(hp[k])}, want a non-negative number'
    return None


# --------------------------------------------------------------------------
# Data

def _textures(gen, k, c, ch, cw, h, w):
    """k textures of c channels on a ch x cw canvas: each channel a sum of
    WAVES plane waves (frequency in cycles per h x w image), scaled so that
    its largest magnitude is 1."""
    shape = (k, c, WAVES, 1, 1)
    amp = 0.5 + 0.5 * torch.rand(shape, generator=gen, dtype=torch.float64)
    freq = MIN_FREQ + (MAX_FREQ - MIN_FREQ) * torch.rand(shape, generator=gen, dtype=torch.float64)
    angle = 2 * math.pi * torch.rand(shape, generator=gen, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(shape, generator=gen, dtype=torch.float64)
    ky = 2 * math.pi * freq * torch.sin(angle) / h
    kx = 2 * math.pi * freq * torch.cos(angle) / w
    y = torch.arange(ch, dtype=torch.float64).view(ch, 1)
    x = torch.arange(cw, dtype=torch.float64).view(1, cw)
    planes = (amp * torch.sin(ky * y + kx * x + phase)).sum(2)  # k, c, ch, cw
    peak = planes.abs().amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    return planes / peak


def _window(canvases, which, oy, ox, h, w):
    """canvases[which[i]] cropped to h x w at offset (oy[i], ox[i])."""
    sel = canvases[which]  # m, c, ch, cw
    m, c, _, cw = sel.shape
    rows = (oy.view(m, 1) + torch.arange(h)).view(m, 1, h, 1).expand(m, c, h, cw)
    sel = sel.gather(2, rows)
    cols = (ox.view(m, 1) + torch.arange(w)).view(m, 1, 1, w).expand(m, c, h, w)
    return sel.gather(3, cols)


def synthetic(n_train, n_val, shape, classes, seed):
    """The synthetic set on the CPU: (train images, train labels, val images,
    val labels), images float32 N x C x H x W normalised with the training
    images' channel mean and std, labels int64 balanced over the classes.
    The same arguments give the same tensors."""
    c, h, w = shape
    n = n_train + n_val
    gen = torch.Generator().manual_seed(seed)
    shift = max(1, min(h, w) // 8)
    # Canvases are larger than the image by `shift` on every side, so a
    # shifted window never leaves them.
    ch, cw = h + 2 * shift, w + 2 * shift
    patterns = _textures(gen, classes, c, ch, cw, h, w)
    distractors = _textures(gen, DISTRACTORS, c, ch, cw, h, w)
    labels = (torch.arange(n) % classes)[torch.randperm(n, generator=gen)]
    pixels = torch.empty(n, c, h, w, dtype=torch.float32)
    chunk = 1024  # bounds the memory of the gathered canvases
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        dis = torch.randint(DISTRACTORS, (m,), generator=gen)
        contrast = (0.6 + 0.6 * torch.rand(m, generator=gen, dtype=torch.float64)).view(m, 1, 1, 1)
        weight = torch.rand(m, generator=gen, dtype=torch.float64).view(m, 1, 1, 1)
        py, px, dy, dx = torch.randint(2 * shift + 1, (4, m), generator=gen)
        noise = torch.randn(m, c, h, w, generator=gen, dtype=torch.float64)
        v = (128 + CLASS_AMP * contrast * _window(patterns, labels[lo:lo + m], py, px, h, w)
             + DIST_AMP * weight * _window(distractors, dis, dy, dx, h, w) + NOISE * noise)
        pixels[lo:lo + m] = v.clamp(0, 255).round().float()  # what a uint8 image holds
    xtr, xva = pixels[:n_train], pixels[n_train:]
    mean = xtr.mean(dim=(0, 2, 3), keepdim=True)
    std = xtr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (xtr - mean) / std, labels[:n_train].clone(), (xva - mean) / std, labels[n_train:].clone()


def epoch_order(n, seed, epoch):
    """Batch order of an epoch; drawn on the CPU so that every device agrees."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000003 + epoch))


# --------------------------------------------------------------------------
# Training one genome

def cosine_lr(lr0, step, total):
    """Cosine annealing from lr0 to 0 over total steps at 0-based step."""
    return lr0 * (1 + math.cos(math.pi * step / total)) / 2


def _is_oom(e):
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e)


def train_genome(index, arch, cfg, opts, data, device):
    """Trains and scores one genome; returns its result line as a dict. A bad
    or failing genome is a result with a status, not an exception."""
    res = {"bench": BENCH, "genome": index, "status": "ok", "fitness": 0.0, "seconds": 0.0, "loss_curve": []}
    problem = arch_problem(arch)
    if problem:
        res.update(status="invalid", error=f"genome {index}: {problem}")
        return res
    t0 = time.perf_counter()
    try:
        _train(res, index, arch, cfg, opts, data, device)
    except Exception as e:  # noqa: BLE001 - any failure of one genome is that genome's result
        res["status"] = "oom" if _is_oom(e) else "failed"
        res["error"] = f"genome {index}: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        if opts["compile"] and res["status"] == "failed":
            res["compile_error"] = True
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    res["seconds"] = round(time.perf_counter() - t0, 3)
    return res


def _train(res, index, arch, cfg, opts, data, device):
    xtr, ytr, xva, yva = data
    hp = arch.get("hparams") or {}
    lr0 = hp.get("lr") or cfg["lr"]
    wd = hp.get("weight_decay") or cfg["weight_decay"]
    # Weights depend on the genome's index only, not on which worker trains it.
    torch.manual_seed(cfg["seed"] * 1000 + index)
    model = Network(arch, cfg["c"], cfg["layers"], cfg["in"][0], cfg["classes"]).to(device)
    memory = torch.channels_last if opts["channels_last"] else torch.contiguous_format
    model = model.to(memory_format=memory)
    res["params"] = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=lr0, momentum=cfg["momentum"], weight_decay=wd)
    forward = torch.compile(model) if opts["compile"] else model
    amp = opts["amp"] == "bf16"
    # PyTorch's own default leaves matmuls (attention here) in float32 and
    # lets cuDNN's convolutions use TF32; --tf32 moves the matmuls too.
    torch.backends.cuda.matmul.allow_tf32 = bool(opts.get("tf32", False))
    dev_type = "cuda" if device.startswith("cuda") else "cpu"

    def autocast():
        return torch.autocast(dev_type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()

    n, batch, epochs = xtr.shape[0], cfg["batch"], cfg["epochs"]
    steps = (n + batch - 1) // batch
    total = steps * epochs
    step = 0
    model.train()
    for epoch in range(epochs):
        order = epoch_order(n, cfg["seed"], epoch).to(device)
        loss_sum = torch.zeros((), device=device)
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            x, y = xtr[idx].contiguous(memory_format=memory), ytr[idx]
            for g in opt.param_groups:
                g["lr"] = cosine_lr(lr0, step, total)
            opt.zero_grad(set_to_none=True)
            with autocast():
                logits = forward(x)
            loss = F.cross_entropy(logits.float(), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
            opt.step()
            loss_sum += loss.detach()
            step += 1
        mean = (loss_sum / steps).item()  # the one host sync of the epoch
        res["loss_curve"].append(round(mean, 6) if math.isfinite(mean) else None)
        res["images"] = res.get("images", 0) + n
        if not math.isfinite(mean):
            res["status"] = "diverged"
            return

    # Re-estimate the batch-norm statistics with the final weights: a few
    # hundred steps move the weights faster than momentum-0.1 running
    # averages follow (evosearch's nets.CalibrateBN does the same).
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if cfg["bn_calibration"] > 0 and bns:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average of the batches seen
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg["seed"] + 0x6B6E)).to(device)
        with torch.no_grad(), autocast():
            for k in range(min(cfg["bn_calibration"], steps)):
                model(xtr[order[k * batch:(k + 1) * batch]].contiguous(memory_format=memory))
        for bn in bns:
            bn.momentum = 0.1

    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with torch.no_grad(), autocast():
        for lo in range(0, xva.shape[0], EVAL_BATCH):
            logits = model(xva[lo:lo + EVAL_BATCH].contiguous(memory_format=memory))
            correct += (logits.argmax(1) == yva[lo:lo + EVAL_BATCH]).sum()
    res["fitness"] = correct.item() / xva.shape[0]


# --------------------------------------------------------------------------
# Workers

def _exit_with_parent(parent):
    """Ends this worker when its parent is gone. A parent killed by a time
    limit cannot stop its workers, and orphans would go on using the GPU
    and skew whatever runs next."""
    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _worker(wid, parent, cfg, opts, tasks, results, start):
    """One worker process: builds the data on its device, says it is ready,
    waits for the start signal, then trains genomes from the queue until it
    reads None."""
    _exit_with_parent(parent)
    try:
        device = opts["device"]
        if device == "cpu":
            torch.set_num_threads(max(1, opts["cores"] // opts["procs"]))
        if opts["compile"]:
            _raise_recompile_limits()
        name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
        data = tuple(t.to(device) for t in synthetic(cfg["train"], cfg["val"], cfg["in"], cfg["classes"], cfg["seed"]))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    except Exception as e:  # noqa: BLE001 - reported to the parent, which exits 1
        results.put({"kind": "fatal", "worker": wid, "error": f"{type(e).__name__}: {e}"})
        return
    results.put({"kind": "ready", "worker": wid, "device": name, "threads": torch.get_num_threads()})
    start.wait()
    while True:
        i = tasks.get()
        if i is None:
            return
        res = train_genome(i, cfg["genomes"][i], cfg, opts, data, device)
        results.put({"kind": "result", "worker": wid, "result": res})


def _next_message(results, procs):
    """The next message from the workers; raises if a worker died without
    saying why (a crash would otherwise leave the parent waiting forever)."""
    while True:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            for k, p in enumerate(procs):
                if p.exitcode not in (None, 0):
                    raise PopulationError(f"worker {k} exited with code {p.exitcode}")
            if all(p.exitcode == 0 for p in procs):
                raise PopulationError("workers finished before sending every result")


def run_population(cfg, opts, emit):
    """Trains cfg's genomes with opts["procs"] workers, calls emit(line) for
    each genome's result and returns the summary dict."""
    k, procs = len(cfg["genomes"]), opts["procs"]
    ctx = mp.get_context("spawn")  # CUDA cannot be used in a forked child
    tasks, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    for i in range(k):
        tasks.put(i)
    for _ in range(procs):
        tasks.put(None)
    workers = [ctx.Process(target=_worker, args=(w, os.getpid(), cfg, opts, tasks, results, start), daemon=True)
               for w in range(procs)]
    t_launch = time.perf_counter()
    for p in workers:
        p.start()
    finished = False
    try:
        device, threads = None, None
        for _ in range(procs):
            msg = _next_message(results, workers)
            if msg["kind"] == "fatal":
                raise PopulationError(f"worker {msg['worker']} could not start: {msg['error']}")
            device, threads = msg["device"], msg["threads"]
        t0 = time.perf_counter()
        start.set()
        done = []
        while len(done) < k:
            msg = _next_message(results, workers)
            if msg["kind"] == "fatal":
                raise PopulationError(f"worker {msg['worker']}: {msg['error']}")
            done.append(msg["result"])
            emit(msg["result"])
        wall = time.perf_counter() - t0
        finished = True
    finally:
        start.set()  # lets a worker waiting for the start reach its sentinel
        for p in workers:
            if finished:
                p.join(timeout=30)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    ok = [r for r in done if r["status"] == "ok"]
    statuses = {}
    for r in done:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    summary = {"bench": BENCH, "device": device, "torch": torch.__version__, "procs": procs, "genomes": k,
               "epochs": cfg["epochs"], "wall_s": round(wall, 3), "evals_per_gpu_hour": round(k * 3600 / wall, 2),
               "images_per_s": round(sum(r.get("images", 0) for r in done) / wall, 1),
               "mean_fitness": round(sum(r["fitness"] for r in ok) / len(ok), 4) if ok else None,
               "statuses": statuses, "train": cfg["train"], "val": cfg["val"], "batch": cfg["batch"],
               "threads_per_proc": threads, "amp": opts["amp"], "channels_last": opts["channels_last"],
               "compile": opts["compile"], "tf32": opts.get("tf32", False), "setup_s": round(t0 - t_launch, 3)}
    compile_errors = [r["error"] for r in done if r.get("compile_error")]
    if compile_errors:
        summary["error"] = f"torch.compile failed for {len(compile_errors)} genome(s); first: {compile_errors[0]}"
    return summary


# --------------------------------------------------------------------------
# Commands

def _print(obj):
    print(json.dumps(obj), flush=True)


def _default_device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def _add_run_flags(p):
    p.add_argument("file", metavar="FILE", help="population JSON (evosearch bench population --emit-genomes)")
    p.add_argument("--device", default=_default_device(), help="cuda, cuda:N or cpu (default: cuda when available)")
    p.add_argument("--limit", type=int, default=0, metavar="K", help="train only the first K genomes (default all)")
    p.add_argument("--epochs", type=int, default=0, metavar="E", help="override the file's epochs")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    p.add_argument("--amp", choices=("none", "bf16"), default="none", help="autocast to bf16")
    p.add_argument("--compile", action="store_true", help="torch.compile each network")
    p.add_argument("--tf32", action="store_true", help="matrix products in TF32 on the tensor cores (torch.backends.cuda.matmul.allow_tf32)")
    # Hidden: shrink the data set for tests.
    p.add_argument("--train", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--val", type=int, default=0, help=argparse.SUPPRESS)


def _setup(args, parser):
    """Applies the command-line overrides to the file's recipe."""
    for name in ("limit", "epochs", "train", "val"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} {getattr(args, name)} must not be negative")
    if not (args.device == "cpu" or args.device.startswith("cuda")):
        parser.error(f"--device {args.device}: want cpu or cuda[:N]")
    cfg = load_population(args.file)
    if args.limit:
        cfg["genomes"] = cfg["genomes"][:args.limit]
    for name in ("epochs", "train", "val"):
        if getattr(args, name):
            cfg[name] = getattr(args, name)
    return cfg


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cmd_run(argv):
    parser = argparse.ArgumentParser(prog="torch_population.py run", description="Train a population, one network per worker at a time.")
    _add_run_flags(parser)
    parser.add_argument("--procs", type=int, default=1, metavar="P", help="concurrent worker processes (default 1)")
    args = parser.parse_args(argv)
    if args.procs < 1:
        parser.error(f"--procs {args.procs} must be at least 1")
    cfg = _setup(args, parser)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise PopulationError(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device")
    opts = {"device": args.device, "procs": min(args.procs, len(cfg["genomes"])), "cores": _cores(),
            "channels_last": args.channels_last, "amp": args.amp, "compile": args.compile, "tf32": args.tf32}
    if args.compile and not hasattr(torch, "compile"):
        msg = f"torch {torch.__version__} has no torch.compile"
        _print({"bench": BENCH, "procs": args.procs, "genomes": len(cfg["genomes"]), "torch": torch.__version__,
                "compile": True, "error": msg})
        print(PREFIX + msg, file=sys.stderr)
        return 1
    summary = run_population(cfg, opts, _print)
    _print(summary)
    if "error" in summary:
        print(PREFIX + summary["error"], file=sys.stderr)
        return 1
    return 0


def _raise_recompile_limits():
    """Every genome is a different network running the same Python forward
    methods; Dynamo's default recompile limit (8 per code object) would
    silently send later genomes back to eager mode, so a worker that
    compiles raises the limits (whichever names this torch version has)."""
    import torch._dynamo as dynamo
    for name in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit", "accumulated_recompile_limit"):
        if hasattr(dynamo.config, name):
            setattr(dynamo.config, name, 4096)


def cmd_sweep(argv):
    parser = argparse.ArgumentParser(prog="torch_population.py sweep", description="Run `run` for several worker counts.")
    _add_run_flags(parser)
    parser.add_argument("--procs", default="1,2,4,8", metavar="P,P,...", help="worker counts to try (default 1,2,4,8)")
    args = parser.parse_args(argv)
    try:
        counts = [int(t) for t in args.procs.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--procs {args.procs}: want a comma-separated list of integers")
    if not counts or min(counts) < 1:
        parser.error(f"--procs {args.procs}: every count must be at least 1")
    _setup(args, parser)  # reports a bad file once, before any run
    common = [args.file, "--device", args.device]
    for name in ("limit", "epochs", "train", "val"):
        if getattr(args, name):
            common += [f"--{name}", str(getattr(args, name))]
    common += ["--amp", args.amp] + (["--channels-last"] if args.channels_last else []) + (["--compile"] if args.compile else []) + (["--tf32"] if args.tf32 else [])
    summaries = []
    for p in counts:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "run", *common, "--procs", str(p)],
                              stdout=subprocess.PIPE, text=True)
        summary = None
        for line in proc.stdout.splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and obj.get("bench") == BENCH and "genome" not in obj:
                summary = obj
        if summary is None:
            summary = {"bench": BENCH, "procs": p, "error": f"run exited with status {proc.returncode} and no summary"}
        elif proc.returncode != 0 and "error" not in summary:
            summary["error"] = f"run exited with status {proc.returncode}"
        _print(summary)
        summaries.append(summary)
    good = [s for s in summaries if "error" not in s]
    if not good:
        _print({"bench": BENCH + "-best", "error": "no run succeeded"})
        return 1
    best = max(good, key=lambda s: s["evals_per_gpu_hour"])
    _print({"bench": BENCH + "-best", "device": best["device"], "torch": best["torch"], "procs": best["procs"],
            "genomes": best["genomes"], "epochs": best["epochs"], "wall_s": best["wall_s"],
            "evals_per_gpu_hour": best["evals_per_gpu_hour"], "images_per_s": best["images_per_s"],
            "amp": best["amp"], "channels_last": best["channels_last"], "compile": best["compile"], "tf32": best.get("tf32", False),
            "by_procs": {str(s["procs"]): s["evals_per_gpu_hour"] for s in good}})
    return 0 if len(good) == len(summaries) else 1


# --------------------------------------------------------------------------
# Self-test

def cmd_selftest(argv):
    if argv:
        print("usage: torch_population.py selftest", file=sys.stderr)
        return 2
    checks = [_check_data, _check_validation, _check_run]
    for check in checks:
        t = time.perf_counter()
        try:
            check()
        except AssertionError as e:
            print(f"selftest FAILED in {check.__name__}: {e}", file=sys.stderr)
            return 1
        print(f"{check.__name__}: ok ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    print("selftest ok")
    return 0


def _check_data():
    a = synthetic(400, 200, (3, 16, 16), 10, 1)
    b = synthetic(400, 200, (3, 16, 16), 10, 1)
    assert all(torch.equal(x, y) for x, y in zip(a, b)), "same seed gave different data"
    c = synthetic(400, 200, (3, 16, 16), 10, 2)
    assert not torch.equal(a[0], c[0]), "different seeds gave the same images"
    xtr, ytr, xva, yva = a
    assert xtr.shape == (400, 3, 16, 16) and xva.shape == (200, 3, 16, 16), f"shapes {xtr.shape} {xva.shape}"
    assert torch.bincount(ytr, minlength=10).tolist() != [0] * 10 and int(ytr.max()) == 9 and int(ytr.min()) == 0
    counts = torch.bincount(torch.cat([ytr, yva]), minlength=10)
    assert int(counts.max() - counts.min()) == 0, f"600 labels over 10 classes not balanced: {counts.tolist()}"
    assert abs(float(xtr.mean())) < 1e-3 and abs(float(xtr.std()) - 1) < 0.05, "training images not normalised"
    # Learnable: even a nearest-class-mean classifier on raw pixels beats
    # chance (0.1) by far on the held-out images.
    means = torch.stack([xtr[ytr == k].mean(0) for k in range(10)]).flatten(1)
    pred = torch.cdist(xva.flatten(1), means).argmin(1)
    acc = float((pred == yva).float().mean())
    assert acc > 0.3, f"nearest-class-mean accuracy {acc:.3f}, want > 0.3"


def _check_validation():
    with open(FIXTURE) as f:
        good = json.load(f)["genomes"][0]
    assert arch_problem(good) is None, arch_problem(good)
    bad = json.loads(json.dumps(good))
    bad["normal"][2][1] = 3  # node 1 may read inputs 0..2 only
    assert "input 3 out of range" in (arch_problem(bad) or ""), arch_problem(bad)
    bad = json.loads(json.dumps(good))
    bad["reduce"][0][0] = "conv_7x7"
    assert "unknown op" in (arch_problem(bad) or ""), arch_problem(bad)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "pop.json")
        with open(path, "w") as f:
            json.dump({"batch": 0, "lr": "fast", "genomes": []}, f)
        try:
            load_population(path)
            raise AssertionError("a bad population file was accepted")
        except PopulationError as e:
            msg = str(e)
            for want in (path, '"batch"', '"lr"', '"genomes"'):
                assert want in msg, f"error {msg!r} does not name {want}"


def _check_run():
    cmd = [sys.executable, os.path.abspath(__file__), "run", FIXTURE, "--device", "cpu", "--limit", "2",
           "--epochs", "1", "--train", "256", "--val", "64", "--procs", "2"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert proc.returncode == 0, f"run exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    genomes, summary = lines[:-1], lines[-1]
    assert sorted(r["genome"] for r in genomes) == [0, 1], f"genome lines {genomes}"
    for r in genomes:
        assert r["bench"] == BENCH and r["status"] == "ok", r
        assert 0 <= r["fitness"] <= 1, f"fitness {r['fitness']}"
        assert len(r["loss_curve"]) == 1 and 0 < r["loss_curve"][0] < 10, f"loss curve {r['loss_curve']}"
        assert r["seconds"] > 0 and r["images"] == 256, r
    for key in ("device", "torch", "procs", "genomes", "epochs", "wall_s", "evals_per_gpu_hour", "images_per_s",
                "mean_fitness"):
        assert key in summary, f"summary lacks {key}: {summary}"
    assert summary["device"] == "cpu" and summary["procs"] == 2 and summary["genomes"] == 2 and summary["epochs"] == 1
    # The summary rounds: evals per hour to 0.01, images/s to 0.1.
    assert math.isclose(summary["evals_per_gpu_hour"], 2 * 3600 / summary["wall_s"], rel_tol=1e-3, abs_tol=0.01), summary
    assert math.isclose(summary["images_per_s"], 512 / summary["wall_s"], rel_tol=1e-3, abs_tol=0.1), summary
    assert 0 <= summary["mean_fitness"] <= 1, summary
    # Each genome's weights and batches depend on its index only, not on
    # the worker that trained it: one worker gives the same loss. (Only
    # nearly: one worker has twice the threads, which reorders float sums.)
    one = subprocess.run(cmd[:-1] + ["1", "--limit", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=600)
    assert one.returncode == 0, f"run --procs 1 exited {one.returncode}: {one.stderr.strip()[-2000:]}"
    first = json.loads(one.stdout.splitlines()[0])
    again = next(r for r in genomes if r["genome"] == 0)
    assert first["genome"] == 0 and math.isclose(first["loss_curve"][0], again["loss_curve"][0], rel_tol=1e-3), \
        f"genome 0 loss {first['loss_curve']} with 1 worker, {again['loss_curve']} with 2"


def main(argv):
    cmds = {"run": cmd_run, "sweep": cmd_sweep, "selftest": cmd_selftest}
    if not argv or argv[0] not in cmds:
        print("usage: torch_population.py run|sweep|selftest ... (see the docstring)", file=sys.stderr)
        return 2
    # A time limit's SIGTERM unwinds like an error, so run_population's
    # clean-up stops the workers (and sweep's subprocess.run kills its run).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return cmds[argv[0]](argv[1:])
    except PopulationError as e:
        print(PREFIX + str(e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
