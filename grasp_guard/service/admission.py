"""Admission that keeps its promise: a request is taken only when it can finish in time.

:class:`ServiceTimes` learns how long the device takes per batch, by crop group and batch
size, from real batch timings (exponentially weighted), starting from a conservative prior.
:func:`schedule` replays the batching worker's order (oldest group first, at most
``max_batch`` crops a batch) over the crops waiting for the device to tell when each request's
crops will be done, and :func:`decide` admits a new request only when it finishes before its
deadline without pushing an admitted one past its own. A refusal says when to retry: the
seconds until enough of the queue has drained for the request to fit.

Estimates age. A group timed during a passing load spike would be refused until a restart,
since a refused group is never timed again; so a group last timed more than ``retime_s`` ago
is timed afresh when that costs no promise: with the device idle and nothing waiting, one of
its requests is taken whatever its estimate says (as for a group never timed), and its timing
replaces the old ones. A probe rather than a decay toward the prior: the prior is pessimistic
on purpose, so decay would slow fast groups and admit slow ones on a guess; a probe measures,
and risks one request per group and ``retime_s``, which no waiting request pays for.

Estimates travel. A new engine replica (the Ray backend starts one for each that dies) would
otherwise start from the prior and refuse all but one request per group until it has timed
them; :meth:`ServiceTimes.snapshot` and :meth:`ServiceTimes.adopt` let it start from what its
peers measured, with their ages, and :func:`merge_snapshots` keeps the newest of each group.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

#: How much one new timing moves an estimate (the rest stays with the past ones).
EWMA_WEIGHT = 0.3
#: How much one new timing moves the estimate of its spread (RFC 6298's beta).
DEVIATION_WEIGHT = 0.25
#: Seconds assumed for a request's last CPU stage (paste, encode, measure) until measured.
FINISH_PRIOR_S = 2.0
#: The share of a request's deadline kept free for the estimates' error.
HEADROOM = 0.1
#: Seconds after which a group's timings are due a fresh one (see the module docstring).
RETIME_S = 300.0
# The most crop groups timed at once: the group of a crop follows the request's options (site
# quality, resize, blur), so a caller could otherwise grow the table without end; the group
# timed longest ago goes first, and is timed afresh if it comes back.
MAX_GROUPS = 1024

#: Measured batch times by group and batch size: (mean s, deviation s, timings, age s).
TimesSnapshot: TypeAlias = dict[Hashable, dict[int, tuple[float, float, int, float]]]


class Ewma:
    """An exponentially weighted mean and mean deviation, kept as TCP keeps its round-trip
    time (RFC 6298): the first observation replaces the prior, with half itself as spread."""

    def __init__(self, prior: float, weight: float = EWMA_WEIGHT) -> None:
        if not 0 < weight <= 1:
            raise ValueError(f"the EWMA weight must be in (0, 1], got {weight}")
        self.value = prior
        self.deviation = 0.0
        self.count = 0
        self._weight = weight

    def observe(self, value: float) -> None:
        if self.count == 0:
            self.value, self.deviation = value, value / 2
        else:
            self.deviation += DEVIATION_WEIGHT * (abs(self.value - value) - self.deviation)
            self.value += self._weight * (value - self.value)
        self.count += 1

    @classmethod
    def restored(cls, value: float, deviation: float, count: int,
                 weight: float = EWMA_WEIGHT) -> Ewma:
        """An estimate as another instance left it."""
        ewma = cls(value, weight)
        ewma.value, ewma.deviation, ewma.count = value, deviation, count
        return ewma

    @property
    def upper(self) -> float:
        """The mean plus four deviations: what is rarely exceeded (RFC 6298's timeout)."""
        return self.value + 4 * self.deviation


class ServiceTimes:
    """Measured seconds per optimisation batch, by crop group and batch size.

    A batch size seen in a group answers with its own weighted mean. An unseen one is bounded
    by the sizes seen, assuming that a bigger batch never takes less time and a crop never
    takes longer in a bigger batch: ``t(n) <= t(m)`` for ``m >= n`` and ``t(n) <= t(m) n / m``
    for ``m <= n``; the tightest bound holds. A group never measured is assumed to take
    ``prior_s`` per crop with no gain from batching. When a group is timed, its timings last
    observed more than ``retime_s`` before are forgotten, not averaged with the new one.

    Args:
        prior_s: seconds per crop before the crop's group has been measured.
        retime_s: seconds after which a group's timings are due a fresh one.
        weight: how much one new timing moves an estimate, in (0, 1].
    """

    def __init__(self, prior_s: float, retime_s: float = RETIME_S,
                 weight: float = EWMA_WEIGHT) -> None:
        if not prior_s > 0:
            raise ValueError(f"the prior must be > 0 seconds per crop, got {prior_s}")
        if not retime_s > 0:
            raise ValueError(f"the re-timing age must be > 0 seconds, got {retime_s}")
        self.prior_s = prior_s
        self.retime_s = retime_s
        self._weight = weight
        self._batches: dict[Hashable, dict[int, Ewma]] = {}
        self._observed: dict[Hashable, dict[int, float]] = {}
        self._finish = Ewma(FINISH_PRIOR_S, weight)

    def observe(self, group: Hashable, size: int, seconds: float, *, at: float) -> None:
        """Record that a batch of ``size`` crops of ``group`` took ``seconds``, timed at ``at``
        (the clock :func:`decide` is given as ``now``)."""
        if size < 1 or not seconds >= 0:
            raise ValueError(f"a batch needs size >= 1 and seconds >= 0, got {size}, {seconds}")
        sizes = self._batches.setdefault(group, {})
        observed = self._observed.setdefault(group, {})
        for old in [m for m, when in observed.items() if when < at - self.retime_s]:
            del sizes[old], observed[old]
        sizes.setdefault(size, Ewma(seconds, self._weight)).observe(seconds)
        observed[size] = at
        if len(self._batches) > MAX_GROUPS:
            stalest = min(self._observed, key=lambda g: max(self._observed[g].values(), default=at))
            del self._batches[stalest], self._observed[stalest]

    def batch_seconds(self, group: Hashable, size: int) -> float:
        """The expected seconds of a batch of ``size`` crops of ``group``."""
        sizes = self._batches.get(group)
        if not sizes:
            return size * self.prior_s
        if size in sizes:
            return sizes[size].value
        return min(e.value if m >= size else e.value * size / m for m, e in sizes.items())

    def measured(self, group: Hashable) -> bool:
        """Whether a batch of ``group`` has been timed."""
        return bool(self._batches.get(group))

    def due_in(self, group: Hashable, now: float) -> float:
        """Seconds until ``group`` is due a fresh timing: 0 when never timed, or last timed
        ``retime_s`` ago or more."""
        observed = self._observed.get(group)
        return max(0.0, max(observed.values()) + self.retime_s - now) if observed else 0.0

    def snapshot(self, now: float) -> TimesSnapshot:
        """What has been measured, ages counted back from ``now``, for :meth:`adopt`."""
        return {group: {size: (e.value, e.deviation, e.count,
                               now - self._observed[group][size])
                        for size, e in sizes.items()}
                for group, sizes in self._batches.items() if sizes}

    def adopt(self, snapshot: TimesSnapshot, now: float) -> None:
        """Start the groups this instance has never timed from another's measurements, as
        old as they were there; what this instance measured itself stays its own."""
        for group, sizes in snapshot.items():
            if self.measured(group) or not sizes:
                continue
            self._batches[group] = {size: Ewma.restored(value, deviation, count,
                                                        self._weight)
                                    for size, (value, deviation, count, _) in sizes.items()}
            self._observed[group] = {size: now - age
                                     for size, (*_, age) in sizes.items()}

    def observe_finish(self, seconds: float) -> None:
        """Record how long a request's last CPU stage (paste, encode, measure) took."""
        self._finish.observe(seconds)

    @property
    def finish_seconds(self) -> float:
        """The seconds a request's last CPU stage rarely exceeds (mean plus four deviations:
        it shares the CPU with every other stage, and its time swings with the load)."""
        return self._finish.upper


def merge_snapshots(known: TimesSnapshot, new: TimesSnapshot, elapsed: float) -> TimesSnapshot:
    """``known`` aged by ``elapsed`` seconds, each group replaced by ``new``'s where ``new``
    timed it more recently."""
    merged = {group: {size: (*entry[:3], entry[3] + elapsed) for size, entry in sizes.items()}
              for group, sizes in known.items()}
    for group, sizes in new.items():
        if sizes and (group not in merged or min(e[3] for e in sizes.values())
                      < min(e[3] for e in merged[group].values())):
            merged[group] = dict(sizes)
    return merged


def busy_until(started: float, expected_s: float, now: float) -> float:
    """When the running batch is expected done: ``started + expected_s``, or, once it has
    run past that, as long again as it has run so far (its estimate was too low)."""
    end = started + expected_s
    return end if now < end else now + (now - started)


def optimise_by(start: float, deadline_s: float, times: ServiceTimes, rounds: int = 1) -> float:
    """When a request that started at ``start`` must have its crops optimised.

    Its deadline, less :data:`HEADROOM` of it and its last CPU stage: ``rounds`` times the
    expected stage, since the requests of one batch finish together and wait for a thread.
    """
    return start + deadline_s * (1 - HEADROOM) - rounds * times.finish_seconds


@dataclass(frozen=True)
class Crop:
    """One crop waiting for the device: whose it is, its group, when it was queued."""

    owner: Hashable
    group: Hashable
    enqueued: float


def schedule(pending: Mapping[Hashable, Sequence[Crop]], times: ServiceTimes, *,
             start: float, max_batch: int, gather_s: float) -> dict[Hashable, float]:
    """When each owner's last waiting crop is expected to be optimised, if nothing else comes.

    Replays the worker: the group whose first crop waited longest goes first, at most
    ``max_batch`` crops a batch, and a batch that is not full waits until its first crop has
    waited ``gather_s``.

    Args:
        pending: the waiting crops by group, each list in arrival order.
        times: the batch time estimates.
        start: when the device is free (the loop's clock).
        max_batch: the most crops per batch.
        gather_s: how long a batch that is not full waits for more crops.
    """
    queues = {group: list(crops) for group, crops in pending.items() if crops}
    clock = start
    done: dict[Hashable, float] = {}
    while queues:
        group = min(queues, key=lambda g: queues[g][0].enqueued)
        crops = queues[group]
        batch, rest = crops[:max_batch], crops[max_batch:]
        if len(batch) < max_batch:
            clock = max(clock, batch[0].enqueued + gather_s)
        clock += times.batch_seconds(group, len(batch))
        for crop in batch:
            done[crop.owner] = clock
        if rest:
            queues[group] = rest
        else:
            del queues[group]
    return done


@dataclass(frozen=True)
class Decision:
    """Whether to admit a request, when it is expected done, and when to retry if refused.

    Attributes:
        admit: whether the request is taken.
        expected_s: seconds from now until its crops are expected optimised.
        retry_after_s: when refused, whole seconds until it would fit (≥ 1); else 0.
        reason: why, in words, for the refusal message and the log.
    """

    admit: bool
    expected_s: float
    retry_after_s: int
    reason: str


def _own_seconds(groups: Iterable[Hashable], times: ServiceTimes, max_batch: int) -> float:
    """The device seconds of a request's crops alone, batched among themselves."""
    counts: dict[Hashable, int] = {}
    for group in groups:
        counts[group] = counts.get(group, 0) + 1
    return sum(times.batch_seconds(g, max_batch) * (n // max_batch)
               + (times.batch_seconds(g, n % max_batch) if n % max_batch else 0.0)
               for g, n in counts.items())


def decide(pending: Mapping[Hashable, Sequence[Crop]], new: Sequence[Crop],
           finish_by: Mapping[Hashable, float], times: ServiceTimes, *, now: float,
           free_at: float | None, max_batch: int, gather_s: float) -> Decision:
    """Admit ``new`` (one request's crops) only if every promise still holds with it queued.

    A request is refused when its crops would be optimised after ``finish_by`` of its owner,
    or when queueing them (a crop joining a waiting batch makes that batch longer) would push
    a request that was on time past its own. With nothing waiting and the device free, a
    request of a group never timed, or not timed for ``times.retime_s``, is taken whatever
    the estimates say: its timing teaches them. A request too long even alone is told to
    retry when the queue ahead has drained and its group is due such a timing.

    Args:
        pending: the crops already waiting, by group, each list in arrival order.
        new: the request's crops (one owner), queued at ``now``.
        finish_by: by owner (the new one included), when its crops must be optimised.
        times: the batch time estimates.
        now: the loop's clock.
        free_at: when the device is expected free of the batch it runs; None: it runs none.
        max_batch: the most crops per batch.
        gather_s: how long a batch that is not full waits for more crops.
    """
    if not new or len({c.owner for c in new}) != 1:
        raise ValueError("a decision is about the crops of exactly one request")
    owner = new[0].owner
    start = now if free_at is None else max(now, free_at)
    before = schedule(pending, times, start=start, max_batch=max_batch, gather_s=gather_s)
    queued: dict[Hashable, list[Crop]] = {g: list(c) for g, c in pending.items()}
    for crop in new:
        queued.setdefault(crop.group, []).append(crop)
    after = schedule(queued, times, start=start, max_batch=max_batch, gather_s=gather_s)
    expected = after[owner] - now
    budget = finish_by[owner] - now
    due_in = max(times.due_in(c.group, now) for c in new)
    if not before and free_at is None and due_in == 0:
        return Decision(True, expected, 0, "the device is free to time this kind of crop "
                        "(never timed, or not for a while)")
    own = _own_seconds((c.group for c in new), times, max_batch)
    backlog = (max(before.values()) if before else start) - now
    if own > budget:
        # Too long even alone: worth coming back, with a whole deadline, once the queue ahead
        # has drained and its kind is due a fresh timing.
        return Decision(False, expected, _whole(max(backlog, due_in)),
                        f"its {own:.1f} s of work alone exceeds the {budget:.1f} s left "
                        "before its deadline")
    if expected > budget:
        return Decision(False, expected, _whole(expected - budget),
                        f"it would be optimised in {expected:.1f} s, past the {budget:.1f} s "
                        "left before its deadline")
    for other, done in after.items():
        if other != owner and done > finish_by[other] >= before[other]:
            return Decision(False, expected, _whole(before[other] - now),
                            "joining a waiting batch would make an admitted request late")
    return Decision(True, expected, 0, "it fits its deadline")


def _whole(seconds: float) -> int:
    """Whole seconds to wait, at least 1."""
    return max(1, math.ceil(seconds))
