"""``cvsyncd account``: the Cleanvoice account's credit balance."""

from __future__ import annotations

import argparse
import asyncio
from typing import TextIO

from cvsyncd.cleanvoice.answers import account_balance, balance_unit
from cvsyncd.cli.common import EXIT_OK, add_json_option, load, setup, write_json
from cvsyncd.config import Config, read_api_key
from cvsyncd.redact import register_secret


def arguments(parser: argparse.ArgumentParser, name: str) -> None:
    setup(parser, run)
    add_json_option(parser)


def run(args: argparse.Namespace, out: TextIO) -> int:
    config = load(args)
    account = asyncio.run(fetch_account(config))
    if args.json:
        return write_json(account, out)
    balance = account_balance(account)
    if balance is None:
        print("credit:       not told by this account's answer", file=out)
    else:
        print(f"credit:       {balance:g} {balance_unit(account)}", file=out)
    credit = account.get("credit")
    if isinstance(credit, dict) and {"subscription", "payg"} & set(credit):
        print(
            f"              subscription {credit.get('subscription')}, "
            f"pay as you go {credit.get('payg')}",
            file=out,
        )
    if isinstance(account.get("account_type"), str):
        print(f"account type: {account['account_type']}", file=out)
    user = account.get("user")
    email = user.get("email") if isinstance(user, dict) else user
    if isinstance(email, str) and email:
        print(f"user:         {email}", file=out)
    return EXIT_OK


async def fetch_account(config: Config) -> dict[str, object]:
    """The account as ``GET /v1/account`` describes it (``cvsyncd account``)."""
    key = read_api_key(config)
    register_secret(key)
    from cvsyncd.cleanvoice.client import client_for

    async with client_for(config.cleanvoice, key) as client:
        account = await client.account()
    return dict(account)
