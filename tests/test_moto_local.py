"""The local AWS stand-in: DynamoDB transactions are all-or-nothing, and a failed one leaves
no stream record; with a state directory, DynamoDB outlives the process."""

import contextlib
import hashlib
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from django.conf import settings

from airticket import aws
from airticket.local import moto_server
from airticket.local.supervisor import free_port
from bookings import repository as repo


def stream_records() -> list[dict]:
    ddb_streams = aws.dynamodbstreams()
    arn = aws.dynamodb().describe_table(TableName=settings.DYNAMODB_TABLE)["Table"]["LatestStreamArn"]
    shard = ddb_streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = ddb_streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return ddb_streams.get_records(ShardIterator=iterator)["Records"]


def put(pk: str) -> dict:
    return repo.put_action({"PK": pk, "SK": "X"}, {"n": 1})


def test_reads_answered_as_plain_json_are_what_motos_serialiser_answers_for_every_attribute_type(aws_env, monkeypatch):
    ddb, table = aws.dynamodb(), settings.DYNAMODB_TABLE
    key = {"PK": {"S": "typed"}, "SK": {"S": "X"}}
    item = {
        **key,
        "n": {"N": "1.50"},
        "b": {"B": b"\x00\xff"},
        "l": {"L": [{"S": "x"}, {"NULL": True}, {"BOOL": False}, {"BS": [b"\x01"]}]},
        "m": {"M": {"s": {"SS": ["q"]}, "ns": {"NS": ["2"]}}},
    }
    ddb.put_item(TableName=table, Item=item)

    def reads() -> list:
        return [
            ddb.get_item(TableName=table, Key=key),
            ddb.scan(TableName=table, Segment=0, TotalSegments=1, ConsistentRead=True, ReturnConsumedCapacity="TOTAL"),
            ddb.query(TableName=table, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": key["PK"]}),
            ddb.batch_get_item(RequestItems={table: {"Keys": [key, {"PK": {"S": "absent"}, "SK": {"S": "X"}}]}}),
        ]

    def without_metadata(replies: list) -> list:
        return [{k: v for k, v in reply.items() if k != "ResponseMetadata"} for reply in replies]

    serialised = []
    serialise = moto_server._serialise

    def spy(result, context):
        serialised.append(context.operation_model.name)
        return serialise(result, context)

    monkeypatch.setattr(moto_server, "_serialise", spy)
    fast = without_metadata(reads())
    assert serialised == []  # every read took the plain JSON path
    monkeypatch.setattr(moto_server.DynamoResult, "execute_result", serialise)
    assert fast == without_metadata(reads())
    assert fast[0]["Item"] == item and fast[1]["Items"] == [item] and fast[1]["ConsumedCapacity"]["TableName"] == table


def test_a_scan_walks_the_items_in_motos_own_order(aws_env):
    from moto.dynamodb.models import dynamodb_backends

    for pk, sk in [("CUSTOMER#b", "PROFILE"), ("CUSTOMER#a", "ORDER#2"), ("FLIGHT#MU1#2027-01-01", "FLIGHT"), ("CUSTOMER#a", "ORDER#10")]:
        repo.put_new({"PK": pk, "SK": sk}, {"n": 1})
    account = aws.client("sts").get_caller_identity()["Account"]
    table = dynamodb_backends[account][settings.AWS_REGION].get_table(settings.DYNAMODB_TABLE)

    native = moto_server._all_items(table)
    assert native == moto_server._moto_all_items(table)
    assert [(i.hash_key.value, i.range_key.value) for i in native][:3] == [
        ("CUSTOMER#a", "ORDER#10"),
        ("CUSTOMER#a", "ORDER#2"),
        ("CUSTOMER#b", "PROFILE"),
    ]


def _key(pk: str, sk: str) -> dict:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def _write(ddb, puts: list[dict] = (), deletes: list[dict] = ()) -> None:
    requests = [{"PutRequest": {"Item": item}} for item in puts] + [{"DeleteRequest": {"Key": key}} for key in deletes]
    for start in range(0, len(requests), 25):
        ddb.batch_write_item(RequestItems={settings.DYNAMODB_TABLE: requests[start : start + 25]})


def _seed(ddb) -> list[dict]:
    """The table holding exactly: customers with a few orders each (several items per hash
    key), and a few 150 KB items, so that pages end by Limit and by moto's 1 MB page size."""
    _write(ddb, deletes=[item for items, _ in _paged_scan(ddb, ProjectionExpression="PK, SK") for item in items])
    items = [{**_key(f"CUSTOMER#{n:03d}", sk), "n": {"N": str(n)}} for n in range(60) for sk in ("PROFILE", f"ORDER#{n}", "ORDER#x")]
    items += [{**_key(f"BIG#{n}", "X"), "blob": {"S": "x" * 150_000}} for n in range(30)]
    _write(ddb, puts=items)
    return items


def _paged_scan(ddb, between=lambda page: None, **kwargs) -> list[tuple[list, dict | None]]:
    """Every page of a Scan that follows LastEvaluatedKey, calling `between` after each page."""
    pages, start = [], None
    while True:
        reply = ddb.scan(
            TableName=settings.DYNAMODB_TABLE, ConsistentRead=True, **kwargs, **({"ExclusiveStartKey": start} if start else {})
        )
        pages.append((reply["Items"], reply.get("LastEvaluatedKey")))
        start = reply.get("LastEvaluatedKey")
        if start is None:
            return pages
        between(len(pages))


def _keys(pages) -> list[tuple]:
    return [(item["PK"]["S"], item["SK"]["S"]) for items, _ in pages for item in items]


def _with_motos_own_scan(monkeypatch) -> None:
    monkeypatch.setattr(moto_server.Table, "scan", moto_server._moto_scan)
    monkeypatch.setattr(moto_server.Table, "all_items", moto_server._moto_all_items)


@pytest.mark.parametrize("paging", [{"Limit": 7}, {}, {"Limit": 5, "Segment": 1, "TotalSegments": 3}, {"Segment": 1, "TotalSegments": 2}])
def test_a_paged_scan_returns_every_item_exactly_once_and_the_same_pages_as_motos_own(aws_env, monkeypatch, paging):
    ddb = aws.dynamodb()
    items = _seed(ddb)
    segments = [paging["Segment"]] if "TotalSegments" in paging else [None]
    if segments != [None]:
        segments = range(paging["TotalSegments"])
    fast = [_paged_scan(ddb, **{**paging, **({"Segment": s} if s is not None else {})}) for s in segments]
    everything = [key for pages in fast for key in _keys(pages)]
    assert sorted(everything) == sorted((i["PK"]["S"], i["SK"]["S"]) for i in items)  # each once, segments together
    assert sum(len(pages) for pages in fast) > len(fast)  # it did page, by Limit or by size

    _with_motos_own_scan(monkeypatch)
    assert fast == [_paged_scan(ddb, **{**paging, **({"Segment": s} if s is not None else {})}) for s in segments]


@pytest.mark.parametrize("paging", [{"Limit": 10}, {"Limit": 4, "Segment": 0, "TotalSegments": 2}])
def test_a_paged_scan_under_writes_between_pages_returns_each_item_once_as_moto_does(aws_env, monkeypatch, paging):
    ddb = aws.dynamodb()

    def writes(page: int) -> None:
        # New keys before and after the cursor, rewrites, and deletes of items not read yet.
        _write(
            ddb,
            puts=[
                {**_key(f"CUSTOMER#{page:03d}", f"ORDER#new{page}"), "n": {"N": "0"}},
                {**_key(f"CUSTOMER#{59 - page:03d}", f"ORDER#new{page}"), "n": {"N": "0"}},
                {**_key(f"LATE#{page}", "X"), "n": {"N": "0"}},
                {**_key(f"CUSTOMER#{page + 1:03d}", "PROFILE"), "n": {"N": str(-page)}},
            ],
            deletes=[_key(f"CUSTOMER#{58 - page:03d}", "ORDER#x")],
        )

    def run() -> list:
        _seed(ddb)
        return _paged_scan(ddb, between=writes, **paging)

    fast = run()
    keys = _keys(fast)
    assert len(keys) == len(set(keys))  # none twice
    deleted = {(f"CUSTOMER#{58 - page:03d}", "ORDER#x") for page in range(1, len(fast))}
    untouched = {(f"CUSTOMER#{n:03d}", "PROFILE") for n in range(60)} - deleted
    # moto's segment of an item: the first byte of its hash key's MD5, modulo TotalSegments.
    in_segment = {
        key for key in untouched if hashlib.md5(key[0].encode()).digest()[0] % paging.get("TotalSegments", 1) == paging.get("Segment", 0)
    }
    assert in_segment <= set(keys)  # every item there all along, once
    assert len(in_segment) > 10
    # An item written in place between pages is read as it stands when its page is read.
    rewritten = {(item["PK"]["S"]): item["n"]["N"] for items, _ in fast for item in items if item["SK"]["S"] == "PROFILE"}
    assert any(value.startswith("-") for value in rewritten.values())

    _with_motos_own_scan(monkeypatch)
    assert fast == run()


def test_a_request_waiting_for_dynamodb_goes_before_a_scan_page_waiting():
    lock, order = moto_server._ScansLastLock(), []

    def request(kind: str) -> threading.Thread:
        def run():
            lock.acquire(scan=kind == "scan")
            order.append(kind)
            lock.release()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def until(condition) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.01)

    with lock:  # a request in progress; a Scan page, then another request, queue behind it
        scan = request("scan")
        until(lambda: lock.waiting["scan"] == 1)
        other = request("other")
        until(lambda: lock.waiting["other"] == 1)
    scan.join(10)
    other.join(10)
    assert order == ["other", "scan"]
    scan = request("scan")  # nothing else waiting: a Scan goes straight in
    scan.join(10)
    assert order[-1] == "scan"


def test_a_transaction_whose_last_condition_fails_writes_nothing(aws_env):
    repo.put_new({"PK": "taken", "SK": "X"}, {"n": 1})
    before = len(stream_records())
    with pytest.raises(repo.ConditionFailed) as failure:
        repo.transact([put("a"), put("b"), put("taken")])
    assert failure.value.reasons == ["None", "None", "ConditionalCheckFailed"]
    assert repo.get({"PK": "a", "SK": "X"}) is None
    assert len(stream_records()) == before


def test_a_transaction_that_fails_while_writing_is_undone_with_its_stream_records(aws_env):
    repo.put_new({"PK": "counter", "SK": "X"}, {"n": 1})
    before = len(stream_records())
    # The second update adds a number to a string: it passes the (absent) condition and fails on write.
    bad_update = {
        "TableName": settings.DYNAMODB_TABLE,
        "Key": repo.marshal({"PK": "counter", "SK": "X"}),
        "UpdateExpression": "SET n = n + :word",
        "ExpressionAttributeValues": repo.values(word="seven"),
    }
    with pytest.raises(ClientError):
        aws.dynamodb().transact_write_items(TransactItems=[put("fresh"), {"Update": bad_update}])
    assert repo.get({"PK": "fresh", "SK": "X"}) is None
    assert repo.get({"PK": "counter", "SK": "X"})["n"] == 1
    assert len(stream_records()) == before


# --- DynamoDB kept on disk (`--state`, what `make run` uses) ------------------------------------


def _moto(state: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "airticket.local.moto_server", "127.0.0.1", str(port), "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/moto-api/", timeout=2)
            return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(process.stdout.read())


def _dynamodb(port: int):
    return boto3.client(
        "dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def _items(client) -> list[tuple]:
    items = client.scan(TableName=settings.DYNAMODB_TABLE, ConsistentRead=True)["Items"]
    return sorted((item["PK"]["S"], int(item["n"]["N"])) for item in items)


def _stream_is_empty(client) -> bool:
    arn = client.describe_table(TableName=settings.DYNAMODB_TABLE)["Table"]["LatestStreamArn"]
    streams = boto3.client(
        "dynamodbstreams", endpoint_url=client.meta.endpoint_url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return streams.get_records(ShardIterator=iterator)["Records"] == []


def test_every_acknowledged_write_survives_a_kill_9_and_a_clean_stop(tmp_path):
    port = free_port()
    table = settings.DYNAMODB_TABLE
    moto = _moto(tmp_path, port)
    try:
        client = _dynamodb(port)
        client.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}, {"AttributeName": "SK", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        for n in range(20):
            client.put_item(TableName=table, Item={"PK": {"S": f"k{n:02}"}, "SK": {"S": "X"}, "n": {"N": str(n)}})
        client.update_item(
            TableName=table,
            Key={"PK": {"S": "k00"}, "SK": {"S": "X"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "100"}},
        )
        client.transact_write_items(TransactItems=[{"Delete": {"TableName": table, "Key": {"PK": {"S": "k01"}, "SK": {"S": "X"}}}}])
        with pytest.raises(ClientError):  # a failed transaction changes nothing, before or after a restart
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": {"PK": {"S": "never"}, "SK": {"S": "X"}, "n": {"N": "1"}}}},
                    {
                        "ConditionCheck": {
                            "TableName": table,
                            "Key": {"PK": {"S": "k02"}, "SK": {"S": "X"}},
                            "ConditionExpression": "n = :x",
                            "ExpressionAttributeValues": {":x": {"N": "7"}},
                        }
                    },
                ]
            )
        written = _items(client)
    finally:
        moto.kill()  # SIGKILL: no snapshot at stop; the journal has every acknowledged write
        moto.wait()
    assert len(written) == 19 and ("k00", 100) in written and "never" not in dict(written)

    moto = _moto(tmp_path, port)
    try:
        client = _dynamodb(port)
        assert _items(client) == written
        assert _stream_is_empty(client)  # restored items are not changes
        client.put_item(TableName=table, Item={"PK": {"S": "after"}, "SK": {"S": "X"}, "n": {"N": "1"}})
    finally:
        moto.send_signal(signal.SIGTERM)  # a clean stop writes a snapshot and empties the journal
        assert moto.wait(timeout=30) == 0
    assert (tmp_path / "dynamodb.journal").read_text() == ""

    moto = _moto(tmp_path, port)
    try:
        assert _items(_dynamodb(port)) == sorted([*written, ("after", 1)])
    finally:
        moto.kill()
        moto.wait()
