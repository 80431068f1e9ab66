"""What keeping DynamoDB on disk costs the local system (`moto_server --state`, what `make run`
uses): the rate of single-client conditional writes with and without the journal, and the time
a restart takes to restore N items (after a kill -9, so from the snapshot plus the journal).

    .venv/bin/python bench/moto_state_bench.py [--writes 2000] [--items 20000] [--write-docs]

Needs no database: it talks to moto servers of its own on free ports.
"""

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import requests
from common import ROOT, write_docs

from airticket.local.supervisor import free_port

TABLE = "bench"


def start(port: int, state: Path | None) -> tuple[subprocess.Popen, float]:
    argv = [sys.executable, "-m", "airticket.local.moto_server", "127.0.0.1", str(port), *(["--state", str(state)] if state else [])]
    began = time.monotonic()
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return process, time.monotonic() - began
        except requests.ConnectionError:
            time.sleep(0.05)


def client(port: int):
    return boto3.client(
        "dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def create_table(ddb) -> None:
    ddb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}, {"AttributeName": "SK", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def item(n: int) -> dict:
    return {"PK": {"S": f"CUSTOMER#c{n}"}, "SK": {"S": "PROFILE"}, "full_name": {"S": f"Customer {n}"}, "version": {"N": "1"}}


def write_rate(ddb, writes: int, offset: int = 0) -> float:
    began = time.monotonic()
    for n in range(offset, offset + writes):
        ddb.put_item(TableName=TABLE, Item=item(n), ConditionExpression="attribute_not_exists(PK)")
    return writes / (time.monotonic() - began)


def bulk_load(ddb, items: int) -> None:
    for start_at in range(0, items, 25):
        batch = [{"PutRequest": {"Item": item(n)}} for n in range(start_at, min(items, start_at + 25))]
        ddb.batch_write_item(RequestItems={TABLE: batch})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--write-docs", action="store_true")
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    rates: dict[str, float] = {}
    # Alternated, best of three each: the machine is shared, and its load moves.
    for label in ("in memory", "journal (--state)") * 3:
        with tempfile.TemporaryDirectory() as state:
            port = free_port()
            process, _ = start(port, Path(state) if label != "in memory" else None)
            try:
                ddb = client(port)
                create_table(ddb)
                write_rate(ddb, 200, offset=10**6)  # warm up
                rates[label] = max(rates.get(label, 0), write_rate(ddb, options.writes))
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait()
    with tempfile.TemporaryDirectory() as state:
        port = free_port()
        process, _ = start(port, Path(state))
        ddb = client(port)
        create_table(ddb)
        bulk_load(ddb, options.items)
        process.kill()  # no snapshot at stop: the restart replays the journal
        process.wait()
        journal_bytes = (Path(state) / "dynamodb.journal").stat().st_size
        process, restart_seconds = start(port, Path(state))
        pages = client(port).get_paginator("scan").paginate(TableName=TABLE, Select="COUNT")
        restored = sum(page["Count"] for page in pages)
        process.send_signal(signal.SIGTERM)
        process.wait()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "\n".join(f"| {label} | **{rate:.0f} conditional puts/s** |" for label, rate in rates.items())
    body = f"""`.venv/bin/python bench/moto_state_bench.py --writes {options.writes} --items {options.items}`: what keeping
DynamoDB on disk costs `make run` (`airticket/local/moto_server.py`, `Store`). One client thread, conditional
`PutItem`s against a moto server of its own, without and with the journal (every write's item
image appended and flushed to the OS before moto answers). Then {options.items:,} items written in
batches, moto killed with SIGKILL (no snapshot at stop), and started again: the restart replays
the journal ({journal_bytes / 1e6:.1f} MB) and writes a fresh snapshot.

Run of {when} on {platform.machine()} (load average {load_before:.1f} before; the machine is shared):

| moto | single-client write rate (best of 3) |
|---|---|
{rows}

Restart after a kill -9 with {options.items:,} items in the journal: **{restart_seconds:.1f} s** until moto
answers, {restored:,} items restored."""
    print(body)
    if options.write_docs:
        write_docs("## Local DynamoDB kept on disk", body)


if __name__ == "__main__":
    main()
