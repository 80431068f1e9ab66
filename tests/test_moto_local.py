"""The local AWS stand-in: DynamoDB transactions are all-or-nothing, and a failed one leaves
no stream record."""

import pytest
from botocore.exceptions import ClientError
from django.conf import settings

from airticket import aws
from bookings import repository as repo


def stream_records() -> list[dict]:
    ddb_streams = aws.dynamodbstreams()
    arn = aws.dynamodb().describe_table(TableName=settings.DYNAMODB_TABLE)["Table"]["LatestStreamArn"]
    shard = ddb_streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = ddb_streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return ddb_streams.get_records(ShardIterator=iterator)["Records"]


def put(pk: str) -> dict:
    return repo.put_action({"PK": pk, "SK": "X"}, {"n": 1})


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
