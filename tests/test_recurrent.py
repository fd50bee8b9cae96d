"""Recurrent networks over images read as sequences: the sequence, the mixing points, the head."""

import pytest
import torch

from mmx.api import create_model
from mmx.mixing.manifold import MixDraw
from mmx.models import RecurrentNetwork
from mmx.models.recurrent import ImageSequence


def test_rows_are_steps_of_every_channel_s_row_and_pixels_are_steps_in_reading_order():
    images = torch.arange(2 * 3 * 4 * 5, dtype=torch.float).reshape(2, 3, 4, 5)
    rows = ImageSequence("rows")(images)
    assert rows.shape == (2, 4, 15)
    assert torch.equal(rows[1, 2], torch.cat([images[1, c, 2] for c in range(3)]))
    pixels = ImageSequence("pixels")(images.contiguous(memory_format=torch.channels_last))
    assert pixels.shape == (2, 20, 3)
    assert torch.equal(pixels[0, 7], images[0, :, 1, 2])  # step 7 = row 1, column 2


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("read, steps, features", [("rows", 8, 8), ("pixels", 64, 1)])
def test_points_are_the_input_and_each_layer_s_output_sequence(cell, read, steps, features):
    model = RecurrentNetwork(10, 1, 8, cell=cell, hidden=6, layers=3, read=read).eval()
    shapes = []
    logits = model(torch.randn(4, 1, 8, 8), at_point=lambda k, h: shapes.append(tuple(h.shape)) or h)
    assert model.num_points == 4 and logits.shape == (4, 10)
    assert shapes == [(4, 1, 8, 8), (4, steps, 6), (4, steps, 6), (4, steps, 6)]


def test_mixing_a_layer_mixes_the_two_sequences_at_every_time_step_with_one_lam():
    torch.manual_seed(0)
    model = RecurrentNetwork(3, 1, 8, hidden=5, layers=2).eval()
    x = torch.randn(3, 1, 8, 8)
    perm = torch.tensor([2, 0, 1])
    seen = {}

    def record(draw):
        def hook(k, h):
            h = draw.at_point(k, h) if draw else h
            seen.setdefault(draw is not None, {})[k] = h
            return h

        return hook

    model(x, at_point=record(None))
    model(x, at_point=record(MixDraw.one(1, torch.tensor(0.4), perm)))
    clean, mixed = seen[False], seen[True]
    torch.testing.assert_close(mixed[1], 0.4 * clean[1] + 0.6 * clean[1][perm])
    assert not torch.allclose(mixed[2], clean[2])  # the next layer runs on the mixed sequence


def test_the_head_reads_the_last_state_or_the_mean_over_time():
    model = RecurrentNetwork(2, 1, 4, hidden=3, layers=1, readout="mean").eval()
    sequence = torch.randn(5, 4, 3)
    head = model.stages[-1]
    torch.testing.assert_close(head(sequence), head.linear(sequence.mean(1)))
    head.readout = "last"
    torch.testing.assert_close(head(sequence), head.linear(sequence[:, -1]))


def test_the_configs_build_the_recurrent_families():
    gru = create_model("gru", 10, in_channels=1, image_size=8)
    lstm = create_model("lstm", 10, in_channels=3, image_size=32, read="pixels", readout="mean")
    assert isinstance(gru.stages[0][1].rnn, torch.nn.GRU) and gru.stages[0][1].rnn.input_size == 8
    assert isinstance(lstm.stages[0][1].rnn, torch.nn.LSTM) and lstm.stages[0][1].rnn.input_size == 3
    assert gru.num_points == 3 and lstm.stages[-1].readout == "mean"
