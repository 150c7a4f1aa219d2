"""OneRoster 1.1 CSV import: valid, missing columns, bad references, tobedeleted, deltas, names, sources."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.sync.roster import RosterError, build_roster, import_roster, load_roster, read_local

ORGS = """sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId
dist-1,,,Springfield District,district,SD,
sch-1,,,Lincoln Elementary,school,LIN,dist-1
sch-2,,,Other School,school,OTH,dist-1
"""
CLASSES = ("sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,"
           "schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods\n") + """\
cls-1,,,Math 4A,04,crs-1,M4A,scheduled,Room 12,sch-1,term-1,,,1
cls-2,,,Math 4B,04,crs-1,M4B,scheduled,Room 14,sch-2,term-1,,,2
"""
USERS = ("sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,"
         "middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\n") + """\
stu-1,,,true,sch-1,student,u1,,Ada,Lovelace,,,,,,,04,
stu-2,,,true,sch-1,student,u2,,Alan,Turing,,,,,,,04,
stu-3,,,true,sch-2,student,u3,,Grace,Hopper,,,,,,,04,
tea-1,,,true,"sch-1,sch-2",teacher,t1,,Mary,Teacher,,,,,,,,
"""
ENROLLMENTS = ("sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,"
               "beginDate,endDate\n") + """e-1,,,cls-1,sch-1,stu-1,student,,,
e-2,,,cls-1,sch-1,stu-2,student,,,
e-3,,,cls-2,sch-2,stu-3,student,,,
e-4,,,cls-1,sch-1,tea-1,teacher,true,,
"""


def files(**override: str) -> dict[str, str]:
    base = {"orgs.csv": ORGS, "classes.csv": CLASSES, "users.csv": USERS, "enrollments.csv": ENROLLMENTS}
    base.update({k.replace("_", ".", 1) if k.endswith("_csv") else k: v for k, v in override.items()})
    return base


def write_dir(path: Path, data: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in data.items():
        (path / name).write_text(text)
    return path


def test_valid_roster_without_names_by_default() -> None:
    r = build_roster(files())
    assert r.summary() == {"orgs": 3, "classes": 2, "students": 3, "teachers": 1, "enrollments": 4}
    assert r.students_of("cls-1") == ["stu-1", "stu-2"]
    assert all("givenName" not in u and "familyName" not in u for u in r.users.values())
    assert b"Lovelace" not in r.to_json()


def test_names_kept_only_when_allowed() -> None:
    r = build_roster(files(), keep_names=True)
    assert r.users["stu-1"]["givenName"] == "Ada" and r.users["stu-1"]["familyName"] == "Lovelace"


def test_unit_school_keeps_only_its_classes() -> None:
    r = build_roster(files(), school="LIN")
    assert set(r.classes) == {"cls-1"} and set(r.users) == {"stu-1", "stu-2", "tea-1"}
    with pytest.raises(RosterError, match=r"no org matches unit.school 'Nowhere'"):
        build_roster(files(), school="Nowhere")


@pytest.mark.parametrize(("name", "drop", "column"), [
    ("users.csv", "role", "role"), ("enrollments.csv", "userSourcedId", "userSourcedId"),
    ("classes.csv", "schoolSourcedId", "schoolSourcedId"), ("orgs.csv", "type", "type"),
])
def test_missing_required_column_is_named(name: str, drop: str, column: str) -> None:
    text = files()[name]
    header = text.splitlines()[0]
    idx = header.split(",").index(drop)
    cut = "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != idx) for line in [header]) + "\n"
    with pytest.raises(RosterError, match=f"{name}: missing required column\\(s\\): {column}"):
        build_roster(files(**{name: cut}))


def test_missing_file_and_empty_value_and_bad_enum() -> None:
    data = files()
    del data["users.csv"]
    with pytest.raises(RosterError, match=r"users.csv: missing"):
        build_roster(data)
    bad = USERS.replace("stu-2,,,true,sch-1,student", "stu-2,,,true,sch-1,pupil")
    with pytest.raises(RosterError, match=r"users.csv line 3 column role: must be one of"):
        build_roster(files(users_csv=bad))
    empty = ENROLLMENTS.replace("e-2,,,cls-1,sch-1,stu-2", "e-2,,,,sch-1,stu-2")
    with pytest.raises(RosterError, match=r"enrollments.csv line 3 column classSourcedId: required value is empty"):
        build_roster(files(enrollments_csv=empty))
    blob = USERS.replace("stu-2,,,true,sch-1,student,u2", "stu-2,,,true,sch-1,student," + "u" * 200_000)
    with pytest.raises(RosterError, match=r"users.csv line 3: bad CSV: field larger than field limit"):
        build_roster(files(users_csv=blob))


@pytest.mark.parametrize(("file", "old", "new", "column"), [
    ("enrollments.csv", "e-3,,,cls-2,sch-2,stu-3", "e-3,,,cls-9,sch-2,stu-3", "classSourcedId"),
    ("enrollments.csv", "e-3,,,cls-2,sch-2,stu-3", "e-3,,,cls-2,sch-2,stu-9", "userSourcedId"),
    ("classes.csv", "Room 14,sch-2", "Room 14,sch-9", "schoolSourcedId"),
    ("users.csv", "stu-3,,,true,sch-2", "stu-3,,,true,sch-7", "orgSourcedIds"),
])
def test_bad_references_name_file_line_and_column(file: str, old: str, new: str, column: str) -> None:
    data = files()
    data[file] = data[file].replace(old, new)
    with pytest.raises(RosterError, match=f"{file} line \\d+ column {column}: refers to a sourcedId not in"):
        build_roster(data)


def test_tobedeleted_rows_and_their_enrollments_are_dropped() -> None:
    users = USERS.replace("stu-2,,,true", "stu-2,tobedeleted,2026-03-01,true")
    enr = ENROLLMENTS.replace("e-3,,", "e-3,tobedeleted,2026-03-01")
    r = build_roster(files(users_csv=users, enrollments_csv=enr))
    assert "stu-2" not in r.users and "e-2" not in r.enrollments and "e-3" not in r.enrollments
    assert r.students_of("cls-1") == ["stu-1"]


def test_delta_files_update_the_stored_roster(tmp_path: Path, make_config: Any) -> None:
    config = make_config()
    import_roster(config, str(write_dir(tmp_path / "bulk", files())))
    delta = {
        "manifest.csv": "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.orgs,absent\n"
                        "file.classes,absent\nfile.users,delta\nfile.enrollments,delta\n",
        "users.csv": USERS.splitlines()[0] + "\nstu-1,tobedeleted,2026-03-05,true,sch-1,student,u1,,,,,,,,,,04,\n"
                     "stu-4,active,2026-03-05,true,sch-1,student,u4,,Kim,New,,,,,,,04,\n",
        "enrollments.csv": ENROLLMENTS.splitlines()[0] + "\ne-1,tobedeleted,2026-03-05,cls-1,sch-1,stu-1,student,,,\n"
                           "e-5,active,2026-03-05,cls-1,sch-1,stu-4,student,,,\n",
    }
    import_roster(config, str(write_dir(tmp_path / "delta", delta)))
    r = load_roster(config)
    assert r is not None and r.students_of("cls-1") == ["stu-2", "stu-4"]


def test_zip_source_and_cli(tmp_path: Path, make_config: Any, capsys: pytest.CaptureFixture[str]) -> None:
    z = tmp_path / "roster.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name, text in files().items():
            zf.writestr(f"export/{name}", text)
    assert set(read_local(z)) == set(files())
    config = make_config()
    toml = tmp_path / "edge.toml"
    toml.write_text(f'[unit]\nstate_dir = "{config.state_dir}"\nschool = "sch-1"\n')
    assert main(["--config", str(toml), "sync", "roster", str(z)]) == 0
    out = capsys.readouterr().out
    assert "1 classes, 2 students, 1 teachers, 3 enrollments" in out and "stu-" not in out
    bad = tmp_path / "bad"
    write_dir(bad, files(enrollments_csv=ENROLLMENTS.replace("stu-3,student", "nobody,student")))
    assert main(["--config", str(toml), "sync", "roster", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edge: error: roster: enrollments.csv line 4 column userSourcedId")
    assert load_roster(config) is not None  # the failed import left the previous roster in place


async def test_roster_url_is_downloaded_and_other_urls_refused(tmp_path: Path, make_config: Any) -> None:
    import asyncio
    import io

    from aiohttp import web

    from edge.sync.roster import fetch
    from tests.net import free_port

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files().items():
            zf.writestr(name, text)
    seen: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.Response(body=buf.getvalue(), content_type="application/zip")

    app = web.Application()
    app.router.add_get("/oneroster.zip", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/oneroster.zip"
    try:
        config = make_config(district={"roster_url": url, "lrs_token": "tok",
                                       "lrs_url": f"http://127.0.0.1:{port}/xAPI"})
        got = await fetch(config, url)
        assert set(got) == set(files()) and seen == ["Bearer tok"]
        with pytest.raises(RosterError, match=r"only the configured district.roster_url"):
            await fetch(config, url + "?other")
        await asyncio.sleep(0)
    finally:
        await runner.cleanup()
