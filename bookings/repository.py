"""The only module that talks to DynamoDB.

Single table, one item per entity:

    customer          PK=CUSTOMER#<id>            SK=PROFILE
    order             PK=CUSTOMER#<id>            SK=ORDER#<order_id>
    booking guard     PK=CUSTOMER#<id>            SK=BOOKING#<flight>#<date>   (one ORDERED order per flight/date)
    flight            PK=FLIGHT#<number>#<date>   SK=FLIGHT
    idempotency       PK=IDEMPOTENCY#<subject>#<key> SK=IDEMPOTENCY           (TTL: expires_at)

Every write is conditional. Functions here know keys, conditions and marshalling; the
rules (what may change when) live in `services`.
"""

import uuid
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from django.conf import settings

from airticket import aws, observability

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

CUSTOMER, ORDER, FLIGHT, BOOKING_GUARD, IDEMPOTENCY = "CUSTOMER", "ORDER", "FLIGHT", "BOOKING_GUARD", "IDEMPOTENCY"


class ConditionFailed(Exception):
    """A conditional write lost. `reasons` holds one code per transaction item ('None' = fine)."""

    def __init__(self, reasons: list[str] | None = None):
        super().__init__(reasons)
        self.reasons = reasons or []

    def failed(self, index: int) -> bool:
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"


def customer_key(customer_id: str) -> dict:
    return {"PK": f"CUSTOMER#{customer_id}", "SK": "PROFILE"}


def order_key(customer_id: str, order_id: str) -> dict:
    return {"PK": f"CUSTOMER#{customer_id}", "SK": f"ORDER#{order_id}"}


def guard_key(customer_id: str, flight_number: str, flight_date: str) -> dict:
    return {"PK": f"CUSTOMER#{customer_id}", "SK": f"BOOKING#{flight_number}#{flight_date}"}


def flight_key(flight_number: str, flight_date: str) -> dict:
    return {"PK": f"FLIGHT#{flight_number}#{flight_date}", "SK": "FLIGHT"}


def idempotency_key(subject: str, key: str) -> dict:
    return {"PK": f"IDEMPOTENCY#{subject}#{key}", "SK": "IDEMPOTENCY"}


def marshal(item: dict) -> dict:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items() if v is not None}


def unmarshal(item: dict) -> dict:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, list):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def values(**kwargs) -> dict:
    """ExpressionAttributeValues from keyword arguments: values(v=3) -> {":v": {"N": "3"}}."""
    return {f":{k}": _serializer.serialize(_to_dynamo(v)) for k, v in kwargs.items()}


def _table() -> str:
    return settings.DYNAMODB_TABLE


def get(key: dict) -> dict | None:
    response = aws.dynamodb().get_item(TableName=_table(), Key=marshal(key), ConsistentRead=True)
    item = response.get("Item")
    return unmarshal(item) if item else None


def query_partition(pk: str, sk_prefix: str = "") -> list[dict]:
    """Every item of a partition, or those whose SK starts with `sk_prefix`.

    DynamoDB rejects an empty string as a key value, even inside begins_with, so no prefix
    means no sort-key condition at all."""
    items: list[dict] = []
    if sk_prefix:
        condition, condition_values = "PK = :pk AND begins_with(SK, :prefix)", values(pk=pk, prefix=sk_prefix)
    else:
        condition, condition_values = "PK = :pk", values(pk=pk)
    kwargs = {
        "TableName": _table(),
        "KeyConditionExpression": condition,
        "ExpressionAttributeValues": condition_values,
        "ConsistentRead": True,
    }
    while True:
        response = aws.dynamodb().query(**kwargs)
        items.extend(unmarshal(i) for i in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def put_new(key: dict, attributes: dict) -> None:
    """Create an item; ConditionFailed if it exists."""
    try:
        aws.dynamodb().put_item(
            TableName=_table(),
            Item=marshal({**key, **attributes}),
            ConditionExpression="attribute_not_exists(PK)",
        )
    except ClientError as exc:
        _raise_condition(exc)


def put_replacing(key: dict, attributes: dict, *, condition: str, condition_values: dict, condition_names: dict | None = None) -> None:
    extra = {"ExpressionAttributeNames": condition_names} if condition_names else {}
    try:
        aws.dynamodb().put_item(
            TableName=_table(),
            Item=marshal({**key, **attributes}),
            ConditionExpression=condition,
            ExpressionAttributeValues=condition_values,
            **extra,
        )
    except ClientError as exc:
        _raise_condition(exc)


def delete(key: dict) -> None:
    aws.dynamodb().delete_item(TableName=_table(), Key=marshal(key))


def delete_if(key: dict, *, condition: str, condition_values: dict, condition_names: dict | None = None) -> None:
    extra = {"ExpressionAttributeNames": condition_names} if condition_names else {}
    try:
        aws.dynamodb().delete_item(
            TableName=_table(), Key=marshal(key), ConditionExpression=condition, ExpressionAttributeValues=condition_values, **extra
        )
    except ClientError as exc:
        _raise_condition(exc)


def update_versioned(
    key: dict, changes: dict, *, expected_version: int, now: str, extra_condition: str = "", extra_values: dict | None = None
) -> dict:
    """SET the changed fields, bump the version, only if the stored version is `expected_version`."""
    action = versioned_update(
        key, changes, expected_version=expected_version, now=now, extra_condition=extra_condition, extra_values=extra_values
    )
    try:
        response = aws.dynamodb().update_item(**action, ReturnValues="ALL_NEW")
    except ClientError as exc:
        _raise_condition(exc)
    return unmarshal(response["Attributes"])


def versioned_update(
    key: dict,
    changes: dict,
    *,
    expected_version: int | None,
    now: str,
    extra_condition: str = "",
    extra_values: dict | None = None,
    extra_names: dict | None = None,
    increments: dict | None = None,
) -> dict:
    """An Update action (for update_item or a transaction) that bumps `version` atomically.

    `expected_version=None` skips the version check (used for counters guarded by their own
    condition, such as a flight's seat count); `increments` adds to numeric attributes.
    """
    names = {"#version": "version", "#updated_at": "updated_at"}
    vals = values(one=1, now=now)
    sets = ["#version = #version + :one", "#updated_at = :now"]
    for index, (field, value) in enumerate(changes.items()):
        names[f"#f{index}"] = field
        vals[f":f{index}"] = _serializer.serialize(_to_dynamo(value))
        sets.append(f"#f{index} = :f{index}")
    for index, (field, delta) in enumerate((increments or {}).items()):
        names[f"#i{index}"] = field
        vals[f":i{index}"] = _serializer.serialize(_to_dynamo(delta))
        sets.append(f"#i{index} = #i{index} + :i{index}")
    conditions = ["attribute_exists(PK)"]
    if expected_version is not None:
        conditions.append("#version = :expected")
        vals.update(values(expected=expected_version))
    if extra_condition:
        conditions.append(f"({extra_condition})")
        vals.update(extra_values or {})
        names.update(extra_names or {})
    return {
        "TableName": _table(),
        "Key": marshal(key),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": vals,
    }


def put_action(key: dict, attributes: dict) -> dict:
    return {"Put": {"TableName": _table(), "Item": marshal({**key, **attributes}), "ConditionExpression": "attribute_not_exists(PK)"}}


def conditional_put_action(key: dict, attributes: dict, *, condition: str, condition_values: dict, condition_names: dict) -> dict:
    """A Put for a transaction that replaces the item only if `condition` holds."""
    put = {
        "TableName": _table(),
        "Item": marshal({**key, **attributes}),
        "ConditionExpression": condition,
        "ExpressionAttributeValues": condition_values,
        "ExpressionAttributeNames": condition_names,
    }
    return {"Put": put}


def delete_action(key: dict, *, condition: str, condition_values: dict) -> dict:
    return {
        "Delete": {
            "TableName": _table(),
            "Key": marshal(key),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": condition_values,
        }
    }


def check_exists_action(key: dict) -> dict:
    return {"ConditionCheck": {"TableName": _table(), "Key": marshal(key), "ConditionExpression": "attribute_exists(PK)"}}


def transact(actions: list[dict]) -> None:
    """All or nothing. Update actions come from `versioned_update` and are wrapped here."""
    items = [a if set(a) & {"Put", "Delete", "ConditionCheck", "Update"} else {"Update": a} for a in actions]
    try:
        # The token makes botocore's own retry of this call (after a timeout whose first try
        # was in fact applied) a no-op instead of a spurious failure on our own writes.
        aws.dynamodb().transact_write_items(TransactItems=items, ClientRequestToken=uuid.uuid4().hex)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "TransactionCanceledException":
            reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
            if not reasons:  # some SDK paths put the reasons only in the message
                reasons = _reasons_from_message(exc.response["Error"].get("Message", ""))
            _count_conflicts(reasons)
            raise ConditionFailed(reasons) from None
        raise


def _reasons_from_message(message: str) -> list[str]:
    if "[" not in message:
        return []
    inner = message[message.index("[") + 1 : message.rindex("]")]
    return [part.strip() for part in inner.split(",")]


def _count_conflicts(reasons: list[str]) -> None:
    """Another transaction held an item: the contention the transaction-conflict metric shows."""
    if "TransactionConflict" in reasons:
        observability.count("CommandTransactionConflicts")


def _raise_condition(exc: ClientError):
    code = exc.response["Error"]["Code"]
    if code == "ConditionalCheckFailedException":
        raise ConditionFailed(["ConditionalCheckFailed"]) from None
    if code == "TransactionConflictException":
        # A transaction holds the item (a booking on this flight or customer): a lost race like
        # any other, which the services retry or answer with 409. botocore does not retry it.
        _count_conflicts(["TransactionConflict"])
        raise ConditionFailed(["TransactionConflict"]) from None
    raise exc


def scan_keys() -> list[dict]:
    """Every item's key. Only for maintenance (truncate); never on a request path."""
    keys: list[dict] = []
    kwargs = {"TableName": _table(), "ProjectionExpression": "PK, SK"}
    while True:
        response = aws.dynamodb().scan(**kwargs)
        keys.extend(response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return keys
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def delete_many(raw_keys: list[dict]) -> None:
    """Delete by marshalled keys, 25 per request (DynamoDB's batch limit), retrying leftovers."""
    for start in range(0, len(raw_keys), 25):
        requests = {_table(): [{"DeleteRequest": {"Key": key}} for key in raw_keys[start : start + 25]]}
        while requests:
            requests = aws.dynamodb().batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
