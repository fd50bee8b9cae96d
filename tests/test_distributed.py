"""The process group: each GPU process on its own device before NCCL, and the group torn down at the end."""

import torch


def test_a_gpu_process_sets_its_device_before_joining_nccl_and_leaves_the_group(monkeypatch):
    """NCCL's object collectives run on the current device: it must be the process's own, set first."""
    import torch.distributed as dist

    from mmx import distributed

    calls = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", str(device))))
    monkeypatch.setattr(dist, "is_initialized", lambda: any(c[0] == "init" for c in calls))
    monkeypatch.setattr(
        dist,
        "init_process_group",
        lambda backend, **kwargs: calls.append(("init", backend, str(kwargs.get("device_id")))),
    )
    monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append(("destroy",)))
    ranks = distributed.Ranks(rank=1, world_size=2, local_rank=1)
    distributed.start(ranks, torch.device("cuda", 1))
    distributed.start(ranks, torch.device("cuda", 1))  # joining twice does nothing
    distributed.stop(ranks)
    assert calls == [("set_device", "cuda:1"), ("init", "nccl", "cuda:1"), ("destroy",)]
