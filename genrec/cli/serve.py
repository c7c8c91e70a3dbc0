"""Answering verbs: recommend, ask, serve, demo."""
from __future__ import annotations

import argparse
import os
import sys

from genrec.cli.base import THREADS_HELP, verb
from genrec.runtime import thread_policy


# ---------------------------------------------------------------- recommend / ask
def _recommend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory (e.g. genrec-quickstart/run/best)")
    p.add_argument("--user", required=True, help="the user's ID as written in your data files (or user_<model id>)")
    p.add_argument("-k", type=int, default=10, help="how many items (default: 10)")
    p.add_argument("--history", help="comma-separated item ids to use instead of the user's own history")
    p.add_argument("--keep-history", action="store_true", help="allow items the user already has")
    p.add_argument("--choose", help="comma-separated candidate item ids: rank these instead (direct task)")
    p.add_argument("--explain", metavar="ITEM", help="explain why the user would like ITEM instead")
    p.add_argument("--data", help="prepared dataset directory (default: the one the checkpoint names)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _print_items(items: list[dict], as_json: bool) -> None:
    import json
    if as_json:
        print(json.dumps(items, indent=2))
        return
    for n, x in enumerate(items, 1):
        year = f" ({x['year']})" if "year" in x else ""
        print(f"{n:>3}. {x['title']}{year}  [item {x['id']}]  score {x['score']:.4f}")


def _ids(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


@verb("recommend", "top-k items for a user (or rank candidates, or explain an item) from a checkpoint",
      _recommend_args)
def cmd_recommend(ns: argparse.Namespace) -> int:
    import json

    from genrec.recommender import Recommender

    if ns.k < 1:
        raise ValueError("-k must be >= 1")
    if ns.choose and ns.explain:
        raise ValueError("give --choose or --explain, not both")
    rec = Recommender.from_pretrained(ns.checkpoint, ns.data, ns.device)
    if ns.explain:
        text = rec.explain(ns.user, ns.explain)
        print(json.dumps({"user": ns.user, "item": ns.explain, "text": text}) if ns.json else text)
    elif ns.choose:
        _print_items(rec.choose(ns.user, _ids(ns.choose)), ns.json)
    else:
        _print_items(rec.recommend(ns.user, ns.k, not ns.keep_history,
                                   _ids(ns.history) if ns.history else None), ns.json)
    return 0


def _ask_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("text", help='the prompt, e.g. "user_23 watched 4011, 3531, 887. What should they watch next?"')
    p.add_argument("-k", type=int, default=5, help="items, when the answer is items (default: 5)")
    p.add_argument("--answer", default="auto", choices=["auto", "item", "text"],
                   help="item (constrained to the catalogue), text, or auto (item when it asks for one)")
    p.add_argument("--data", help="prepared dataset directory (default: the one the checkpoint names)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--json", action="store_true", help="print JSON")


@verb("ask", "a free-text prompt to a checkpoint; item answers are constrained to real items", _ask_args)
def cmd_ask(ns: argparse.Namespace) -> int:
    import json

    from genrec.recommender import Recommender

    rec = Recommender.from_pretrained(ns.checkpoint, ns.data, ns.device)
    out = rec.ask(ns.text, ns.k, ns.answer)
    if ns.json:
        print(json.dumps(out, indent=2))
    elif out["answer"] == "item":
        _print_items(out["items"], False)
    else:
        print(out["text"])
    return 0


# ---------------------------------------------------------------- serve / demo
def _serve_args(p: argparse.ArgumentParser, demo: bool = False) -> None:
    if demo:
        p.add_argument("checkpoint", nargs="?", default=None,
                       help="checkpoint directory (default: the quickstart's, genrec-quickstart/run/best)")
    else:
        p.add_argument("checkpoint", help="checkpoint directory (e.g. genrec-quickstart/run/best)")
    p.add_argument("--data", help="prepared dataset directory (default: the one the checkpoint names)")
    p.add_argument("--engine", default="hf", choices=["hf", "vllm"],
                   help="hf: transformers, every backbone (default); vllm: decoder-only + atomic item tokens, "
                        "batches concurrent requests (needs vLLM: see README 'Serving')")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only; "
                   "any other address needs --api-key)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every route "
                   "(default: $GENREC_API_KEY; none on loopback)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another Host name a loopback server answers to (repeatable; default: localhost names only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--device", help="torch device for the hf engine (default: cuda if available, else cpu)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a request may wait for the engine")
    p.add_argument("--max-batch", type=int, default=32, help="most requests handed to the engine at once")
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)


def _start_server(ns: argparse.Namespace, ck: str, banner: str) -> int:
    from genrec.serving.engine import load_engine
    from genrec.serving.server import serve

    if not 0 < ns.port < 65536:
        raise ValueError(f"--port must be 1..65535, got {ns.port}")
    if ns.max_batch < 1 or ns.timeout <= 0:
        raise ValueError("--max-batch must be >= 1 and --timeout > 0")
    from genrec.serving.guard import check_listen
    api_key = ns.api_key or os.environ.get("GENREC_API_KEY") or None
    check_listen(ns.host, api_key)  # before loading anything
    thread_policy(ns.threads)
    print(f"loading {ck} with the {ns.engine} engine ...", file=sys.stderr)
    engine = load_engine(ns.engine, ck, ns.data, ns.device)
    print(banner.format(url=f"http://{ns.host}:{ns.port}"), file=sys.stderr)
    try:
        serve(engine, ns.host, ns.port, ns.timeout, ns.max_batch, checkpoint=str(ck), api_key=api_key,
              allow_hosts=tuple(ns.allow_host))
    finally:
        engine.close()
    return 0


@verb("serve", "serve a checkpoint over HTTP (recommend/choose/explain/ask + OpenAI-style chat)", _serve_args)
def cmd_serve(ns: argparse.Namespace) -> int:
    return _start_server(ns, ns.checkpoint, "genrec API on {url} (docs: {url}/docs, chat page: {url}/) — Ctrl-C stops")


@verb("demo", "chat with a checkpoint in a web page (default: the quickstart's)", lambda p: _serve_args(p, True))
def cmd_demo(ns: argparse.Namespace) -> int:
    ck = ns.checkpoint or "genrec-quickstart/run/best"
    from genrec.checkpoint import is_checkpoint
    if not is_checkpoint(ck):
        hint = " (run `genrec quickstart` first to train it)" if ns.checkpoint is None else ""
        raise ValueError(f"{ck}: no genrec checkpoint there{hint}")
    return _start_server(ns, ck, "genrec chat demo: open {url}/ in a browser — Ctrl-C stops")


