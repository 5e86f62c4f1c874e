"""The second exercises of notebooks 06, 07, 10 and 11 (mmlab/exercises/second_*.py).

Each checker accepts a correct answer written independently of the library (loops, closed forms)
and rejects typical wrong answers, written out again here, with the right diagnosis.
`tests/test_exercises.py` imports `CORRECT_06_11` and `WRONG_06_11` for its completeness checks.
"""

from __future__ import annotations

import math

import pytest
import torch

import mmlab.exercises as ex


# ---- correct answers, written independently -------------------------------------------------
def ogm_ge_coefficients(scores, alpha):
    s = [float(v) for v in scores]
    out = []
    for m, sm in enumerate(s):
        others = [v for n, v in enumerate(s) if n != m]
        rho = sm / (sum(others) / len(others))
        out.append(1 - math.tanh(alpha * rho) if rho > 1 else 1.0)
    return torch.tensor(out, dtype=scores.dtype)


def gradient_attention(attentions, attention_grads):
    B, H, T, _ = attentions[0].shape
    R = [torch.eye(T, dtype=attentions[0].dtype) for _ in range(B)]
    for a, g in zip(attentions, attention_grads):
        for b in range(B):
            a_bar = sum(torch.relu(g[b, h] * a[b, h]) for h in range(H)) / H  # (T, T)
            R[b] = R[b] + torch.einsum("ik,kj->ij", a_bar, R[b])
    return torch.stack(R)


def chunked_info_nce(a, b, temperature, chunk_size):
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    B = len(a)
    row_terms, col_exp = [], [0.0] * B  # col_exp: running Σ_i exp(L_ij − 1/τ), shifted
    for s in range(0, B, chunk_size):
        for i in range(s, min(s + chunk_size, B)):
            logits = (a[i] * b).sum(1) / temperature  # (B,) row i of L
            row_terms.append(torch.logsumexp(logits, 0) - logits[i])
            for j in range(B):  # |L| ≤ 1/τ, so the shift keeps exp in range
                col_exp[j] = col_exp[j] + torch.exp(logits[j] - 1 / temperature)
    col_terms = [torch.log(col_exp[j]) + 1 / temperature - (a[j] * b[j]).sum() / temperature
                 for j in range(B)]
    return (sum(row_terms) / B + sum(col_terms) / B) / 2


def grad_norm_ratio(grads_a, grads_b):
    def norm(grads):
        return torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))
    return norm(grads_a) / norm(grads_b)


CORRECT_06_11 = {"ogm_ge_coefficients": ogm_ge_coefficients,
                 "gradient_attention": gradient_attention,
                 "chunked_info_nce": chunked_info_nce, "grad_norm_ratio": grad_norm_ratio}


# ---- typical wrong answers, each with the diagnosis it must get ------------------------------
def _ogm(scores, alpha, others_only=True, gate=True):
    M = len(scores)
    ref = (scores.sum() - scores) / (M - 1) if others_only else scores.mean()
    rho = scores / ref
    k = 1 - torch.tanh(alpha * rho)
    return torch.where(rho > 1, k, torch.ones_like(k)) if gate else k


def _relevance(attentions, grads, positive=lambda x: x.clamp(min=0), residual=True):
    T = attentions[0].shape[-1]
    R = torch.eye(T, dtype=attentions[0].dtype).repeat(attentions[0].shape[0], 1, 1)
    for a, g in zip(attentions, grads):
        a_bar = positive(a * g).mean(1)
        R = R + a_bar @ R if residual else a_bar @ R
    return R


def _chunk_local(a, b, t, k):
    from torch.nn.functional import cross_entropy, normalize
    total = 0
    for s in range(0, len(a), k):
        L = normalize(a[s:s + k], dim=1) @ normalize(b[s:s + k], dim=1).T / t
        y = torch.arange(len(L))
        total = total + len(L) * (cross_entropy(L, y) + cross_entropy(L.T, y)) / 2
    return total / len(a)


def _rows_only(a, b, t, k):
    from torch.nn.functional import normalize
    L = normalize(a, dim=1) @ normalize(b, dim=1).T / t
    return (torch.logsumexp(L, 1) - L.diagonal()).mean()


WRONG_06_11 = {
    "ogm_ge_coefficients": [
        (lambda s, a: _ogm(s, a, others_only=False), "mean of all modalities"),
        (lambda s, a: _ogm(s, a, gate=False), "the test ρ_m > 1 is missing"),
        (lambda s, a: _ogm(1 / s, a), "upside down")],
    "gradient_attention": [
        (lambda att, gr: _relevance(att, gr, positive=lambda x: x), "positive part is missing"),
        (lambda att, gr: _relevance(att, gr, residual=False), "residual term is missing"),
        (lambda att, gr: _relevance(att, gr, positive=torch.abs), "absolute value"),
        (lambda att, gr: _relevance(att, gr).detach(), "no gradient flows")],
    "chunked_info_nce": [
        (_rows_only, "only one direction"),
        (_chunk_local, "only met the same chunk's columns"),
        (lambda a, b, t, k: chunked_info_nce(a, b, 1.0, k), "τ is missing")],
    "grad_norm_ratio": [
        (lambda ga, gb: sum(g.norm() for g in ga) / sum(g.norm() for g in gb),
         "added the norms of the tensors"),
        (lambda ga, gb: grad_norm_ratio(ga, gb) ** 2, "square root is missing"),
        (lambda ga, gb: grad_norm_ratio(gb, ga), "upside down"),
        (lambda ga, gb: torch.tensor(grad_norm_ratio(ga, gb).item(), dtype=ga[0].dtype),
         "no gradient flows")],
}


@pytest.mark.parametrize("name", sorted(CORRECT_06_11))
def test_independent_correct_answer_passes(name, capsys):
    assert ex.get(name).check(CORRECT_06_11[name]) is True
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize("name,k", [(n, k) for n in sorted(WRONG_06_11)
                                    for k in range(len(WRONG_06_11[n]))])
def test_typical_wrong_answer_fails_with_its_diagnosis(name, k, capsys):
    fn, diagnosis = WRONG_06_11[name][k]
    assert ex.get(name).check(fn) is False
    out = capsys.readouterr().out
    assert "✗" in out and diagnosis in " ".join(out.split()), out


def test_registered_for_their_notebooks():
    for nb, name in (("06", "ogm_ge_coefficients"), ("07", "gradient_attention"),
                     ("10", "chunked_info_nce"), ("11", "grad_norm_ratio")):
        assert name in ex.names(nb) and len(ex.names(nb)) >= 2


def test_chunked_reference_equals_the_library_chunked_loss():
    """The checker's reference (the full loss) is what info_nce(..., chunk_size=K) computes."""
    from mmlab.losses import info_nce
    g = torch.Generator().manual_seed(5)
    a, b = (torch.randn(11, 4, generator=g, dtype=torch.float64) for _ in range(2))
    ref = ex.get("chunked_info_nce").reference
    for k in (1, 3, 4, 11, 20):
        assert torch.allclose(ref(a, b, 0.2, k), info_nce(a, b, 0.2, chunk_size=k).loss,
                              atol=1e-12)
