"""The operations page says whether the command and query sides agreed at start, and how they
compare now."""

import re

import pytest

from admin_portal.models import ConsistencyCheck, ConsistencyOutcome
from tests.factories import make_customer

OPERATIONS = "/admin/admin_portal/shardcheckpoint/"


def row(page: str, entity: str) -> list[str]:
    found = re.search(rf"<tr>\s*<td>{entity}</td>(.*?)</tr>", page, re.S)
    return [cell.strip() for cell in re.findall(r"<td>(.*?)</td>", found.group(1), re.S)]


@pytest.mark.django_db
def test_a_divergence_found_at_start_is_shown_loudly_with_both_sides_now(admin_client, aws_env, settings):
    settings.CDC_LOCAL_POLLER = True
    ConsistencyCheck.objects.create(
        outcome=ConsistencyOutcome.REPAIRED,
        command_side={"CUSTOMER": {"items": 0, "versions": 0}},
        query_side={"CUSTOMER": {"items": 1, "versions": 1}},
        ghosts=1,
        examples={"ghosts": ["customer first1"]},
        summary="DIVERGED at start: 1 ghost(s) in the read model. Repaired: both sides agree now.",
    )
    make_customer("new1")  # in DynamoDB, not yet through the CDC

    response = admin_client.get(OPERATIONS)
    page = response.content.decode()

    assert response.status_code == 200
    assert re.search(r'id="consistency-outcome" class="errornote">.*diverged; repaired through the stream', page, re.S)
    assert "ghosts: customer first1" in page
    # DynamoDB now, read model now, DynamoDB at start, read model at start.
    assert row(page, "customer") == ["1 items (versions 1)", "0 items (versions 0)", "0 items (versions 0)", "1 items (versions 1)"]


@pytest.mark.django_db
def test_without_a_check_the_page_says_none_was_made(admin_client, aws_env):
    page = admin_client.get(OPERATIONS).content.decode()
    assert "No comparison yet" in page
    assert row(page, "order") == ["-", "-", "-", "-"]  # no live scan of DynamoDB off the local system
