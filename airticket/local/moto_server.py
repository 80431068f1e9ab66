"""moto server for local runs and tests, with DynamoDB transactions that behave (and scale)
as on AWS.

AWS runs each DynamoDB request atomically. moto does not: a transaction checks and applies its
items one by one with no lock, and rolls back by restoring a copy of the whole table, undoing
what other threads wrote meanwhile (concurrent bookings would oversell a flight). So DynamoDB
(and DynamoDB Streams) requests are serialised; other services, such as SQS long polls, stay
concurrent.

moto also deep-copies every table a transaction names, once per item, before it starts: the
items and the whole stream history. That makes each booking cost O(everything written so far)
in time and memory (a few thousand bookings took moto to 18 GB). `transact_write_items` below
evaluates every condition first, as AWS does, against the state before the transaction, and
writes only if all hold; a failure while writing restores just the touched items and the
stream position.

moto keeps its state in memory. With `--state DIR` (what `make run` uses) DynamoDB's tables and
items outlive the process: see `Store`.

    python -m airticket.local.moto_server 127.0.0.1 5000 [--state var/local/moto]
"""

import argparse
import base64
import bisect
import contextlib
import copy
import functools
import json
import logging
import operator
import os
import signal
import threading
import uuid
from pathlib import Path

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table
from moto.dynamodb.responses import DynamoResult
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from airticket.local.locks import hold_exclusively


def _key(table, op_type: str, op: dict) -> dict:
    if op_type != "Put":
        return op["Key"]
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: op["Item"][name] for name in names}


def _condition_holds(op: dict, current) -> bool:
    expression = op.get("ConditionExpression")
    if expression is None:
        return True
    condition = get_filter_expression(expression, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues"))
    return condition.expr(current)


def transact_write_items(self, transact_items: list[dict]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    ops, reasons, seen = [], [], set()
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException()
        op_type, op = next(iter(entry.items()))
        if op_type not in ("ConditionCheck", "Put", "Delete", "Update"):
            raise MockValidationException(f"unsupported transaction operation {op_type}")
        table = self.get_table(op["TableName"])
        key = _key(table, op_type, op)
        identity = (op["TableName"], str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        current = self.get_item(op["TableName"], key)
        if _condition_holds(op, current):
            reasons.append((None, None, None))
        else:
            old = current.to_json()["Attributes"] if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else None
            reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
        ops.append((op_type, op, key))
    if any(code for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    undo = [(op["TableName"], key, copy.deepcopy(self.get_item(op["TableName"], key))) for _, op, key in ops]
    streams = {id(t): (t.stream_shard, len(t.stream_shard.items)) for t in (self.get_table(n) for n, _, _ in undo) if t.stream_shard}
    try:
        for op_type, op, key in ops:
            _apply(self, op_type, op, key)
    except Exception:
        for table_name, key, item in undo:
            _restore(self.get_table(table_name), key, item)
        for shard, length in streams.values():
            del shard.items[length:]
        raise


def _apply(backend, op_type: str, op: dict, key: dict) -> None:
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    if op_type == "Put":
        backend.put_item(op["TableName"], op["Item"])
    elif op_type == "Delete":
        backend.delete_item(op["TableName"], key)
    elif op_type == "Update":
        backend.update_item(
            op["TableName"],
            key,
            update_expression=op["UpdateExpression"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )


def _restore(table, key: dict, item) -> None:
    _forget_sorted_keys(table)  # written past put_item and delete_item
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    bucket = table.items[hash_value] if range_value is not None else table.items
    slot = range_value if range_value is not None else hash_value
    if item is None:
        bucket.pop(slot, None)
    else:
        bucket[slot] = item


DynamoDBBackend.transact_write_items = transact_write_items


# --- reads answered as plain JSON ---------------------------------------------------------------
#
# moto 5.2 serialises every response by walking botocore's output shapes, member by member: about
# 10 ms per item of a Scan page (a 1 MB page of 3,000 items took seconds), which made a Scan of
# 200,000 items take most of an hour. DynamoDB speaks JSON, and these reads' results are already
# DynamoDB JSON (`DynamoResult` converted the items), so the body is the result as JSON: the
# same bytes the serialiser produces (binary values base64, as the protocol wants). Any value JSON
# cannot carry falls back to the serialiser.
_PLAIN_JSON_READS = {"Scan", "Query", "GetItem", "BatchGetItem"}
_serialise = DynamoResult.execute_result


def _blob(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def _execute_result(self, context):
    if context.operation_model.name in _PLAIN_JSON_READS:
        try:
            body = json.dumps(self.result, default=_blob)
        except TypeError:
            return _serialise(self, context)
        return 200, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-requestid": uuid.uuid4().hex}, body
    return _serialise(self, context)


DynamoResult.execute_result = _execute_result


# --- a Scan's order, kept sorted; a page starts at its ExclusiveStartKey ------------------------
#
# moto sorts the whole table for every Scan request, comparing `DynamoType` objects (a Python
# call per comparison), then walks it from its first item to the page's ExclusiveStartKey,
# comparing each item passed in Python: O(table) per page, under the lock that serialises
# DynamoDB. A 200,000-item rebuild crawled at ~20 items/s that way, and the commands queued
# behind its pages got 0.1/s. So each table keeps its keys sorted, in the same order (by the
# values those comparisons compare: `cast_value`, the key attributes' types being fixed by the
# schema): sorted once, then kept by every put and delete, and a page bisects to its start key
# and walks on from there, so a page costs O(page).
#
# The walk is moto's Scan loop (segments, Limit, the 1 MB page, LastEvaluatedKey, then the
# filter and projection) less two costs that were 80 % of a page: it sized each item twice,
# and deep-copied each item it returned. Nothing changes the items between the Scan and its
# response (both under the DynamoDB lock; a projection builds new items), so they are returned
# as they are. A Scan of an index, or with the legacy ScanFilter, stays moto's own.
_moto_all_items = Table.all_items
_moto_scan = Table.scan
_moto_put_item = Table.put_item
_moto_delete_item = Table.delete_item
_SORT = operator.itemgetter(0)


def _sort_key(table, key: dict) -> tuple:
    """A key's place in the order, from its DynamoDB JSON (an ExclusiveStartKey)."""
    hash_value = DynamoType(key[table.hash_key_attr]).cast_value
    return (hash_value, DynamoType(key[table.range_key_attr]).cast_value) if table.range_key_attr else (hash_value,)


def _entry(item) -> tuple:
    if item.range_key is None:
        return (item.hash_key.cast_value,), item
    return (item.hash_key.cast_value, item.range_key.cast_value), item


class _SortedKeys:
    """A table's items in Scan order, as (sort key, item). New keys wait in `new` and are merged
    at the next read, so a burst of puts (a bulk load) costs one sort of a sorted list and a
    tail, not an insert into the middle of the list per put. A put replaces the item object
    (moto writes a new `Item`), so the entry follows it; an update changes it in place."""

    def __init__(self, table):
        self.table = table
        items = table.items.values()
        every = [item for bucket in items for item in bucket.values()] if table.range_key_attr else list(items)
        self.keys = sorted(map(_entry, every), key=_SORT)
        self.new: dict[tuple, tuple] = {}

    def _position(self, sort_key: tuple) -> int | None:
        position = bisect.bisect_left(self.keys, sort_key, key=_SORT)
        return position if position < len(self.keys) and self.keys[position][0] == sort_key else None

    def added(self, item) -> None:
        entry = _entry(item)
        position = None if entry[0] in self.new else self._position(entry[0])
        if position is None:
            self.new[entry[0]] = entry
        else:
            self.keys[position] = entry

    def removed(self, item) -> None:
        sort_key = _entry(item)[0]
        if self.new.pop(sort_key, None) is None and (position := self._position(sort_key)) is not None:
            del self.keys[position]

    def _merged(self) -> list:
        if self.new:
            self.keys.extend(self.new.values())
            self.keys.sort(key=_SORT)  # a sorted run and a tail: Timsort merges them in O(n)
            self.new.clear()
        return self.keys

    def items(self, after: dict | None = None):
        """The items in order, from just after the key `after` (from the first without one)."""
        keys = self._merged()
        position = bisect.bisect_right(keys, _sort_key(self.table, after), key=_SORT) if after else 0
        for index in range(position, len(keys)):
            yield keys[index][1]


def _sorted_keys(table) -> _SortedKeys:
    keys = table.__dict__.get("_sorted_keys")
    if keys is None:
        keys = table._sorted_keys = _SortedKeys(table)
    return keys


def _forget_sorted_keys(table) -> None:
    """For a change made to `table.items` directly: the next read sorts afresh."""
    table.__dict__.pop("_sorted_keys", None)


def _all_items(self) -> list:
    return list(_sorted_keys(self).items())


def _scan(
    self,
    filters,
    limit,
    exclusive_start_key,
    filter_expression=None,
    index_name=None,
    consistent_read=False,
    projection_expression=None,
    segments=(None, None),
):
    if index_name or filters:
        return _moto_scan(
            self, filters, limit, exclusive_start_key, filter_expression, index_name, consistent_read, projection_expression, segments
        )
    results, result_size, last_evaluated_key = [], 0, None
    for item in _sorted_keys(self).items(exclusive_start_key):
        if not item.is_within_segment(segments):
            continue
        size = item.size()
        if len(results) == limit or result_size + size > RESULT_SIZE_LIMIT:
            last_evaluated_key = self._get_last_evaluated_key(results[-1], None)
            break
        results.append(item)
        result_size += size
    scanned_count = len(results)
    if filter_expression is not None:
        results = [item for item in results if filter_expression.expr(item)]
    if projection_expression:
        results = [item.project(projection_expression) for item in results]
    return results, scanned_count, last_evaluated_key


def _put_item(self, *args, **kwargs):
    item = _moto_put_item(self, *args, **kwargs)
    if (keys := self.__dict__.get("_sorted_keys")) is not None:
        keys.added(item)
    return item


def _delete_item(self, *args, **kwargs):
    item = _moto_delete_item(self, *args, **kwargs)
    if item is not None and (keys := self.__dict__.get("_sorted_keys")) is not None:
        keys.removed(item)
    return item


Table.all_items = _all_items
Table.scan = _scan
Table.put_item = _put_item
Table.delete_item = _delete_item


# --- DynamoDB on disk ---------------------------------------------------------------------------
#
# Why a journal and not a periodic snapshot: the read models live in a database that survives a
# restart, so any write moto acknowledged and then forgot would leave the read model *ahead* of
# DynamoDB, which the projection's version guards can never undo (and the command side would
# reuse the lost versions). So every DynamoDB request that changed items appends the changed
# items' new images to a journal before its response leaves, and a snapshot compacts the journal
# at start, at stop and every COMPACT_EVERY requests. A crash of any process, kill -9 included,
# loses nothing moto acknowledged; only an OS crash or power loss can lose what the OS had not yet
# written (no fsync per request: it would cost more than the request). moto's own
# recording/replay was the other option: it replays every request (Kinesis, SQS, reads) at each
# start, and grows without bound.
#
# Only DynamoDB is kept. Kinesis and the DynamoDB stream start empty: `runlocal` compares both
# sides at start and sends what the read model lacks through the stream again
# (`cdc_lambda.consistency`), and the consumers' checkpoints notice the new stream instances.

_TABLE_ACTIONS = frozenset({"CreateTable", "DeleteTable", "UpdateTable", "UpdateTimeToLive"})


class Store:
    """A directory holding DynamoDB's tables: `dynamodb.json` (a snapshot) and
    `dynamodb.journal` (one JSON line per request since, with the changed items' images)."""

    COMPACT_EVERY = 20_000  # requests in the journal

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.snapshot = self.directory / "dynamodb.json"
        self.journal_path = self.directory / "dynamodb.journal"
        self.journal = None
        self.lines = 0
        self.touched: dict[tuple, tuple] = {}
        self.tables_changed = False
        self._lock_file = None

    # -- start -----------------------------------------------------------------------------

    def open(self, *, wait_seconds: float = 30) -> str:
        """Take the directory (one moto at a time: a previous one may still be writing its
        snapshot), load it, compact it; returns what was restored."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.directory / "moto.lock").open("a")
        hold_exclusively(
            self._lock_file, wait_seconds=wait_seconds, refused=f"another moto keeps {self.directory} (still stopping, or running)"
        )
        tables, items, replayed = self._load()
        self.compact()
        return f"restored {items} items in {tables} table(s) from {self.directory} ({replayed} journal entries)"

    def _load(self) -> tuple[int, int, int]:
        tables = []
        if self.snapshot.exists():
            for spec in json.loads(self.snapshot.read_text())["tables"]:
                tables.append(_create_table(spec))
        replayed = 0
        if self.journal_path.exists():
            with self.journal_path.open() as journal:
                for line in journal:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        break  # the last line of a process killed mid-write
                    for account, region, table, key, item in entry:
                        _restore_item(dynamodb_backends[account][region], table, key, item)
                    replayed += 1
        # Streams are switched on after the items are in: restored items are not changes.
        items = 0
        for table, streams in tables:
            items += len(table.all_items())
            if streams and streams.get("StreamEnabled"):
                table.set_stream_specification(dict(streams))
        return len(tables), items, replayed

    # -- while serving (under the DynamoDB lock) --------------------------------------------

    def touch(self, backend, table_name: str, key: dict) -> None:
        identity = (backend.account_id, backend.region_name, table_name, json.dumps(key, sort_keys=True))
        self.touched[identity] = (backend, table_name, key)

    def commit(self, action: str) -> None:
        """After a DynamoDB request: journal the current images of the items it touched (what
        a failed transaction touched is journaled as it stands: unchanged)."""
        touched, self.touched = self.touched, {}
        if action in _TABLE_ACTIONS:
            self.compact()
            return
        if not touched:
            return
        entry = []
        for (account, region, table_name, _), (backend, _, key) in touched.items():
            if table_name not in backend.tables:
                continue
            with contextlib.suppress(Exception):  # a key the request itself rejected
                item = backend.get_item(table_name, key)
                entry.append([account, region, table_name, key, item.to_json()["Attributes"] if item else None])
        if entry:
            self.journal.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self.journal.flush()  # in the OS before the response leaves: survives kill -9
            self.lines += 1
            if self.lines >= self.COMPACT_EVERY:
                self.compact()

    def compact(self) -> None:
        """Write every table to a new snapshot (atomically), then start an empty journal. A crash
        in between is harmless: replaying the old journal over the new snapshot ends in the same
        images."""
        tables = [_table_spec(account, region, table) for account, region, table in _all_tables()]
        temporary = self.snapshot.with_suffix(".tmp")
        with temporary.open("w") as out:
            json.dump({"format": 1, "tables": tables}, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(self.snapshot)
        if self.journal:
            self.journal.close()
        self.journal = self.journal_path.open("w")
        self.lines = 0

    def close(self) -> None:
        self.compact()
        self.journal.close()


def _all_tables():
    for account, regions in dict.items(dynamodb_backends):
        for region, backend in dict.items(regions):
            for table in backend.tables.values():
                yield account, region, table


def _table_spec(account: str, region: str, table) -> dict:
    described = table.describe()["TableDescription"]
    return {
        "account": account,
        "region": region,
        "name": table.name,
        "schema": table.schema,
        "attr": table.attr,
        "billing_mode": table.billing_mode,
        "throughput": table.throughput,
        "global_indexes": described.get("GlobalSecondaryIndexes"),
        "indexes": described.get("LocalSecondaryIndexes"),
        "streams": table.stream_specification,
        "ttl": table.ttl,
        "items": [item.to_json()["Attributes"] for item in table.all_items()],
    }


def _create_table(spec: dict):
    backend = dynamodb_backends[spec["account"]][spec["region"]]
    table = backend.create_table(
        spec["name"],
        schema=spec["schema"],
        throughput=spec["throughput"],
        attr=spec["attr"],
        global_indexes=spec["global_indexes"],
        indexes=spec["indexes"],
        streams=None,
        billing_mode=spec["billing_mode"],
        sse_specification=None,
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    table.ttl = spec["ttl"]
    for item in spec["items"]:
        backend.put_item(spec["name"], item)
    return table, spec["streams"]


def _restore_item(backend, table_name: str, key: dict, item: dict | None) -> None:
    if table_name not in backend.tables:
        return  # deleted later (a table change compacts, so this is a journal cut short)
    if item is None:
        backend.delete_item(table_name, key)
    else:
        backend.put_item(table_name, item)


_store: Store | None = None


def _key_of_put(backend, table_name: str, item_attrs: dict) -> dict:
    table = backend.get_table(table_name)
    return _key(table, "Put", {"Item": item_attrs})


def _tracked(method, key_of):
    """Note which item a backend write touches, for the journal (when a Store is open)."""

    @functools.wraps(method)
    def tracked(self, table_name, first, *args, **kwargs):
        if _store is not None:
            with contextlib.suppress(Exception):  # moto reports a bad table or key itself
                _store.touch(self, table_name, key_of(self, table_name, first))
        return method(self, table_name, first, *args, **kwargs)

    return tracked


DynamoDBBackend.put_item = _tracked(DynamoDBBackend.put_item, _key_of_put)
DynamoDBBackend.update_item = _tracked(DynamoDBBackend.update_item, lambda backend, table, key: key)
DynamoDBBackend.delete_item = _tracked(DynamoDBBackend.delete_item, lambda backend, table, key: key)


class _ScansLastLock:
    """One DynamoDB request at a time, and a Scan page waiting lets every other request waiting
    go first. On AWS a Scan does not hold writes up; here a 1 MB page holds the lock for a
    good part of a second, and with a rebuild's segments always queueing the next page, a
    command (one short request) waited behind several of them: 1 command/s of 50/s asked got
    through. Scans still get the lock whenever nothing else waits."""

    def __init__(self):
        self._changed = threading.Condition()
        self._held = False
        self.waiting = {"scan": 0, "other": 0}

    def acquire(self, *, scan: bool = False) -> None:
        kind = "scan" if scan else "other"
        with self._changed:
            self.waiting[kind] += 1
            try:
                self._changed.wait_for(lambda: not self._held and not (scan and self.waiting["other"]))
            finally:
                self.waiting[kind] -= 1
            self._held = True

    def release(self) -> None:
        with self._changed:
            self._held = False
            self._changed.notify_all()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def one_dynamodb_request_at_a_time(app):
    lock = _ScansLastLock()

    def serialised(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB"):
            lock.acquire(scan=target.endswith(".Scan"))
            try:
                return list(app(environ, start_response))
            finally:
                if _store is not None:
                    _store.commit(target.rsplit(".", 1)[-1])
                lock.release()
        return app(environ, start_response)

    serialised.lock = lock
    return serialised


class _Dispatcher:
    """moto works out the service of every request from scratch (scanning its modules and the
    request); the X-Amz-Target header names it, so the app is remembered per target prefix."""

    def __init__(self):
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.apps: dict[str, object] = {}

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "").split(".", 1)[0]
        if not target:
            return self.moto(environ, start_response)
        app = self.apps.get(target)
        if app is None:
            app = self.apps[target] = self.moto.get_application(environ)
        return app(environ, start_response)


class _KeepAliveHandler(MotoRequestHandler):
    # HTTP/1.1 keeps botocore's pooled connections open instead of a new TCP connection and
    # thread per request.
    protocol_version = "HTTP/1.1"


def server(host: str, port: int) -> BaseWSGIServer:
    # One line per request on stderr costs moto more than many requests do.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = one_dynamodb_request_at_a_time(_Dispatcher())
    instance = make_server(host, port, app, threaded=True, request_handler=_KeepAliveHandler)
    instance.dynamodb_lock = app.lock
    return instance


def start_in_thread(host: str, port: int) -> BaseWSGIServer:
    """For tests: serve in a daemon thread; call `.shutdown()` to stop."""
    instance = server(host, port)
    threading.Thread(target=instance.serve_forever, daemon=True).start()
    return instance


def _stop(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    global _store
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--state", type=Path, help="keep DynamoDB's tables in this directory")
    options = parser.parse_args(argv)
    store = Store(options.state) if options.state else None
    if store:
        print(f"moto: {store.open()}", flush=True)
    instance = server(options.host, options.port)
    _store = store
    signal.signal(signal.SIGTERM, _stop)  # the supervisor's stop, or its death (PDEATHSIG)
    print(f"moto (DynamoDB serialised) on http://{options.host}:{options.port}", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            instance.serve_forever()
    finally:
        if store:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the snapshot short
            with instance.dynamodb_lock:  # a request in flight finishes first; none start after
                store.close()
                print(f"moto: DynamoDB saved to {store.directory}", flush=True)


if __name__ == "__main__":
    main()
