"""genrec.runtime: readable progress in logs, quiet third-party bars, the thread policy."""
import io

import pytest

from genrec import runtime


def test_bar_writes_one_plain_line_per_update_when_not_a_terminal():
    out = io.StringIO()  # not a tty
    b = runtime.bar(total=3, desc="train", file=out, mininterval=0)
    for _ in range(3):
        b.update(1)
    b.close()
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.strip().splitlines()
    assert lines[-1].startswith("train: 100%") and "3/3" in lines[-1]
    assert len(lines) >= 2


def test_quiet_libraries_turns_transformers_bars_off():
    from transformers.utils import logging as hf_logging
    hf_logging.enable_progress_bar()
    runtime.quiet_libraries()
    assert not hf_logging.is_progress_bar_enabled()


def test_gguf_bar_is_silenced_only_inside():
    gg = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")
    before = gg.tqdm
    with runtime.no_gguf_bar():
        assert gg.tqdm is not before and list(gg.tqdm([1, 2])) == [1, 2]
    assert gg.tqdm is before


def test_thread_policy(monkeypatch):
    import torch
    old = torch.get_num_threads()
    try:
        assert runtime.thread_policy(1) == 1 and torch.get_num_threads() == 1
        n = len(runtime.os.sched_getaffinity(0))
        monkeypatch.setattr(runtime, "busy_cpus", lambda: 50.0)  # a very busy machine
        assert runtime.free_cpus() == 1 and runtime.thread_policy(None) == 1
        monkeypatch.setattr(runtime, "busy_cpus", lambda: 0.0)
        assert runtime.free_cpus() == n
        monkeypatch.setattr(runtime, "busy_cpus", lambda: 0.9)  # one other busy process
        assert runtime.free_cpus() == max(1, n - 1)
    finally:
        torch.set_num_threads(old)


def test_busy_cpus_sees_a_spinning_process():
    import subprocess
    import sys
    idle = runtime.busy_cpus(0.3)
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time
        time.sleep(0.3)
        busy = runtime.busy_cpus(0.5)
    finally:
        p.kill()
    assert busy > 0.6 and busy >= idle - 0.5  # one spinning process is about one CPU


def test_validation_alone_on_a_cpu_takes_the_waiting_processes_threads(monkeypatch):
    """In a 2-process CPU run the first process validates while the other waits in a barrier: it
    runs with both processes' threads, then goes back to its own; one process or a GPU: unchanged."""
    import torch

    from genrec.runtime import solo_threads, solo_work
    assert solo_threads(1, 2, "cpu") == 2 and solo_threads(3, 2, "cpu") == 6
    assert solo_threads(1, 1, "cpu") == 1 and solo_threads(1, 2, "cuda") == 1
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with solo_work(2, "cpu"):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cuda_training_leaves_the_cudnn_attention_kernel_off_and_the_cpu_untouched():
    import torch

    from genrec.runtime import safe_attention_backward
    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        torch.backends.cuda.enable_cudnn_sdp(True)
        assert safe_attention_backward("cpu") is False and torch.backends.cuda.cudnn_sdp_enabled()
        assert safe_attention_backward("cuda") is True and not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


def test_a_loaded_checkpoint_answers_on_the_gpu_when_one_is_visible(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.answer_device(None) == "cuda"
    assert runtime.answer_device("cpu") == "cpu"  # asked for: kept
    assert runtime.answer_device(None, "4bit") is None  # bitsandbytes placed it already
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.answer_device(None) == "cpu"
