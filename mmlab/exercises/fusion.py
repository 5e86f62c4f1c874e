"""Notebook 06 (fusion): the gated multimodal unit (Arevalo et al. 2017), forward pass.

    h_a = tanh(W_a x_a),  h_b = tanh(W_b x_b),  z = σ(W_z [x_a; x_b]),
    h = z ⊙ h_a + (1 − z) ⊙ h_b.

The reference is `mmlab.fusion.GatedFusion` with these weights: its softmax gate over two
modalities with scores (W_z [x_a; x_b], 0) is exactly σ(W_z [x_a; x_b]).
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from mmlab.exercises._core import Case, Exercise, Mistake
from mmlab.exercises._inputs import F32, F64, label, randn
from mmlab.fusion import GatedFusion

_IMPORTS = "import torch\n\n\n"


def _gmu_reference(x_a, x_b, W_a, W_b, W_z):
    F_out = W_a.shape[0]
    op = GatedFusion({"a": x_a.shape[1], "b": x_b.shape[1]}, F_out).to(x_a.dtype)
    zeros = torch.zeros(F_out, dtype=x_a.dtype)
    params = {"proj.a.weight": W_a, "proj.a.bias": zeros, "proj.b.weight": W_b,
              "proj.b.bias": zeros, "gate.weight": torch.cat([W_z, torch.zeros_like(W_z)]),
              "gate.bias": torch.zeros(2 * F_out, dtype=x_a.dtype)}
    return functional_call(op, params, ({"a": x_a, "b": x_b},))


def _gmu_cases(gen: torch.Generator) -> list[Case]:
    out = []
    for B, Da, Db, F_out, dtype in ((4, 3, 5, 4, F64), (1, 2, 3, 2, F32), (7, 6, 4, 5, F64),
                                     (3, 4, 4, 3, F32)):
        args = {"x_a": randn(gen, B, Da, dtype=dtype), "x_b": randn(gen, B, Db, dtype=dtype),
                "W_a": randn(gen, F_out, Da, dtype=dtype) / Da ** 0.5,
                "W_b": randn(gen, F_out, Db, dtype=dtype) / Db ** 0.5,
                "W_z": randn(gen, F_out, Da + Db, dtype=dtype)}
        out.append(Case(label(B=B, D_a=Da, D_b=Db, F=F_out, dtype=dtype), args,
                        grad=tuple(args)))
    return out


def _parts(x_a, x_b, W_a, W_b, W_z):
    z = torch.sigmoid(torch.cat([x_a, x_b], dim=1) @ W_z.T)
    return torch.tanh(x_a @ W_a.T), torch.tanh(x_b @ W_b.T), z


GATED_FUSION = Exercise(
    name="gated_fusion", notebook="06",
    signature="gated_fusion(x_a, x_b, W_a, W_b, W_z) -> (B, F) tensor",
    summary="The gated multimodal unit: h = z ⊙ tanh(W_a x_a) + (1 − z) ⊙ tanh(W_b x_b).",
    stub=_IMPORTS + '''def gated_fusion(x_a, x_b, W_a, W_b, W_z):
    """Gated multimodal unit (Arevalo et al. 2017): a learned, per-feature mix of two modalities.

    x_a: (B, D_a) and x_b: (B, D_b) features of the two modalities, paired row by row.
    W_a: (F, D_a), W_b: (F, D_b), W_z: (F, D_a + D_b) weights (no biases).
    Returns a (B, F) tensor h = z ⊙ h_a + (1 − z) ⊙ h_b, where
        h_a = tanh(W_a x_a),  h_b = tanh(W_b x_b),  z = sigmoid(W_z [x_a; x_b]).
    """
    raise NotImplementedError''',
    solution_code=_IMPORTS + '''def gated_fusion(x_a, x_b, W_a, W_b, W_z):
    h_a = torch.tanh(x_a @ W_a.T)                              # (B, F)
    h_b = torch.tanh(x_b @ W_b.T)                              # (B, F)
    z = torch.sigmoid(torch.cat([x_a, x_b], dim=1) @ W_z.T)    # (B, F) gate in (0, 1)
    return z * h_a + (1 - z) * h_b''',
    hints=("With rows as samples, W x becomes x @ W.T. The gate sees both modalities: "
           "concatenate them along the features, torch.cat([x_a, x_b], dim=1).",
           "z = torch.sigmoid(...) is (B, F), one weight per output feature; h_a gets z and "
           "h_b gets 1 − z."),
    reference=_gmu_reference,
    reference_name="mmlab.fusion.GatedFusion with these weights",
    make_cases=_gmu_cases,
    mistakes=(
        Mistake("the gate weights the wrong modality: z multiplies h_a and 1 − z multiplies h_b.",
                lambda *w: (lambda ha, hb, z: z * hb + (1 - z) * ha)(*_parts(*w))),
        Mistake("the tanh is missing: h_a = tanh(W_a x_a), h_b = tanh(W_b x_b).",
                lambda xa, xb, Wa, Wb, Wz: (lambda z: z * (xa @ Wa.T) + (1 - z) * (xb @ Wb.T))(
                    _parts(xa, xb, Wa, Wb, Wz)[2])),
        Mistake("the sigmoid on the gate is missing: z = sigmoid(W_z [x_a; x_b]) lies in (0, 1).",
                lambda xa, xb, Wa, Wb, Wz: (lambda ha, hb, s: s * ha + (1 - s) * hb)(
                    *_parts(xa, xb, Wa, Wb, Wz)[:2], torch.cat([xa, xb], 1) @ Wz.T)),
        Mistake("the gate is fixed at ½ (a plain average of h_a and h_b); it must be computed "
                "from the inputs, z = sigmoid(W_z [x_a; x_b]).",
                lambda *w: (lambda ha, hb, z: (ha + hb) / 2)(*_parts(*w))),
    ),
)

EXERCISES = (GATED_FUSION,)
