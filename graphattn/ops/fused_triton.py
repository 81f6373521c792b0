"""The Triton kernels of :mod:`graphattn.ops.fused` (imported only where triton is).

One program per work item (a node, or a piece of a hub) and group of heads; a tile is
``[edges, heads, channels]``, heads and channels innermost, so gathering a neighbour's row reads
``H C`` contiguous numbers. All tensors are contiguous: ``q, k [N, H, C]``, ``v [N, H, C_v]``,
``bias [E, H]`` and ``edge_kv [E, H, C]`` in the caller's edge order. Accumulation runs in ``ACC``
(float32, or float64 for float64 inputs); partial results of split nodes are kept in ``ACC``.
Dropout keeps edge ``e`` in head ``h`` when Philox ``rand(seed, e H + h) >= p``, the same number
in every pass (:func:`_keep`). No kernel uses atomics: each output element has one writer.

The offsets within a row (``heads x channels``) and their masks are formed once per program;
the loops only add a row's base. (Helper functions are kept few: Triton's interpreter, which runs
the tests, pays for every call.)
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _keep(seed, eid, heads, H, dropout):
    """``[E, BH]`` whether dropout keeps edge ``eid`` in head ``heads`` (Philox on ``e H + h``)."""
    return tl.rand(seed, (eid[:, None] * H + heads[None, :]).to(tl.int32)) >= dropout


@triton.jit(do_not_specialize=["first_item"])
def _forward_kernel(q, k, v, bias, ekv, col, perm, node_ptr, start_ptr, end_ptr, slot_ptr, out, lse, part_out,
                    part_lse, seed_ptr, first_item, scale, dropout, H, C, CV, DEGREE: tl.constexpr,
                    HAS_BIAS: tl.constexpr, HAS_EKV: tl.constexpr, DROPOUT: tl.constexpr, NEED_EID: tl.constexpr,
                    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_CV: tl.constexpr,
                    ACC: tl.constexpr):
    """Online softmax over the keys of one query: ``out = sum_j softmax(s)_j z_j (v_j + e_j)``,
    ``lse = log sum_j exp(s_j)``, for the edges of one work item (ELL, ``DEGREE > 0``: query
    ``item``, edges ``item D:(item + 1) D``)."""
    item = first_item + tl.program_id(0)
    if DEGREE > 0:
        node = item
        start = tl.cast(item, tl.int64) * DEGREE
        end = start + DEGREE
        slot = -1
    else:
        node = tl.load(node_ptr + item)
        start = tl.load(start_ptr + item)
        end = tl.load(end_ptr + item)
        slot = tl.load(slot_ptr + item)
    heads = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    ch = tl.arange(0, BLOCK_C)
    cv = tl.arange(0, BLOCK_CV)
    off_k = (heads[:, None] * C + ch[None, :])[None, :, :]  # (1, BH, BC) within a row of q, k, edge_kv
    ok_k = ((heads < H)[:, None] & (ch < C)[None, :])[None, :, :]
    off_v = (heads[:, None] * CV + cv[None, :])[None, :, :]  # (1, BH, BCV) within a row of v, out
    ok_v = ((heads < H)[:, None] & (cv < CV)[None, :])[None, :, :]
    qi = tl.load(q + tl.cast(node, tl.int64) * (H * C) + off_k, mask=ok_k, other=0.0).to(ACC)  # (1, BH, BC)
    m = tl.full([BLOCK_H], float("-inf"), ACC)
    l_sum = tl.zeros([BLOCK_H], ACC)
    acc = tl.zeros([BLOCK_H, BLOCK_CV], ACC)
    seed = tl.load(seed_ptr) if DROPOUT else 0
    for e0 in range(start, end, BLOCK_E):
        pos = e0 + tl.arange(0, BLOCK_E)
        valid = pos < end
        row = tl.cast(tl.load(col + pos, mask=valid, other=0), tl.int64)[:, None, None]  # (BE, 1, 1)
        kj = tl.load(k + row * (H * C) + off_k, mask=valid[:, None, None] & ok_k, other=0.0).to(ACC)  # (BE, BH, BC)
        vj = tl.load(v + row * (H * CV) + off_v, mask=valid[:, None, None] & ok_v, other=0.0).to(ACC)  # (BE, BH, BCV)
        eid = tl.load(perm + pos, mask=valid, other=0) if NEED_EID else pos
        if HAS_EKV:  # TransformerConv's edge features: k_j + e_ij, v_j + e_ij (C_v == C)
            e = tl.load(ekv + tl.cast(eid, tl.int64)[:, None, None] * (H * C) + off_k,
                        mask=valid[:, None, None] & ok_k, other=0.0).to(ACC)
            kj += e
            vj += e
        s = tl.sum(qi * kj, axis=2) * scale  # (BE, BH)
        if HAS_BIAS:
            s += tl.load(bias + tl.cast(eid, tl.int64)[:, None] * H + heads[None, :],
                         mask=valid[:, None] & (heads < H)[None, :], other=0.0).to(ACC)
        s = tl.where(valid[:, None], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, axis=0))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row of -inf scores stays at zero weight
        corr = tl.exp(m - m_safe)
        p = tl.exp(s - m_safe[None, :])
        l_sum = l_sum * corr + tl.sum(p, axis=0)
        if DROPOUT:
            p = tl.where(_keep(seed, eid, heads, H, dropout), p / (1.0 - dropout), 0.0)
        acc = acc * corr[:, None] + tl.sum(p[:, :, None] * vj, axis=0)
        m = m_new
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    lse_i = tl.where(l_sum > 0, m_safe + tl.log(tl.where(l_sum > 0, l_sum, 1.0)), float("-inf"))  # -inf without edges
    o = (acc / tl.where(l_sum > 0, l_sum, 1.0)[:, None])[None, :, :]
    if slot < 0:
        tl.store(out + tl.cast(node, tl.int64) * (H * CV) + off_v, o.to(out.dtype.element_ty), mask=ok_v)
        tl.store(lse + tl.cast(node, tl.int64) * H + heads, lse_i, mask=heads < H)
    else:
        tl.store(part_out + tl.cast(slot, tl.int64) * (H * CV) + off_v, o, mask=ok_v)
        tl.store(part_lse + tl.cast(slot, tl.int64) * H + heads, lse_i, mask=heads < H)


@triton.jit
def _merge_kernel(part_out, part_lse, split_node, split_ptr, out, lse, H, CV,
                  BLOCK_H: tl.constexpr, BLOCK_CV: tl.constexpr, ACC: tl.constexpr):
    """A split query's pieces, in order: ``lse = log sum_s e^{lse_s}``, ``out = sum_s e^{lse_s - lse} out_s``."""
    r = tl.program_id(0)
    heads = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    cv = tl.arange(0, BLOCK_CV)
    off_v = heads[:, None] * CV + cv[None, :]
    ok_v = (heads < H)[:, None] & (cv < CV)[None, :]
    m = tl.full([BLOCK_H], float("-inf"), ACC)
    l_sum = tl.zeros([BLOCK_H], ACC)
    acc = tl.zeros([BLOCK_H, BLOCK_CV], ACC)
    for s in range(tl.load(split_ptr + r), tl.load(split_ptr + r + 1)):
        piece = tl.load(part_lse + tl.cast(s, tl.int64) * H + heads, mask=heads < H, other=float("-inf"))
        m_new = tl.maximum(m, piece)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        corr = tl.exp(m - m_safe)
        w = tl.exp(piece - m_safe)
        l_sum = l_sum * corr + w
        part = tl.load(part_out + tl.cast(s, tl.int64) * (H * CV) + off_v, mask=ok_v, other=0.0)
        acc = acc * corr[:, None] + w[:, None] * part
        m = m_new
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    node = tl.cast(tl.load(split_node + r), tl.int64)
    o = acc / tl.where(l_sum > 0, l_sum, 1.0)[:, None]
    tl.store(out + node * (H * CV) + off_v, o.to(out.dtype.element_ty), mask=ok_v)
    lse_i = tl.where(l_sum > 0, m_safe + tl.log(tl.where(l_sum > 0, l_sum, 1.0)), float("-inf"))
    tl.store(lse + node * H + heads, lse_i, mask=heads < H)


@triton.jit(do_not_specialize=["first_item"])
def _dq_kernel(q, k, v, bias, ekv, col, perm, node_ptr, start_ptr, end_ptr, slot_ptr, d_out, lse, delta, dq, part_dq,
               seed_ptr, first_item, scale, dropout, H, C, CV, DEGREE: tl.constexpr, HAS_BIAS: tl.constexpr,
               HAS_EKV: tl.constexpr, DROPOUT: tl.constexpr, NEED_EID: tl.constexpr, BLOCK_E: tl.constexpr,
               BLOCK_H: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_CV: tl.constexpr, ACC: tl.constexpr):
    """The destination pass: ``dq_i = scale sum_j dS_ij (k_j + e_ij)`` with
    ``dS_ij = p_ij (z_ij dO_i . (v_j + e_ij) - delta_i)`` and ``delta_i = dO_i . O_i - dlse_i``."""
    item = first_item + tl.program_id(0)
    if DEGREE > 0:
        node = item
        start = tl.cast(item, tl.int64) * DEGREE
        end = start + DEGREE
        slot = -1
    else:
        node = tl.load(node_ptr + item)
        start = tl.load(start_ptr + item)
        end = tl.load(end_ptr + item)
        slot = tl.load(slot_ptr + item)
    heads = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    ch = tl.arange(0, BLOCK_C)
    cv = tl.arange(0, BLOCK_CV)
    off_k = (heads[:, None] * C + ch[None, :])[None, :, :]
    ok_k = ((heads < H)[:, None] & (ch < C)[None, :])[None, :, :]
    off_v = (heads[:, None] * CV + cv[None, :])[None, :, :]
    ok_v = ((heads < H)[:, None] & (cv < CV)[None, :])[None, :, :]
    node64 = tl.cast(node, tl.int64)
    qi = tl.load(q + node64 * (H * C) + off_k, mask=ok_k, other=0.0).to(ACC)  # (1, BH, BC)
    doi = tl.load(d_out + node64 * (H * CV) + off_v, mask=ok_v, other=0.0).to(ACC)  # (1, BH, BCV)
    lse_i = tl.load(lse + node64 * H + heads, mask=heads < H, other=0.0).to(ACC)
    lse_i = tl.where(lse_i == float("-inf"), 0.0, lse_i)[None, :]
    delta_i = tl.load(delta + node64 * H + heads, mask=heads < H, other=0.0).to(ACC)[None, :]
    acc = tl.zeros([BLOCK_H, BLOCK_C], ACC)
    seed = tl.load(seed_ptr) if DROPOUT else 0
    for e0 in range(start, end, BLOCK_E):
        pos = e0 + tl.arange(0, BLOCK_E)
        valid = pos < end
        row = tl.cast(tl.load(col + pos, mask=valid, other=0), tl.int64)[:, None, None]
        kj = tl.load(k + row * (H * C) + off_k, mask=valid[:, None, None] & ok_k, other=0.0).to(ACC)
        vj = tl.load(v + row * (H * CV) + off_v, mask=valid[:, None, None] & ok_v, other=0.0).to(ACC)
        eid = tl.load(perm + pos, mask=valid, other=0) if NEED_EID else pos
        if HAS_EKV:
            e = tl.load(ekv + tl.cast(eid, tl.int64)[:, None, None] * (H * C) + off_k,
                        mask=valid[:, None, None] & ok_k, other=0.0).to(ACC)
            kj += e
            vj += e
        s = tl.sum(qi * kj, axis=2) * scale
        if HAS_BIAS:
            s += tl.load(bias + tl.cast(eid, tl.int64)[:, None] * H + heads[None, :],
                         mask=valid[:, None] & (heads < H)[None, :], other=0.0).to(ACC)
        p = tl.exp(tl.where(valid[:, None], s, float("-inf")) - lse_i)  # (BE, BH)
        da = tl.sum(doi * vj, axis=2)
        if DROPOUT:
            da = tl.where(_keep(seed, eid, heads, H, dropout), da / (1.0 - dropout), 0.0)
        acc += tl.sum((p * (da - delta_i))[:, :, None] * kj, axis=0)
    dq_i = (acc * scale)[None, :, :]
    if slot < 0:
        tl.store(dq + node64 * (H * C) + off_k, dq_i.to(dq.dtype.element_ty), mask=ok_k)
    else:
        tl.store(part_dq + tl.cast(slot, tl.int64) * (H * C) + off_k, dq_i, mask=ok_k)


@triton.jit(do_not_specialize=["first_item"])
def _dkv_kernel(q, k, v, bias, ekv, t_col, t_perm, node_ptr, start_ptr, end_ptr, slot_ptr, d_out, lse, delta,
                dk, dv, d_bias, d_ekv, part_dk, part_dv, seed_ptr, first_item, scale, dropout, H, C, CV,
                HAS_BIAS: tl.constexpr, HAS_EKV: tl.constexpr, DROPOUT: tl.constexpr, WRITE_DBIAS: tl.constexpr,
                WRITE_DEKV: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_C: tl.constexpr,
                BLOCK_CV: tl.constexpr, ACC: tl.constexpr):
    """The source pass, over the queries ``i`` that read key ``j``: ``dk_j = scale sum_i dS_ij q_i``,
    ``dv_j = sum_i p_ij z_ij dO_i``; per edge ``d bias_ij = dS_ij`` and
    ``d e_ij = scale dS_ij q_i + p_ij z_ij dO_i``."""
    item = first_item + tl.program_id(0)
    node64 = tl.cast(tl.load(node_ptr + item), tl.int64)
    start = tl.load(start_ptr + item)
    end = tl.load(end_ptr + item)
    slot = tl.load(slot_ptr + item)
    heads = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    ch = tl.arange(0, BLOCK_C)
    cv = tl.arange(0, BLOCK_CV)
    off_k = (heads[:, None] * C + ch[None, :])[None, :, :]
    ok_k = ((heads < H)[:, None] & (ch < C)[None, :])[None, :, :]
    off_v = (heads[:, None] * CV + cv[None, :])[None, :, :]
    ok_v = ((heads < H)[:, None] & (cv < CV)[None, :])[None, :, :]
    kj = tl.load(k + node64 * (H * C) + off_k, mask=ok_k, other=0.0).to(ACC)  # (1, BH, BC)
    vj = tl.load(v + node64 * (H * CV) + off_v, mask=ok_v, other=0.0).to(ACC)  # (1, BH, BCV)
    acc_k = tl.zeros([BLOCK_H, BLOCK_C], ACC)
    acc_v = tl.zeros([BLOCK_H, BLOCK_CV], ACC)
    seed = tl.load(seed_ptr) if DROPOUT else 0
    for e0 in range(start, end, BLOCK_E):
        pos = e0 + tl.arange(0, BLOCK_E)
        valid = pos < end
        i = tl.cast(tl.load(t_col + pos, mask=valid, other=0), tl.int64)
        eid = tl.cast(tl.load(t_perm + pos, mask=valid, other=0), tl.int64)
        qi = tl.load(q + i[:, None, None] * (H * C) + off_k, mask=valid[:, None, None] & ok_k, other=0.0).to(ACC)
        doi = tl.load(d_out + i[:, None, None] * (H * CV) + off_v, mask=valid[:, None, None] & ok_v, other=0.0).to(ACC)
        per_edge = i[:, None] * H + heads[None, :]  # (BE, BH) into [N, H]
        ok_edge = valid[:, None] & (heads < H)[None, :]
        kk = kj
        vv = vj
        if HAS_EKV:
            e = tl.load(ekv + eid[:, None, None] * (H * C) + off_k, mask=valid[:, None, None] & ok_k, other=0.0).to(ACC)
            kk = kj + e
            vv = vj + e
        s = tl.sum(qi * kk, axis=2) * scale
        if HAS_BIAS:
            s += tl.load(bias + eid[:, None] * H + heads[None, :], mask=ok_edge, other=0.0).to(ACC)
        lse_i = tl.load(lse + per_edge, mask=ok_edge, other=0.0).to(ACC)
        p = tl.exp(tl.where(valid[:, None], s, float("-inf")) - tl.where(lse_i == float("-inf"), 0.0, lse_i))
        da = tl.sum(doi * vv, axis=2)
        pz = p
        if DROPOUT:
            keep = _keep(seed, eid, heads, H, dropout)
            pz = tl.where(keep, p / (1.0 - dropout), 0.0)
            da = tl.where(keep, da / (1.0 - dropout), 0.0)
        ds = p * (da - tl.load(delta + per_edge, mask=ok_edge, other=0.0).to(ACC))
        acc_k += tl.sum(ds[:, :, None] * qi, axis=0)
        acc_v += tl.sum(pz[:, :, None] * doi, axis=0)
        if WRITE_DBIAS:
            tl.store(d_bias + eid[:, None] * H + heads[None, :], ds.to(d_bias.dtype.element_ty), mask=ok_edge)
        if WRITE_DEKV:
            de = scale * ds[:, :, None] * qi + pz[:, :, None] * doi
            tl.store(d_ekv + eid[:, None, None] * (H * C) + off_k, de.to(d_ekv.dtype.element_ty),
                     mask=valid[:, None, None] & ok_k)
    dk_j = (acc_k * scale)[None, :, :]
    dv_j = acc_v[None, :, :]
    if slot < 0:
        tl.store(dk + node64 * (H * C) + off_k, dk_j.to(dk.dtype.element_ty), mask=ok_k)
        tl.store(dv + node64 * (H * CV) + off_v, dv_j.to(dv.dtype.element_ty), mask=ok_v)
    else:
        tl.store(part_dk + tl.cast(slot, tl.int64) * (H * C) + off_k, dk_j, mask=ok_k)
        tl.store(part_dv + tl.cast(slot, tl.int64) * (H * CV) + off_v, dv_j, mask=ok_v)


@triton.jit
def _sum_slots_kernel(part, split_node, split_ptr, out, F, BLOCK_F: tl.constexpr, ACC: tl.constexpr):
    """``out[split_node[r]] = sum of the partial rows split_ptr[r]:split_ptr[r + 1]``, in order."""
    r = tl.program_id(0)
    f = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)
    acc = tl.zeros([BLOCK_F], ACC)
    for s in range(tl.load(split_ptr + r), tl.load(split_ptr + r + 1)):
        acc += tl.load(part + tl.cast(s, tl.int64) * F + f, mask=f < F, other=0.0).to(ACC)
    node = tl.load(split_node + r)
    tl.store(out + tl.cast(node, tl.int64) * F + f, acc.to(out.dtype.element_ty), mask=f < F)


@triton.jit
def _keep_mask_kernel(seed_ptr, keep, E, H, dropout, BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr):
    """``keep [E, H]``: the dropout decisions every pass makes (for tests and inspection)."""
    eid = tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)
    heads = tl.arange(0, BLOCK_H)
    kept = _keep(tl.load(seed_ptr), eid, heads, H, dropout)
    tl.store(keep + tl.cast(eid, tl.int64)[:, None] * H + heads[None, :], kept.to(tl.int8),
             mask=(eid < E)[:, None] & (heads < H)[None, :])
