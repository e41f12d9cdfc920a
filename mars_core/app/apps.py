"""What each command is called, takes and says in `--help`: the flows (`python -m flows.<name>`)
and the two commands without Prefect (`mars-search`, `mars-serve`, in `mars_core.app.commands`).

Light on purpose (no Prefect, no model): a flow module answers `--help`, `--cfg job` and config
mistakes from this table before its own imports (`mars_core.app.cli.answer_early`), and each
command's `main` runs through the same `App`.
"""

from mars_core.app.cli import App, Argument

APPS = {
    "ingest": App(
        "python -m flows.ingest",
        "Raw data -> catalogue, rooms, ground truth, quarantine and splits tables "
        "(data=synthetic generates the offline world; data=abo reads data/abo and "
        "data/house_rooms).",
        "python -m flows.ingest data=abo data.extra_room_classes=[Garage:garage]",
    ),
    "index": App(
        "python -m flows.index",
        "Build or update the Lucene (stage 1) and LanceDB (stage 2) indexes of the catalogue; "
        "a damaged part of the published index is repaired first.",
        "python -m flows.index embedder=tiny",
        (
            Argument(
                "--verify",
                "only check the published index against its manifest (files, rows, LanceDB "
                "version, a sample of vectors embedded again) and name what is broken",
                flag=True,
            ),
            Argument(
                "--allow-removals",
                "publish even when more than index.max_removal_share of the products would go",
                flag=True,
            ),
        ),
    ),
    "mining": App(
        "python -m flows.mining",
        "Mine the room/product pairs the teacher labels (lookalike, far and random strata).",
        "python -m flows.mining mining.lookalike=4",
    ),
    "label": App(
        "python -m flows.label",
        "Label mined pairs with the teacher: a 0-1 score and a one-sentence reason each.",
        "python -m flows.label teacher=tiny",
        (
            Argument(
                "--pairs",
                "pairs file to label (default: pairs.parquet beside the catalogue)",
                "FILE",
            ),
        ),
    ),
    "train": App(
        "python -m flows.train",
        "Fine-tune the student on the teacher's labels, register it as an MLflow model "
        "(mars-student@candidate) and log its validation and held-out metrics on its run; "
        "-m trains one per job of a sweep and makes the best on validation the candidate.",
        "python -m flows.train -m train.learning_rate=5e-4,1e-3 train.seed=0,1",
        sweeps=True,
    ),
    "evaluate": App(
        "python -m flows.evaluate",
        "Stage ablations and adapters on held-out rooms; promote the candidate when it wins.",
        "python -m flows.evaluate 'eval.adapters=[models:/mars-student@candidate]'",
    ),
    "inference": App(
        "python -m flows.inference",
        "Search every (room photo, query) request of a CSV or JSONL file; write "
        "<file stem>.parquet and <file stem>.html.",
        "python -m flows.inference requests.jsonl funnel.k3=10",
        (
            Argument(
                "requests",
                "requests file: CSV with header room,query[,room_id] or JSONL",
                "REQUESTS",
            ),
        ),
    ),
    "search": App(
        "mars-search",
        "Find catalogue products that fit a room photo (one search; a ranked table and a page).",
        "mars-search --room photo.jpg --query bed 'funnel.stages=[bm25,siglip]'",
        (
            Argument("--room", "room photo (JPEG, PNG, ...)", "PATH", required=True),
            Argument(
                "--query",
                'what to look for, e.g. "bed"; left out, what fits the room: the categories '
                "whose products look closest to the photo (funnel.alternative_pool), judged on "
                "funnel.beyond_budget candidates in all, up to funnel.per_category shown each",
                "TEXT",
            ),
        ),
    ),
    "serve": App(
        "mars-serve",
        "The search service and web page: load the funnel once, then answer POST /search "
        "and serve the page at / (binds serve.host:serve.port, 127.0.0.1:8000 by default).",
        "mars-serve serve.port=8080 'funnel.stages=[bm25,siglip]'",
    ),
    "pipeline": App(
        "python -m flows.pipeline",
        "The whole DAG: ingest, index, mining, label, train, evaluate, sample searches; "
        "unchanged steps are skipped; -m sweeps the train step (train.*, student.*).",
        "python -m flows.pipeline train.learning_rate=1e-4",
        sweeps=True,
    ),
}
