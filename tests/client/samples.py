"""Real contract messages for client tests: two accounts, one of them failing its orders."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import code_pb2
from tradovate_gateway.v1 import trading_pb2 as pb

AS_OF = timestamp_pb2.Timestamp(seconds=1_795_000_000)  # 2026-11-18 11:06:40 UTC


def dec(text: str) -> pb.Decimal:
    return pb.Decimal(value=text)


def meta(account_id: int, name: str, code: int = code_pb2.OK, message: str = "") -> pb.AccountMeta:
    status = pb.AccountStatus(code=code, message=message)
    if code == code_pb2.DEADLINE_EXCEEDED:
        status.reason = "UPSTREAM_TIMEOUT"
        status.retry_after.CopyFrom(duration_pb2.Duration(seconds=2))
    return pb.AccountMeta(
        account_id=account_id,
        account_name=name,
        status=status,
        source=pb.SOURCE_LIVE,
        as_of=AS_OF,
    )


ACCOUNTS = [
    pb.Account(
        id=101,
        name="DEMO1",
        user_id=9,
        account_type=pb.ACCOUNT_TYPE_CUSTOMER,
        active=True,
        margin_account_type="Speculator",
        legal_status="Individual",
        timestamp=AS_OF,
    ),
    pb.Account(id=102, name="DEMO2", user_id=9, account_type=pb.ACCOUNT_TYPE_CUSTOMER, active=True),
]

LIST_ACCOUNTS = pb.ListAccountsResponse(accounts=ACCOUNTS, source=pb.SOURCE_CACHE, as_of=AS_OF)

POSITIONS = pb.GetPositionsResponse(
    accounts=[
        pb.AccountPositions(
            meta=meta(101, "DEMO1"),
            positions=[
                pb.Position(
                    id=1,
                    account_id=101,
                    account_name="DEMO1",
                    contract_id=3001,
                    symbol="ESZ6",
                    net_pos=2,
                    net_price=dec("5012.25"),
                    open_pnl=dec("-137.50"),
                ),
                pb.Position(
                    id=2,
                    account_id=101,
                    account_name="DEMO1",
                    contract_id=3002,
                    symbol="MNQZ6",
                    net_pos=-10,
                    net_price=dec("20110.5"),
                    open_pnl=dec("1250"),
                ),
            ],
        ),
        pb.AccountPositions(
            meta=meta(102, "DEMO2", code_pb2.DEADLINE_EXCEEDED, "Tradovate did not answer in time")
        ),
    ],
    server_time=AS_OF,
)

ORDERS = pb.GetOrdersResponse(
    accounts=[
        pb.AccountOrders(
            meta=meta(101, "DEMO1"),
            orders=[
                pb.Order(
                    id=7001,
                    account_id=101,
                    account_name="DEMO1",
                    contract_id=3001,
                    symbol="ESZ6",
                    side=pb.SIDE_BUY,
                    qty=3,
                    filled_qty=1,
                    order_type=pb.ORDER_TYPE_STOP_LIMIT,
                    limit_price=dec("5000.25"),
                    stop_price=dec("5001"),
                    status=pb.ORDER_STATUS_WORKING,
                    created_time=AS_OF,
                    working=True,
                ),
                pb.Order(
                    id=7002,
                    account_id=101,
                    account_name="DEMO1",
                    contract_id=3002,
                    symbol="MNQZ6",
                    side=pb.SIDE_SELL,
                    qty=1,
                    order_type=pb.ORDER_TYPE_MARKET,
                    status=pb.ORDER_STATUS_PENDING_NEW,
                    working=True,
                ),
            ],
        ),
        pb.AccountOrders(meta=meta(102, "DEMO2", code_pb2.UNAVAILABLE, "Tradovate unreachable")),
    ],
    server_time=AS_OF,
)

PENDING = pb.ListPendingOrderIdsResponse(
    accounts=[
        pb.AccountOrderIds(meta=meta(101, "DEMO1"), order_ids=[7001, 7002]),
        pb.AccountOrderIds(meta=meta(102, "DEMO2"), order_ids=[]),
    ],
    server_time=AS_OF,
)

BALANCES = pb.GetBalancesResponse(
    accounts=[
        pb.AccountBalance(
            meta=meta(101, "DEMO1"),
            balance=pb.Balance(
                account_id=101,
                account_name="DEMO1",
                currency="USD",
                cash=dec("50000.00"),
                net_liquidation=dec("51112.50"),
                open_pnl=dec("1112.50"),
                realized_pnl=dec("-20.00"),
                initial_margin=dec("2400"),
                maintenance_margin=dec("2200"),
            ),
        ),
        pb.AccountBalance(
            meta=meta(102, "DEMO2", code_pb2.DEADLINE_EXCEEDED, "Tradovate did not answer in time")
        ),
    ],
    totals=pb.BalanceTotals(
        cash=dec("50000.00"),
        net_liquidation=dec("51112.50"),
        open_pnl=dec("1112.50"),
        realized_pnl=dec("-20.00"),
        initial_margin=dec("2400"),
        maintenance_margin=dec("2200"),
        accounts_included=1,
        accounts_failed=1,
    ),
    server_time=AS_OF,
)

SNAPSHOT = pb.GetSnapshotResponse(
    accounts=[
        pb.AccountSnapshot(
            account=ACCOUNTS[0],
            positions=POSITIONS.accounts[0],
            orders=ORDERS.accounts[0],
            balance=BALANCES.accounts[0],
        ),
        pb.AccountSnapshot(
            account=ACCOUNTS[1],
            positions=POSITIONS.accounts[1],
            orders=ORDERS.accounts[1],
            balance=BALANCES.accounts[1],
        ),
    ],
    totals=BALANCES.totals,
    server_time=AS_OF,
)
