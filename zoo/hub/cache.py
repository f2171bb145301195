"""Get one file of a Hub repo: from the Hugging Face cache, or downloaded into it, verified.

The cache is huggingface_hub's own (``models--owner--repo/`` with ``blobs/<etag>``,
``snapshots/<commit>/<file>`` links to the blobs, and ``refs/<branch>`` holding a commit), so it
is shared with other libraries and with ``hf download``. Settings are read when a function is
called, not at import: ``ZOO_HUB_ENDPOINT`` (else ``HF_ENDPOINT``), ``ZOO_HUB_TIMEOUT``,
``HF_HUB_OFFLINE``, ``HF_HUB_CACHE``/``HF_HOME`` and the token of ``HF_TOKEN``/``hf auth login``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import PresetError, WeightsError

log = logging.getLogger(__name__)

ENDPOINT_ENV = "ZOO_HUB_ENDPOINT"
TIMEOUT_ENV = "ZOO_HUB_TIMEOUT"
DEFAULT_TIMEOUT = 10.0
HUB_SCHEME = "hf://"

_CHUNK = 1 << 20
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
REPO_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_REVISION_RE = re.compile(r"[\w.-]+(/[\w.-]+)*")
_TRUE = {"1", "true", "yes", "on"}
# huggingface_hub takes its download (GET) timeout from a module constant; see _download_timeout.
_TIMEOUT_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class HubOptions:
    """How to reach the Hub. ``None`` fields fall back to the environment when used.

    Args:
        endpoint: Hub URL (a company mirror); else ``ZOO_HUB_ENDPOINT``, ``HF_ENDPOINT``, or
            huggingface_hub's default (https://huggingface.co).
        token: access token (private or gated repos); None lets huggingface_hub use ``HF_TOKEN``
            or the token saved by ``hf auth login``; False sends none.
        cache_dir: the Hugging Face cache; else ``HF_HUB_CACHE``, ``HF_HOME``/hub, or
            ``~/.cache/huggingface/hub``.
        timeout: seconds to connect or to wait for data, per request; else ``ZOO_HUB_TIMEOUT``
            or 10.
    """

    endpoint: str | None = None
    token: str | bool | None = None
    cache_dir: str | os.PathLike | None = None
    timeout: float | None = None

    def resolved_endpoint(self) -> str | None:
        endpoint = self.endpoint or os.environ.get(ENDPOINT_ENV) or os.environ.get("HF_ENDPOINT")
        return endpoint.rstrip("/") if endpoint else None

    def display_endpoint(self) -> str:
        if endpoint := self.resolved_endpoint():
            return endpoint
        from huggingface_hub import constants

        return constants.ENDPOINT

    def resolved_timeout(self) -> float:
        value = self.timeout if self.timeout is not None else os.environ.get(TIMEOUT_ENV)
        if value is None or value == "":
            return DEFAULT_TIMEOUT
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not seconds > 0:
            raise WeightsError(f"the Hub timeout must be a number of seconds > 0, got {value!r} "
                               f"(argument timeout= or environment variable {TIMEOUT_ENV})")
        return seconds

    def resolved_cache_dir(self) -> Path:
        """The cache huggingface_hub would use, reading the environment now (it reads it once,
        at import, which tests and long-lived processes cannot rely on)."""
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        env = os.environ
        cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
        if not cache:
            home = env.get("HF_HOME") or os.path.join(
                env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                "huggingface")
            cache = os.path.join(home, "hub")
        return Path(os.path.expandvars(os.path.expanduser(cache)))


def is_offline() -> bool:
    """True if ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set, now or at import."""
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.strip().lower() in _TRUE or bool(constants.HF_HUB_OFFLINE)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_revision(revision: str, what: str) -> str:
    """``revision`` if it is a branch, tag or commit name, else raise `PresetError`.

    A revision becomes a path under ``refs/`` in the cache: no ``..``, no absolute paths.
    """
    if not _REVISION_RE.fullmatch(revision) or ".." in revision.split("/"):
        raise PresetError(f"{what}: invalid revision {revision!r}")
    return revision


def check_repo_id(repo_id: object, what: str) -> str:
    """``repo_id`` if it is ``owner/repo`` (or a bare ``repo``), else raise `PresetError`."""
    if not isinstance(repo_id, str) or not REPO_ID_RE.fullmatch(repo_id) or ".." in repo_id:
        raise PresetError(f"{what}: invalid repository id {repo_id!r} (expected owner/repo)")
    return repo_id


def _storage(cache: Path, repo_id: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return cache / repo_folder_name(repo_id=repo_id, repo_type="model")


def _cached(storage: Path, repo_id: str, revision: str, filename: str
            ) -> tuple[Path | None, str | None]:
    """(file, commit) of ``revision`` in huggingface_hub's cache, if the file is there
    (`huggingface_hub.try_to_load_from_cache` resolves branches through ``refs/``)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=storage.parent,
                                   revision=revision)
    if not isinstance(found, str):  # None, or the "known not to exist" marker
        return None, None
    path = Path(found)
    try:
        commit = path.relative_to(storage / "snapshots").parts[0]
    except ValueError:
        return None, None
    if not COMMIT_RE.fullmatch(commit) or not path.is_file():
        return None, None
    return path, commit


def _write_ref(storage: Path, revision: str, commit: str) -> None:
    """Remember which commit a branch pointed to, as huggingface_hub does, so an offline load
    of ``hf://owner/repo`` (no commit) finds the files downloaded by commit."""
    if revision == commit:
        return
    ref = storage / "refs" / revision
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit, encoding="utf-8")
    except OSError as err:  # a read-only cache still works for pinned revisions
        log.debug("cannot write %s: %s", ref, err)


def _evict(path: Path, storage: Path) -> None:
    """Delete a cached file: its snapshot entry and the blob it links to. Only paths inside the
    repo's cache folder are touched, never a user's own file."""
    root = Path(os.path.realpath(storage))
    entry = Path(os.path.realpath(path.parent)) / path.name  # the link itself, not its target
    for target in (Path(os.path.realpath(path)), entry):
        if target.is_relative_to(root):
            with contextlib.suppress(FileNotFoundError):
                target.unlink()


def _prefetch_hint(label: str, repo_id: str, filename: str, revision: str) -> str:
    return (f"Pre-fetch it where the Hub can be reached, into the same cache (HF_HUB_CACHE): "
            f"`zoo fetch {label}`, or `hf download {repo_id} {filename} --revision {revision}`")


class _Unreachable(Exception):
    """The Hub did not answer (connection refused, timeout, 5xx)."""


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Network errors of huggingface_hub's HTTP client: httpx2 (huggingface_hub >= 1.0, not an
    OSError) and requests (older versions, an OSError)."""
    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(__import__(module).TransportError)
    return tuple(errors)


def _remote_commit(repo_id: str, filename: str, revision: str, opts: HubOptions,
                   label: str) -> str:
    """The commit ``revision`` resolves to, from one HEAD request with our timeout.

    Done before `hf_hub_download` because that function, when its own HEAD fails and nothing is
    cached, retries with a 60 s timeout: a dead server would hang a load for minutes.
    """
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    endpoint = opts.resolved_endpoint()
    where = f"{opts.display_endpoint()}/{repo_id}"
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    try:
        meta = get_hf_file_metadata(url, token=opts.token, timeout=opts.resolved_timeout(),
                                    endpoint=endpoint)
    except hf_errors.EntryNotFoundError:
        raise WeightsError(f"preset {label!r}: {filename} does not exist in {where} at "
                           f"revision {revision}") from None
    except hf_errors.RevisionNotFoundError:
        raise WeightsError(f"preset {label!r}: revision {revision!r} does not exist in "
                           f"{where}") from None
    except hf_errors.RepositoryNotFoundError:
        raise WeightsError(
            f"preset {label!r}: repository {where} not found, or it is private or gated and no "
            "valid token was sent (pass token=, set HF_TOKEN or run `hf auth login`)") from None
    except hf_errors.HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", 0) or 0
        if status >= 500 or status in (408, 429):
            raise _Unreachable(f"HTTP {status}") from None
        raise WeightsError(f"preset {label!r}: the Hub refused {url}: {err}") from None
    except _transport_errors() as err:
        raise _Unreachable(f"{type(err).__name__}: {err}") from None
    commit = meta.commit_hash or ""
    if not COMMIT_RE.fullmatch(commit):
        raise WeightsError(f"preset {label!r}: {opts.display_endpoint()} answered without a "
                           "commit hash (X-Repo-Commit): it is not a Hugging Face Hub endpoint")
    return commit


@contextlib.contextmanager
def _download_timeout(seconds: float) -> Iterator[None]:
    """Apply our timeout to the GET of `hf_hub_download`.

    huggingface_hub reads that timeout from ``constants.HF_HUB_DOWNLOAD_TIMEOUT`` (set once from
    the environment at import) and has no argument for it; without this a stalled server holds
    every read for its default. The lock keeps concurrent downloads from restoring it wrongly.
    """
    from huggingface_hub import constants

    with _TIMEOUT_LOCK:
        saved = constants.HF_HUB_DOWNLOAD_TIMEOUT
        constants.HF_HUB_DOWNLOAD_TIMEOUT = seconds
        try:
            yield
        finally:
            constants.HF_HUB_DOWNLOAD_TIMEOUT = saved


def _fetch(repo_id: str, filename: str, commit: str, opts: HubOptions, cache: Path,
           label: str) -> Path:
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    timeout = opts.resolved_timeout()
    try:
        with _download_timeout(timeout):
            path = hf_hub_download(repo_id, filename, revision=commit, cache_dir=cache,
                                   endpoint=opts.resolved_endpoint(), token=opts.token,
                                   etag_timeout=timeout)
    except (hf_errors.HfHubHTTPError, *_transport_errors()) as err:
        # huggingface_hub writes to a unique *.incomplete file and deletes it on failure; only a
        # complete file is ever renamed to a blob, and every load re-checks its sha256.
        raise WeightsError(
            f"preset {label!r}: downloading {filename} from {opts.display_endpoint()}/{repo_id} "
            f"(commit {commit}) failed: {type(err).__name__}: {err}. Nothing was kept; try "
            f"again. {_prefetch_hint(label, repo_id, filename, commit)}") from None
    return Path(path)


def resolve_file(repo_id: str, filename: str, revision: str, *, sha256: str | None, label: str,
                 opts: HubOptions) -> tuple[Path, str]:
    """(verified local path, commit) of one Hub file: cache first, else download. See
    `download`, which validates the arguments of this function and is its public form.

    Raises:
        WeightsError: as `download`.
    """
    cache = opts.resolved_cache_dir()
    storage = _storage(cache, repo_id)
    cached, cached_commit = _cached(storage, repo_id, revision, filename)
    if cached is not None and cached_commit == revision:
        # A commit never changes: a cached file pinned to one needs no network at all.
        return _verified(cached, sha256, label, storage), revision
    if is_offline():
        if cached is None:
            raise WeightsError(
                f"preset {label!r}: {filename} of Hub repo {repo_id} (revision {revision}) is not "
                f"in the Hugging Face cache ({cache}) and offline mode is on (HF_HUB_OFFLINE). "
                + _prefetch_hint(label, repo_id, filename, revision))
        return _verified(cached, sha256, label, storage), str(cached_commit)
    try:
        commit = _remote_commit(repo_id, filename, revision, opts, label)
    except _Unreachable as err:
        if cached is not None:
            log.warning("preset %r: the Hub is unreachable (%s); using the cached %s of %s at "
                        "commit %s", label, err, filename, repo_id, cached_commit)
            return _verified(cached, sha256, label, storage), str(cached_commit)
        raise WeightsError(
            f"preset {label!r}: {filename} of Hub repo {repo_id} (revision {revision}) is not in "
            f"the Hugging Face cache ({cache}) and {opts.display_endpoint()} cannot be reached "
            f"({err}; timeout {opts.resolved_timeout():g} s, {TIMEOUT_ENV}). "
            + _prefetch_hint(label, repo_id, filename, revision)) from None
    path, _ = _cached(storage, repo_id, commit, filename)
    if path is None:
        path = _fetch(repo_id, filename, commit, opts, cache, label)
    path = _verified(path, sha256, label, storage)
    _write_ref(storage, revision, commit)
    return path, commit


def _verified(path: Path, sha256: str | None, label: str, storage: Path) -> Path:
    if sha256 is None:
        return path
    actual = file_sha256(path)
    if actual != sha256.lower():
        _evict(path, storage)
        raise WeightsError(
            f"preset {label!r}: {path.name} from the Hub has sha256 {actual}, expected "
            f"{sha256}: it is corrupted or not the published file. It was deleted from the "
            "cache and not loaded; loading again downloads it again.")
    return path


def download(repo_id: str, filename: str, revision: str = "main", *,
             sha256: str | None = None, label: str | None = None, endpoint: str | None = None,
             token: str | bool | None = None, cache_dir: str | os.PathLike | None = None,
             timeout: float | None = None) -> Path:
    """One file of a Hub repo, from the Hugging Face cache or downloaded into it, verified.

    A revision that is a commit hash and is cached is used without any request; a branch costs
    one HEAD request to learn its commit (and the file is downloaded only if that commit's copy
    is not cached). Offline or with the Hub unreachable, the last cached copy is used.

    Args:
        repo_id: ``owner/repo``.
        filename: a file at the top of the repo.
        revision: a commit hash (reproducible) or a branch/tag.
        sha256: expected hex digest; a file that differs is deleted from the cache.
        label: how errors name what is being loaded (default ``hf://repo_id``).
        endpoint, token, cache_dir, timeout: see `HubOptions`.

    Returns:
        The path of the file in the cache (``snapshots/<commit>/<filename>``).

    Raises:
        WeightsError: not cached and offline or unreachable (the message says how to
            pre-fetch), missing repo/revision/file, failed download, or sha256 mismatch.

    Example:
        >>> path = zoo.hub.cache("me/tagger", "model.weights.h5", "0123...cdef",
        ...                         sha256="ab12...", endpoint="https://hub.example.com")
    """
    check_repo_id(repo_id, "download")
    if "/" in filename or "\\" in filename or filename in ("", ".", ".."):
        raise PresetError(f"invalid file name {filename!r}: only files at the top of a repo")
    label = label or f"{HUB_SCHEME}{repo_id}"
    check_revision(revision, label)
    opts = HubOptions(endpoint, token, cache_dir, timeout)
    return resolve_file(repo_id, filename, revision, sha256=sha256, label=label, opts=opts)[0]

