"""A multi-city cosmobac fleet on Bacalhau: collectors and forwarders on every city's edge nodes,
a stage switch on chosen cities, a one-shot upload of every backlog, and a WASM transform where
the data lives.

    python fleet.py render specs/                  # the job specs, offline (review, commit)
    python fleet.py deploy --city lisbon --city porto
    python fleet.py switch --city porto            # detectors on, in Porto only
    python fleet.py upload                         # every node's backlog to Cosmos DB, once
    python fleet.py smooth --results results/      # moving averages computed on the nodes
    python fleet.py status JOB

The orchestrator is the one the Bacalhau CLI uses ($BACALHAU_API_HOST, $BACALHAU_API_PORT,
$BACALHAU_API_KEY), or --api. The image is --image or $COSMOBAC_IMAGE. See README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cosmobac_bacalhau import (
    BacalhauClient,
    Job,
    cosmos_upload_config,
    dumps_json,
    pipeline_job,
    switch_job,
    upload_job,
    wasm_job,
)

HERE = Path(__file__).resolve().parent
CITIES = ("lisbon", "porto", "madrid")


def fleet_jobs(image: str, cities: Sequence[str]) -> dict[str, Job]:
    """Every job of the fleet, by file name."""
    return {
        # long-running, on every node of the cities (and on nodes that join later)
        "collector": pipeline_job(
            HERE / "collector.toml", image=image, stage="collect", cities=cities, host_env=["CITY"]
        ),
        "forwarder": pipeline_job(
            HERE / "forwarder.toml",
            image=image,
            cities=cities,
            secrets=["COSMOS_KEY"],
            host_env=["CITY", "COSMOS_ENDPOINT"],
        ),
        # one-shot
        "switch-anomalies": switch_job(
            HERE / "stages" / "anomalies.toml", image=image, cities=cities
        ),
        "upload": upload_job(
            cosmos_upload_config(
                endpoint="${COSMOS_ENDPOINT}",
                database="telemetry",
                container="readings",
                sink_name="cloud",
            ),
            image=image,
            cities=cities,
            host_env=["COSMOS_ENDPOINT"],
        ),
        "smooth": wasm_job(
            kernel="moving_average",
            columns=["temperature", "humidity"],
            params=[12],
            data="/var/lib/cosmobac/export",
            cities=cities,
        ),
    }


def submit_and_follow(client: BacalhauClient, job: Job, results: str | None = None) -> bool:
    submitted = client.submit(job)
    print(f"{job.name}: submitted as {submitted.job_id}")
    client.wait(submitted.job_id, timeout=900)
    outcome = client.outcome(submitted.job_id)
    print(outcome.summary())
    if results and outcome.type in ("batch", "ops"):
        for item in client.download_results(outcome, results):
            print(f"  {item.node_id}: {item.path or item.error}")
    return outcome.ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", help="orchestrator URL (default: the Bacalhau CLI's settings)")
    parser.add_argument(
        "--image", default=os.environ.get("COSMOBAC_IMAGE", "registry.example.com/cosmobac:0.1.0")
    )
    parser.add_argument("--city", action="append", help="repeatable (default: every city)")
    commands = parser.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="write every job spec to a folder")
    render.add_argument("folder")
    commands.add_parser("deploy", help="start (or update) collectors and forwarders")
    commands.add_parser("switch", help="turn the anomaly detectors on")
    commands.add_parser("upload", help="send every backlog to Cosmos DB once")
    smooth = commands.add_parser("smooth", help="run the WASM moving average on every node")
    smooth.add_argument("--results", default="results")
    status = commands.add_parser("status", help="a job's state on every node")
    status.add_argument("job")
    args = parser.parse_args(argv)

    jobs = fleet_jobs(args.image, args.city or CITIES)
    if args.command == "render":
        folder = Path(args.folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, job in jobs.items():
            (folder / f"{name}.json").write_text(dumps_json(job))
            print(folder / f"{name}.json")
        return 0
    client = BacalhauClient.from_env(**({"base_url": args.api} if args.api else {}))
    with client:
        if args.command == "status":
            outcome = client.outcome(args.job)
            print(outcome.summary())
            return 0 if outcome.ok else 1
        if args.command == "deploy":
            ok = [submit_and_follow(client, jobs[name]) for name in ("collector", "forwarder")]
            return 0 if all(ok) else 1
        if args.command == "switch":
            return 0 if submit_and_follow(client, jobs["switch-anomalies"]) else 1
        if args.command == "upload":
            return 0 if submit_and_follow(client, jobs["upload"], "upload-results") else 1
        return 0 if submit_and_follow(client, jobs["smooth"], args.results) else 1


if __name__ == "__main__":
    sys.exit(main())
