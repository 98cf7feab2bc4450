"""tnt.logs: the scope is always explicit, and one filter builder serves attempts and deliveries."""

import pytest

from tnt import logs


def test_a_scope_is_one_account_or_all_accounts_never_neither():
    assert logs.Scope.account(3).account_id == 3 and not logs.Scope.account(3).everyone
    assert logs.Scope.all_accounts().everyone
    for bad in (
        lambda: logs.Scope.account(None),
        lambda: logs.Scope(None),
        lambda: logs.Scope(3, everyone=True),
    ):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(TypeError):
        logs.LogQuery()  # no scope, no query


def test_one_filter_builder_for_attempts_and_deliveries(app):
    q = logs.LogQuery(
        logs.Scope.account(7), endpoint_id=2, event="sms.sent", message_id=9, mobile="254712345678"
    )
    on_attempt = " AND ".join(str(c) for c in logs.conditions(q, logs.ON_ATTEMPT))
    on_delivery = " AND ".join(str(c) for c in logs.conditions(q, logs.ON_DELIVERY))
    assert on_attempt == (
        "attempt.account_id = :account_id_1 AND attempt.endpoint_id = :endpoint_id_1 AND "
        "attempt.event_type = :event_type_1 AND attempt.delivery_id IN (SELECT delivery.id \n"
        "FROM delivery JOIN event ON event.id = delivery.event_id \n"
        "WHERE event.message_id = :message_id_1) AND attempt.mobile = :mobile_1"
    )
    assert on_delivery == (
        "delivery.account_id = :account_id_1 AND delivery.endpoint_id = :endpoint_id_1 AND "
        "event.type = :type_1 AND event.message_id = :message_id_1 AND event.message_id IN "
        "(SELECT message.id \nFROM message \nWHERE message.mobile = :mobile_1)"
    )
    # Support's "all accounts" has no account condition at all.
    assert logs.conditions(logs.LogQuery(logs.Scope.all_accounts()), logs.ON_ATTEMPT) == []
