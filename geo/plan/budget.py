"""Funding works under a budget, phase by phase, so that villages are brought fully to standard.

The unit of completion is the administrative village with its natural villages (exit needs every
indicator of all of them): unit ``u`` needs the set ``R(u)`` of works serving its missing pairs
and every work those depend on (a line is built from the network outwards). Units are taken in
priority classes: 1 = poor with a planned exit year, 2 = other poor, 3 = the rest.

For each phase (its budget plus what earlier phases left unspent), for each class in order:

1. **complete**: rounds of a greedy: sort the class's incomplete units by benefit (1, or the
   population with ``objective="people"``) per yuan of their *remaining* cost (works already
   funded cost nothing), walk them in that order and fund a unit's remaining works whenever they
   fit the money left; repeat while a round funds something (remaining costs fall as shared
   works get funded);
2. **advance**: then fund, cheapest first, the class's remaining works (each with the unfunded
   works it depends on) that still fit, so the money of a phase goes to the villages due first.

Guarantees: the funded cost of phases 1..k never exceeds their budgets; a work is funded at most
once; a work whose best served priority is q is funded in a phase only after every work of a
better class whose remaining cost (with its prerequisites) is no larger has been funded in that
phase or earlier. See docs/planning.md for the comparison with a simple greedy and an exact
solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_array

CLASSES = (1, 2, 3)


@dataclass
class Allocation:
    funded: np.ndarray        # per work
    phase: np.ndarray         # per work: phase index, -1 unfunded
    complete_phase: np.ndarray  # per unit: phase index it became complete, -1 never, -2 had no gap
    spent: np.ndarray         # per phase


def closure(rows: np.ndarray, works: np.ndarray, parent: np.ndarray, n_rows: int) -> csr_array:
    """0/1 matrix: row r needs work w if (r, w) is given or w is an ancestor of such a work."""
    r_all, w_all = [rows], [works]
    r, w = rows, works
    while len(w):
        p = parent[w]
        keep = p >= 0
        r, w = r[keep], p[keep]
        r_all.append(r)
        w_all.append(w)
    r, w = np.concatenate(r_all), np.concatenate(w_all)
    m = csr_array((np.ones(len(r)), (r, w)), shape=(n_rows, len(parent)))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def work_priority(need: csr_array, unit_priority: np.ndarray) -> np.ndarray:
    """Per work, the best (lowest) priority of the units that need it (4: none)."""
    coo = need.tocoo()
    pr = np.full(need.shape[1], 4, dtype=np.int64)
    np.minimum.at(pr, coo.col, unit_priority[coo.row])
    return pr


def allocate(cost: np.ndarray, parent: np.ndarray, need: csr_array, unit_priority: np.ndarray,
             benefit: np.ndarray, budgets: list[float]) -> Allocation:
    """Fund works (``cost``, ``parent`` index or -1) for units (rows of ``need`` =
    :func:`closure`) phase by phase; see the module docstring."""
    n_w = len(cost)
    funded = np.zeros(n_w, dtype=bool)
    phase = np.full(n_w, -1, dtype=np.int64)
    has_gap = np.diff(need.indptr) > 0
    done = np.where(has_gap, -1, -2)
    wneed = closure(np.arange(n_w), np.arange(n_w), parent, n_w)
    wprio = work_priority(need, unit_priority)
    spent = np.zeros(len(budgets))
    left = 0.0
    eps = 1e-6
    ind, ptr = need.indices, need.indptr
    wind, wptr = wneed.indices, wneed.indptr

    def fund(cols: np.ndarray, k: int) -> float:
        todo = cols[~funded[cols]]
        c = float(cost[todo].sum())
        funded[todo] = True
        phase[todo] = k
        return c

    for k, budget in enumerate(budgets):
        left += float(budget)
        for cls in CLASSES:
            # 1. complete units of the class
            while True:
                units = np.flatnonzero((unit_priority == cls) & (done == -1))
                if not len(units):
                    break
                rem = need[units] @ np.where(funded, 0.0, cost)
                fits = rem <= left + eps
                units, rem = units[fits], rem[fits]
                if not len(units):
                    break
                ratio = np.divide(benefit[units], rem, out=np.full(len(units), np.inf),
                                  where=rem > 0)
                order = np.lexsort((units, -ratio))
                took = False
                for u in units[order]:
                    cols = ind[ptr[u]:ptr[u + 1]]
                    c = float(cost[cols[~funded[cols]]].sum())
                    if c <= left + eps:
                        left -= fund(cols, k)
                        spent[k] += c
                        done[u] = k
                        took = True
                if not took:
                    break
                # units completed by others' works on the way
                fin = (done == -1) & has_gap
                fin[fin] = (need[np.flatnonzero(fin)] @ (~funded).astype(float)) == 0
                done[fin] = k
            # 2. advance the class's remaining works, cheapest first
            while True:
                ws = np.flatnonzero((wprio == cls) & ~funded)
                if not len(ws):
                    break
                rem = wneed[ws] @ np.where(funded, 0.0, cost)
                fits = rem <= left + eps
                ws, rem = ws[fits], rem[fits]
                if not len(ws):
                    break
                took = False
                for w in ws[np.lexsort((ws, rem))]:
                    cols = wind[wptr[w]:wptr[w + 1]]
                    c = float(cost[cols[~funded[cols]]].sum())
                    if c <= left + eps:
                        left -= fund(cols, k)
                        spent[k] += c
                        took = True
                if not took:
                    break
            fin = (done == -1) & has_gap
            fin[fin] = (need[np.flatnonzero(fin)] @ (~funded).astype(float)) == 0
            done[fin] = k
    return Allocation(funded=funded, phase=phase, complete_phase=done, spent=spent)
