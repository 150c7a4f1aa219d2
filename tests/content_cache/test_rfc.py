"""The pure RFC 9110/9111 layer: field parsing (content_cache.fields) and the caching decisions built on it
(content_cache.http). Each case cites the rule it checks."""

from __future__ import annotations

import calendar

import pytest
from multidict import CIMultiDict

from content_cache.fields import (
    DELTA_MAX,
    delta_seconds,
    end_to_end,
    parse_age,
    parse_cache_control,
    parse_http_date,
    parse_sf_dictionary,
    split_list,
)
from content_cache.http import (
    HEURISTIC_MAX_S,
    check_conditionals,
    freshness,
    initial_age,
    invalidates,
    request_directives,
    response_directives,
    revalidation_matches,
    satisfies,
    secondary_key,
    storable,
    stored_fields,
    updated_fields,
    vary_names,
    worth_storing,
)

T2050 = float(calendar.timegm((2050, 8, 18, 2, 1, 18)))


def fields(*pairs: tuple[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(pairs)


@pytest.mark.parametrize(("value", "expected"), [
    ("Thu, 18 Aug 2050 02:01:18 GMT", T2050),  # IMF-fixdate
    ("THU, 18 AUG 2050 02:01:18 gMT", T2050),  # ABNF literals are case-insensitive
    ("Thursday, 18-Aug-50 02:01:18 GMT", T2050),  # rfc850-date: 50 is within 50 years ahead
    ("Thu Aug 18 02:01:18 2050", T2050),  # asctime-date
    ("Thu Aug  8 02:01:18 2050", T2050 - 10 * 86400),  # asctime pads a one-digit day with a space
    ("Thu, 18 Aug 2050 02:01:18 UTC", None),
    ("Thu, 18 Aug 2050 02:01:18 AEST", None),
    ("Thu, 18 Aug 50 02:01:18 GMT", None),  # two-digit year only in rfc850-date
    ("Thu 18 Aug 2050 02:01:18 GMT", None),
    ("Thu, 18  Aug  2050 02:01:18 GMT", None),
    ("Thu, 18-Aug-2050 02:01:18 GMT", None),
    ("Thu, 18 Aug 2050 02.01.18 GMT", None),
    ("Thu, 18 Aug 2050 2:01:18 GMT", None),
    ("Thu, 31 Feb 2050 02:01:18 GMT", None),
    ("0", None),
    ("", None),
])
def test_http_dates(value: str, expected: float | None) -> None:
    assert parse_http_date(value, now=T2050 - 86400 * 365 * 20) == expected


def test_rfc850_years_more_than_50_years_ahead_are_in_the_past() -> None:
    now = float(calendar.timegm((2026, 1, 1, 0, 0, 0)))
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now) == calendar.timegm((1994, 11, 6, 8, 49, 37))
    assert parse_http_date("Monday, 06-Nov-75 08:49:37 GMT", now) == calendar.timegm((2075, 11, 6, 8, 49, 37))


def test_cache_control_parsing() -> None:
    # Quoted strings may hold commas and directive-like text; the first occurrence of a directive wins.
    assert parse_cache_control(['extension="max-age=3600", max-age=1']) == {"extension": "max-age=3600",
                                                                          "max-age": "1"}
    assert parse_cache_control(["max-age=1, max-age=1800"])["max-age"] == "1"
    assert parse_cache_control(["max-age=3600", "s-maxage=1"]) == {"max-age": "3600", "s-maxage": "1"}
    assert parse_cache_control(["MaX-aGe=3600, No-StOrE"]) == {"max-age": "3600", "no-store": None}
    # Not directives: spaces around "=", a broken quoted string; the rest of the line still counts.
    assert parse_cache_control(["max-age =3600, public"]) == {"public": None}
    assert parse_cache_control(["max-age= 3600"]) == {}
    assert parse_cache_control(['no-cache="a, b", private']) == {"no-cache": "a, b", "private": None}
    assert parse_cache_control(['max-age="3600"']) == {"max-age": "3600"}


@pytest.mark.parametrize(("arg", "expected"), [
    ("003600", 3600), ("0", 0), ("2147483649", DELTA_MAX), ("99999999999", DELTA_MAX),
    ("-3600", None), ("3600.0", None), ("'3600'", None), ("a3600", None), ("", None), (None, None), ("٣", None),
])
def test_delta_seconds(arg: str | None, expected: int | None) -> None:
    assert delta_seconds(arg) == expected


@pytest.mark.parametrize(("lines", "expected"), [
    (["7200, 0"], 7200), (["0, 7200"], 0), (["7200", "0"], 7200), (["0", "7200"], 0),  # first member of first line
    (["abc"], None), (["-7200"], None), (["7200.0"], None), (["2147483648"], DELTA_MAX), ([], None),
])
def test_age_parsing(lines: list[str], expected: int | None) -> None:
    assert parse_age(fields(*(("Age", v) for v in lines))) == expected


def test_lists_and_end_to_end_fields() -> None:
    assert split_list(' a ,, "b, c" ,d ') == ["a", '"b, c"', "d"]
    h = fields(("Connection", "a, B"), ("a", "1"), ("b", "2"), ("c", "3"), ("Keep-Alive", "x"),
               ("Transfer-Encoding", "chunked"), ("Set-Cookie", "x=1"), ("Set-Cookie", "y=2"))
    assert end_to_end(h) == [("c", "3"), ("Set-Cookie", "x=1"), ("Set-Cookie", "y=2")]


def test_structured_dictionaries() -> None:
    assert parse_sf_dictionary(["max-age=3600, private"]) == {"max-age": 3600, "private": True}
    assert parse_sf_dictionary(['no-cache=("a" "b");x=1']) == {"no-cache": ["a", "b"]}
    for bad in ("max-age=10000, &&&&&", "MaX-aGe=3600", "max-age =100", "max-age=1,"):
        assert parse_sf_dictionary([bad]) is None


def test_freshness_lifetime_and_age() -> None:
    now = 10_000.0
    # s-maxage first for a shared cache; Age from upstream corrected by the request's round trip (§4.2.3).
    f = freshness(fields(("Cache-Control", "max-age=3600, s-maxage=60"), ("Age", "30")), now=now,
                  request_time=now - 2)
    assert (f.fresh_until, f.initial_age, f.no_stale) == (now + 60 - 32, 32, True)  # s-maxage ⇒ proxy-revalidate
    # Apparent age: received 500 s after its Date; a Date has whole seconds, so does the comparison.
    assert initial_age(fields(("Date", "Thu, 01 Jan 1970 00:00:00 GMT")), 500.0, 500.0) == 500.0
    assert initial_age(fields(("Date", "Thu, 01 Jan 1970 00:08:20 GMT")), 500.9, 500.9) == 0.0
    # max-age wins over Expires; an invalid Expires alone means already expired.
    past = "Thu, 01 Jan 1970 00:00:01 GMT"
    assert freshness(fields(("Cache-Control", "max-age=3600"), ("Expires", past)), now=now).fresh_until == now + 3600
    assert freshness(fields(("Expires", "0")), 3600, now=now).fresh_until == now
    assert freshness(fields(("Expires", "0"), ("Last-Modified", past)), now=now).fresh_until == now  # no heuristic
    # Heuristic: 10% of the time since Last-Modified, capped; none without Last-Modified or for a 201.
    lm = fields(("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT"), ("Date", "Thu, 01 Jan 1970 00:16:40 GMT"))
    assert freshness(lm, now=1000.0).fresh_until == 1000.0 + 100.0
    assert freshness(lm, now=1000.0, status=201).fresh_until == 1000.0
    old = fields(("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT"))
    assert freshness(old, now=now * 1000).fresh_until == now * 1000 + HEURISTIC_MAX_S
    assert freshness(fields(), now=now).fresh_until == now
    # A per-origin default TTL replaces the heuristic, never explicit freshness.
    assert freshness(old, 50, now=now).fresh_until == now + 50
    assert freshness(fields(("Cache-Control", "max-age=5")), 50, now=now).fresh_until == now + 5
    # no-cache: stored, validated before each reuse, never served stale; must-revalidate likewise when stale.
    nc = freshness(fields(("Cache-Control", "max-age=10000, no-cache, stale-if-error=60")), now=now)
    assert (nc.store, nc.fresh_until, nc.no_stale, nc.sie_s) == (True, now, True, 0.0)
    assert freshness(fields(("Cache-Control", 'no-cache="Set-Cookie", max-age=60')), now=now).fresh_until == now + 60
    swr = freshness(fields(("Cache-Control", "max-age=1, stale-while-revalidate=30, stale-if-error=600")), now=now)
    assert (swr.swr_s, swr.sie_s, swr.no_stale) == (30.0, 600.0, False)


def test_targeted_cache_control_replaces_cache_control_and_expires() -> None:
    now = 1000.0
    h = fields(("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=600"))
    f = freshness(h, now=now)
    assert (f.store, f.fresh_until) == (True, now + 600)
    assert not freshness(h, now=now, targeted=()).store  # the origin setting cdn_cache_control = false
    private = fields(("CDN-Cache-Control", "private"), ("Cache-Control", "max-age=10000"))
    assert not freshness(private, now=now).store
    # Invalid or wrongly typed: ignored as a whole; Cache-Control applies.
    for value in ("max-age=10000, &&&&&", 'max-age="10000"'):
        assert not freshness(fields(("CDN-Cache-Control", value), ("Cache-Control", "no-store")), now=now).store
    assert response_directives(fields(("CDN-Cache-Control", "max-age=5")), ()).directives == {}


def test_what_a_shared_cache_may_store() -> None:
    none = fields()
    cc = fields
    assert storable(200, cc(("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT")), none)
    assert not storable(200, cc(("Cache-Control", "private, max-age=60")), none)
    assert storable(200, cc(("Cache-Control", 'private="Set-Cookie", max-age=60')), none)
    assert not storable(200, cc(("Cache-Control", "max-age=60, no-store")), none)
    assert storable(200, cc(("Cache-Control", "max-age=60, no-store, must-understand")), none)
    assert not storable(599, cc(("Cache-Control", "max-age=60, no-store, must-understand")), none)
    for status, ok in ((201, False), (302, False), (403, False), (503, False), (404, True), (501, True)):
        assert storable(status, none, none) is ok, status  # heuristically cacheable statuses only
    assert storable(503, cc(("Cache-Control", "max-age=60")), none)  # any final status with explicit freshness
    assert not storable(206, cc(("Cache-Control", "max-age=60")), none)
    assert storable(599, cc(("Cache-Control", "public")), none)
    auth = fields(("Authorization", "Bearer student-7"))
    assert not storable(200, cc(("Cache-Control", "max-age=60")), auth)  # §3.5
    for allowing in ("public, max-age=60", "s-maxage=60", "max-age=60, must-revalidate"):
        assert storable(200, cc(("Cache-Control", allowing)), auth)
    # A cookie-setting response needs explicit freshness: the heuristic alone never shares it.
    cookie = ("Set-Cookie", "session=student-7")
    assert not storable(200, cc(cookie, ("Last-Modified", "Thu, 01 Jan 1970 00:00:00 GMT")), none)
    assert storable(200, cc(cookie, ("Cache-Control", "max-age=60")), none)
    assert not worth_storing(404, none, fresh=False) and worth_storing(404, cc(("ETag", '"x"')), fresh=False)
    assert worth_storing(200, none, fresh=False)


def test_stored_and_updated_fields() -> None:
    h = fields(("Cache-Control", 'no-cache="a", max-age=60'), ("a", "1"), ("b", "2"), ("Age", "5"),
               ("Content-Length", "3"), ("Connection", "close"), ("Date", "Thu, 01 Jan 1970 00:00:00 GMT"))
    assert stored_fields(h) == [("Cache-Control", 'no-cache="a", max-age=60'), ("b", "2"),
                                ("Date", "Thu, 01 Jan 1970 00:00:00 GMT")]
    assert [k for k, _ in stored_fields(fields(("X", "1")))] == ["X", "Date"]  # a Date is added (RFC 9110 §6.6.1)
    stored = [("ETag", '"a"'), ("Test-Header", "1"), ("Content-Length", "36")]
    new = fields(("Test-Header", "2"), ("Content-Length", "10"), ("X-New", "y"))
    assert updated_fields(stored, new) == [("ETag", '"a"'), ("Content-Length", "36"), ("Test-Header", "2"),
                                           ("X-New", "y")]
    assert revalidation_matches('"a"', fields(("ETag", '"a"'))) and revalidation_matches('"a"', fields())
    assert not revalidation_matches('"a"', fields(("ETag", '"b"')))


def test_vary() -> None:
    assert vary_names(fields(("Vary", "Foo, bar"), ("Vary", "FOO"))) == ("bar", "foo")
    for star in ("*", "*, *", "Foo, *", ", *"):
        assert vary_names(fields(("Vary", star))) is None
    assert vary_names(fields(("Vary", ""), ("Vary", "*"))) is None
    names = ("foo",)
    key = secondary_key(names, fields(("Foo", "1, 2")))
    assert secondary_key(names, fields(("Foo", "1"), ("Foo", "2"))) == key  # lines combined
    assert secondary_key(names, fields(("Foo", " 1 ,  2 "))) == key  # whitespace
    assert secondary_key(names, fields(("Foo", "2, 1"))) != key  # order matters for an unknown field
    assert secondary_key(names, fields()) != secondary_key(names, fields(("Foo", "")))  # absent ≠ empty
    lang = ("accept-language",)
    base = secondary_key(lang, fields(("Accept-Language", "en, de")))
    assert base == secondary_key(lang, fields(("Accept-Language", "De,EN")))
    assert base != secondary_key(lang, fields(("Accept-Language", "fr")))
    assert secondary_key(("foo", "other"), fields(("Foo", "1"), ("Other", "2"))) != secondary_key(
        ("foo", "other"), fields(("Foo", "1"), ("Other", "3")))


def test_request_directives() -> None:
    now = 1000.0
    assert request_directives(fields(("Pragma", "no-cache"))) == {"no-cache": None}
    assert request_directives(fields(("Pragma", "no-cache"), ("Cache-Control", "x"))) == {"x": None}  # §5.4
    assert satisfies({}, now + 1, 0, now) and not satisfies({}, now, 0, now)
    assert not satisfies({"no-cache": None}, now + 100, 0, now)
    assert not satisfies({"max-age": "600"}, now + 100, 1800, now)
    assert not satisfies({"min-fresh": "200"}, now + 100, 0, now)
    assert satisfies({"max-stale": "1000"}, now - 10, 0, now) and satisfies({"max-stale": None}, 0.0, 0, now)
    assert not satisfies({"max-stale": "5"}, now - 10, 0, now)
    assert satisfies({"nothing-to-see-here": None}, now + 1, 0, now)


def test_invalidation_and_conditionals() -> None:
    assert invalidates("POST", 201) and invalidates("M-SEARCH", 302) and invalidates("delete", 200)
    assert not invalidates("POST", 500) and not invalidates("OPTIONS", 200) and not invalidates("GET", 200)
    date = 1_700_000_000.0
    ims = {"If-Modified-Since": "Tue, 14 Nov 2023 22:13:20 GMT"}
    assert check_conditionals(ims, None, None, date) == 304  # no Last-Modified: the Date (RFC 9111 §4.3.2)
    assert check_conditionals(ims, None, None, date + 1) is None
