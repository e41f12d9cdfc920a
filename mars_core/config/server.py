"""Config of an OpenAI-compatible model server (vLLM, SGLang): `student.server`, `teacher.server`.

Both the served student and the server teacher reach their model the same way, through
`mars_core.infra.http_client.ChatClient.for_servers`, so they share these knobs; each owner sets
its own defaults (the student asks for few tokens at a time, more of them in flight).
"""

from dataclasses import dataclass

from mars_core.infra.knob import knob


@dataclass
class ServerConfig:
    """Where the servers of one model are and how they are asked (used when kind=openai)."""

    endpoint: str | None = knob(None, "the server's base URL (e.g. vLLM's http://host:8000/v1)")
    replicas: list[str] = knob(
        [],
        "base URLs of more servers of the same model; each request goes to the least busy of "
        "endpoint + replicas",
    )
    api_key_env: str = knob("", "env variable holding the API key; empty = none")
    timeout: float = knob(60.0, "seconds to wait for one response", gt=0)
    concurrency: int = knob(4, "requests in flight at once, per server", ge=1)
    retries: int = knob(3, "re-sends after a timeout, dropped connection or 5xx/429", ge=0)
    backoff: float = knob(1.0, "seconds before the first re-send, doubled each time", ge=0)

    def check_served(self, owner: str, served: bool) -> None:
        """A served model (`<owner>.kind=openai`) needs an endpoint; replicas need one served.

        Called from the owner's `__post_init__`: only the owner knows its kind and its key.
        """
        if served and not self.endpoint:
            raise ValueError(
                f"{owner}.kind=openai needs {owner}.server.endpoint (the server's base URL)"
            )
        if self.replicas and not served:
            raise ValueError(f"{owner}.server.replicas is set: they serve {owner}.kind=openai only")
