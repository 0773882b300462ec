"""An artifact (folder or Hub repo id) in, a static offline explorer site out: index.html, app.js, style.css
and data files split so that each view loads only what it shows.

    write_site("demo-artifacts", "explorer/")     # then open explorer/index.html, or serve(...) it

Every number comes through `ft_artifacts.load()`'s Artifact: the rows' own columns, the report's own
statistics (`report.compute_report`), and `nearest_words` / `neurons_near` for the nearest tokens and
the optimized inputs nearest to each word. Data files are plain scripts (`window.__FT_DATA__[key] = {...}`)
loaded through <script> tags on demand, because pages opened from file:// cannot fetch() JSON; the page's
Content-Security-Policy allows scripts from the site itself only. Token strings are untrusted: the
page renders them with textContent, never as markup. Needs neither torch nor transformers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import ArtifactError, PublishError

logger = logging.getLogger(__name__)

ASSETS = ("index.html", "app.js", "style.css", "favicon.svg")  # the site's static files, shipped in ft_artifacts/explorer/
SITE_MANIFEST = "site.json"  # every file of the site with its size and sha256 (what --push-space uploads)
NEURON_CHUNK = 64  # neurons per data file: data/neuron/L<layer>-<index // 64>.js
WORD_BUCKET = 256  # vocabulary tokens per data file: data/word/<token_id // 256>.js
NEAR = 10  # nearest tokens per optimized input, and optimized inputs per word
SEARCH_BATCH = 16  # FAISS answers batches under 20 queries query by query, as load()'s single queries are
DATA_GLOBAL = "__FT_DATA__"


def _f32(value) -> float | None:
    """A float32 as the shortest decimal that reads back as the same float32 (None when not finite)."""
    value = np.float32(value)
    return float(str(value)) if np.isfinite(value) else None


def _f32s(values) -> list | None:
    return None if values is None else [_f32(v) for v in values]


def _data_script(key: str, value) -> str:
    payload = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return (f"window.{DATA_GLOBAL}=window.{DATA_GLOBAL}||{{}};"
            f"window.{DATA_GLOBAL}[{json.dumps(key)}]={payload};\n")


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def collapsed_late(trace, final) -> bool:
    """The report's "ended below half of its traced peak" for one row (`report._traces`' rule)."""
    peak = max([*(trace or []), final])
    return bool(peak > 0 and final < 0.5 * peak)


def _batched(function, vectors: np.ndarray, k: int) -> list:
    out = []
    for start in range(0, len(vectors), SEARCH_BATCH):
        out += function(vectors=vectors[start:start + SEARCH_BATCH], k=k)
    return out


def site_data(artifact) -> dict[str, object]:
    """{data key: JSON-ready value} of an artifact: `meta` (the overview), `layer/<L>`, `neuron/L<L>-<c>`,
    `group/<token_id>`, `word/<bucket>` and `vocab`. Every value is read from `artifact` (a loaded Artifact)."""
    from .report import artifact_model_info, compute_report

    manifest = artifact.manifest
    model_id, steps = artifact_model_info(artifact)
    neurons = artifact.neurons.with_format("numpy")
    groups = artifact.word_groups.with_format("numpy")
    stats = artifact.neuron_stats
    tokens = list(artifact.vocabulary["token"])
    try:
        report = compute_report(artifact.neurons, artifact.word_groups, artifact.vocabulary, model_id, steps)
        report_error = None
    except ArtifactError as exc:  # e.g. every row diverged: the pages still show each row and its flags
        report, report_error = None, str(exc)
    data: dict[str, object] = {}

    # --- neurons ------------------------------------------------------------------------------------
    n_rows = len(artifact.neurons)
    names = list(artifact.neurons["neuron"])
    vectors = np.asarray(neurons["vector"], dtype=np.float32).reshape(n_rows, -1)
    diverged = [bool(v) for v in artifact.neurons["diverged"]]
    near: list = [None] * n_rows
    ok = [i for i in range(n_rows) if not diverged[i]]
    for i, hits in zip(ok, _batched(artifact.nearest_words, vectors[ok], NEAR) if ok else []):
        near[i] = [[h["token"], _f32(h["cosine"])] for h in hits]
    chunks: dict[str, dict] = {}
    stat_rows = stats.to_dict()
    has_top = "top_tokens" in stat_rows and any(v is not None for v in stat_rows["top_tokens"])
    for j, name in enumerate(stat_rows["neuron"]):
        layer, index = int(stat_rows["layer"][j]), int(stat_rows["index"][j])
        top = None
        if has_top and stat_rows["top_tokens"][j] is not None:
            top = [[t, _f32(a)] for t, a in zip(stat_rows["top_tokens"][j], stat_rows["top_activations"][j])]
        chunks.setdefault(f"neuron/L{layer}-{index // NEURON_CHUNK}", {})[name] = {
            "layer": layer, "index": index, "a_max": _f32(stat_rows["a_max"][j]),
            "most_activating_token": stat_rows["most_activating_token"][j], "top": top, "opt": None}
    layers: dict[int, list] = {}
    row_values = artifact.neurons.remove_columns(["vector", "pre_ln_vector"]).to_dict()
    for i, name in enumerate(names):
        layer, index = int(row_values["layer"][i]), int(row_values["index"][i])
        activation = row_values["activation"][i]
        trace = row_values["activation_trace"][i] or []
        collapsed = (not diverged[i]) and collapsed_late(trace, activation)
        closest = near[i][0] if near[i] else [None, None]
        opt = {"activation": _f32(activation), "diverged": diverged[i], "collapsed": collapsed,
               "most_activating_token": row_values["most_activating_token"][i],
               "most_activating_activation": _f32(row_values["most_activating_activation"][i]),
               "nearest": near[i], "trace": _f32s(trace), "norm": _f32(row_values["norm"][i]),
               "steps": int(row_values["steps"][i]), "seed": int(row_values["seed"][i])}
        key = f"neuron/L{layer}-{index // NEURON_CHUNK}"
        entry = chunks.setdefault(key, {}).setdefault(name, {"layer": layer, "index": index, "a_max": None,
                                                             "most_activating_token": None, "top": None})
        entry["opt"] = opt
        layers.setdefault(layer, []).append(
            [name, index, opt["activation"], opt["most_activating_activation"], closest[1], closest[0],
             opt["most_activating_token"], diverged[i], collapsed])
    data.update(chunks)
    for layer, rows in layers.items():
        data[f"layer/{layer}"] = {"columns": ["neuron", "index", "activation", "most_activating_activation",
                                              "closest_cosine", "closest_token", "most_activating_token",
                                              "diverged", "collapsed"],
                                  "rows": sorted(rows, key=lambda r: r[1])}

    # --- groups ---------------------------------------------------------------------------------------
    g_rows = len(artifact.word_groups)
    g_values = artifact.word_groups.remove_columns(["vector", "pre_ln_vector"]).to_dict()
    g_vectors = np.asarray(groups["vector"], dtype=np.float32).reshape(g_rows, -1)
    g_diverged = [bool(v) for v in g_values["diverged"]]
    g_near: list = [None] * g_rows
    ok = [i for i in range(g_rows) if not g_diverged[i]]
    for i, hits in zip(ok, _batched(artifact.nearest_words, g_vectors[ok], NEAR) if ok else []):
        g_near[i] = [[h["token"], _f32(h["cosine"])] for h in hits]
    sampled = set(names)
    words: dict[str, int] = {}
    group_files: dict[str, dict] = {}
    for i in range(g_rows):
        word, tid = g_values["word"][i], int(g_values["target_token_id"][i])
        words[word] = tid
        activation, trace = g_values["activation"][i], g_values["activation_trace"][i] or []
        members = list(g_values["neurons"][i])
        group_files.setdefault(f"group/{tid}", {})[g_values["group"][i]] = {
            "word": word, "selection": g_values["selection"][i], "k": int(g_values["k"][i]),
            "neurons": members, "textualized": [m in sampled for m in members],
            "target_rank": None if g_values["target_rank"][i] is None else int(g_values["target_rank"][i]),
            "target_cosine": _f32(g_values["target_cosine"][i]) if g_values["target_cosine"][i] is not None else None,
            "target_activation": _f32(g_values["target_activation"][i]), "activation": _f32(activation),
            "most_activating_token": g_values["most_activating_token"][i],
            "most_activating_activation": _f32(g_values["most_activating_activation"][i]),
            "diverged": g_diverged[i], "collapsed": (not g_diverged[i]) and collapsed_late(trace, activation),
            "nearest": g_near[i], "trace": _f32s(trace)}
    data.update(group_files)

    # --- words ------------------------------------------------------------------------------------------
    vocab_vectors = np.asarray(artifact.vocabulary.with_format("numpy")["vector"], dtype=np.float32)
    vocab_vectors = vocab_vectors.reshape(len(tokens), -1)
    top_of: dict[str, list[str]] = {}
    for name, token in zip(stat_rows["neuron"], stat_rows["most_activating_token"]):
        top_of.setdefault(token, []).append(name)
    near_words = _batched(artifact.neurons_near, vocab_vectors, NEAR)
    for tid, token in enumerate(tokens):
        bucket = data.setdefault(f"word/{tid // WORD_BUCKET}", {})
        bucket[str(tid)] = {"near": [[h["name"], h["config"], _f32(h["cosine"])] for h in near_words[tid]],
                            "top_of": top_of.get(token, [])}
    data["vocab"] = tokens

    # --- the overview ---------------------------------------------------------------------------------
    model = manifest.model
    data["meta"] = _json_ready({
        "model": {"id": model.id, "revision": model.revision, "num_layers": model.num_layers,
                  "hidden_size": model.hidden_size, "vocab_size": model.vocab_size},
        "settings": manifest.settings.to_dict(), "rows": {n: c.rows for n, c in manifest.configs.items()},
        "build_id": manifest.build_id(), "words": words,
        "layers": {str(layer): len(rows) for layer, rows in sorted(layers.items())},
        "diverged": report["artifact"]["diverged"] if report else {"neurons": sum(diverged), "word_groups": sum(g_diverged)},
        "collapsed": {c: report["traces"][c]["ended_below_half_peak"] if report else None for c in ("neurons", "word_groups")},
        "never_above_zero": {c: report["traces"][c]["never_above_zero"] if report else None for c in ("neurons", "word_groups")},
        "report": {k: report[k] for k in ("table1", "by_layer", "groups", "paper")} if report else None,
        "report_error": report_error,
        "has_top_tokens": has_top, "neuron_chunk": NEURON_CHUNK, "word_bucket": WORD_BUCKET,
        "space_links": {},
    })
    return data


def _asset(name: str) -> bytes:
    return resources.files("ft_artifacts.explorer").joinpath(name).read_bytes()


def write_site(artifact, out_dir, revision: str | None = None, links: dict | None = None) -> dict:
    """Write the explorer of `artifact` (a loaded Artifact, or a folder / Hub repo id to load) into
    `out_dir`: the site is built beside it and moved into place, replacing an earlier site there; a folder
    holding anything else is refused. `links` ({"dataset": url}) adds links to the overview.
    Returns {"out", "files": [{"path", "size", "sha256"}], "bytes"}."""
    if isinstance(artifact, (str, Path)):
        from .loader import load

        artifact = load(artifact, revision=revision)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / SITE_MANIFEST).is_file():
        raise ArtifactError(f"{out} holds files that are not an explorer site; choose an empty or new --out")
    data = site_data(artifact)
    if links:
        data["meta"]["space_links"] = dict(links)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        files = {name: _asset(name) for name in ASSETS}
        for key, value in data.items():
            files[f"data/{key}.js"] = _data_script(key, value).encode("ascii")
        listing = []
        for rel, payload in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
            path.chmod(0o644)
            listing.append({"path": rel, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()})
        site = {"artifact": artifact.manifest.build_id(), "model": artifact.manifest.model.id, "files": listing}
        (tmp / SITE_MANIFEST).write_text(json.dumps(site, indent=1) + "\n", encoding="utf-8")
        (tmp / SITE_MANIFEST).chmod(0o644)
        tmp.chmod(0o755)
        for sub in tmp.rglob("*"):
            if sub.is_dir():
                sub.chmod(0o755)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = sum(item["size"] for item in listing)
    logger.info("wrote the explorer (%d files, %d bytes) to %s", len(listing) + 1, total, out)
    return {"out": out, "files": listing, "bytes": total}


def plan_site_upload(site_dir) -> list[dict]:
    """Exactly the files site.json lists, plus site.json, each checked (size, sha256, a plain file, not a
    link, inside the folder) before anything is sent: [{"path", "size", "sha256"}]."""
    from .files import sha256_file
    from .manifest import check_relative_path

    root = Path(site_dir)
    listing_path = root / SITE_MANIFEST
    if not listing_path.is_file():
        raise ArtifactError(f"{root} is not an explorer site (no {SITE_MANIFEST}); write it with `ft-artifacts explore`")
    try:
        listing = json.loads(listing_path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{listing_path} is unreadable ({exc}); write the site again") from exc
    plan = []
    for item in listing:
        rel = check_relative_path(item.get("path") if isinstance(item, dict) else None, SITE_MANIFEST)
        path = root / rel
        if path.is_symlink() or not path.is_file():
            raise ArtifactError(f"{rel} is missing or not a plain file in {root}; write the site again")
        if path.stat().st_size != item["size"] or sha256_file(path) != item["sha256"]:
            raise ArtifactError(f"{rel} differs from {SITE_MANIFEST} in {root}; write the site again")
        plan.append({"path": rel, "size": item["size"], "sha256": item["sha256"]})
    plan.append({"path": SITE_MANIFEST, "size": listing_path.stat().st_size, "sha256": sha256_file(listing_path)})
    return plan


def space_readme(title: str, dataset: str | None = None) -> str:
    """The Space's README: front matter with `sdk: static`, and a link to the dataset."""
    safe = "".join(c for c in title if c.isalnum() or c in " -_./")[:60] or "ft-artifacts explorer"
    lines = ["---", f"title: {json.dumps(safe)}", "sdk: static", "app_file: index.html", "pinned: false",
             "tags:", "- ft-artifacts", "- interpretability", "---", "",
             f"# {safe}", "",
             "A static, offline explorer of an ft-artifacts artifact: the optimized inputs (feature textualization) "
             "of BERT neurons and neuron groups, their nearest tokens, and the vocabulary scan's most activating "
             "tokens. Written by `ft-artifacts explore`."]
    if dataset:
        lines += ["", f"The artifact: https://huggingface.co/datasets/{dataset}"]
    return "\n".join(lines) + "\n"


def push_space(site_dir, repo_id: str, *, private: bool = False, dataset: str | None = None,
               token: str | None = None) -> dict:
    """Publish a written site to a static Space in ONE commit: exactly the files site.json lists (each
    verified first, nothing sent before that) plus the Space's README (`sdk: static`). Files already in
    the Space that the site does not list are deleted in the same commit (`.gitattributes` stays).
    Returns {"repo_id", "commit_oid", "commit_url", "files"}."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    from .publish import KEPT, _api, _hub_error_message, verified_additions

    root = Path(site_dir)
    plan = plan_site_upload(root)
    readme = space_readme(f"{repo_id.rsplit('/', 1)[-1]} explorer", dataset).encode("utf-8")
    operations = verified_additions(root, plan)
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme))
    listed = {item["path"] for item in plan} | {"README.md"}
    try:
        api = _api(token)
        repo_id = api.create_repo(repo_id, repo_type="space", space_sdk="static", private=private,
                                  exist_ok=True).repo_id
        present = sorted(s.rfilename for s in api.space_info(repo_id).siblings or [])
        operations += [CommitOperationDelete(path_in_repo=p) for p in present if p not in listed and p not in KEPT]
        info = api.create_commit(repo_id, operations, commit_message="Publish the ft-artifacts explorer",
                                 repo_type="space")
    except Exception as err:  # noqa: BLE001 - translated below or re-raised untouched
        message = _hub_error_message(err, repo_id, None)
        if message is None:
            raise
        raise PublishError(message.replace("dataset repo", "Space")) from err
    logger.info("published %d files to the Space %s (commit %s)", len(plan) + 1, repo_id, info.oid[:12])
    return {"repo_id": repo_id, "commit_oid": info.oid, "commit_url": info.commit_url,
            "files": [*plan, {"path": "README.md", "size": len(readme), "sha256": hashlib.sha256(readme).hexdigest()}]}


def make_server(site_dir, port: int = 0):
    """A standard-library HTTP server for the site on 127.0.0.1 (port 0: a free port): (server, url).
    Call `server.serve_forever()`."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    root = Path(site_dir)
    if not (root / "index.html").is_file():
        raise ArtifactError(f"{root} holds no index.html; write the site first")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            logger.debug("%s " + format, self.address_string(), *args)

    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(root)))
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def explore(artifact, out_dir, *, revision: str | None = None, push_space_id: str | None = None,
            private: bool = False, dataset: str | None = None, serve: bool = False, port: int = 0) -> dict:
    """The `ft-artifacts explore` command: write the site; then optionally publish it to a static Space
    (`push_space_id`) and make a loopback server for it (`serve`). Returns write_site's dict plus
    "space" (push_space's dict) and "server", "url" when asked for."""
    links = {}
    if dataset:
        links["dataset"] = f"https://huggingface.co/datasets/{dataset}"
    if push_space_id:
        links["space"] = f"https://huggingface.co/spaces/{push_space_id}"
    result = write_site(artifact, out_dir, revision=revision, links=links)
    if push_space_id:
        result["space"] = push_space(result["out"], push_space_id, private=private, dataset=dataset)
    if serve:
        result["server"], result["url"] = make_server(result["out"], port)
    return result
