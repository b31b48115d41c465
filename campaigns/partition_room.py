"""What is left of each partition's capacity and of each experiment's quota on it, during
one scheduling decision (``scheduler.decide``). Pure Python over the scheduler's input, like
the scheduler itself."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .scheduler import CampaignLoad, SchedulerInput

INF = math.inf


class PartitionRoom:
    """What is left of each partition's capacity and of each experiment's quota on it."""

    def __init__(self, inp: SchedulerInput) -> None:
        self.inp = inp
        used = dict(inp.in_flight_partition or {})
        pair_used = dict(inp.in_flight_experiment_partition or {})
        if inp.in_flight_partition is None or inp.in_flight_experiment_partition is None:
            for c in inp.campaigns:
                if c.partition is None:
                    continue
                if inp.in_flight_partition is None:
                    used[c.partition] = used.get(c.partition, 0) + c.in_flight
                if inp.in_flight_experiment_partition is None:
                    pair = (c.experiment_id, c.partition)
                    pair_used[pair] = pair_used.get(pair, 0) + c.in_flight
        self.cap = {p: n - used.get(p, 0) for p, n in inp.partition_capacity.items()}
        self.quota = {k: n - pair_used.get(k, 0) for k, n in inp.partition_quotas.items()}

    def free(self, c: CampaignLoad) -> float:
        if c.partition is None:
            return INF
        return min(
            self.cap.get(c.partition, INF), self.quota.get((c.experiment_id, c.partition), INF)
        )

    def take(self, c: CampaignLoad, n: int) -> None:
        if c.partition in self.cap:
            self.cap[c.partition] -= n
        if (c.experiment_id, c.partition) in self.quota:
            self.quota[(c.experiment_id, c.partition)] -= n

    def full(self, c: CampaignLoad) -> str:
        name = (c.partition or "").partition(":")[2]
        pair = (c.experiment_id, c.partition)
        if self.quota.get(pair, INF) <= 0:
            quota = self.inp.partition_quotas[pair]
            return f"the experiment's quota {quota} on partition {name} reached"
        return f"partition {name} capacity {self.inp.partition_capacity[c.partition]} reached"
