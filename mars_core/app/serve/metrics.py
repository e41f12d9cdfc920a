"""`/metrics`: what an operator scrapes, in Prometheus' text format (`prometheus-client`).

* `mars_requests_total{route, status}`: requests answered, by route template and status;
* `mars_request_duration_seconds{route}`: a histogram of the time to answer them;
* `mars_stage_duration_seconds{stage}`: a histogram per funnel stage of the searches answered;
* `mars_searches_in_flight`: searches being answered now (a search cut by its deadline leaves
  at its 504);
* `mars_serving_info{index_build, products, student, student_version}`: what answers new
  requests, as the labels of a metric of value 1;
* `mars_reindexes_total`, `mars_promotions_total`: index builds and student versions swapped
  in since start; `mars_reload_failures_total{part}`: builds, champions or room files that
  failed to load (`/health` says the last one);
* `process_*`: the service's resident memory, CPU time and open files.

Each app has its own registry, so several services in one process (the tests) do not share
counts.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from mars_core.app.serve.follow import Follower

# Seconds: a cached BM25 lookup takes a millisecond, a 2B agent on a CPU a minute.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class FollowerCollector(Collector):
    """What the follower serves and how often it changed, read at each scrape."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower

    def collect(self) -> Iterator[Metric]:
        generation = self.follower.current
        if generation is not None:
            identity = generation.identity()
            version = identity["student"]["version"]
            labels = {
                "index_build": identity["index_build"],
                "products": str(identity["products"]),
                "student": identity["student"]["name"],
                "student_version": "" if version is None else str(version),
            }
            yield InfoMetricFamily("mars_serving", "what answers new requests", value=labels)
        swaps = self.follower.swaps
        yield CounterMetricFamily(
            "mars_reindexes", "index builds swapped in since start", value=swaps["index"]
        )
        yield CounterMetricFamily(
            "mars_promotions", "student versions swapped in since start", value=swaps["student"]
        )
        failed = CounterMetricFamily(
            "mars_reload_failures",
            "new builds, champions or rooms that failed to load",
            labels=["part"],
        )
        for part, count in sorted(self.follower.failures.items()):
            failed.add_metric([part], count)
        yield failed


class ServiceMetrics:
    """The service's metrics, in a registry of its own."""

    def __init__(self, follower: Follower) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mars_requests",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "mars_request_duration_seconds",
            "time to answer a request, by route",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "mars_stage_duration_seconds",
            "time each funnel stage took, in the searches answered",
            ["stage"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.searches_in_flight = Gauge(
            "mars_searches_in_flight", "searches being answered now", registry=self.registry
        )
        self.registry.register(FollowerCollector(follower))
        ProcessCollector(registry=self.registry)

    def answered(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.request_seconds.labels(route).observe(seconds)

    def stages(self, timings: dict[str, float]) -> None:
        for stage, seconds in timings.items():
            self.stage_seconds.labels(stage).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text to serve at `/metrics`, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
