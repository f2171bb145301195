"""zoo.hub against a real Hub protocol, offline: a local server (tests/hub_server.py) stands in
for huggingface.co, and huggingface_hub's own client downloads from it."""

import dataclasses
import hashlib
import json
import os
import pickle
import random
import shutil
import socket
import time
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

# Before huggingface_hub is imported (it reads settings at import) and creates its HTTP client
# (a proxy configured on the machine must not intercept 127.0.0.1).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1"]))

from hub_server import FakeHub  # noqa: E402

import zoo  # noqa: E402
from zoo.errors import PresetError, WeightsError  # noqa: E402
from zoo.hub import (  # noqa: E402
    COMMIT_RE,
    HubOptions,
    check_weights_name,
    download,
    fetch,
    hub_location,
    parse_hub_uri,
    resolve_weights,
)
from zoo.hub.cards import model_card  # noqa: E402
from zoo.hub.publish import push_to_hub  # noqa: E402
from zoo.hub.saving import save_preset  # noqa: E402
from zoo.presets import get_preset, presets, shipped_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REPO = "zoo-test/tagger"
FILE = "tagger.weights.h5"
DATA = random.Random(0).randbytes(200_000)
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def hub():
    server = FakeHub().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A fresh Hugging Face cache and no Hub settings from the machine running the tests."""
    from huggingface_hub import constants

    path = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(path))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ZOO_HUB_ENDPOINT", "HF_ENDPOINT",
                "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "5")
    # huggingface_hub read HF_HUB_OFFLINE at import; a CI that sets it must not block the server.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return path


@pytest.fixture
def no_retry_wait(monkeypatch):
    """huggingface_hub waits 1 s before each of its 5 resume attempts; same behaviour without."""
    from huggingface_hub import file_download

    monkeypatch.setattr(file_download, "time", types.SimpleNamespace(sleep=lambda _s: None))


def get(hub, revision="main", **kwargs):
    return download(REPO, FILE, revision, sha256=SHA, label="tagger", endpoint=hub.url, **kwargs)


def usable_files(cache_dir: Path) -> list[Path]:
    """Files a later load could pick up: blobs, snapshot entries, partial downloads."""
    storage = cache_dir / "models--zoo-test--tagger"
    return sorted(p for p in storage.rglob("*") if p.is_file() or p.is_symlink()
                  if "refs" not in p.parts)


# -- download, cache, revisions ----------------------------------------------------------------


def test_first_download_then_cached_loads_need_a_head_or_nothing(hub):
    commit = hub.publish(REPO, {FILE: DATA})
    path = get(hub)
    assert path.read_bytes() == DATA and path.parent.name == commit
    assert hub.count("GET") == 1
    hub.requests.clear()
    assert get(hub) == path  # a branch: one HEAD to learn its commit, no download
    assert hub.requests == [("HEAD", f"/{REPO}/resolve/main/{FILE}", None)]
    hub.requests.clear()
    assert get(hub, commit) == path  # a cached commit never changes: no request at all
    assert hub.requests == []


def test_pinned_revision_gets_that_commit_while_main_moves(hub):
    old = hub.publish(REPO, {FILE: DATA})
    new_data = DATA[::-1]
    hub.publish(REPO, {FILE: new_data})
    assert get(hub, old).read_bytes() == DATA
    assert any(path == f"/{REPO}/resolve/{old}/{FILE}" for _, path, _ in hub.requests)
    latest = download(REPO, FILE, sha256=hashlib.sha256(new_data).hexdigest(), endpoint=hub.url)
    assert latest.read_bytes() == new_data
    with pytest.raises(WeightsError, match="sha256"):  # main is no longer the pinned bytes
        get(hub, "main")


def test_offline_loads_the_cache_and_fails_fast_naming_how_to_prefetch(hub, monkeypatch):
    commit = hub.publish(REPO, {FILE: DATA})
    get(hub)
    hub.requests.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert get(hub).read_bytes() == DATA  # main -> commit from the cache's refs/
    assert get(hub, commit).read_bytes() == DATA
    started = time.perf_counter()
    with pytest.raises(WeightsError) as err:
        download(REPO, "other.weights.h5", label="tagger", endpoint=hub.url)
    assert time.perf_counter() - started < 1
    for part in ("'tagger'", REPO, "HF_HUB_OFFLINE", "zoo fetch tagger", "hf download"):
        assert part in str(err.value)
    assert hub.requests == []


def test_unreachable_hub_fails_fast_or_falls_back_to_the_cache(hub):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    started = time.perf_counter()
    with pytest.raises(WeightsError, match="cannot be reached") as err:
        download(REPO, FILE, sha256=SHA, label="tagger", endpoint=dead)
    assert time.perf_counter() - started < 3
    assert "zoo fetch tagger" in str(err.value) and dead in str(err.value)
    hub.publish(REPO, {FILE: DATA})
    path = get(hub)
    assert download(REPO, FILE, sha256=SHA, endpoint=dead) == path  # last cached main


def test_slow_hub_times_out_quickly(hub):
    hub.publish(REPO, {FILE: DATA})
    hub.delay = 5.0
    started = time.perf_counter()
    with pytest.raises(WeightsError, match="cannot be reached.*timeout 0.5 s"):
        get(hub, timeout=0.5)
    assert time.perf_counter() - started < 2.5
    hub.delay = 0.1  # slow but within the timeout
    assert get(hub, timeout=5).read_bytes() == DATA


def test_stalled_download_fails_and_leaves_nothing(hub, cache, no_retry_wait):
    hub.publish(REPO, {FILE: DATA})
    hub.body_delay = 5.0  # headers, then silence
    started = time.perf_counter()
    with pytest.raises(WeightsError, match="failed.*Nothing was kept"):
        get(hub, timeout=0.3)
    assert time.perf_counter() - started < 5
    assert usable_files(cache) == []


def test_connection_dropped_mid_file_leaves_nothing_usable(hub, cache, no_retry_wait):
    commit = hub.publish(REPO, {FILE: DATA})
    hub.drop_after = len(DATA) // 3
    with pytest.raises(WeightsError, match="RemoteProtocolError|failed"):
        get(hub)
    assert usable_files(cache) == []  # no blob, no snapshot entry, no *.incomplete
    hub.drop_after = None
    assert get(hub, commit).read_bytes() == DATA


def test_connection_dropped_once_is_retried(hub, no_retry_wait):
    hub.publish(REPO, {FILE: DATA})
    hub.drop_after, hub.drops_left = 1000, 1
    assert get(hub).read_bytes() == DATA
    assert hub.count("GET") == 2


def test_sha_mismatch_is_refused_and_removed_from_the_cache(hub, cache):
    commit = hub.publish(REPO, {FILE: DATA})
    hub.tamper = True  # the body differs from what HEAD announced
    for attempt in (1, 2):
        with pytest.raises(WeightsError, match="sha256.*deleted from the cache"):
            get(hub, commit)
        assert usable_files(cache) == [] and hub.count("GET") == attempt
    hub.tamper = False
    path = get(hub, commit)
    path.resolve().write_bytes(DATA[:-1] + b"x")  # damaged on disk later
    with pytest.raises(WeightsError, match="sha256"):
        get(hub, commit)
    assert usable_files(cache) == []
    assert get(hub, commit).read_bytes() == DATA


def test_missing_file_revision_and_repo_are_clear_404s(hub):
    hub.publish(REPO, {FILE: DATA})
    with pytest.raises(WeightsError, match="nope.weights.h5 does not exist"):
        download(REPO, "nope.weights.h5", endpoint=hub.url)
    with pytest.raises(WeightsError, match="revision 'v9' does not exist"):
        download(REPO, FILE, "v9", endpoint=hub.url)
    with pytest.raises(WeightsError, match="not found, or it is private"):
        download("zoo-test/none", FILE, endpoint=hub.url)
    assert hub.count("GET") == 0


def test_private_repo_needs_the_token(hub):
    hub.publish(REPO, {FILE: DATA})
    hub.token = "s3cret"
    with pytest.raises(WeightsError, match="token"):
        get(hub, token=False)
    assert get(hub, token="s3cret").read_bytes() == DATA


def test_endpoint_and_timeout_are_read_at_call_time(hub, monkeypatch):
    hub.publish(REPO, {FILE: DATA})
    monkeypatch.setenv("ZOO_HUB_ENDPOINT", hub.url)
    assert download(REPO, FILE, sha256=SHA).read_bytes() == DATA
    assert HubOptions().display_endpoint() == hub.url
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "soon")
    with pytest.raises(WeightsError, match="ZOO_HUB_TIMEOUT"):
        download(REPO, FILE, sha256=SHA)


def test_hub_addresses_and_file_names_are_validated():
    assert parse_hub_uri("hf://me/tagger") == ("me/tagger", "main")
    assert parse_hub_uri("hf://me/tagger@" + "a" * 40) == ("me/tagger", "a" * 40)
    for bad in ("hf://", "hf://me/../x", "hf://me/x@../../etc", "hf://a/b/c", "me/x"):
        with pytest.raises(PresetError):
            parse_hub_uri(bad)
    assert check_weights_name("model.weights.h5", "t") == "model.weights.h5"
    for bad in ("model.pkl", "model.keras", "../model.weights.h5", "/tmp/a.weights.h5",
                "a\\b.weights.h5", ".weights.h5", "model.h5", None):
        with pytest.raises(WeightsError, match="refusing"):
            check_weights_name(bad, "t")


# -- the registry ------------------------------------------------------------------------------


def unpinned(configs) -> list[str]:
    """Presets whose Hub location is not a commit hash (a branch can change under users)."""
    bad = []
    for config in configs:
        if config.weights.hub is None:
            continue
        try:
            _, filename, revision = hub_location(config)
        except (PresetError, WeightsError) as err:
            bad.append(f"{config.name}: {err}")
            continue
        if not COMMIT_RE.fullmatch(revision) or "revision" not in config.weights.hub:
            bad.append(f"{config.name}: revision {revision!r} is not a 40-hex commit")
    return bad


def test_builtin_hub_locations_pin_a_commit():
    assert unpinned(get_preset(name) for name in presets()) == []
    config = get_preset("vgg_mtt")
    branch = dataclasses.replace(config, weights=dataclasses.replace(
        config.weights, hub={"repo_id": "zoo/vgg_mtt", "filename": config.weights.file,
                             "revision": "main"}))
    assert unpinned([branch]) and unpinned([dataclasses.replace(branch, weights=dataclasses.replace(
        branch.weights, hub={"repo_id": "zoo/vgg_mtt"}))])


def test_docs_have_a_current_card_per_preset():
    for name in presets():
        card = (ROOT / "docs" / "models" / f"{name}.md").read_text(encoding="utf-8")
        assert card == model_card(get_preset(name), builtin=True), \
            f"docs/models/{name}.md is stale: run python scripts/make_model_cards.py"
    assert (ROOT / "docs" / "hub.md").is_file()


def test_hub_card_metadata_for_any_licence():
    config = dataclasses.replace(get_preset("vgg_mtt"), license='Acme "internal" v2')
    card = model_card(config, load_as="hf://acme/tagger")
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])  # what the Hub reads
    assert meta["license"] == "other" and meta["license_name"] == 'Acme "internal" v2'
    assert meta["library_name"] == "zoo" and meta["pipeline_tag"] == "audio-classification"
    assert meta["tags"] == ["audio", "music-tagging", "keras", "vgg"]
    assert 'zoo.load("hf://acme/tagger")' in card and "## Differences" not in card


def with_hub(config, repo_id, revision):
    return dataclasses.replace(config, weights=dataclasses.replace(
        config.weights, hub={"repo_id": repo_id, "filename": config.weights.file,
                             "revision": revision}))


def test_resolution_order_shipped_then_cache_then_download(hub, monkeypatch, tmp_path):
    config = get_preset("vgg_mtt")
    shipped = shipped_dir() / config.weights.file
    commit = hub.publish("zoo/vgg_mtt", {config.weights.file: shipped.read_bytes()})
    config = with_hub(config, "zoo/vgg_mtt", commit)
    opts = HubOptions(endpoint=hub.url)
    assert resolve_weights(config, opts) == shipped and hub.requests == []
    monkeypatch.setattr("zoo.hub.shipped_dir", lambda: tmp_path / "slim-wheel")
    downloaded = resolve_weights(config, opts)
    assert downloaded.read_bytes() == shipped.read_bytes() and hub.count("GET") == 1
    hub.requests.clear()
    model = zoo.load(config, endpoint=hub.url)  # from the cache, no request
    assert hub.requests == [] and model.output_shape == (None, 50)


# -- user presets: save, publish, load back ----------------------------------------------------


def test_save_push_and_load_round_trip(hub, tmp_path, monkeypatch):
    model = zoo.load("vgg_mtt")
    dense = next(layer for layer in reversed(model.zoo_backbone.layers)
                 if len(layer.get_weights()) == 2)
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 1.5, bias + 0.1])  # "fine-tuned"
    x = np.random.default_rng(0).standard_normal((2, 48128)).astype("float32") * 0.1
    expected = np.asarray(model(x))

    with pytest.raises(TypeError, match="zoo.load"):
        save_preset(object(), tmp_path / "bad")
    with pytest.raises(ValueError, match="1 tag names for a tag layer of 50"):
        save_preset(model, tmp_path / "bad", tags=["rock"])
    folder = save_preset(model, tmp_path / "tuned", name="vgg_tuned",
                         metrics={"roc_auc": 0.9, "evaluated_on": "my split"})
    assert sorted(p.name for p in folder.iterdir()) == [
        "LICENSE.musicnn", "README.md", "config.json", "model.weights.h5"]
    saved = json.loads((folder / "config.json").read_text())
    assert saved["weights"]["sha256"] == hashlib.sha256(
        (folder / "model.weights.h5").read_bytes()).hexdigest()
    assert saved["source"]["base_preset"] == "vgg_mtt" and saved["weights"]["hub"] is None
    np.testing.assert_array_equal(np.asarray(zoo.load(folder)(x)), expected)

    pub = push_to_hub(folder, "me/vgg-tuned", endpoint=hub.url)
    assert COMMIT_RE.fullmatch(pub.revision)
    files = hub.commits["me/vgg-tuned"][pub.revision]
    assert set(files) == {"config.json", "model.weights.h5", "README.md", "LICENSE.musicnn"}
    card = files["README.md"].decode()
    assert yaml.safe_load(card.split("---\n")[1])["license"] == "isc"
    assert 'zoo.load("hf://me/vgg-tuned")' in card

    loaded = zoo.load(pub.uri, endpoint=hub.url)
    np.testing.assert_array_equal(np.asarray(loaded(x)), expected)
    assert loaded.zoo_preset.weights.hub == pub.hub and loaded.zoo_preset.name == "vgg_tuned"

    hub.requests.clear()
    zoo.load("hf://me/vgg-tuned", endpoint=hub.url)  # cached: one HEAD for main's commit
    assert [m for m, _, _ in hub.requests] == ["HEAD"]

    # Pre-fetch into a fresh cache, then load with the network off.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "fresh-cache"))
    assert fetch("hf://me/vgg-tuned", endpoint=hub.url).name == "model.weights.h5"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.requests.clear()
    offline = zoo.load("hf://me/vgg-tuned", endpoint=hub.url)
    np.testing.assert_array_equal(np.asarray(offline(x)), expected)
    assert hub.requests == []
    with pytest.raises(WeightsError, match="hf://me/other.*zoo fetch hf://me/other"):
        zoo.load("hf://me/other", endpoint=hub.url)

    # Only the config cached: the error about the weights names what the user asked for.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "config-only"))
    download("me/vgg-tuned", "config.json", endpoint=hub.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="model.weights.h5 .*zoo fetch hf://me/vgg-tuned`"):
        zoo.load("hf://me/vgg-tuned", endpoint=hub.url)


def test_push_command_pins_the_commit_in_a_preset_json(hub, tmp_path, capsys):
    from zoo.cli import main as zoo_main

    def push(argv):
        return zoo_main(["push", *argv])
    config_json = tmp_path / "vgg_mtt.json"
    shutil.copy(shipped_dir() / "vgg_mtt.json", config_json)
    argv = ["vgg_mtt", "zoo/vgg_mtt", "--endpoint", hub.url, "--branch", "v1",
            "--update-config", str(config_json)]
    assert push(argv) == 0
    out = capsys.readouterr().out
    commit = hub.branches["zoo/vgg_mtt"]["v1"]
    assert f"at commit {commit}" in out and f"hf://zoo/vgg_mtt@{commit}" in out
    updated = json.loads(config_json.read_text())["weights"]["hub"]
    assert updated == {"repo_id": "zoo/vgg_mtt", "filename": "vgg_mtt.weights.h5",
                       "revision": commit}

    other = tmp_path / "musicnn_msd.json"  # describes other weights: left untouched
    shutil.copy(shipped_dir() / "musicnn_msd.json", other)
    before = other.read_text()
    assert push(["vgg_mtt", "zoo/vgg_mtt", "--endpoint", hub.url,
                        "--update-config", str(other)]) == 1
    assert "not the published ones" in capsys.readouterr().err and other.read_text() == before


# -- loading never runs code -------------------------------------------------------------------


class _Payload:
    """Unpickling this creates a file: proof that something executed it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_preset_directory_never_executes_code(tmp_path):
    config = get_preset("vgg_mtt")
    folder = tmp_path / "preset"
    folder.mkdir()
    shutil.copy(shipped_dir() / config.weights.file, folder / config.weights.file)
    marker = tmp_path / "code-ran"
    evil = pickle.dumps(_Payload(marker))
    for name in ("model.pkl", "model.keras", "weights.bin"):
        (folder / name).write_bytes(evil)
    (folder / "config.json").write_text(config.to_json())
    assert zoo.load(folder).output_shape == (None, 50)  # reads config.json + its weights only
    for name in ("model.pkl", "model.keras", "../preset/model.pkl", str(folder / "model.pkl")):
        sha = hashlib.sha256(evil).hexdigest()
        bad = dataclasses.replace(config, weights=dataclasses.replace(
            config.weights, file=name, sha256=sha))
        (folder / "config.json").write_text(bad.to_json())
        with pytest.raises(WeightsError, match="refusing"):
            zoo.load(folder)
    assert not marker.exists()
