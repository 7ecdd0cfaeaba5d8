"""InceptionV3 as used by FID: pool3 features (2048-d) and 1008-way logits at 299x299.

The architecture of Szegedy et al. 2016 ("Rethinking the Inception Architecture") in the
variant of the TensorFlow graph Heusel et al. 2017 used for FID: average pools that do not
count padding and a max pool in the last block. Module and parameter names follow the
common `pt_inception-2015-12-05` state dict (e.g. `Mixed_6b.branch7x7_2.conv.weight`,
`...bn.running_var`, `fc.weight` of shape [1008, 2048]), so that file loads as is.

pixloom ships no Inception weights: `load_inception(path)` reads a file the user supplies
(safetensors, or a legacy state dict only with allow_pickle=True) through
pixloom.io.safe_files.read_tensor_file.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pixloom.errors import CheckpointError
from pixloom.metrics.features import check_images

FEATURE_DIM = 2048
NUM_LOGITS = 1008  # the TF graph's classifier: 1000 ImageNet classes + 8 unused
RESOLUTION = 299


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as in the TF graph) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, **conv_options):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_options)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C_in, H, W] -> [B, C_out, H', W']."""
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool that ignores padding (the FID graph's pooling)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pooled branches (Mixed_5b..5d)."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the branches and concatenate them along channels."""
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branches = [self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(_avg_pool(x))]
        return torch.cat(branches, dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the branches and concatenate them along channels."""
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([self.branch3x3(x), branch3x3dbl, pooled], dim=1)


class InceptionC(nn.Module):
    """17x17 block with factorized 7x7 convolutions (Mixed_6b..6e)."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the branches and concatenate them along channels."""
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            branch7x7dbl = layer(branch7x7dbl)
        branches = [self.branch1x1(x), branch7x7, branch7x7dbl, self.branch_pool(_avg_pool(x))]
        return torch.cat(branches, dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the branches and concatenate them along channels."""
        branch3x3 = self.branch3x3_2(self.branch3x3_1(x))
        branch7x7x3 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        branch7x7x3 = self.branch7x7x3_4(self.branch7x7x3_3(branch7x7x3))
        pooled = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([branch3x3, branch7x7x3, pooled], dim=1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3/3x1 branches (Mixed_7b with avg pool, Mixed_7c with max pool)."""

    def __init__(self, in_channels: int, *, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool  # the FID graph's Mixed_7c pools with max, not average
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the branches and concatenate them along channels."""
        branch3x3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(branch3x3), self.branch3x3_2b(branch3x3)], 1)
        branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat(
            [self.branch3x3dbl_3a(branch3x3dbl), self.branch3x3dbl_3b(branch3x3dbl)], 1
        )
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool(x)
        branches = [self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pooled)]
        return torch.cat(branches, dim=1)


class InceptionV3(nn.Module):
    """The FID Inception network: [B, 3, 299, 299] in [-1, 1] -> (pool3 [B, 2048], logits [B, 1008])."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, NUM_LOGITS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 3, 299, 299] in [-1, 1] -> (pool3 [B, 2048], logits [B, 1008])."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # [B, 64, 147, 147]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [B, 64, 73, 73]
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # [B, 192, 71, 71]
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # [B, 192, 35, 35]
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a):
            x = block(x)  # -> [B, 768, 17, 17]
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a):
            x = block(x)  # -> [B, 1280, 8, 8]
        x = self.Mixed_7c(self.Mixed_7b(x))  # [B, 2048, 8, 8]
        pool3 = x.mean(dim=(2, 3))  # [B, 2048]
        return pool3, self.fc(pool3)


class InceptionFeatures:
    """FeatureExtractor over InceptionV3: pool3 features and softmax over the 1008 logits.

    Images of any size are resized to 299x299 with bilinear interpolation
    (align_corners=False, no antialiasing), the convention of the widely used PyTorch FID
    port; the name records it because FID values depend on the resize.
    """

    name = "inception-v3-pool3-bilinear299"
    resolution = RESOLUTION

    def __init__(self, network: InceptionV3, *, device: str | torch.device = "cpu"):
        from pixloom.devices import resolve_device

        self.device = resolve_device(device)
        # fp32 always: bf16 features would shift FID by more than the differences it measures.
        self.network = network.to(self.device, torch.float32).eval()

    def _forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(images)
        x = images.to(self.device, torch.float32)
        if x.shape[-2:] != (RESOLUTION, RESOLUTION):
            x = F.interpolate(
                x, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False
            )
        # Autocast off: a caller's bf16 context must not change the features FID is built on.
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            return self.network(x)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pool3 features [B, 2048] of images [B, 3, H, W] in [-1, 1]."""
        return self._forward(images)[0]

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Softmax over the 1008 logits [B, 1008] of images [B, 3, H, W] in [-1, 1]."""
        return self._forward(images)[1].softmax(dim=1)


def load_inception_state(
    network: InceptionV3, state: dict[str, torch.Tensor], *, source: str
) -> None:
    """Copy a pt_inception-layout state dict into network, naming any missing/extra/misshaped tensor."""
    # Files saved by newer PyTorch carry BatchNorm step counters the network does not use.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    expected = {
        k: v for k, v in network.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: not an FID InceptionV3 state dict (pt_inception layout): "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''} ({len(missing)}), "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''} ({len(unexpected)})"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(expected[key].shape)}"
            )
    network.load_state_dict(state, strict=False)


def load_inception(
    path: str | Path, *, device: str | torch.device = "cpu", allow_pickle: bool = False
) -> InceptionFeatures:
    """Build the FID InceptionV3 from a user-supplied weights file (safetensors preferred)."""
    from pixloom.io.safe_files import read_tensor_file  # io layer; imported only when loading

    network = InceptionV3()
    state = read_tensor_file(path, allow_pickle=allow_pickle)
    load_inception_state(network, state, source=str(path))
    return InceptionFeatures(network, device=device)
