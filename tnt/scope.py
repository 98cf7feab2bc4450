"""Scope: whose rows a read may see. Every domain read of account-owned rows takes one.

The dashboard builds it in tnt/web/scope.py (support: all accounts or the chosen one), the API
in tnt/api/core.py (the key's account), the CLI per command; tests/test_tenancy_routes.py checks
that every read takes one and refuses anything else.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """Whose rows a read may see: one account's, or every account's (support staff only).

    Build it with Scope.account(id) or Scope.all_accounts(); an account scope without an
    account id is an error, never "everything".
    """

    account_id: int | None
    everyone: bool = False

    def __post_init__(self) -> None:
        if self.everyone != (self.account_id is None):
            raise ValueError("a Scope is one account's (an id) or all accounts', not neither")

    @classmethod
    def account(cls, account_id: int) -> "Scope":
        return cls(account_id)

    @classmethod
    def all_accounts(cls) -> "Scope":
        return cls(None, everyone=True)
