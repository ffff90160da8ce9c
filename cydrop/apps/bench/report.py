"""What ``cydrop bench`` prints and writes: the machine, the table, JSON, a bar chart."""
import datetime
import json
import os
import platform

import numpy as np

import cydrop


def cpu_name():
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info():
    """NumPy's and SciPy's BLAS libraries as threadpoolctl sees them."""
    from threadpoolctl import threadpool_info

    return [{k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "architecture")}
            | {"library": os.path.basename(pool["filepath"])}
            for pool in threadpool_info() if pool["user_api"] == "blas"]


def machine_info(torch):
    """Everything a reader needs to reproduce or discount a run."""
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cydrop": cydrop.__version__,
        "cydrop_threads": cydrop.get_num_threads(),
        "blas": blas_info(),
    }
    if isinstance(torch, str):
        info["torch"] = torch
    else:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def mask_memory(torch):
    """Mask bytes per element, measured on a 1024x4096 float32 draw."""
    shape, keep_prob = (1024, 4096), 0.8
    x = np.ones(shape, dtype=np.float32)
    _, mask = cydrop.dropout(x, keep_prob, seed=cydrop.Generator(0))
    # the course stores D = (np.random.rand(...) < keep_prob).astype(int): int64
    course = (np.random.default_rng(0).random(shape) < keep_prob).astype(int)
    memory = {"cydrop": mask.nbytes / x.size, "numpy_course": course.nbytes / x.size}
    if not isinstance(torch, str):
        _, mask_t = torch.ops.aten.native_dropout(torch.from_numpy(x), 1 - keep_prob, True)
        memory["torch"] = mask_t.element_size() * mask_t.numel() / x.size
    return memory


def _fmt_time(seconds):
    if not np.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def _throughput(group, seconds):
    if not np.isfinite(seconds) or seconds <= 0:
        return "-"
    scale = {"GB/s": 1e9, "GFLOP/s": 1e9, "samples/s": 1}[group.metric]
    text = f"{group.work / seconds / scale:,.1f} {group.metric}"
    if group.elements:
        text = f"{seconds / group.elements * 1e9:.4g} ns/elem, " + text
    return text


def group_rows(group, timings):
    """Rows of the report for one group, ``ratio`` = t(impl) / t(cydrop)."""
    base = next((t.median for t in timings if t.name == "cydrop"), float("nan"))
    rows = []
    for t in timings:
        rows.append({"impl": t.name, "label": t.label, "median_s": t.median, "iqr_s": t.iqr,
                     "rounds": len(t.times), "ratio": t.median / base, "throughput": _throughput(group, t.median),
                     "error": t.error, "note": t.note})
    for name, reason in group.skipped.items():
        rows.append({"impl": name, "label": reason, "median_s": float("nan"), "iqr_s": float("nan"),
                     "rounds": 0, "ratio": float("nan"), "throughput": "-", "error": None, "skipped": True})
    return rows


def print_header(info, out):
    blas = "; ".join(f"{b['internal_api']} {b['version']} ({b['library']}, {b['num_threads']} threads)"
                     for b in info["blas"]) or "none found"
    torch = (f"torch {info['torch']} ({info['torch_threads']} threads)" if "torch_threads" in info
             else info["torch"])
    print(f"cydrop {info['cydrop']} bench, {info['date']}", file=out)
    print(f"CPU: {info['cpu']}, {info['logical_cpus']} logical CPUs; cydrop threads: {info['cydrop_threads']}",
          file=out)
    print(f"BLAS: {blas}", file=out)
    print(f"Python {info['python']}, NumPy {info['numpy']}; {torch}", file=out)
    print("ratio = t(case) / t(cydrop) in the same run: above 1, cydrop is faster; the floor's "
          "ratio below 1 is how close cydrop gets to it.", file=out)


def print_group(group, rows, out):
    print(f"\n{group.name}", file=out)
    for row in rows:
        if row.get("skipped"):
            print(f"  {row['impl']:<13} skipped: {row['label']}", file=out)
        elif row["error"]:
            print(f"  {row['impl']:<13} FAILED: {row['error']}", file=out)
        else:
            ratio = ("1" if row["impl"] == "cydrop" else
                     f"{row['ratio']:.2f}x" if np.isfinite(row["ratio"]) else "-")
            print(f"  {row['impl']:<13}{_fmt_time(row['median_s']):>10}  ±{_fmt_time(row['iqr_s'] / 2):<9}"
                  f"{ratio:>8}{row['throughput']:>34}   {row['label']}", file=out)
            if row.get("note"):
                print(f"  {'':<13}{row['note']}", file=out)


def print_memory(memory, out):
    parts = [f"cydrop {memory['cydrop']:.3f} (packed bits)"]
    parts.append(f"PyTorch {memory['torch']:g} (bool)" if "torch" in memory else "PyTorch not measured")
    parts.append(f"NumPy course {memory['numpy_course']:g} ((rand < keep_prob).astype(int))")
    print("\nmask memory, bytes per element: " + ", ".join(parts), file=out)


def write_json(path, info, options, results, memory):
    payload = {"machine": info, "options": options, "mask_bytes_per_element": memory,
               "groups": [{"tag": g.tag, "name": g.name, "metric": g.metric, "work": g.work, "rows": rows}
                          for g, rows in results]}
    with open(path, "w") as f:
        json.dump(_clean(payload), f, indent=1, allow_nan=False)


def write_load_json(path, info, options, groups):
    """The load groups' figures (``cydrop bench --load --json``)."""
    with open(path, "w") as f:
        json.dump(_clean({"machine": info, "options": options, "load_groups": groups}), f, indent=1,
                  allow_nan=False)


def _clean(value):
    """NaN (untimed cases) as null: JSON has no NaN."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def markdown(info, results, memory):
    """The report as a Markdown table (the tables of benchmarks/results/bench/)."""
    def ratio(rows, name):
        row = next((r for r in rows if r["impl"] == name), None)
        if row is None or row.get("skipped") or row["error"] or not np.isfinite(row["ratio"]):
            return "-"
        return f"{row['ratio']:.2f}"

    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads)" for b in info["blas"])
    torch = f"PyTorch {info['torch']}" if "torch_threads" in info else "no PyTorch"
    lines = [f"{info['date'][:10]}, {info['cpu']} ({info['logical_cpus']} logical CPUs), cydrop "
             f"{info['cydrop']} on {info['cydrop_threads']} threads, NumPy {info['numpy']}, {blas}, {torch}.",
             "",
             "| case | cydrop | cydrop / floor | NumPy course / cydrop | NumPy Generator / cydrop | PyTorch / cydrop |",
             "| --- | --- | --- | --- | --- | --- |"]
    for group, rows in results:
        cy = next(r for r in rows if r["impl"] == "cydrop")
        floor = next((r for r in rows if r["impl"] == "floor" and not r["error"]), None)
        over_floor = f"{cy['median_s'] / floor['median_s']:.2f}" if floor else "-"
        lines.append(f"| {group.name} | {_fmt_time(cy['median_s'])} | {over_floor} | {ratio(rows, 'numpy_course')} "
                     f"| {ratio(rows, 'numpy_rng')} | {ratio(rows, 'torch')} |")
    parts = [f"cydrop {memory['cydrop']:.3f}"] + ([f"PyTorch {memory['torch']:g}"] if "torch" in memory else [])
    lines += ["", f"Mask bytes per element: {', '.join(parts)}, NumPy course {memory['numpy_course']:g}."]
    return "\n".join(lines) + "\n"


def write_plot(path, results):
    """A horizontal bar chart of t(baseline) / t(cydrop) per group, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, ratios, colors = [], [], []
    palette = {"floor": "tab:gray", "numpy_course": "tab:blue", "numpy_rng": "tab:cyan", "torch": "tab:orange"}
    for group, rows in results:
        for row in rows:
            if row["impl"] != "cydrop" and np.isfinite(row["ratio"]):
                labels.append(f"{group.tag} | {row['impl']}")
                ratios.append(row["ratio"])
                colors.append(palette.get(row["impl"], "tab:green"))
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(labels) + 1.5))
    y = np.arange(len(labels))[::-1]
    ratios = np.array(ratios)
    ax.barh(y, ratios - 1, left=1, color=colors)  # bars grow from 1 (parity) both ways
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(min(0.5, ratios.min() / 1.3), max(2.0, ratios.max() * 1.3))
    ax.set_xlabel("t(case) / t(cydrop), same run (right of 1: cydrop faster)")
    ax.set_title(f"cydrop {cydrop.__version__} bench")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
