"""The served agent (`student.kind=openai`) over real HTTP, against a local OpenAI-compatible
server that runs the same tiny student in this process: its scores and rationales equal the
in-process agent's."""

from __future__ import annotations

import dataclasses

import pytest
from support.agent_views import ROOM, product_views
from support.chat_server import ChatServer, ServedModel

from mars_core.agent.remote import RemoteAgentScorer
from mars_core.agent.scorer import AgentScorer
from mars_core.agent.stage import open_scorer
from mars_core.agent.types import SCORE_PROBE
from mars_core.app.compose import load_config
from mars_core.app.serve.validation import status_of
from mars_core.config.student import GRID_SLACK
from mars_core.funnel.stages import agent_notice, open_agent
from mars_core.infra.errors import ConfigError, ModelServerError
from mars_core.prompt import ANSWER_PREFIX, answer_opening
from mars_core.search.types import Candidate, SearchRequest

PRODUCTS = 4
# The products' bound: from the third product image on (28 px wider each) they are over it,
# so the served agent must bound them as the in-process one does.
PRODUCT_PIXELS = 56 * 56 * 2


def views(n: int):
    return product_views(n, width_step=28)


@pytest.fixture(scope="module")
def local(cfg, model_cache) -> AgentScorer:
    student = dataclasses.replace(
        cfg.student,
        batch_size=3,
        min_pixels=PRODUCT_PIXELS // GRID_SLACK,
        product_max_pixels=PRODUCT_PIXELS,
    )
    return AgentScorer.from_config(student, model_cache)


def served_student(cfg, url: str, **knobs):
    """The student config of a served agent: every digit among the returned alternatives."""
    return dataclasses.replace(
        cfg.student,
        kind="openai",
        server=dataclasses.replace(cfg.student.server, endpoint=url, timeout=30.0, retries=0),
        min_pixels=PRODUCT_PIXELS // GRID_SLACK,
        product_max_pixels=PRODUCT_PIXELS,
        **knobs,
    )


@pytest.mark.slow
def test_served_scores_equal_the_in_process_scores(local, cfg, model_cache):
    vocabulary = len(local.processor.tokenizer)
    with ChatServer(model=ServedModel(local.model, local.processor)) as server:
        remote = open_scorer(served_student(cfg, server.url, top_logprobs=vocabulary), model_cache)
        assert isinstance(remote, RemoteAgentScorer)
        served = remote.score(ROOM, "a bed", views(PRODUCTS))
        remote.close()
    assert served == pytest.approx(local.score(ROOM, "a bed", views(PRODUCTS)), abs=1e-5)
    assert len(server.requests) == 2 * PRODUCTS
    openings = [body["messages"][-1] for body in server.requests]
    assert {o["role"] for o in openings} == {"assistant"}
    assert sorted({o["content"] for o in openings}) == sorted({ANSWER_PREFIX, SCORE_PROBE})
    first = server.requests[0]
    assert first["continue_final_message"] is True and first["add_generation_prompt"] is False
    assert first["max_tokens"] == 1 and first["top_logprobs"] == vocabulary
    assert first["model"] == "mars-student"
    rooms = {body["messages"][1]["content"][0]["image_url"]["url"] for body in server.requests}
    assert len(rooms) == 1  # every request opens with the same room: one cached prefix


@pytest.mark.slow
def test_served_rationales_equal_the_in_process_answers(local, cfg, model_cache):
    with ChatServer(model=ServedModel(local.model, local.processor)) as server:
        remote = RemoteAgentScorer(served_student(cfg, server.url))
        served = remote.generate(ROOM, "a bed", views(3), max_new_tokens=6)
        remote.close()
    in_process = local.generate(ROOM, "a bed", views(3), max_new_tokens=6)
    assert [a.text for a in served] == [a.text for a in in_process]
    assert all(body["max_tokens"] == 6 for body in server.requests)
    assert not any(body.get("continue_final_message") for body in server.requests)


@pytest.mark.slow
def test_served_rationales_after_known_scores_continue_the_opened_answer(local, cfg, model_cache):
    """The opening with the known score goes as the assistant message the server continues;
    the answer is that opening plus the server's continuation, as in process."""
    scores = [0.1, 0.7, 0.95]
    with ChatServer(model=ServedModel(local.model, local.processor)) as server:
        remote = RemoteAgentScorer(served_student(cfg, server.url))
        served = remote.generate(ROOM, "a bed", views(3), scores=scores, max_new_tokens=6)
        remote.close()
    in_process = local.generate(ROOM, "a bed", views(3), scores=scores, max_new_tokens=6)
    assert [a.text for a in served] == [a.text for a in in_process]
    openings = [body["messages"][-1] for body in server.requests]
    assert sorted(o["content"] for o in openings) == sorted(map(answer_opening, scores))
    assert {o["role"] for o in openings} == {"assistant"}
    assert all(b["continue_final_message"] and "logprobs" not in b for b in server.requests)


@pytest.mark.slow
def test_the_agent_stage_ranks_through_a_served_student(local, cfg, session_overrides, tmp_path):
    candidates = []
    for i, view in enumerate(views(PRODUCTS)):
        path = tmp_path / f"p{i}.png"
        view.image.save(path)
        product = {"name": f"Bed {i}", "category": "BED", "image_path": str(path)}
        candidates.append(Candidate(key=f"b{i}@x", product=product, scores={"siglip": 0.5}))
    with ChatServer(model=ServedModel(local.model, local.processor)) as server:
        served = [
            "student.kind=openai",
            f"student.server.endpoint={server.url}",
            "student.top_logprobs=1000",
            "funnel.rationale_top_n=1",
        ]
        config = load_config([*session_overrides, *served])
        assert agent_notice(config) is None  # the server's student is not the untrained one
        stage = open_agent(config)
        # every candidate presented as a fit: the stage keeps k
        stage.ordering = dataclasses.replace(stage.ordering, min_fit_score=0.0)
        output = stage.rank(SearchRequest(room=ROOM, query="a bed"), candidates, k=3)
        stage.close()
    assert f"served at {server.url}" in stage.student
    assert output.ranked_by.startswith(f"{stage.student}; agent score")
    assert len(output.candidates) == 3
    scores = [c.scores["agent"] for c in output.candidates]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


@pytest.mark.parametrize(
    ("mode", "says"), [("garbage", "no top_logprobs"), ("drop", "no answer after 1 sends")]
)
def test_a_server_that_gives_no_scores_is_named_in_one_error(mode, says, cfg):
    with ChatServer(mode) as server:
        remote = RemoteAgentScorer(served_student(cfg, server.url))
        with pytest.raises(ModelServerError, match=says) as caught:
            remote.score(ROOM, "a bed", product_views(1))
        remote.close()
    assert server.url in str(caught.value)
    assert status_of(caught.value) == 503  # what mars-serve answers while its agent is down


def test_a_served_student_needs_an_endpoint(session_overrides):
    with pytest.raises(ConfigError, match=r"student\.server\.endpoint"):
        load_config([*session_overrides, "student.kind=openai"])


def test_a_served_student_spreads_over_its_replicas(cfg):
    """`student.server.replicas` reaches the client as for the teacher: one pool per server."""
    student = served_student(cfg, "http://127.0.0.1:8001/v1")
    replicas = ["http://127.0.0.1:8002/v1"]
    remote = RemoteAgentScorer(
        dataclasses.replace(student, server=dataclasses.replace(student.server, replicas=replicas))
    )
    urls = [str(client.base_url) for client in remote.client.clients]
    remote.close()
    assert urls == ["http://127.0.0.1:8001/v1/", "http://127.0.0.1:8002/v1/"]


def test_replicas_of_an_in_process_student_are_refused(session_overrides):
    with pytest.raises(ConfigError, match=r"student\.server\.replicas is set"):
        load_config([*session_overrides, "student.server.replicas=[http://127.0.0.1:8002/v1]"])
