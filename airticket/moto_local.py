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

    python -m airticket.moto_local 127.0.0.1 5000
"""

import contextlib
import copy
import logging
import sys
import threading

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server


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
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    bucket = table.items[hash_value] if range_value is not None else table.items
    slot = range_value if range_value is not None else hash_value
    if item is None:
        bucket.pop(slot, None)
    else:
        bucket[slot] = item


DynamoDBBackend.transact_write_items = transact_write_items


def one_dynamodb_request_at_a_time(app):
    lock = threading.Lock()

    def serialised(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with lock:
                return list(app(environ, start_response))
        return app(environ, start_response)

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
    return make_server(host, port, app, threaded=True, request_handler=_KeepAliveHandler)


def start_in_thread(host: str, port: int) -> BaseWSGIServer:
    """For tests: serve in a daemon thread; call `.shutdown()` to stop."""
    instance = server(host, port)
    threading.Thread(target=instance.serve_forever, daemon=True).start()
    return instance


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    print(f"moto (DynamoDB serialised) on http://{host}:{port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server(host, port).serve_forever()
