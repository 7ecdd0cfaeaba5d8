"""Two CPU processes (gloo) give the same model as one process with the same global batch."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp
from toy import ToyDataset, toy_config

from pixloom.io import checkpoint as checkpoint_io
from pixloom.training.data_order import DataOrder
from pixloom.training.engine import train


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)
    train(toy_config(out, steps=4, grad_accum=2), dataset=ToyDataset())


def test_ranks_take_disjoint_shards_of_one_permutation():
    order = DataOrder(dataset_size=20, batch_size=8, seed=3)
    shards = [order.indices(5, rank=rank, world_size=2) for rank in range(2)]
    assert sorted(shards[0] + shards[1]) == sorted(order.indices(5))
    assert not set(shards[0]) & set(shards[1])


def test_two_processes_match_one(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    single = train(toy_config(tmp_path / "one", steps=4), dataset=ToyDataset())
    one = checkpoint_io.load_checkpoint(single.model, training_state=False)
    two = checkpoint_io.load_checkpoint(tmp_path / "ddp" / "model")
    assert one.weights.keys() == two.weights.keys()
    for name, tensor in one.weights.items():
        torch.testing.assert_close(two.weights[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    state = checkpoint_io.load_checkpoint(
        tmp_path / "ddp/checkpoints/step-0000004", training_state=True
    )
    assert len(state.training_state["rng"]) == 2  # every rank's RNG is kept for resume
