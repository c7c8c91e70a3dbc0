"""Runtime helpers: progress bars, the libraries' own bars kept quiet, and the CPU thread policy.

- `bar(...)`: genrec's progress bars. On a terminal a normal tqdm bar; otherwise (a log file, CI)
  one plain line per update, at most every 30 s, instead of carriage-return frames.
- `quiet_libraries()`: transformers' / huggingface_hub's bars (weight loading, shard writing, GGUF
  conversion) off; genrec's own bars stay.
- `thread_policy(threads)`: how many torch threads a CPU-heavy verb uses. By default the CPUs not
  already busy (sampled from /proc/stat at start), with OpenMP's passive wait policy so idle threads sleep
  instead of spinning against another busy process; `--threads N` overrides.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator


class _Lines:
    """A stream for tqdm that turns each '\\r'-refreshed frame into one newline-terminated line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, s: str) -> None:
        s = s.replace("\r", "").strip()
        if s:
            self.stream.write(s + "\n")

    def flush(self) -> None:
        self.stream.flush()


def bar(iterable=None, **kw):
    """A tqdm progress bar that stays readable in logs (see module doc)."""
    from tqdm.auto import tqdm
    stream = kw.pop("file", None) or sys.stderr
    if not getattr(stream, "isatty", lambda: False)():
        kw.setdefault("mininterval", 30.0)
        kw.update(file=_Lines(stream), dynamic_ncols=False, ncols=100)
    return tqdm(iterable, **kw)


def quiet_libraries() -> None:
    """Turn off the third-party progress bars genrec's verbs would otherwise print."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with contextlib.suppress(Exception):
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    with contextlib.suppress(Exception):
        from huggingface_hub.utils import disable_progress_bars
        disable_progress_bars()


@contextlib.contextmanager
def no_gguf_bar() -> Iterator[None]:
    """transformers' GGUF conversion has a tqdm bar of its own that no switch turns off."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gg
    except ImportError:
        yield
        return
    old = getattr(gg, "tqdm", None)

    def silent(it=None, *a, **k):
        return it
    gg.tqdm = silent
    try:
        yield
    finally:
        gg.tqdm = old


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat (Linux), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cpus(interval: float = 0.5) -> float:
    """How many CPUs other processes keep busy right now: /proc/stat sampled over `interval` seconds
    (this process is idle meanwhile), else the 1-minute load average (which lags by a minute)."""
    a = _cpu_times()
    if a is not None:
        time.sleep(interval)
        b = _cpu_times()
        if b is not None and b[1] > a[1]:
            n = os.cpu_count() or 1
            return n * (b[0] - a[0]) / (b[1] - a[1])
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def free_cpus() -> int:
    """CPUs this process may use that another process is not already keeping busy (at least 1)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n, round(n - busy_cpus())))


def thread_policy(threads: int | None = None) -> int:
    """Set torch's CPU threads for a heavy verb: `threads` if given (> 0), else the free CPUs.
    Returns the number used. OMP_WAIT_POLICY=PASSIVE applies when set before torch starts OpenMP
    (genrec's CLI sets it at start-up), so waiting threads sleep instead of spinning."""
    import torch
    n = threads if threads and threads > 0 else free_cpus()
    torch.set_num_threads(n)
    return n


def answer_device(device: str | None, quantize: str = "none") -> str | None:
    """Where a loaded checkpoint answers: the device asked for, else the GPU when one is visible,
    else the CPU. k-bit backbones (None) stay where bitsandbytes placed them."""
    if device is not None or quantize != "none":
        return device
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def solo_threads(per_process: int, local_processes: int, device_type: str) -> int:
    """Threads for work the first process of a run does alone while the machine's other processes
    wait in a barrier (validation in a multi-process CPU run): its own and theirs. Elsewhere
    (one process, or a GPU) its own."""
    return per_process * max(1, local_processes) if device_type == "cpu" else per_process


@contextlib.contextmanager
def solo_work(local_processes: int, device_type: str):
    """Context for work the first process does alone (see `solo_threads`); threads restored after."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(solo_threads(n, local_processes, device_type))
    try:
        yield
    finally:
        torch.set_num_threads(n)


def peak_memory() -> dict:
    """This process's peak resident memory (MB) so far, and the GPU's peak allocation when on CUDA."""
    import resource

    import torch
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    out = {"peak_rss_mb": round(rss / (2 ** 20 if sys.platform == "darwin" else 2 ** 10))}
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20)
    return out


def safe_attention_backward(device_type: str) -> bool:
    """On CUDA, keep training off PyTorch's cuDNN attention kernel: its backward returns NaN
    gradients when an attention mask is passed and a query row's log-sum-exp is very low, as the
    fully masked rows of left-padded prompts are (pytorch/pytorch#196678, H100/H200, torch 2.11+;
    seen here as a NaN loss at step 2). The flash and memory-efficient kernels stay. Returns
    whether the setting was changed."""
    import torch
    if device_type != "cuda":
        return False
    torch.backends.cuda.enable_cudnn_sdp(False)
    return True
