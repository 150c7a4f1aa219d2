"""Run Ralph (ralph-malph 5.1, file-system backend) for the tests; executed with `.lrs/venv/bin/python`.

    python ralph_serve.py PORT DATA_DIR USER PASSWORD

Why not `ralph runserver -b fs`: its fs LRS backend writes with operation type INDEX, which refuses an
existing file, so every POST after the first answers 500 ("fs_lrs.jsonl already exists"). Here the backend
appends instead; everything else (routing, auth, validation, duplicate/409 logic, storage) is Ralph's own.
This also runs uvicorn without the reloader child, and writes a Basic-auth user (bcrypt, cheap rounds).
"""

import json
import os
import sys
from pathlib import Path

import bcrypt


def main() -> None:
    port, data_dir, user, password = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    data_dir.mkdir(parents=True, exist_ok=True)
    auth_file = data_dir.parent / "auth.json"
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    auth_file.write_text(json.dumps([{
        "agent": {"mbox": f"mailto:{user}@example.org", "objectType": "Agent"},
        "scopes": ["all"], "hash": digest, "username": user,
    }]))
    os.environ.update({
        "RALPH_AUTH_FILE": str(auth_file),
        "RALPH_RUNSERVER_BACKEND": "fs",
        "RALPH_BACKENDS__DATA__FS__DEFAULT_DIRECTORY_PATH": str(data_dir),
        "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(data_dir),
        "RALPH_HISTORY_FILE": str(data_dir.parent / "history.json"),
    })
    os.chdir(data_dir)

    import uvicorn
    from ralph.backends.data.base import BaseOperationType
    from ralph.backends.lrs.fs import FSLRSBackend

    FSLRSBackend.default_operation_type = BaseOperationType.APPEND
    uvicorn.run("ralph.api:app", host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
