"""A local stand-in for a Hugging Face Hub endpoint, for offline tests of zoo.hub.

It speaks the parts of the Hub protocol that `huggingface_hub` uses to download one file and to
publish a commit:

- ``HEAD|GET /{repo_id}/resolve/{revision}/{filename}``: ``X-Repo-Commit`` (40-hex), a quoted
  ``ETag`` (the file's sha256, as the Hub gives for LFS files) and ``Content-Length``; ``Range:
  bytes=N-`` gives a 206. Errors carry ``X-Error-Code`` (``EntryNotFound``, ``RevisionNotFound``,
  ``RepoNotFound``), without which the client reports a misleading connection error.
- ``POST /api/repos/create``, ``/api/validate-yaml``, ``/api/models/{repo}/preupload/{rev}``,
  ``/api/models/{repo}/commit/{rev}`` (ndjson, base64 "regular" files only) and
  ``/api/models/{repo}/branch/{branch}``: enough for ``HfApi.create_repo`` / ``create_commit``.

Knobs to misbehave: ``delay`` (seconds before any response), ``body_delay`` (headers sent, then
silence), ``drop_after`` (GET bodies end at that file offset and the connection is closed,
``drops_left`` times), ``tamper`` (GET serves different bytes than HEAD announced) and
``token`` (every request must carry ``Authorization: Bearer <token>``). ``requests`` records
``(method, path, range)`` of every request.

Example:
    >>> hub = FakeHub().start()
    >>> commit = hub.publish("me/model", {"config.json": b"{}"})
    >>> hub.url  # pass as endpoint=
    'http://127.0.0.1:PORT'
    >>> hub.stop()
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class FakeHub:
    """Files per (repo, commit), branches, request log and failure knobs; see the module doc."""

    def __init__(self) -> None:
        self.commits: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> commit -> files
        self.branches: dict[str, dict[str, str]] = {}  # repo -> branch -> commit
        self.private: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []
        self.delay = 0.0
        self.body_delay = 0.0
        self.drop_after: int | None = None
        self.drops_left = 1_000_000
        self.tamper = False
        self.token: str | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- content --------------------------------------------------------------------------------

    def publish(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit ``files`` on top of ``branch`` (created if new); returns the 40-hex commit."""
        with self._lock:
            commits = self.commits.setdefault(repo_id, {})
            branches = self.branches.setdefault(repo_id, {})
            parent = branches.get(branch) or branches.get("main")
            tree = {**commits.get(parent, {}), **files}
            digest = hashlib.sha1(f"{repo_id}:{parent}:{len(commits)}".encode())
            for name in sorted(tree):
                digest.update(name.encode() + hashlib.sha256(tree[name]).digest())
            commit = digest.hexdigest()
            commits[commit] = tree
            branches[branch] = commit
            return commit

    def count(self, method: str | None = None) -> int:
        """Requests received (of one method, e.g. ``"GET"``)."""
        return sum(1 for m, _, _ in self.requests if method in (None, m))

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the hub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True, name="fake-hub").start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def wait(self, seconds: float) -> None:
        """Sleep that `stop` interrupts, so a stalled response never outlives its test."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def lookup(self, repo_id: str, revision: str) -> tuple[str | None, dict[str, bytes] | None]:
        with self._lock:
            commits = self.commits.get(repo_id, {})
            commit = self.branches.get(repo_id, {}).get(revision, revision)
            return (commit, commits[commit]) if commit in commits else (None, None)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like the real Hub; every response has a length
    fake: FakeHub

    def log_message(self, format, *args):  # noqa: A002 - keep pytest output clean
        pass

    # -- plumbing -------------------------------------------------------------------------------

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
               send_body: bool = True) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:  # tell the client not to reuse this connection
            self.send_header("Connection", "close")
        self.end_headers()
        if send_body and body:
            self.wfile.write(body)

    def _json(self, status: int, doc: dict, headers: dict[str, str] | None = None) -> None:
        self._reply(status, json.dumps(doc).encode(),
                    {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str, message: str, extra: dict | None = None,
               send_body: bool = True) -> None:
        self._reply(status, json.dumps({"error": message}).encode(),
                    {"X-Error-Code": code, "X-Error-Message": message, **(extra or {})},
                    send_body=send_body)

    def _start(self) -> bool:
        """Log the request, apply the delay and the token check; False if already answered."""
        fake = self.fake
        if fake._stopping.is_set():  # a kept-alive connection outliving stop(): hang up
            self.close_connection = True
            return False
        fake.requests.append((self.command, self.path, self.headers.get("Range")))
        fake.wait(fake.delay)
        if fake.token is not None and self.headers.get("Authorization") != f"Bearer {fake.token}":
            # What the Hub answers for a private repo without a valid token. The body of a POST
            # is left unread, so this connection cannot be reused.
            self.close_connection = True
            self._error(401, "RepoNotFound", "Invalid credentials in Authorization header",
                        send_body=self.command != "HEAD")
            return False
        return True

    def _read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    # -- resolve --------------------------------------------------------------------------------

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        if self._start():
            self._resolve(send_body=False)

    def do_GET(self) -> None:  # noqa: N802
        if self._start():
            self._resolve(send_body=True)

    def _resolve(self, send_body: bool) -> None:
        parts = [unquote(p) for p in urlsplit(self.path).path.strip("/").split("/")]
        if len(parts) < 5 or parts[2] != "resolve":
            self._error(404, "RepoNotFound", "not a resolve url", send_body=send_body)
            return
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        fake = self.fake
        if repo_id not in fake.commits:
            self._error(404, "RepoNotFound", f"repository {repo_id} not found", send_body=send_body)
            return
        commit, files = fake.lookup(repo_id, revision)
        if files is None:
            self._error(404, "RevisionNotFound", f"invalid rev id: {revision}", send_body=send_body)
            return
        if filename not in files:
            self._error(404, "EntryNotFound", f"{filename} does not exist at {revision}",
                        {"X-Repo-Commit": commit}, send_body=send_body)
            return
        data = files[filename]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Accept-Ranges": "bytes"}
        start = 0
        range_header = self.headers.get("Range", "")
        if send_body and range_header.startswith("bytes=") and range_header.endswith("-"):
            start = min(int(range_header[6:-1]), len(data))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        headers["Content-Length"] = str(len(data) - start)
        if not send_body:
            self._reply(200, headers=headers, send_body=False)
            return
        if fake.tamper:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        end = len(data)
        if fake.drop_after is not None and fake.drops_left > 0:
            fake.drops_left -= 1
            end = max(start, min(end, fake.drop_after))
            self.close_connection = True  # the body is cut short: the connection must go
        self._reply(206 if start else 200, headers=headers, send_body=False)
        fake.wait(fake.body_delay)
        self.wfile.write(data[start:end])
        self.wfile.flush()

    # -- publishing -----------------------------------------------------------------------------

    def do_POST(self) -> None:  # noqa: N802
        if not self._start():
            return
        body = self._read_body()
        path = unquote(urlsplit(self.path).path)
        parts = path.strip("/").split("/")
        fake = self.fake
        if path == "/api/repos/create":
            doc = json.loads(body)
            repo_id = f"{doc['organization']}/{doc['name']}" if doc.get("organization") \
                else doc["name"]
            if repo_id in fake.commits:  # the Hub's 409 also carries the url (the client reads it)
                self._json(409, {"error": "You already created this model repo",
                                 "url": f"{fake.url}/{repo_id}"})
                return
            fake.commits[repo_id], fake.branches[repo_id] = {}, {}
            if doc.get("visibility") == "private" or doc.get("private"):
                fake.private.add(repo_id)
            self._json(200, {"url": f"{fake.url}/{repo_id}", "name": repo_id})
        elif path == "/api/validate-yaml":
            self._json(200, {"errors": [], "warnings": []})
        elif len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
            files = json.loads(body)["files"]
            self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                        "shouldIgnore": False, "oid": None} for f in files]})
        elif len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
            self._commit("/".join(parts[2:4]), parts[5], body)
        elif len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "branch":
            repo_id, branch = "/".join(parts[2:4]), parts[5]
            head = fake.branches.get(repo_id, {}).get("main")
            if head is not None:
                fake.branches[repo_id].setdefault(branch, head)
            self._json(200, {})
        else:
            self._error(404, "RepoNotFound", f"no such endpoint {path}")

    def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
        fake = self.fake
        if repo_id not in fake.commits:
            self._error(404, "RepoNotFound", f"repository {repo_id} not found")
            return
        files = {}
        for line in body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file" and item["value"].get("encoding") == "base64":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] != "header":
                self._json(400, {"error": f"fake hub cannot commit {item['key']!r}"})
                return
        commit = fake.publish(repo_id, files, branch=revision)
        self._json(200, {"commitUrl": f"{fake.url}/{repo_id}/commit/{commit}",
                         "commitOid": commit, "success": True})
