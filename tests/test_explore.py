"""The explorer: `ft-artifacts explore` writes a static site whose every number equals `ft_artifacts.load()`'s,
checked in the data files and, in headless Chromium (Debian's chromium + chromium-driver via Selenium), in
the rendered pages: every view without a console error, deep links, back and forward, search, no request
leaving the site, and hostile tokens shown as text. Also --serve, older artifacts without the scan's top
tokens, and publishing to a static Space on the loopback Hub."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

pytest_plugins = ["artifact_fixtures"]

import artifact_fixtures as af  # noqa: E402
from browser import find_chromium, open_browser  # noqa: E402
from hubserver import hub_server  # noqa: E402,F401 - pytest fixture

HOSTILE = ["<img src=x onerror=alert(1)>", "\"'quoted'\"", "\u202eevil\u202c", "zero\u200bwidth",
           "</script><b>bold</b>", "&amp;&lt;"]
TOKEN = "hf_dummyTokenThatMustNeverLeak0123456789"
CHROMIUM, CHROMEDRIVER, NO_BROWSER = find_chromium()
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason=f"browser tests skipped: {NO_BROWSER}")


def read_data(site: Path, key: str, as_float32: bool = True):
    """A data file's value, parsed back from its `window.__FT_DATA__[key]=...;` line: floats as the
    float32s they stand for (the rows' columns), or as written (`meta`, the report's float64 statistics)."""
    text = (site / "data" / f"{key}.js").read_text(encoding="ascii")
    prefix = "window.__FT_DATA__=window.__FT_DATA__||{};" + f"window.__FT_DATA__[{json.dumps(key)}]="
    assert text.startswith(prefix) and text.endswith(";\n")
    return json.loads(text[len(prefix):-2], parse_float=(lambda s: float(np.float32(s))) if as_float32 else float)


def f32(value) -> float:
    """A number (or its text) as the float32 it stands for."""
    return float(np.float32(value))


@pytest.fixture(scope="module")
def site(tiny_loaded, tmp_path_factory) -> Path:
    from ft_artifacts.explore import write_site

    return write_site(tiny_loaded, tmp_path_factory.mktemp("site") / "site")["out"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, monkeypatch_module):
    """A tiny artifact whose vocabulary holds markup, quotes, bidi controls and zero-width characters."""
    import ft_artifacts
    from ft_artifacts.builders.build import build
    from ft_artifacts.explore import write_site

    original = af.tiny_vocab
    monkeypatch_module.setattr(af, "tiny_vocab", lambda: original() + HOSTILE)
    root = tmp_path_factory.mktemp("hostile")
    model = af.make_tiny_bert(root / "bert")
    art = ft_artifacts.load(build(af.tiny_build_config(model, ks=(10, 100)), root / "artifact"))
    return art, write_site(art, root / "site")["out"]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip(f"browser tests skipped: {NO_BROWSER}")
    with open_browser() as b:
        yield b


# --- the data files -----------------------------------------------------------------------------------
def test_site_holds_its_files_and_nothing_remote(site: Path) -> None:
    listing = json.loads((site / "site.json").read_text())
    files = {item["path"] for item in listing["files"]}
    assert {"index.html", "app.js", "style.css", "data/meta.js", "data/vocab.js"} <= files
    assert files == {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()} - {"site.json"}
    html = (site / "index.html").read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script
    for rel in files:
        text = (site / rel).read_text(encoding="utf-8").replace('"http://www.w3.org/2000/svg"', "")  # a namespace name
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I) or rel == "data/meta.js", rel
    assert "innerHTML" not in (site / "app.js").read_text() and "insertAdjacentHTML" not in (site / "app.js").read_text()


def test_neuron_data_equal_load(site: Path, tiny_loaded) -> None:
    art = tiny_loaded
    stats = {r["neuron"]: r for r in art.neuron_stats}
    assert all(r["top_tokens"] is not None and len(r["top_tokens"]) == 10 for r in stats.values())
    for row in art.neurons:
        name, layer, index = row["neuron"], row["layer"], row["index"]
        entry = read_data(site, f"neuron/L{layer}-{index // 64}")[name]
        opt = entry["opt"]
        assert opt["activation"] == f32(row["activation"])
        assert opt["most_activating_token"] == row["most_activating_token"]
        assert opt["most_activating_activation"] == f32(row["most_activating_activation"])
        assert opt["trace"] == [f32(v) for v in row["activation_trace"]]
        want = art.nearest_words(neuron=name, k=10)
        assert [t for t, _ in opt["nearest"]] == [w["token"] for w in want]
        assert [c for _, c in opt["nearest"]] == [f32(w["cosine"]) for w in want]
        assert entry["a_max"] == f32(stats[name]["a_max"])
        assert [t for t, _ in entry["top"]] == stats[name]["top_tokens"]
        assert [a for _, a in entry["top"]] == [f32(v) for v in stats[name]["top_activations"]]
    layer = read_data(site, "layer/1")
    assert sorted(r[0] for r in layer["rows"]) == sorted(n for n, l in zip(art.neurons["neuron"], art.neurons["layer"])
                                                        if l == 1)


def test_group_and_word_data_equal_load(site: Path, tiny_loaded) -> None:
    art = tiny_loaded
    meta = read_data(site, "meta")
    vocab = read_data(site, "vocab")
    assert vocab == list(art.vocabulary["token"])
    for row in art.word_groups:
        entry = read_data(site, f"group/{meta['words'][row['word']]}")[row["group"]]
        assert entry["target_rank"] == row["target_rank"] and entry["neurons"] == row["neurons"]
        assert entry["target_cosine"] == f32(row["target_cosine"]) and entry["activation"] == f32(row["activation"])
        want = art.nearest_words(group=row["group"], k=10)
        assert [[w["token"], f32(w["cosine"])] for w in want] == entry["nearest"]
    stats = art.neuron_stats
    for word in [*meta["words"], *vocab[::37]]:
        tid = vocab.index(word)
        entry = read_data(site, f"word/{tid // 256}")[str(tid)]
        want = art.neurons_near(word=word, k=10)
        assert entry["near"] == [[w["name"], w["config"], f32(w["cosine"])] for w in want]
        assert entry["top_of"] == [n for n, t in zip(stats["neuron"], stats["most_activating_token"]) if t == word]


def test_overview_holds_the_reports_numbers(site: Path, tiny_loaded) -> None:
    from ft_artifacts.report import artifact_model_info, compute_report

    art = tiny_loaded
    report = json.loads(json.dumps(compute_report(art.neurons, art.word_groups, art.vocabulary,
                                                  *artifact_model_info(art))))
    meta = read_data(site, "meta", as_float32=False)
    assert meta["report"]["table1"] == report["table1"] and meta["report"]["groups"] == report["groups"]
    assert meta["report"]["by_layer"] == report["by_layer"]
    assert meta["rows"] == {n: c.rows for n, c in art.manifest.configs.items()}
    assert meta["diverged"] == report["artifact"]["diverged"]
    flagged = sum(e["opt"]["collapsed"] for key in site.joinpath("data/neuron").glob("*.js")
                  for e in read_data(site, f"neuron/{key.stem}").values() if e["opt"])
    assert flagged == meta["collapsed"]["neurons"] == report["traces"]["neurons"]["ended_below_half_peak"]


def test_writer_needs_neither_torch_nor_transformers(tiny_artifact: Path, tmp_path: Path) -> None:
    code = ("import sys\nfrom ft_artifacts.explore import write_site\n"
            "write_site(sys.argv[1], sys.argv[2])\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    proc = af.run_python(code, str(tiny_artifact), str(tmp_path / "site"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "site" / "index.html").is_file()


def test_cli_writes_replaces_and_refuses_a_foreign_folder(tiny_artifact: Path, tmp_path: Path) -> None:
    cli = str(Path(sys.executable).with_name("ft-artifacts"))
    out = tmp_path / "explorer"
    for _ in range(2):  # the second run replaces the first site
        proc = subprocess.run([cli, "explore", str(tiny_artifact), "--out", str(out)], capture_output=True, text=True,
                              env=af.subprocess_env(), cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "wrote the explorer to" in proc.stdout and "index.html" in proc.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".explorer")]  # no leftovers beside it
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    proc = subprocess.run([cli, "explore", str(tiny_artifact), "--out", str(foreign)], capture_output=True, text=True,
                          env=af.subprocess_env(), cwd=tmp_path, timeout=300)
    assert proc.returncode == 1 and "not an explorer site" in proc.stderr and "Traceback" not in proc.stderr
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_serve_answers_on_loopback(site: Path, tiny_artifact: Path, tmp_path: Path) -> None:
    cli = str(Path(sys.executable).with_name("ft-artifacts"))
    proc = subprocess.Popen([cli, "explore", str(tiny_artifact), "--out", str(tmp_path / "s"), "--serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=af.subprocess_env(),
                            cwd=tmp_path)
    try:
        url = None
        for line in proc.stdout:
            match = re.search(r"serving at (http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
                break
        assert url, proc.stderr.read()[-2000:] if proc.poll() is not None else "no URL printed"
        with urllib.request.urlopen(url + "index.html", timeout=10) as response:
            assert response.read() == (tmp_path / "s" / "index.html").read_bytes()
        with urllib.request.urlopen(url + "data/meta.js", timeout=10) as response:
            assert response.read() == (tmp_path / "s" / "data" / "meta.js").read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def older_artifact(tiny_artifact: Path, dst: Path) -> Path:
    """A copy of the artifact as an older build wrote it: neuron_stats without the scan's top tokens
    (its parquet rewritten, the manifest's checksum updated to match)."""
    import pyarrow.parquet as pq

    from ft_artifacts.files import sha256_file
    from ft_artifacts.manifest import FileEntry, read_manifest, write_manifest

    root = af.copy_artifact(tiny_artifact, dst)
    manifest = read_manifest(root)
    (rel,) = manifest.configs["neuron_stats"].files
    table = pq.read_table(root / rel)
    pq.write_table(table.drop_columns(["top_tokens", "top_activations"]), root / rel)
    manifest.files[rel] = FileEntry(sha256=sha256_file(root / rel), size=(root / rel).stat().st_size)
    write_manifest(root, manifest)
    return root


def test_an_older_artifact_without_top_tokens_still_explores(tiny_artifact: Path, tmp_path: Path) -> None:
    import ft_artifacts
    from ft_artifacts.explore import write_site

    art = ft_artifacts.load(older_artifact(tiny_artifact, tmp_path / "old"))
    assert art.neuron_stats["top_tokens"] == [None] * len(art.neuron_stats)
    out = write_site(art, tmp_path / "site")["out"]
    assert read_data(out, "meta")["has_top_tokens"] is False
    assert all(e["top"] is None for e in read_data(out, "neuron/L1-0").values())


# --- the Space ------------------------------------------------------------------------------------------
def test_push_space_publishes_exactly_the_site_in_one_commit(hub_server, site: Path, tmp_path: Path) -> None:  # noqa: F811
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=hub_server.endpoint, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1")
    code = ("import json, sys\nfrom ft_artifacts.explore import push_space\n"
            "print(json.dumps(push_space(sys.argv[1], 'user/explorer', dataset='user/artifact')))")
    proc = subprocess.run([sys.executable, "-c", code, str(site)], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    repo = hub_server.repos["user/explorer"]
    assert repo.repo_type == "space" and repo.sdk == "static"
    commits = list(repo.head().history())
    assert len(commits) == 1
    listing = json.loads((site / "site.json").read_text())["files"]
    files = repo.head().files
    assert set(files) == {i["path"] for i in listing} | {"site.json", "README.md"}
    assert all(files[i["path"]] == (site / i["path"]).read_bytes() for i in listing)
    readme = files["README.md"].decode()
    assert readme.startswith("---\n") and "\nsdk: static\n" in readme.split("---")[1]
    assert "https://huggingface.co/datasets/user/artifact" in readme
    assert TOKEN not in proc.stdout + proc.stderr

    changed = af.copy_artifact(site, tmp_path / "changed")
    (changed / "app.js").write_text("// changed\n")
    before = len(hub_server.requests)
    proc = subprocess.run([sys.executable, "-c", code, str(changed)], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode != 0 and "app.js differs from site.json" in proc.stderr
    assert len(hub_server.requests) == before  # refused before any request


def test_cli_push_space_links_the_dataset(hub_server, tiny_artifact: Path, tmp_path: Path) -> None:  # noqa: F811
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_ENDPOINT=hub_server.endpoint, HF_TOKEN=TOKEN, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1")
    cli = str(Path(sys.executable).with_name("ft-artifacts"))
    proc = subprocess.run([cli, "explore", str(tiny_artifact), "--out", str(tmp_path / "site"), "--push-space",
                           "user/tiny-explorer", "--dataset", "user/tiny"], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "published" in proc.stdout and "user/tiny-explorer" in proc.stdout and TOKEN not in proc.stdout + proc.stderr
    files = hub_server.repos["user/tiny-explorer"].head().files
    meta = read_data(tmp_path / "site", "meta", as_float32=False)
    assert meta["space_links"] == {"dataset": "https://huggingface.co/datasets/user/tiny",
                                   "space": "https://huggingface.co/spaces/user/tiny-explorer"}
    assert files["data/meta.js"] == (tmp_path / "site" / "data" / "meta.js").read_bytes()
    assert "https://huggingface.co/datasets/user/tiny" in files["README.md"].decode()


# --- in the browser ---------------------------------------------------------------------------------------
def routes_for(art) -> list[str]:
    names = list(art.neurons["neuron"])
    groups = list(art.word_groups["group"])
    return ["#/", "#/layer/1", "#/layer/3", f"#/neuron/{names[0]}", f"#/neuron/{names[-1]}", "#/neuron/L1.N0",
            f"#/group/{groups[0]}", f"#/group/{groups[-1]}", f"#/word/{quote(art.manifest.words[0])}", "#/word/the",
            "#/word/%23%23s", "#/neuron/L99.N0", "#/word/notaword"]


@needs_browser
def test_every_view_renders_without_console_errors(browser, site: Path, tiny_loaded) -> None:
    browser.open(site / "index.html", "#/")
    assert browser.js("return document.getElementById('ov-model').textContent") == tiny_loaded.manifest.model.id
    for route in routes_for(tiny_loaded):
        browser.go(route)
        text = browser.js("return document.getElementById('view').textContent")
        assert text and "Error" not in browser.js("return document.querySelector('#view h1').textContent"), route
    assert browser.console_errors() == []
    browser.go("#/")
    rows = browser.js("return Array.from(document.querySelectorAll('#rows-table tbody tr')).map("
                      "r => [r.getAttribute('data-config'), r.querySelector('[data-field=rows]').textContent])")
    assert dict(rows) == {n: str(c.rows) for n, c in tiny_loaded.manifest.configs.items()}
    assert browser.js("return document.querySelectorAll('svg.group-curves polyline').length") == 4


@needs_browser
def test_shown_numbers_equal_load(browser, site: Path, tiny_loaded) -> None:
    art = tiny_loaded
    browser.open(site / "index.html", "#/")
    stats = {r["neuron"]: r for r in art.neuron_stats}
    for row in list(art.neurons)[::7]:
        browser.go(f"#/neuron/{row['neuron']}")
        shown = browser.js("""return {
            activation: document.getElementById('activation').getAttribute('data-value'),
            amax: document.getElementById('a-max').getAttribute('data-value'),
            most: document.getElementById('most-activating').textContent,
            mostAct: document.getElementById('most-activating-activation').getAttribute('data-value'),
            nearest: Array.from(document.querySelectorAll('#nearest tbody tr')).map(
                r => [r.querySelector('.token').textContent, r.querySelector('[data-field=cosine]').getAttribute('data-value')]),
            top: Array.from(document.querySelectorAll('#top-tokens tbody tr')).map(r => r.querySelector('.token').textContent),
            trace: document.querySelectorAll('svg.trace polyline').length}""")
        assert f32(shown["activation"]) == f32(row["activation"])
        assert f32(shown["amax"]) == f32(stats[row["neuron"]]["a_max"])
        assert shown["most"] == row["most_activating_token"]
        assert f32(shown["mostAct"]) == f32(row["most_activating_activation"])
        want = art.nearest_words(neuron=row["neuron"], k=10)
        assert [(t, f32(c)) for t, c in shown["nearest"]] == [(w["token"], f32(w["cosine"])) for w in want]
        assert shown["top"] == stats[row["neuron"]]["top_tokens"] and shown["trace"] == 1
    for row in list(art.word_groups)[::5]:
        browser.go("#/group/" + row["group"])
        shown = browser.js("""return {rank: document.getElementById('target-rank').textContent,
            cosine: document.getElementById('target-cosine').getAttribute('data-value'),
            nearest: Array.from(document.querySelectorAll('#nearest .token')).map(t => t.textContent),
            members: Array.from(document.querySelectorAll('#members li')).map(li => li.textContent),
            links: document.querySelectorAll('#members a').length}""")
        assert int(shown["rank"]) == row["target_rank"] and f32(shown["cosine"]) == f32(row["target_cosine"])
        assert shown["nearest"] == [w["token"] for w in art.nearest_words(group=row["group"], k=10)]
        assert shown["members"] == row["neurons"]
        assert shown["links"] == len(set(row["neurons"]) & set(art.neurons["neuron"]))
    for word in art.manifest.words[:3]:
        browser.go("#/word/" + quote(word))
        shown = browser.js("""return {
            ranks: Array.from(document.querySelectorAll('#word-groups tbody tr')).map(
                r => [r.getAttribute('data-group'), r.querySelector('[data-field=target_rank]').textContent]),
            near: Array.from(document.querySelectorAll('#neurons-near tbody tr')).map(
                r => [r.getAttribute('data-name'), r.querySelector('[data-field=cosine]').getAttribute('data-value')])}""")
        want = {g["group"]: str(g["target_rank"]) for g in art.word_groups if g["word"] == word}
        assert dict(shown["ranks"]) == want
        assert [(n, f32(c)) for n, c in shown["near"]] == [(w["name"], f32(w["cosine"]))
                                                          for w in art.neurons_near(word=word, k=10)]
    assert browser.console_errors() == []


@needs_browser
def test_layer_table_sorts(browser, site: Path, tiny_loaded) -> None:
    browser.open(site / "index.html", "#/layer/2")
    column = "return Array.from(document.querySelectorAll('#layer-table tbody [data-field=%s]')).map(c => +c.getAttribute('data-value'))"
    acts = browser.js(column % "activation")
    assert acts == sorted(acts, reverse=True) and len(acts) == sum(1 for l in tiny_loaded.neurons["layer"] if l == 2)
    browser.js("document.querySelector('th[data-sort=closest_cosine]').click()")
    cos = browser.js(column % "closest_cosine")
    assert cos == sorted(cos, reverse=True)
    browser.js("document.querySelector('th[data-sort=closest_cosine]').click()")
    assert browser.js(column % "closest_cosine") == sorted(cos)
    browser.js("document.querySelector('th[data-sort=most_activating_activation]').click()")
    most = browser.js(column % "most_activating_activation")
    assert most == sorted(most, reverse=True)


@needs_browser
def test_deep_links_back_forward_and_search(browser, site: Path, tiny_loaded) -> None:
    name = tiny_loaded.neurons["neuron"][3]
    group = tiny_loaded.word_groups["group"][2]
    browser.open(site / "index.html", f"#/neuron/{name}")  # a deep link straight to a page
    assert browser.js("return document.getElementById('neuron-name').textContent") == name
    browser.go(f"#/group/{group}")
    browser.go("#/layer/1")
    browser.driver.back()
    browser.wait_ready(f"#/group/{group}")
    browser.driver.back()
    browser.wait_ready(f"#/neuron/{name}")
    assert browser.js("return document.getElementById('neuron-name').textContent") == name
    browser.driver.forward()
    browser.wait_ready(f"#/group/{group}")
    word = tiny_loaded.manifest.words[0]
    box = browser.driver.find_element("id", "search")
    box.clear()
    box.send_keys(word[:3])
    browser.js("return null")
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and word not in browser.js(
            "return Array.from(document.querySelectorAll('#completions a')).map(a => a.textContent)"):
        time.sleep(0.05)
    shown = browser.js("return Array.from(document.querySelectorAll('#completions a')).map(a => a.textContent)")
    vocab = list(tiny_loaded.vocabulary["token"])
    assert word in shown and all(t in vocab and t.lower().startswith(word[:3]) for t in shown)
    box.clear()
    box.send_keys(word + "\n")
    browser.wait_ready("#/word/" + quote(word))
    box.clear()
    box.send_keys(name + "\n")
    browser.wait_ready(f"#/neuron/{name}")
    assert browser.console_errors() == []


@needs_browser
def test_no_request_leaves_the_site(site: Path, tiny_loaded) -> None:
    with open_browser() as browser:  # a fresh one: nothing loaded yet
        browser.open(site / "index.html", "#/")
        for route in routes_for(tiny_loaded):
            browser.go(route)
        urls = browser.requests()
    files = {(site / p["path"]).resolve().as_uri() for p in json.loads((site / "site.json").read_text())["files"]}
    assert urls and all(u.split("#")[0] in files for u in urls), [u for u in urls if u.split("#")[0] not in files]


@needs_browser
def test_hostile_tokens_show_as_text(browser, hostile) -> None:
    art, out = hostile
    browser.open(out / "index.html", "#/")
    for token in HOSTILE:
        browser.go("#/word/" + quote(token, safe=""))
        assert browser.js("return document.querySelector('#word-name .token').textContent") == token
        assert browser.js("return document.querySelectorAll('#view img, #view b, #view script').length") == 0
    shown = 0
    for row in art.neurons:
        near = [w["token"] for w in art.nearest_words(neuron=row["neuron"], k=10)]
        top = [r for r in art.neuron_stats if r["neuron"] == row["neuron"]][0]["top_tokens"]
        if set(HOSTILE) & set(near + top):
            browser.go(f"#/neuron/{row['neuron']}")
            assert browser.js("return Array.from(document.querySelectorAll('#nearest .token')).map(t => t.textContent)") == near
            assert browser.js("return document.querySelectorAll('#view img, #view b, #view script').length") == 0
            shown += 1
    assert shown > 0  # some neuron's page lists a hostile token
    box = browser.driver.find_element("id", "search")
    box.clear()
    box.send_keys("<im")
    browser.js("return null")
    import time

    time.sleep(0.3)
    assert HOSTILE[0] in browser.js("return Array.from(document.querySelectorAll('#completions a')).map(a => a.textContent)")
    assert browser.js("return document.querySelectorAll('img, b').length") == 0
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.driver.switch_to.alert.text  # noqa: B018 - no alert() ever ran
    assert browser.console_errors() == []


@needs_browser
def test_an_older_artifact_shows_that_top_tokens_are_missing(browser, tiny_artifact: Path, tmp_path: Path) -> None:
    import ft_artifacts
    from ft_artifacts.explore import write_site

    art = ft_artifacts.load(older_artifact(tiny_artifact, tmp_path / "old"))
    out = write_site(art, tmp_path / "site")["out"]
    browser.open(out / "index.html", f"#/neuron/{art.neurons['neuron'][0]}")
    assert "keeps only the most activating token" in browser.js(
        "return document.getElementById('top-tokens-missing').textContent")
    assert browser.console_errors() == []


@needs_browser
def test_diverged_rows_are_flagged(browser, tiny_bert, tmp_path: Path) -> None:
    """lr 1e30 overflows every row: the overview counts them all as diverged (the evaluation has no means),
    and the pages still show each row, flagged."""
    import ft_artifacts
    from ft_artifacts.builders.build import build
    from ft_artifacts.explore import write_site
    from ft_artifacts.optimize import OptimConfig

    art = ft_artifacts.load(build(af.tiny_build_config(tiny_bert, optim=OptimConfig(steps=4, lr=1e30, trace_every=1)),
                                  tmp_path / "diverged"))
    out = write_site(art, tmp_path / "site")["out"]
    browser.open(out / "index.html", "#/")
    shown = browser.js("return Array.from(document.querySelectorAll('#rows-table [data-field=diverged]'))"
                       ".map(function (td) { return td.textContent; })")
    assert [v for v in shown if v] == [str(len(art.neurons)), str(len(art.word_groups))]
    assert browser.console_errors() == []
    name, group = art.neurons["neuron"][0], art.word_groups["group"][0]
    for route in (f"#/neuron/{name}", f"#/group/{group}", "#/layer/1"):
        browser.go(route)
        assert browser.js("return document.querySelectorAll('[data-flag=diverged]').length") >= 1, route
    browser.go(f"#/neuron/{name}")
    assert "diverged" in browser.js("return document.querySelector('#view').textContent")
    assert browser.console_errors() == []
