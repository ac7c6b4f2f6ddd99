"""Forward + backward time of rlexport's losses against TorchRL 0.14.1's, in one run.

The same actor/critic ``nn.Module`` weights are wrapped by both libraries; each timed step is
``loss(...)`` -> sum of the ``loss_*`` outputs -> ``backward()`` (gradients reset to ``None``
between steps), advantage and value target given (the usual PPO/A2C update). Discrete: a
Categorical actor over 6 actions; continuous: an IndependentNormal actor over 4 dims (and
TanhNormal, whose entropy is a 1-sample Monte-Carlo estimate). MLPs 16 -> 64 -> 64.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/losses.py [--threads 1 2] [--batches 64 4096 65536]

Prints a table: median and min milliseconds per step (the two libraries alternate step by
step, so both see the same machine load), and TorchRL / rlexport (the speed-up) of each.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

warnings.filterwarnings("ignore")

OBS, HIDDEN, NCAT, ACT = 16, 64, 6, 4
LOSSES = ("A2CLoss", "PPOLoss", "ClipPPOLoss", "KLPENPPOLoss")


def build(kind: str):
    import rlexport.modules as rm

    torch.manual_seed(0)
    out = NCAT if kind == "discrete" else 2 * ACT
    body = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, out))
    critic_module = nn.Sequential(nn.Linear(OBS, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 1))
    if kind == "discrete":
        actor_module, keys, ours_dist = body, ["logits"], rm.Categorical
    else:
        actor_module, keys = nn.Sequential(body, rm.NormalParamExtractor()), ["loc", "scale"]
        ours_dist = rm.TanhNormal if kind == "tanh" else rm.IndependentNormal
    ours = (
        rm.ProbabilisticActor(actor_module, ["observation"], keys, distribution_class=ours_dist),
        rm.ValueOperator(critic_module, ["observation"]),
    )
    from tensordict.nn import TensorDictModule
    from torchrl.modules import IndependentNormal, ProbabilisticActor, TanhNormal, ValueOperator

    tl_dist = {"discrete": torch.distributions.Categorical, "normal": IndependentNormal, "tanh": TanhNormal}[kind]
    theirs = (
        ProbabilisticActor(TensorDictModule(actor_module, ["observation"], keys), in_keys=keys,
                           distribution_class=tl_dist, return_log_prob=True),
        ValueOperator(critic_module, in_keys=["observation"]),
    )
    params = list(actor_module.parameters()) + list(critic_module.parameters())
    return ours, theirs, params, keys


def make_data(kind, batch, ours_actor):
    g = torch.Generator().manual_seed(batch)
    obs = torch.randn(batch, OBS, generator=g)
    with torch.no_grad():
        dist = ours_actor.get_dist(observation=obs)
        if kind == "discrete":
            action = torch.randint(NCAT, (batch,), generator=g)
            params = {"logits": torch.randn(batch, NCAT, generator=g)}
        else:
            action = dist.loc + dist.scale * torch.randn(batch, ACT, generator=g)
            if kind == "tanh":
                action = action.tanh() * 0.999
            params = {"loc": torch.randn(batch, ACT, generator=g), "scale": torch.rand(batch, ACT, generator=g) + 0.5}
        log_prob = dist.log_prob(action) + 0.1 * torch.randn(batch, generator=g)
    return {
        "observation": obs, "action": action, "sample_log_prob": log_prob,
        "advantage": torch.randn(batch, 1, generator=g), "value_target": torch.randn(batch, 1, generator=g), **params,
    }


def timeit_pair(fn_a, fn_b, params, reps: int, warmup: int = 3):
    """Median and min of each of two steps, run alternately so both see the same machine load."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    times_a, times_b = [], []
    for _ in range(reps):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            for p in params:
                p.grad = None
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return [(statistics.median(t) * 1e3, min(t) * 1e3) for t in (times_a, times_b)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 4096, 65536])
    parser.add_argument("--kinds", nargs="+", default=["discrete", "normal", "tanh"])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES))
    args = parser.parse_args()

    import torchrl.objectives as tro
    from tensordict import TensorDict

    import rlexport.objectives as ro

    print(f"torch {torch.__version__}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"{os.cpu_count()} cpus; forward+backward per step, advantage given; ms")
    header = f"| {'threads':>7} | {'loss':<12} | {'actor':<8} | {'batch':>6} | {'rlexport med':>12} | {'min':>8} | {'TorchRL med':>11} | {'min':>8} | {'speed-up med':>12} | {'min':>6} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for kind in args.kinds:
            ours_nets, tl_nets, params, keys = build(kind)
            for batch in args.batches:
                data = make_data(kind, batch, ours_nets[0])
                td = TensorDict({k: v for k, v in data.items()}, batch_size=[batch])
                reps = 200 if batch <= 64 else (40 if batch <= 4096 else 16)
                for name in args.losses:
                    ours = getattr(ro, name)(*ours_nets)
                    kwargs = {k: v for k, v in data.items() if k in ours.accepted_keys}
                    tl = getattr(tro, name)(*tl_nets)
                    tl.set_keys(sample_log_prob="sample_log_prob")
                    if name == "KLPENPPOLoss":  # keep beta fixed in both
                        ours = getattr(ro, name)(*ours_nets, increment=1.0, decrement=1.0)
                        tl = getattr(tro, name)(*tl_nets, increment=1.0, decrement=1.0)
                        tl.set_keys(sample_log_prob="sample_log_prob")
                    out_keys = ours.out_keys

                    def step_ours():
                        out = ours(**kwargs)
                        sum(v.sum() for k, v in zip(out_keys, out) if k.startswith("loss_")).backward()

                    def step_tl():
                        out = tl(td)
                        sum(v.sum() for k, v in out.items() if k.startswith("loss_")).backward()

                    (om, on), (tm, tn) = timeit_pair(step_ours, step_tl, params, reps)
                    print(f"| {threads:>7} | {name:<12} | {kind:<8} | {batch:>6} | {om:>12.3f} | {on:>8.3f} | {tm:>11.3f} | {tn:>8.3f} | {tm / om:>11.2f}x | {tn / on:>5.2f}x |", flush=True)


if __name__ == "__main__":
    main()
