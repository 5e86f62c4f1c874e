"""Image encoders: a small stride-2 CNN, an MLP, ResNet-18 for 32x32 images, and a tiny ViT.

Each maps images `(B, C, H, W)` to features `(B, out_dim)`.

- `ConvEncoder`: stride-2 3x3 convolutions (no max-pool: ~5x faster on CPU), ReLU, global
  average pool, linear. `depth` sets the number of conv layers.
- `MLPEncoder`: `depth` Linear+ReLU layers then a linear output. Deeper random ReLU networks
  map inputs into a narrower cone (Liang et al., 2022, "Mind the Gap: Understanding the
  Modality Gap in Multi-modal Contrastive Representation Learning"); notebook 01 shows it.
- `ResNetEncoder`: torchvision ResNet-18 (He et al., 2016), random init, with the CIFAR stem
  (3x3 stride-1 conv, no max-pool) so 32x32 inputs keep spatial detail.
- `ViTEncoder`: patches of `patch_size²` pixels as tokens, a CLS token, learned positions
  (Dosovitskiy et al., 2021). `forward(x, return_attention=True)` returns the attention maps.

Per-patch gradients for attribution (ViT)::

    e = vit.embed(images).detach().requires_grad_()   # (B, N, dim) patch embeddings
    z = vit.forward_tokens(e)                         # (B, out_dim)
    g, = torch.autograd.grad(score(z), e)             # (B, N, dim)
    patch_map = (g * e).sum(-1).view(B, vit.grid_size, vit.grid_size)   # gradient x input

Patch `n` covers rows `(n // grid_size) * patch_size ...` and columns
`(n % grid_size) * patch_size ...`; in the attention maps it is token `n + 1` (token 0 is CLS).
"""

from __future__ import annotations

from torch import Tensor, nn

from mmlab._checks import check_int, check_tensor
from mmlab.encoders.attention import CLSTransformer


def check_images(name: str, x: object, channels: int) -> Tensor:
    """Check an image batch: float (B, channels, H, W) with B ≥ 1."""
    check_tensor(name, x, ndim=4, what=f"of shape (B, {channels}, H, W)")
    if x.shape[1] != channels:
        raise ValueError(f"`{name}` must have {channels} channels, shape (B, {channels}, H, W); "
                         f"got shape {tuple(x.shape)}. "
                         "Images are channels-first (use x.permute(0, 3, 1, 2)).")
    return x


class ConvEncoder(nn.Module):
    """Small CNN: `depth` × (3x3 conv, ReLU), stride 2 for the first 3 layers, average pool, linear.

    Args:
        out_dim: feature width D.
        width: channels of every conv layer.
        depth: number of conv layers (the first 3 halve H and W; later ones keep them).
        in_channels: input channels (3 for RGB, 1 for a spectrogram).
    """

    def __init__(self, out_dim: int = 128, width: int = 32, depth: int = 3,
                 in_channels: int = 3) -> None:
        super().__init__()
        for n, v in (("out_dim", out_dim), ("width", width), ("depth", depth),
                     ("in_channels", in_channels)):
            check_int(n, v)
        self.out_dim, self.in_channels = out_dim, in_channels
        layers: list[nn.Module] = []
        c = in_channels
        for i in range(depth):
            layers += [nn.Conv2d(c, width, 3, stride=2 if i < 3 else 1, padding=1), nn.ReLU()]
            c = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (B, C, H, W) float. Returns: (B, out_dim)."""
        check_images("x", x, self.in_channels)
        h = self.features(x)  # (B, width, H', W')
        return self.fc(h.mean(dim=(-2, -1)))  # (B, out_dim)


class MLPEncoder(nn.Module):
    """`depth` × (Linear, ReLU) then Linear; flattens any input (B, ...) to (B, in_dim).

    Args:
        in_dim: number of input features after flattening (3*32*32 for images).
        hidden: width of the hidden layers.
        depth: number of hidden (Linear+ReLU) layers; 0 gives a linear map.
        out_dim: feature width D.
    """

    def __init__(self, in_dim: int, hidden: int = 256, depth: int = 2, out_dim: int = 128) -> None:
        super().__init__()
        check_int("in_dim", in_dim)
        check_int("hidden", hidden)
        check_int("depth", depth, minimum=0)
        check_int("out_dim", out_dim)
        self.in_dim, self.out_dim = in_dim, out_dim
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (B, ...) float with prod(...) == in_dim. Returns: (B, out_dim)."""
        check_tensor("x", x, what="of shape (B, ...)")
        if x.ndim < 2 or x[0].numel() != self.in_dim:
            raise ValueError(f"`x` must have {self.in_dim} features per sample (in_dim), got shape "
                             f"{tuple(x.shape)}; "
                             f"build MLPEncoder(in_dim={x[0].numel() if x.ndim >= 2 else '?'}).")
        return self.net(x.flatten(1))  # (B, out_dim)


class ResNetEncoder(nn.Module):
    """torchvision ResNet-18 (random init) with a 3x3 stride-1 stem and no max-pool.

    Args:
        out_dim: feature width D (the replaced final `fc`).
        in_channels: input channels.
    """

    def __init__(self, out_dim: int = 128, in_channels: int = 3) -> None:
        super().__init__()
        from torchvision.models import resnet18

        check_int("out_dim", out_dim)
        check_int("in_channels", in_channels)
        self.out_dim, self.in_channels = out_dim, in_channels
        net = resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Linear(net.fc.in_features, out_dim)
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (B, C, H, W) float. Returns: (B, out_dim)."""
        check_images("x", x, self.in_channels)
        return self.net(x)  # (B, out_dim)


class ViTEncoder(nn.Module):
    """Tiny Vision Transformer: non-overlapping patches → Linear → [CLS] + positions → blocks → CLS.

    The patch embedding is one `nn.Linear(C·p², dim)` on flattened patches (equivalent to a
    stride-p convolution): `C·p²·dim + dim` parameters.

    Args:
        image_size: H = W of the input.
        patch_size: p, must divide image_size.
        dim: token width.
        depth: number of transformer blocks.
        heads: attention heads.
        out_dim: feature width D.
        in_channels: C.
        mlp_ratio: MLP hidden width / dim.
        dropout: dropout inside the blocks.
    """

    def __init__(self, image_size: int = 32, patch_size: int = 4, dim: int = 64, depth: int = 2,
                 heads: int = 4, out_dim: int = 64, in_channels: int = 3, mlp_ratio: float = 4.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        check_int("image_size", image_size)
        check_int("patch_size", patch_size)
        check_int("in_channels", in_channels)
        if image_size % patch_size:
            raise ValueError(f"`patch_size` ({patch_size}) must divide "
                             f"`image_size` ({image_size}).")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size ** 2
        self.dim, self.out_dim = dim, out_dim
        self.patch_embedding = nn.Linear(in_channels * patch_size ** 2, dim)
        self.transformer = CLSTransformer(dim, depth, heads, out_dim, self.num_patches, mlp_ratio,
                                          dropout)

    def patchify(self, x: Tensor) -> Tensor:
        """Cut images into flattened patches, row-major.

        Args:
            x: images (B, C, image_size, image_size).
        Returns:
            (B, N, C·p²) with N = grid_size²; patch n = rows (n // grid_size)·p..,
            cols (n % grid_size)·p.., flattened in (C, p, p) order.
        """
        check_images("x", x, self.in_channels)
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"`x` must be (B, {self.in_channels}, {self.image_size}, "
                             f"{self.image_size}) for this "
                             f"ViTEncoder(image_size={self.image_size}), "
                             f"got shape {tuple(x.shape)}; resize the "
                             "images or build the encoder with the matching image_size.")
        B, C, p, g = x.shape[0], self.in_channels, self.patch_size, self.grid_size
        patches = x.reshape(B, C, g, p, g, p).permute(0, 2, 4, 1, 3, 5)  # (B, g, g, C, p, p)
        return patches.reshape(B, g * g, C * p * p)  # (B, N, C·p²)

    def embed(self, x: Tensor) -> Tensor:
        """Patch embeddings (B, N, dim), before CLS and positions: the input for attribution."""
        return self.patch_embedding(self.patchify(x))  # (B, N, dim)

    def forward_tokens(self, tokens: Tensor,
                       return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Run the transformer on patch embeddings `tokens` (B, N, dim) from `embed`."""
        return self.transformer(tokens, None, return_attention)

    def forward(self, x: Tensor,
                return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Encode images.

        Args:
            x: images (B, C, image_size, image_size) float.
            return_attention: also return the attention of every layer, (B, heads, N+1, N+1) each.
        Returns:
            features (B, out_dim), or `(features, attentions)`.
        """
        return self.forward_tokens(self.embed(x), return_attention)
