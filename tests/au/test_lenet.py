"""LeNet-5 (paper Table 3) and the masked BCE loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deepfn.au.lenet import LeNet5, count_parameters, flat_features, masked_bce_with_logits
from deepfn.au.trainer import predict
from deepfn.compute.device import Compute


def test_parameter_count_matches_table_3() -> None:
    # conv1 60 + conv2 880 + fc1 3136*120+120 + fc2 120*84+84 + fc3 84*12+12 ("388K")
    assert flat_features(64) == 3136
    assert count_parameters(LeNet5(12, 64)) == 388_564
    assert count_parameters(LeNet5(5, 64)) == 387_969


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_probabilities(size: int) -> None:
    model = LeNet5(5, size)
    x = torch.rand(3, 1, size, size)
    assert model(x).shape == (3, 5)
    # the sigmoid of the Table 3 output layer
    p = predict(model, x, Compute(torch.device("cpu"), "fp32"))
    assert p.shape == (3, 5) and ((p > 0) & (p < 1)).all()


def test_wrong_input_shape_is_named() -> None:
    with pytest.raises(ValueError, match=r"expected \(B, 1, 32, 32\), got \(2, 1, 64, 64\)"):
        LeNet5(12, 32)(torch.rand(2, 1, 64, 64))


def test_masked_loss_ignores_uncoded_labels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([[1, 0, -1, 1], [0, -1, -1, 1], [1, 1, 0, 0],
                           [-1, -1, -1, -1], [0, 0, 1, -1], [1, 0, 0, 1]], dtype=torch.float32)
    loss = masked_bce_with_logits(logits, labels)
    coded = labels >= 0
    expected = F.binary_cross_entropy_with_logits(logits[coded], labels[coded])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert (logits.grad[~coded] == 0).all() and (logits.grad[coded] != 0).all()
    # changing a masked logit changes nothing
    moved = logits.detach().clone()
    moved[~coded] += 100.0
    torch.testing.assert_close(masked_bce_with_logits(moved, labels), expected.detach())


def test_all_uncoded_gives_zero_loss() -> None:
    loss = masked_bce_with_logits(torch.randn(2, 3), torch.full((2, 3), -1.0))
    assert loss.item() == 0.0


def test_pos_weight_weighs_each_aus_positive_terms() -> None:
    torch.manual_seed(1)
    logits = torch.randn(5, 3)
    labels = torch.tensor([[1, 0, -1], [0, 1, 1], [1, -1, 0], [0, 0, 1], [1, 1, -1]],
                          dtype=torch.float32)
    w = torch.tensor([2.0, 1.0, 5.0])
    coded = labels >= 0
    pos_term = -F.logsigmoid(logits)  # -log p for a positive, -log(1 - p) for a negative
    neg_term = -F.logsigmoid(-logits)
    per = torch.where(labels == 1, w * pos_term, neg_term)
    expected = per[coded].mean()
    torch.testing.assert_close(masked_bce_with_logits(logits, labels, w), expected)
    torch.testing.assert_close(masked_bce_with_logits(logits, labels, torch.ones(3)),
                               masked_bce_with_logits(logits, labels))
