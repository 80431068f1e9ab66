"""Direct access to the change stream and the DLQ, for the ingestor's fault demonstrations."""

import json

from django.conf import settings

from airticket import aws


def _shard_ids() -> list[str]:
    return [s["ShardId"] for s in aws.kinesis().list_shards(StreamName=settings.KINESIS_STREAM)["Shards"]]


def find_record(*, pk: str, sk: str, event_name: str) -> dict | None:
    """The first record on the stream for that item and event (reads every shard from the start)."""
    kinesis = aws.kinesis()
    for shard_id in _shard_ids():
        iterator = kinesis.get_shard_iterator(StreamName=settings.KINESIS_STREAM, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        while iterator:
            response = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            for record in response["Records"]:
                if _matches(record["Data"], pk=pk, sk=sk, event_name=event_name):
                    return record
            if not response["Records"]:
                break
            iterator = response.get("NextShardIterator")
    return None


def _matches(data: bytes, *, pk: str, sk: str, event_name: str) -> bool:
    try:
        change = json.loads(data)
        keys = change["dynamodb"]["Keys"]
        return change["eventName"] == event_name and keys["PK"]["S"] == pk and keys["SK"]["S"] == sk
    except (ValueError, KeyError, TypeError):
        return False


def dlq_depth() -> int:
    return sum(aws.dlq_counts())
