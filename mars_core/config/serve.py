"""Config of the search service and web page (`mars-serve`)."""

from dataclasses import dataclass

from mars_core.infra.knob import check_knobs, knob


@dataclass
class ServeConfig:
    """The search service and web page (`mars-serve`): where it listens and what it accepts."""

    host: str = knob("127.0.0.1", "address to bind; this machine only unless set (0.0.0.0 = all)")
    port: int = knob(8000, "TCP port to listen on", ge=0, le=65535)
    max_upload_bytes: int = knob(
        10_000_000, "largest room photo upload, in bytes (413 above)", ge=1
    )
    sample_rooms: int = knob(
        24, "rooms from rooms.parquet the page offers as samples (0 = none)", ge=0
    )
    agent_batch_window_ms: float = knob(
        30.0,
        "how long the agent waits for concurrent requests' candidates to fill a batch of "
        "student.batch_size before it runs (0 = run each request's candidates at once)",
        ge=0,
    )
    reload_check_s: float = knob(
        10.0,
        "at most this often, between requests, look for a newly published index build (a stat "
        "of CURRENT.json) and a new champion; a change loads beside the running one and swaps "
        "in (0 = on every request)",
        ge=0,
    )
    request_timeout_s: float = knob(
        300.0,
        "a search not answered within this many seconds gets 504 and gives up its place at "
        "once; its computation stops at its next checkpoint (the retrieval lock, a call into "
        "the agent); 0 = no deadline. A 2B student on a CPU takes minutes per search",
        ge=0,
    )
    drain_s: float = knob(
        30.0,
        "on SIGTERM, how long requests in flight may take to finish while new ones get 503; "
        "the service then exits (a second SIGTERM exits at once)",
        ge=0,
    )
    retry_after_s: int = knob(
        5, "the Retry-After seconds a 503 tells clients while the service drains", ge=0
    )
    follow_champion: bool = knob(
        True,
        "with student.adapter=auto, serve each newly promoted champion (false = pin the "
        "version loaded at start-up)",
    )

    def __post_init__(self) -> None:
        check_knobs(self, "serve")
