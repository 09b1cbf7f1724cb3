"""ResNet-50 feature extractor with torchvision's parameter names (no ``fc`` layer).

Layout as in SPIN's HMR (torchvision "v1.5" bottleneck: the stride sits on the 3x3
``conv2``)::

    conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2 -> layer1..layer4 -> avgpool -> (B, 2048)

``layer{k}.{i}`` are :class:`Bottleneck` blocks with ``conv1/bn1/conv2/bn2/conv3/bn3``;
the first block of each stage has ``downsample.0`` (1x1 conv) and ``downsample.1`` (BN).
Weights of torchvision's ``resnet50`` (minus ``fc.*``) load unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["Bottleneck", "ResNet50", "RESNET50_LAYERS", "RESNET50_FEATURES"]

RESNET50_LAYERS = (3, 4, 6, 3)
RESNET50_FEATURES = 2048


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride) -> 1x1 expand (x4), plus the shortcut."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 trunk: (B, 3, H, W) ImageNet-normalised RGB -> (B, 2048) pooled features.

    Initialisation as SPIN/torchvision: convolutions He-normal (fan-out), BN weight 1,
    bias 0.  ``avgpool`` is adaptive, so it equals SPIN's ``AvgPool2d(7)`` at 224 x 224
    input and still works at other sizes.
    """

    feature_dim = RESNET50_FEATURES

    def __init__(self) -> None:
        super().__init__()
        self._inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, RESNET50_LAYERS[0], stride=1)
        self.layer2 = self._make_layer(128, RESNET50_LAYERS[1], stride=2)
        self.layer3 = self._make_layer(256, RESNET50_LAYERS[2], stride=2)
        self.layer4 = self._make_layer(512, RESNET50_LAYERS[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out_planes = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self._inplanes != out_planes:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )
        layers = [Bottleneck(self._inplanes, planes, stride, downsample)]
        self._inplanes = out_planes
        layers.extend(Bottleneck(self._inplanes, planes) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def features(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 2048)."""
        return self.last_stage(self.first_stages(x))

    def first_stages(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 1024, H / 16, W / 16): the stem and ``layer1``..``layer3``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(x.shape)}")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))

    def last_stage(self, x: Tensor) -> Tensor:
        """:meth:`first_stages`' output -> (B, 2048): ``layer4`` and the average pool."""
        return self.avgpool(self.layer4(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)
