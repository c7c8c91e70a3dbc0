"""Take docs/demo.png: a real conversation on the chat page, in headless chromium.

    .venv/bin/python eval/demo_screenshot.py --checkpoint genrec-quickstart/run/best [--user 196]

Starts the demo server (transformers engine) on loopback, opens the page for a user, says a title
they loved, rules out a genre, asks for something older, a pick between typed titles and an
explanation, and saves the screenshot plus the conversation as text (docs/demo.txt).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="genrec-quickstart/run/best")
    ap.add_argument("--data", default=None)
    ap.add_argument("--user", default=None, help="user id (default: the dataset's first)")
    ap.add_argument("--out", default=str(ROOT / "docs/demo.png"))
    ns = ap.parse_args()

    from selenium.webdriver.common.by import By

    from genrec.files import atomic_write_bytes, atomic_write_text
    from genrec.serving.engine import load_engine
    from genrec.serving.server import create_app
    from tests.browser import LiveServer, browser_missing, chromium, send, wait_for

    reason = browser_missing()
    if reason:
        sys.exit(f"demo_screenshot: {reason}")
    engine = load_engine("hf", ns.checkpoint, ns.data, "cpu")
    user = ns.user or engine.rec.ds.user_raw_ids[0]
    with LiveServer(create_app(engine, checkpoint=ns.checkpoint)) as live:
        d = chromium(1280, 980)
        try:
            d.get(f"{live.url}/?user={user}")
            wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#history li"))
            for msg in ("I loved Toy Story, what next? top 4", "No comedies, please", "Something older?",
                        "Pick the best of Heat, Casino and Fargo for me", "Why would I like the first one?"):
                send(d, msg, timeout=300)
            log = "\n\n".join(e.text for e in d.find_elements(By.CSS_SELECTOR, ".msg"))
            atomic_write_bytes(ns.out, d.get_screenshot_as_png())
            atomic_write_text(Path(ns.out).with_suffix(".txt"), log + "\n")
        finally:
            d.quit()
    print(f"wrote {ns.out}")


if __name__ == "__main__":
    main()
