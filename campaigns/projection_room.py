"""The slots the live campaigns share while the scheduler's projection runs forward
(``scheduler.project``): capacity per backend, quotas per experiment, throttles, and the
floor of one slot each under policy "slack". Pure Python over the scheduler's input, like
the scheduler itself."""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .scheduler import CampaignLoad, SchedulerInput

INF = math.inf


class ProjectionRoom:
    """The limits the live campaigns share, and whether each can have its floor slot."""

    def __init__(self, inp: SchedulerInput, live: list[CampaignLoad], floor: bool) -> None:
        self.capacity, self.quotas, self.floor = inp.capacity, inp.quotas, floor
        self.by_backend = Counter(c.backend for c in live)
        self.by_experiment = Counter(c.experiment_id for c in live)
        self.shut = sum(1 for c in live if c.throttle is not None and c.throttle < 1)
        self.fitted = False

    def leave(self, c: CampaignLoad) -> None:
        self.by_backend[c.backend] -= 1
        self.by_experiment[c.experiment_id] -= 1
        self.shut -= c.throttle is not None and c.throttle < 1  # throttled to nothing

    def fits(self) -> bool:
        """Every live campaign gets exactly its one floor slot. Campaigns only leave, so
        once it holds it holds until the end."""
        if not self.fitted:
            self.fitted = (
                self.floor
                and self.shut == 0
                and all(self.capacity.get(b, 0) >= n for b, n in self.by_backend.items() if n)
                and all(self.quotas.get(e, 0) >= n for e, n in self.by_experiment.items() if n)
            )
        return self.fitted

    def rates(self, live: list[CampaignLoad]) -> list[float]:
        """Slots each live campaign holds while the set of live campaigns stays the same
        (in the order of ``live``): a floor of one slot each (policy "slack"), then
        greedy, within throttles, quotas and capacity."""
        rates, _given = self._rates(live)
        return rates

    def rates_or_extras(
        self, live: list[CampaignLoad]
    ) -> tuple[list[float] | None, dict[int, float]]:
        """``(None, {campaign: rate})`` when every campaign not named holds exactly its
        floor slot; else ``(rates, {})``."""
        rates, given = self._rates(live)
        if given is None:
            return rates, {}
        return None, {live[i].campaign_id: rates[i] for i in given}

    def _rates(self, live: list[CampaignLoad]) -> tuple[list[float], list[int] | None]:
        backend_free = dict(self.capacity)
        exp_free = dict(self.quotas)
        backends = {b for b, n in self.by_backend.items() if n}
        given: list[int] = []
        if self.fits():
            # Room for every floor slot: one each, counted per backend and experiment.
            rates = [1.0] * len(live)
            for b, n in self.by_backend.items():
                if n:
                    backend_free[b] -= n
            for e, n in self.by_experiment.items():
                if n:
                    exp_free[e] -= n
            _give(live, rates, INF, backend_free, exp_free, backends, given)
            return rates, given
        rates = [0.0] * len(live)
        if self.floor:
            _give(live, rates, 1, backend_free, exp_free, backends, given)
        _give(live, rates, INF, backend_free, exp_free, backends, given)
        return rates, None


def _give(
    live: list[CampaignLoad],
    rates: list[float],
    wanted: float,
    backend_free: dict[str, float],
    exp_free: dict[int, float],
    backends: set[str],
    given: list[int],
) -> None:
    """Up to ``wanted`` more slots to each campaign in turn, while its limits allow
    (the positions that got some are added to ``given``)."""
    open_backends = {b for b in backends if backend_free.get(b, 0) > 0}
    for i, c in enumerate(live):
        if not open_backends:
            return  # every backend is full: nobody after this gets anything
        b_free = backend_free.get(c.backend, 0)
        e_free = exp_free.get(c.experiment_id, 0)
        if e_free <= 0 or b_free <= 0:
            continue
        cap = c.throttle if c.throttle is not None else INF
        n = min(wanted, cap - rates[i], e_free, b_free)
        if n > 0:
            rates[i] += n
            exp_free[c.experiment_id] = e_free - n
            backend_free[c.backend] = b_free - n
            given.append(i)
            if b_free - n <= 0:
                open_backends.discard(c.backend)
