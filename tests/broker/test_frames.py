"""frames.py: the o/h/a/c codec, with its decoder fuzzed."""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_gateway.server.broker.errors import ProtocolError
from trading_gateway.server.broker.frames import (
    BadMessage,
    CloseFrame,
    DataFrame,
    Event,
    FrameError,
    HeartbeatFrame,
    OpenFrame,
    Response,
    decode_frame,
    encode_authorize,
    encode_request,
)


def test_open_heartbeat_close_frames() -> None:
    assert decode_frame("o") == OpenFrame()
    assert decode_frame("h") == HeartbeatFrame()
    assert decode_frame('c[1000,"Normal closure"]') == CloseFrame(1000, "Normal closure")
    assert decode_frame("c") == CloseFrame(None, "")
    assert decode_frame("cgarbage") == CloseFrame(None, "garbage")


def test_batch_with_response_and_event() -> None:
    frame = decode_frame(
        'a[{"s":200,"i":3,"d":{"x":1}},{"e":"props","d":{"entityType":"order"}},{"s":401,"i":0}]'
    )
    assert isinstance(frame, DataFrame)
    first, second, third = frame.messages
    assert isinstance(first, Response) and (first.request_id, first.status) == (3, 200)
    assert json.loads(bytes(first.data)) == {"x": 1}
    assert isinstance(second, Event) and second.kind == "props"
    assert isinstance(third, Response) and third.status == 401
    assert bytes(third.data) == b"null"


def test_one_bad_element_keeps_its_neighbours() -> None:
    frame = decode_frame('a[{"s":200,"i":1},42,{"i":"x"},{"nothing":1},{"e":"md","d":{}}]')
    assert isinstance(frame, DataFrame)
    kinds = [type(m) for m in frame.messages]
    assert kinds == [Response, BadMessage, BadMessage, BadMessage, Event]


def test_bad_frames_raise_frame_error_which_is_a_protocol_error() -> None:
    bad_frames: list[str | bytes] = ["", "x", "a", "a{", 'a{"s":1}', "a[1,", b"\xff\xfe"]
    for bad in bad_frames:
        with pytest.raises(FrameError):
            decode_frame(bad)
    assert issubclass(FrameError, ProtocolError)


def test_encode_request_lines() -> None:
    text = encode_request(
        "/order/placeorder", 7, body={"accountId": 1, "price": Decimal("5000.25")}
    )
    assert text == 'order/placeorder\n7\n\n{"accountId":1,"price":5000.25}'
    assert encode_request("account/list", 2) == "account/list\n2\n\n"
    assert encode_request("position/ldeps", 3, query={"masterids": "1,2"}).split("\n")[2] == (
        "masterids=1,2"
    )
    assert encode_request("x/deps", 4, query="masterid=9") == "x/deps\n4\nmasterid=9\n"
    assert encode_authorize(0, "tok") == "authorize\n0\n\ntok"


def test_encode_rejects_newlines() -> None:
    with pytest.raises(ValueError):
        encode_authorize(0, "to\nken")
    with pytest.raises(ValueError):
        encode_request("a\nb", 1)


# -- fuzz ----------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["e", "i", "s", "d", "x"]) | st.text(max_size=4), inner, max_size=5
        )
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_decoder_raises_only_frame_error_on_anything(data: str | bytes) -> None:
    try:
        frame = decode_frame(data)
    except FrameError:
        return
    assert isinstance(frame, OpenFrame | HeartbeatFrame | CloseFrame | DataFrame)
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    assert raw[:1] in (b"o", b"h", b"c", b"a")


@settings(max_examples=400, deadline=None)
@given(st.lists(json_values, max_size=6))
def test_any_json_array_decodes_without_raising(elements: list[object]) -> None:
    text = "a" + json.dumps(elements)
    frame = decode_frame(text)
    assert isinstance(frame, DataFrame)
    assert len(frame.messages) == len(elements)
    for message, element in zip(frame.messages, elements, strict=True):
        if isinstance(element, dict) and isinstance(element.get("e"), str):
            assert isinstance(message, Event)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**31),
    st.integers(min_value=100, max_value=599),
    json_values,
)
def test_response_round_trip(request_id: int, status: int, payload: object) -> None:
    text = "a" + msgspec.json.encode([{"s": status, "i": request_id, "d": payload}]).decode()
    frame = decode_frame(text)
    assert isinstance(frame, DataFrame)
    (message,) = frame.messages
    assert isinstance(message, Response)
    assert (message.request_id, message.status) == (request_id, status)
    assert msgspec.json.decode(bytes(message.data)) == msgspec.json.decode(
        msgspec.json.encode(payload)
    )
