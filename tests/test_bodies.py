"""Large cached bodies (the whole CSV, plot.json?all=1): a gzip copy made once, sent to clients
that accept it, with an ETag per encoding."""

from __future__ import annotations

import gzip

import pytest
from fastapi import Request

from web.bodies import GZIP_FROM, Body, accepts_gzip, send


def _request(**headers: str) -> Request:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


BIG = b"submission_id,name,score\n" + b"12345,tiny-bert-4l,1.25\n" * (GZIP_FROM // 20)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("", False),
        ("gzip;q=x", False),
    ],
)
def test_accept_encoding(header: str, expected: bool) -> None:
    assert accepts_gzip(_request(accept_encoding=header)) is expected


def test_large_body_sent_gzipped_to_those_who_accept_it() -> None:
    body = Body.of(BIG)
    assert body.gzipped is not None
    assert gzip.decompress(body.gzipped) == BIG
    assert len(body.gzipped) < len(BIG) / 5

    packed = send(_request(accept_encoding="gzip"), body, "text/csv")
    plain = send(_request(accept_encoding="identity"), body, "text/csv")
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.body == body.gzipped
    assert "content-encoding" not in plain.headers
    assert plain.body == BIG
    assert packed.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
    assert packed.headers["etag"] != plain.headers["etag"]

    # 304 only for the ETag of the encoding this client gets.
    again = send(
        _request(accept_encoding="gzip", if_none_match=packed.headers["etag"]), body, "text/csv"
    )
    assert again.status_code == 304
    assert "content-encoding" not in again.headers
    other = send(
        _request(accept_encoding="gzip", if_none_match=plain.headers["etag"]), body, "text/csv"
    )
    assert other.status_code == 200


def test_small_body_never_compressed() -> None:
    body = Body.of(b'{"entries": []}')
    assert body.gzipped is None
    response = send(_request(accept_encoding="gzip"), body, "application/json")
    assert response.body == b'{"entries": []}'
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
