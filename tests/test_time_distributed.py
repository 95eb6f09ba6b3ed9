"""TimeDistributed: fold and loop are the same function with one set of weights."""

import pytest
import torch
from torch import nn

from cnnlstm_edu import ShapeError, TimeDistributed, fold_time, unfold_time
from cnnlstm_edu.models.encoders import FrameCNN


def conv_stack():
    # BatchNorm and Dropout are the layers that could make fold and loop differ; in eval mode
    # they must not.
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
        nn.Conv2d(8, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 7 * 7, 6),
    )


@pytest.fixture
def trained_stack():
    torch.manual_seed(0)
    net = conv_stack()
    # Give BatchNorm non-trivial running statistics before switching to eval mode.
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(16, 3, 16, 16) * 2 + 1)
    return net.eval()


@pytest.mark.parametrize("B,T", [(1, 1), (2, 5), (3, 4)])
def test_fold_equals_loop_with_batchnorm_in_eval_mode(trained_stack, B, T):
    x = torch.randn(B, T, 3, 16, 16)
    fold = TimeDistributed(trained_stack, mode="fold")(x)
    loop = TimeDistributed(trained_stack, mode="loop")(x)
    assert fold.shape == (B, T, 6)
    torch.testing.assert_close(fold, loop)


def test_fold_equals_applying_the_module_to_each_frame_by_hand(trained_stack):
    x = torch.randn(2, 3, 3, 16, 16)
    y = TimeDistributed(trained_stack)(x)
    for b in range(2):
        for t in range(3):
            torch.testing.assert_close(y[b, t], trained_stack(x[b, t : t + 1])[0])


def test_fold_equals_loop_gradients(trained_stack):
    x = torch.randn(2, 3, 3, 16, 16)
    grads = []
    for mode in ("fold", "loop"):
        trained_stack.zero_grad()
        TimeDistributed(trained_stack, mode=mode)(x).square().sum().backward()
        grads.append([p.grad.clone() for p in trained_stack.parameters()])
    for g_fold, g_loop in zip(*grads):
        torch.testing.assert_close(g_fold, g_loop)


def test_one_set_of_weights():
    conv = nn.Conv2d(1, 2, 3)
    td = TimeDistributed(conv)
    assert list(td.parameters()) == list(conv.parameters())
    assert set(dict(td.named_parameters())) == {"module.weight", "module.bias"}


def test_batchnorm_in_train_mode_sees_different_batches():
    # Documented caveat: in training mode fold normalises over B*T frames, loop over B.
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3).train()
    x = torch.randn(4, 5, 3) + torch.arange(5.0).view(1, 5, 1)  # each step has its own mean
    assert not torch.allclose(TimeDistributed(bn, "fold")(x), TimeDistributed(bn, "loop")(x))


def test_matches_fold_unfold_by_hand():
    cnn = FrameCNN(1, (4,), 8).eval()
    x = torch.randn(3, 2, 1, 8, 8)
    torch.testing.assert_close(TimeDistributed(cnn)(x), unfold_time(cnn(fold_time(x)), steps=2))


def test_bad_inputs():
    td = TimeDistributed(nn.Linear(3, 2))
    with pytest.raises(ShapeError, match=r"\(B, T, \.\.\.\).*got \(4, 3\)"):
        td(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="mode"):
        TimeDistributed(nn.Linear(3, 2), mode="map")
    with pytest.raises(TypeError, match="nn.Module"):
        TimeDistributed(lambda x: x)
    with pytest.raises(TypeError, match="one tensor per frame"):
        TimeDistributed(nn.LSTM(3, 2))(torch.zeros(2, 4, 5, 3))


def test_repr_shows_mode():
    assert "mode='loop'" in repr(TimeDistributed(nn.Identity(), mode="loop"))


def test_channels_last_video_error_says_permute():
    # Issue 13, item 18: (B, T, H, W, C) frames used to be labelled C=14 ... W=3, with advice
    # about in_channels; the fix is a permute to (B, T, C, H, W).
    td = TimeDistributed(nn.Conv2d(3, 8, kernel_size=3))
    x = torch.randn(2, 4, 14, 14, 3)                 # (B, T, H, W, C): channels last
    with pytest.raises(ShapeError) as caught:
        td(x)
    message = str(caught.value)
    assert "(B=2, T=4, H=14, W=14, C=3)" in message
    assert "x.permute(0, 1, 4, 2, 3)" in message and "in_channels" not in message
