"""CDC projection benchmark: the real handler against a naive per-record projector and the
raw multi-row INSERT ceiling, in MariaDB (a database of its own), in one run.

- handler: N synthetic change records (customer registrations and profile changes, flights
  created, delayed and cancelled, orders placed, moved and cancelled) in Lambda Kinesis events
  of 1,000 records, through `cdc_lambda.handler.handler`;
- naive: what the original lab's sink did: per record, decode the whole image, SELECT the stored
  version, INSERT or UPDATE, commit (on the first --naive records: it is slow);
- ceiling: the handler's final rows written again with plain multi-row INSERTs of 1,000 rows
  in stream order, one transaction per statement; the rate is N over that time (the same rows,
  minus everything that makes it a projection).

Also the peak memory (tracemalloc) of the handler on one 10,000-record batch.

With `--consumers 1,2,4,8`: the same stream (its first --consumer-records records) split by
partition key over N consumer processes, as Lambda splits it over shards and parallelization
lanes (an item's records stay in order in one consumer), all writing the one database at once:
the aggregate events/s for each N, the deadlock and lock-wait retries per batch, the ratios to
the naive projector and to the ceiling, and whether the read model is the single consumer's.
Processes, not threads: each concurrent Lambda invocation is a process of its own.

    .venv/bin/python bench/cdc_bench.py [--records 200000] [--naive 10000] [--consumers 1,2,4,8] [--write-docs]

Uses DATABASE_URL (default mysql://root@127.0.0.1:3306/airticket_bench_cdc); creates and
migrates that database, and truncates its read-model tables.
"""

import argparse
import json
import multiprocessing
import os
import platform
import random
import time
import tracemalloc
import zlib
from pathlib import Path

from common import setup_django, use_database, write_docs

use_database("airticket_bench_cdc")

BATCH = 1000
MEMORY_BATCH = 10_000
AIRPORTS = ["PVG", "SHA", "PEK", "PKX", "CAN", "SZX", "CTU", "HKG", "NRT", "ICN", "SIN", "BKK", "LHR", "CDG", "FRA", "JFK", "XIY", "KMG"]
TARGETS = {"events_per_second": 30_000, "vs_naive": 15, "vs_ceiling": 0.25}


# --- synthetic change stream ----------------------------------------------------------------


def change_records(*, count: int, seed: int = 1) -> list[dict]:
    """A plausible mix, in stream order, as Lambda Kinesis records (tests.cdc.changes builds
    them through the real bridge and poller record shapes)."""
    from tests.cdc.changes import Items

    rng = random.Random(seed)
    items = Items()
    records: list[dict] = []
    customers: list[str] = []
    flights: list[tuple[str, str]] = []
    orders: list[tuple[str, str]] = []
    while len(records) < count:
        roll = rng.random()
        if roll < 0.02 or not flights:
            number, day = f"MU{len(flights) + 1000}", f"2026-12-{rng.randint(1, 28):02}"
            if (number, day) in flights:
                continue
            route = rng.sample(AIRPORTS, rng.choice([2, 2, 2, 3, 4]))
            records.append(items.flight(number, day, origin=route[0], transfers=route[1:-1], destination=route[-1]))
            flights.append((number, day))
        elif roll < 0.03:
            number, day = rng.choice(flights)
            change = (
                {"status": "CANCELLED"} if rng.random() < 0.3 else {"departure_time": f"{rng.randint(6, 20):02}:30", "status": "DELAYED"}
            )
            records.append(items.flight(number, day, **change))
        elif roll < 0.20 or not customers:
            customer_id = f"c{len(customers):07}"
            records.append(items.customer(customer_id, full_name=f"Customer {len(customers)}", mobile="+86 138 0000 0000"))
            customers.append(customer_id)
        elif roll < 0.25:
            records.append(items.customer(rng.choice(customers), mobile=f"+86 139 {rng.randint(0, 9999_9999):08}"))
        elif roll < 0.70 or not orders:
            number, day = rng.choice(flights)
            customer_id, order_id = rng.choice(customers), f"{len(orders):032x}"
            records.append(items.order(customer_id, order_id, number=number, day=day))
            orders.append((customer_id, order_id))
        elif roll < 0.85:
            customer_id, order_id = rng.choice(orders)
            number, day = rng.choice(flights)
            records.append(items.order(customer_id, order_id, flight_number=number, flight_date=day))
        else:
            customer_id, order_id = rng.choice(orders)
            records.append(items.order(customer_id, order_id, status="CANCELLED"))
    return records


def events(records: list[dict], size: int) -> list[dict]:
    return [{"Records": records[start : start + size]} for start in range(0, len(records), size)]


# --- the three contenders -------------------------------------------------------------------------


def truncate() -> None:
    from django.db import connection

    from admin_portal.models import Booking, Customer, Flight, FlightEvent, FlightPassengerCount, FlightStop

    with connection.cursor() as cursor:
        for model in (Customer, Flight, FlightStop, Booking, FlightEvent, FlightPassengerCount):
            cursor.execute(f"TRUNCATE TABLE {model._meta.db_table}")


def run_handler(batches: list[dict]) -> tuple[float, float, list[float]]:
    """Wall seconds, this process's CPU seconds (decoding, SQL building: what a busy neighbour
    on the machine inflates least), and each batch's wall seconds."""
    from cdc_lambda.handler import handler

    truncate()
    started, cpu = time.perf_counter(), time.process_time()
    walls = []
    for event in batches:
        batch_started = time.perf_counter()
        if handler(event, None)["batchItemFailures"]:
            raise SystemExit("the handler reported failures")
        walls.append(time.perf_counter() - batch_started)
    return time.perf_counter() - started, time.process_time() - cpu, walls


def quarters(walls: list[float]) -> list[float]:
    """Events/s over each quarter of the run: the read model grows as it goes."""
    size = max(1, len(walls) // 4)
    return [BATCH * len(part) / sum(part) for part in (walls[start : start + size] for start in range(0, len(walls), size)) if part]


def buffer_pool_mb() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT @@innodb_buffer_pool_size")
        return cursor.fetchone()[0] // 2**20


def decode_cpu(batches: list[dict]) -> float:
    from cdc_lambda.batch import decode_batch

    cpu = time.process_time()
    for event in batches:
        decode_batch(event["Records"])
    return time.process_time() - cpu


class NaiveProjector:
    """The lab's sink: one record at a time, whole image through TypeDeserializer, a SELECT,
    then an INSERT or UPDATE, and a commit."""

    def __init__(self):
        import base64

        from boto3.dynamodb.types import TypeDeserializer

        from admin_portal.models import Booking, Customer, Flight

        self.b64decode = base64.b64decode
        self.deserializer = TypeDeserializer()
        self.tables = {"CUSTOMER": (Customer, "customer_id"), "ORDER": (Booking, "order_id"), "FLIGHT": (Flight, "flight_key")}

    def row(self, entity: str, item: dict) -> dict:
        stamps = {"version": int(item["version"]), "created_at": item["created_at"][:-1], "updated_at": item["updated_at"][:-1]}
        if entity == "CUSTOMER":
            return {
                "customer_id": item["customer_id"],
                "full_name": item["full_name"],
                "mobile": item["mobile"],
                "email": item["email"],
                **stamps,
            }
        key = f"{item['flight_number']}#{item['flight_date']}"
        route = {
            "flight_number": item["flight_number"],
            "flight_date": item["flight_date"],
            "transfers": json.dumps(item["transfers"]),
            "departure_time": item["departure_time"],
            "arrival_time": item["arrival_time"],
            "status": item["status"],
        }
        if entity == "ORDER":
            return {
                "order_id": item["order_id"],
                "customer_id": item["customer_id"],
                "flight_id": key,
                "origin": item["origin"],
                "destination": item["destination"],
                **route,
                **stamps,
            }
        counts = {"capacity": int(item["capacity"]), "seats_booked": int(item["seats_booked"])}
        return {"flight_key": key, "origin_id": item["origin"], "destination_id": item["destination"], **route, **counts, **stamps}

    def apply(self, cursor, record: dict) -> None:
        change = json.loads(self.b64decode(record["kinesis"]["data"]))
        item = {k: self.deserializer.deserialize(v) for k, v in change["dynamodb"]["NewImage"].items()}
        model, key = self.tables[item["entity"]]
        row = self.row(item["entity"], item)
        table = model._meta.db_table
        cursor.execute(f"SELECT version FROM {table} WHERE {key} = %s", [row[key]])
        found = cursor.fetchone()
        if found is None:
            columns = [*row, "deleted", "projected_at"]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                [*row.values(), 0, row["updated_at"]],
            )
        elif found[0] < row["version"]:
            cursor.execute(f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in row)} WHERE {key} = %s", [*row.values(), row[key]])


def run_naive(records: list[dict]) -> float:
    from django.db import connection, transaction

    truncate()
    projector = NaiveProjector()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for record in records:
            with transaction.atomic():
                projector.apply(cursor, record)
    return time.perf_counter() - started


def arrival_order(records: list[dict]) -> dict[str, int]:
    """Where each item's key first appears in the stream."""
    from cdc_lambda.decode import decode

    first: dict[str, int] = {}
    for index, record in enumerate(records):
        first.setdefault(decode(record).key, index)
    return first


# The column that says which stream item a row belongs to.
_ITEM_COLUMN = {"admin_portal_customer": "customer_id", "admin_portal_flight": "flight_key", "admin_portal_booking": "order_id"}


def run_ceiling(arrival: dict[str, int]) -> float:
    """Read back the handler's final rows, then write them again with multi-row INSERTs, in
    the order their items arrived (as the handler must; primary-key order would turn random
    B-tree inserts into appends and flatter the ceiling)."""
    from django.db import connection, transaction

    from admin_portal.models import Booking, Customer, Flight, FlightEvent, FlightStop

    tables = []
    with connection.cursor() as cursor:
        for model in (Customer, Flight, FlightStop, Booking, FlightEvent):
            table = model._meta.db_table
            cursor.execute(f"SELECT * FROM {table}")
            columns = [c[0] for c in cursor.description]
            item = columns.index(_ITEM_COLUMN.get(table, "flight_id"))
            tables.append((table, columns, sorted(cursor.fetchall(), key=lambda row, item=item: arrival[row[item]])))
    truncate()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table, columns, rows in tables:
            for start in range(0, len(rows), BATCH):
                chunk = rows[start : start + BATCH]
                values = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(chunk))
                with transaction.atomic():
                    cursor.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}", [v for row in chunk for v in row])
    return time.perf_counter() - started


def peak_memory(records: list[dict]) -> float:
    from cdc_lambda.handler import handler

    truncate()
    tracemalloc.start()
    handler({"Records": records[:MEMORY_BATCH]}, None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def final_rows() -> dict[str, int]:
    from admin_portal.models import Booking, Customer, Flight, FlightEvent, FlightStop

    return {model.__name__: model.objects.count() for model in (Customer, Flight, FlightStop, Booking, FlightEvent)}


# --- concurrent consumers -----------------------------------------------------------------------


def split_by_key(records: list[dict], consumers: int) -> list[list[dict]]:
    """Each consumer's share: the records of the partition keys it owns, in stream order (as
    a shard and a parallelization lane get them)."""
    shares: list[list[dict]] = [[] for _ in range(consumers)]
    for record in records:
        shares[zlib.crc32(record["kinesis"]["partitionKey"].encode()) % consumers].append(record)
    return shares


def _consumer(share: list[dict], ready, start, results) -> None:
    """One consumer process: Django of its own, then its batches through the handler once
    every consumer is ready (setting up is not measured)."""
    setup_django(migrate=False)
    from airticket import observability
    from cdc_lambda.batch import CONFLICT_METRICS
    from cdc_lambda.handler import handler

    ready.wait()
    start.wait()
    begun, cpu = time.perf_counter(), time.process_time()
    batches = events(share, BATCH)
    for event in batches:
        if handler(event, None)["batchItemFailures"]:
            raise SystemExit("the handler reported failures")
    ended = time.perf_counter()
    counters = observability.snapshot()
    retries = {name: counters.get(name, 0) for name in CONFLICT_METRICS.values()}
    results.put(
        {"begun": begun, "ended": ended, "cpu": time.process_time() - cpu, "records": len(share), "batches": len(batches), **retries}
    )


def server_cpu_seconds() -> float:
    """CPU seconds the MariaDB server has used (user + system), from /proc; 0 if not found.
    The server also serves the other engineers' runs on this machine: an upper bound."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split()
        except OSError:
            continue
        if fields[1] in ("(mariadbd)", "(mysqld)"):
            return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def run_consumers(records: list[dict], consumers: int) -> dict:
    """Aggregate events/s of `consumers` processes writing at once, and their conflicts."""
    from django.db import connections

    from cdc_lambda.batch import CONFLICT_METRICS
    from tests.cdc.readmodel import checksum

    truncate()
    connections.close_all()
    context = multiprocessing.get_context("spawn")  # no fork of this process's threads and connections
    ready, start, results = context.Barrier(consumers + 1), context.Barrier(consumers + 1), context.Queue()
    processes = [context.Process(target=_consumer, args=(share, ready, start, results)) for share in split_by_key(records, consumers)]
    for process in processes:
        process.start()
    ready.wait()
    server_cpu = server_cpu_seconds()
    start.wait()
    outcomes = [results.get() for _ in processes]
    server_cpu = server_cpu_seconds() - server_cpu
    for process in processes:
        process.join()
        if process.exitcode:
            raise SystemExit(f"a consumer failed ({process.exitcode})")
    wall = max(o["ended"] for o in outcomes) - min(o["begun"] for o in outcomes)
    retries = {name: sum(o[name] for o in outcomes) for name in CONFLICT_METRICS.values()}
    total = sum(o["records"] for o in outcomes)
    return {
        "consumers": consumers,
        "rate": total / wall,
        # CPU per event in the consumers and in the server, and the share of the machine's CPU
        # time this run got: with a busy neighbour, adding consumers cannot add CPU.
        "consumer_us": sum(o["cpu"] for o in outcomes) / total * 1e6,
        "server_us": server_cpu / total * 1e6,
        "machine_share": (sum(o["cpu"] for o in outcomes) + server_cpu) / (wall * os.cpu_count()),
        "batches": sum(o["batches"] for o in outcomes),
        **retries,
        "checksum": checksum(),
        "load": os.getloadavg()[0],
    }


def consumers_table(runs: list[dict], *, naive_rate: float, ceiling_rate: float, records: int, command: str) -> str:
    base = runs[0]["rate"]
    lines = [
        f"`{command}` — {records:,} change records split by partition key over N consumer processes (as Kinesis shards and "
        f"parallelization lanes split them), batches of {BATCH:,}, all writing one MariaDB on this {os.cpu_count()}-CPU machine.",
        "",
        "| consumers | aggregate events/s | × 1 consumer | deadlock retries | lock-wait retries | retries per 100 batches | vs naive | of the ceiling | read model = 1 consumer's | consumer CPU µs/event | MariaDB CPU µs/event | share of the machine's CPU | load average |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        conflicts = run["CdcDeadlockRetries"] + run["CdcLockWaitRetries"]
        lines.append(
            f"| {run['consumers']} | {run['rate']:,.0f} | {run['rate'] / base:.2f} | {run['CdcDeadlockRetries']:,.0f} | "
            f"{run['CdcLockWaitRetries']:,.0f} | {100 * conflicts / run['batches']:.1f} | {run['rate'] / naive_rate:.1f}× | "
            f"{run['rate'] / ceiling_rate:.2f} | {'yes' if run['checksum'] == runs[0]['checksum'] else 'NO'} | "
            f"{run['consumer_us']:.0f} | {run['server_us']:.0f} | {100 * run['machine_share']:.0f}% | {run['load']:.1f} |"
        )
    four = next((run for run in runs if run["consumers"] == 4), None)
    if four is not None:
        verdict = "met" if four["rate"] / base >= 1.5 else "MISSED"
        lines += ["", f"Target ≥ 1.5× aggregate throughput at 4 consumers over 1: {four['rate'] / base:.2f}×, {verdict}."]
    return "\n".join(lines)


# --- report -----------------------------------------------------------------------------------


def report(
    *,
    records: int,
    handler_s: float,
    cpu: tuple[float, float],
    by_quarter: list[float],
    pool_mb: int,
    naive_n: int,
    naive_s: float,
    ceiling_s: float,
    peak_mb: float,
    rows: dict,
    command: str,
) -> str:
    handler_rate, naive_rate, ceiling_rate = records / handler_s, naive_n / naive_s, records / ceiling_s
    vs_naive, vs_ceiling = handler_rate / naive_rate, handler_rate / ceiling_rate
    verdict = {
        "events_per_second": handler_rate >= TARGETS["events_per_second"],
        "vs_naive": vs_naive >= TARGETS["vs_naive"],
        "vs_ceiling": vs_ceiling >= TARGETS["vs_ceiling"],
    }
    ok = {True: "met", False: "MISSED"}
    return "\n".join(
        [
            f"`{command}` — MariaDB on loopback, {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the end of the run: "
            f"the machine is shared), Python {platform.python_version()}; {records:,} change records in batches of {BATCH:,}.",
            "",
            "| projector | events/s | handler ratio | target |",
            "|---|---:|---:|---|",
            f"| `cdc_lambda.handler` (bulk, one transaction per batch) | {handler_rate:,.0f} | 1 | ≥ 30,000 events/s: {ok[verdict['events_per_second']]} |",
            f"| naive per record (SELECT + INSERT/UPDATE + commit; first {naive_n:,} records) | {naive_rate:,.0f} | {vs_naive:.1f}× faster | ≥ 15×: {ok[verdict['vs_naive']]} |",
            f"| ceiling: final rows as plain multi-row INSERTs | {ceiling_rate:,.0f} | {vs_ceiling:.2f} of it | ≥ 0.25: {ok[verdict['vs_ceiling']]} |",
            "",
            f"Handler events/s by quarter of the run: {', '.join(f'{rate:,.0f}' for rate in by_quarter)} (the read model grows "
            f"to {sum(rows.values()):,} rows; InnoDB buffer pool {pool_mb:,} MB, shared with the other benchmarks' databases).",
            f"Handler process CPU per event: {cpu[0] / records * 1e6:.1f} µs, of which decoding {cpu[1] / records * 1e6:.1f} µs "
            f"(base64 + JSON + checks); the rest of the wall time is the database.",
            f"Peak memory of one {MEMORY_BATCH:,}-record batch through the handler (tracemalloc): {peak_mb:.1f} MiB.",
            f"Final read model: {', '.join(f'{n:,} {name}' for name, n in rows.items())}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--naive", type=int, default=10_000, help="records for the naive projector")
    parser.add_argument("--consumers", default="", help="comma-separated consumer counts, e.g. 1,2,4,8")
    parser.add_argument("--consumer-records", type=int, default=50_000, help="records for the --consumers runs")
    parser.add_argument("--write-docs", action="store_true")
    options = parser.parse_args()
    counts = [int(n) for n in options.consumers.split(",") if n.strip()]
    if counts and (min(counts) < 1 or counts[0] != 1):
        parser.error("--consumers starts with 1 (the baseline) and counts at least 1")
    setup_django()
    print(f"building {options.records:,} change records ...", flush=True)
    records = change_records(count=options.records)
    handler_s, handler_cpu, walls = run_handler(events(records, BATCH))
    decoding_cpu = decode_cpu(events(records, BATCH))
    rows = final_rows()
    print(f"handler: {options.records / handler_s:,.0f} events/s", flush=True)
    ceiling_s = run_ceiling(arrival_order(records))
    print(f"ceiling: {options.records / ceiling_s:,.0f} events/s", flush=True)
    naive_n = min(options.naive, len(records))
    naive_s = run_naive(records[:naive_n])
    print(f"naive: {naive_n / naive_s:,.0f} events/s", flush=True)
    peak_mb = peak_memory(records)
    runs = []
    for consumers in counts:
        runs.append(run_consumers(records[: options.consumer_records], consumers))
        print(f"{consumers} consumers: {runs[-1]['rate']:,.0f} events/s", flush=True)
    command = f".venv/bin/python bench/cdc_bench.py --records {options.records} --naive {options.naive}"
    if counts:
        command += f" --consumers {options.consumers} --consumer-records {options.consumer_records}"
    body = report(
        records=options.records,
        handler_s=handler_s,
        cpu=(handler_cpu, decoding_cpu),
        by_quarter=quarters(walls),
        pool_mb=buffer_pool_mb(),
        naive_n=naive_n,
        naive_s=naive_s,
        ceiling_s=ceiling_s,
        peak_mb=peak_mb,
        rows=rows,
        command=command,
    )
    if runs:
        body += "\n\n### Concurrent consumers\n\n" + consumers_table(
            runs,
            naive_rate=naive_n / naive_s,
            ceiling_rate=options.records / ceiling_s,
            records=min(options.consumer_records, len(records)),
            command=command,
        )
    print(body)
    if options.write_docs:
        write_docs("## CDC projection", body)


if __name__ == "__main__":
    main()
