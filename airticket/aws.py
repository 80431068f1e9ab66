"""The one AWS boundary: every boto3 client the project uses is made here.

Endpoints, region and credentials come from boto3's standard environment variables
(`AWS_ENDPOINT_URL`, `AWS_REGION`, ...), so the same code talks to moto locally and to AWS
in production with no branches.
"""

import functools

import boto3
from botocore.config import Config
from django.conf import settings

# Adaptive retries absorb throttling; a wide pool lets many request threads share a client.
_CONFIG = Config(retries={"max_attempts": 4, "mode": "standard"}, max_pool_connections=64)


@functools.cache
def client(service: str):
    """A shared, thread-safe client. `reset_clients()` drops them (tests change endpoints)."""
    return boto3.session.Session().client(service, region_name=settings.AWS_REGION, config=_CONFIG)


def reset_clients() -> None:
    client.cache_clear()


def dynamodb():
    return client("dynamodb")


def kinesis():
    return client("kinesis")


def sqs():
    return client("sqs")


def dynamodbstreams():
    return client("dynamodbstreams")


def lambda_():
    return client("lambda")


def cloudwatch():
    return client("cloudwatch")


def sns():
    return client("sns")


def cloudformation():
    return client("cloudformation")


def apigateway():
    return client("apigateway")


def dlq_url() -> str:
    return sqs().get_queue_url(QueueName=settings.DLQ_QUEUE)["QueueUrl"]


def dlq_counts() -> tuple[int, int]:
    """(messages waiting, messages received and not yet deleted) in the dead-letter queue."""
    attributes = sqs().get_queue_attributes(
        QueueUrl=dlq_url(), AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])
