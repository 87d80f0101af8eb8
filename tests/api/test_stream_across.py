"""The resume positions of a stream across logins: what a request asks per login, and
the text of an end status's ``resume_from`` (written by the server, read by the client)."""

from __future__ import annotations

import pytest
from tradovate_gateway.v1 import trading_pb2 as pb

from trading_gateway.client.watch import parse_positions
from trading_gateway.server.api.stream_across import asked_positions, login_request
from trading_gateway.server.errors import InvalidRequest
from trading_gateway.server.live.errors import SlowConsumer, format_positions, with_positions


def position(login: str, epoch: str, sequence: int) -> pb.StreamPosition:
    return pb.StreamPosition(login=login, epoch=epoch, sequence=sequence)


def test_resume_from_names_each_logins_position_and_ignores_other_logins() -> None:
    request = pb.StreamUpdatesRequest(
        resume_from=[position("a", "ea", 5), position("gone", "eg", 9), position("b", "eb", 7)]
    )
    assert asked_positions(request, ["a", "b", "c"]) == {"a": ("ea", 5), "b": ("eb", 7)}


def test_the_legacy_fields_name_the_position_of_a_one_login_stream_only() -> None:
    legacy = pb.StreamUpdatesRequest(resume_after_sequence=4, resume_epoch="e")
    assert asked_positions(legacy, ["a"]) == {"a": ("e", 4)}
    with pytest.raises(InvalidRequest, match="covers logins a, b: resume with resume_from"):
        asked_positions(legacy, ["a", "b"])
    # resume_from wins over the legacy fields for the same login.
    both = pb.StreamUpdatesRequest(
        resume_after_sequence=4, resume_epoch="e", resume_from=[position("a", "e", 6)]
    )
    assert asked_positions(both, ["a"]) == {"a": ("e", 6)}


def test_legacy_fields_that_repeat_a_resume_from_position_are_not_refused() -> None:
    # A watch that ended before its second login sent anything knows one position and,
    # for older servers, also writes it in the legacy fields: the stream over both
    # logins resumes (the first at its position, the second with a fresh snapshot).
    echoed = pb.StreamUpdatesRequest(
        resume_after_sequence=6, resume_epoch="e", resume_from=[position("a", "e", 6)]
    )
    assert asked_positions(echoed, ["a", "b"]) == {"a": ("e", 6)}
    # A legacy position of its own over several logins is still refused.
    other = pb.StreamUpdatesRequest(
        resume_after_sequence=4, resume_epoch="x", resume_from=[position("a", "e", 6)]
    )
    with pytest.raises(InvalidRequest, match="covers logins a, b"):
        asked_positions(other, ["a", "b"])


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ([position("", "e", 1)], "must name its login"),
        ([position("a", "e", 1), position("a", "e", 2)], "names login 'a' twice"),
    ],
)
def test_a_bad_resume_from_is_refused_with_what_to_fix(
    entries: list[pb.StreamPosition], words: str
) -> None:
    with pytest.raises(InvalidRequest, match=words) as raised:
        asked_positions(pb.StreamUpdatesRequest(resume_from=entries), ["a"])
    assert raised.value.field == "resume_from"


def test_a_logins_own_request_carries_its_position_in_the_legacy_fields() -> None:
    request = pb.StreamUpdatesRequest(resume_from=[position("a", "e", 3)], with_snapshot=False)
    own = login_request(request, ("e", 3))
    assert (own.resume_epoch, own.resume_after_sequence, list(own.resume_from)) == ("e", 3, [])
    assert own.HasField("with_snapshot") and not own.with_snapshot
    fresh = login_request(pb.StreamUpdatesRequest(resume_after_sequence=8, resume_epoch="x"), None)
    assert (fresh.resume_epoch, fresh.resume_after_sequence) == ("", 0)


def test_the_end_status_names_every_logins_position_in_text_the_client_reads_back() -> None:
    positions = {"alpha": ("0f3a", 12), "b-2": ("77", 0)}
    text = format_positions(positions)
    assert text == "alpha@0f3a:12,b-2@77:0"
    assert parse_positions(text) == positions
    assert parse_positions("alpha@0f3a:12,broken,x@y:z,") == {"alpha": ("0f3a", 12)}
    error = with_positions(SlowConsumer(sequence=12, epoch="0f3a"), "alpha", positions)
    assert error.metadata["resume_from"] == text
    assert error.metadata["login"] == "alpha"
    assert error.metadata["resume_after_sequence"] == "12"  # the one login's, as before
    assert str(error).endswith(f"(login alpha); resume with resume_from={text}")
