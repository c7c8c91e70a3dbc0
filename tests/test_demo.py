"""The chat page in a real browser (headless Debian chromium through chromedriver)."""
import pytest

from tests.browser import browser_missing

pytest.importorskip("fastapi", reason="the demo needs the api extra: pip install 'genrec[api]'")
REASON = browser_missing()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(REASON is not None, reason=str(REASON))]


@pytest.fixture(scope="module")
def site(tiny_engine):
    from genrec.serving.server import create_app
    from tests.browser import LiveServer

    with LiveServer(create_app(tiny_engine)) as live:
        yield live, tiny_engine.rec.ds


@pytest.fixture(scope="module")
def driver():
    from tests.browser import chromium
    d = chromium()
    yield d
    d.quit()


def test_chat_in_the_browser(site, driver, tmp_path):
    from selenium.webdriver.common.by import By

    from tests.browser import send, wait_for
    live, ds = site
    user = ds.user_raw_ids[7]
    driver.get(f"{live.url}/?user={user}")
    # the user's history is shown with titles
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#history li"))
    hist_text = driver.find_element(By.ID, "history").text
    last = ds.title(int(ds.sequence(7)[-1]))
    assert last in hist_text
    reply = send(driver, "What should I watch next? top 4")
    shown = [e.get_attribute("data-item") for e in reply.find_elements(By.CSS_SELECTOR, ".item")]
    assert len(shown) == 4 and set(shown) <= set(ds.item_raw_ids)
    assert not set(shown) & {ds.item_raw_ids[i] for i in ds.sequence(7)}  # new to this user
    assert all(ds.title(ds.item_by_raw[i]) in reply.text for i in shown)  # shown as cards with titles
    # multi-turn: "why the first one?" explains the first item shown
    reply2 = send(driver, "Why would I like the first one?")
    assert f"[item {shown[0]}]" in reply2.text
    # bad input: an unknown title is said plainly, and the page keeps working
    reply3 = send(driver, "pick the best of Heat and Qwxzblorp")
    assert "Qwxzblorp" in reply3.text and "error" not in reply3.get_attribute("class")
    reply4 = send(driver, "pick the best of Heat, Casino and Fargo for me")
    titles = [e.text for e in reply4.find_elements(By.CSS_SELECTOR, ".item b")]
    assert sorted(titles) == ["Casino", "Fargo", "Heat"] and "the best of these is" in reply4.text
    # the conversation scrolls inside its pane: after ten turns the input box is still in view, the
    # document is no taller than the window, and the user picker has not scrolled away
    # a mentioned title changes the picks and joins the history column; a disliked genre disappears
    ts = next(i for i in range(ds.n_items) if ds.title(i) == "Toy Story")
    assert ts not in set(ds.sequence(7))
    before = send(driver, "What should I watch next? top 5")
    after = send(driver, "I loved Toy Story, what next? top 5")
    picks = [e.get_attribute("data-item") for e in after.find_elements(By.CSS_SELECTOR, ".item")]
    assert picks != [e.get_attribute("data-item") for e in before.find_elements(By.CSS_SELECTOR, ".item")]
    assert ds.item_raw_ids[ts] not in picks
    wait_for(lambda: "you mentioned" in driver.find_element(By.ID, "history").text)
    assert "+ 1 you mentioned" in driver.find_element(By.ID, "histhead").text
    cats = ds.items["category"]
    for text in ("No comedies, please", "more", "more", "something older?"):
        r = send(driver, text)
        shown_now = [e.get_attribute("data-item") for e in r.find_elements(By.CSS_SELECTOR, ".item")]
        assert shown_now and not any("Comedy" in cats.iat[ds.item_by_raw[i]] for i in shown_now), text
    box = driver.find_element(By.ID, "text").rect
    view_h = driver.execute_script("return window.innerHeight")
    assert box["y"] + box["height"] <= view_h
    assert driver.execute_script("return document.documentElement.scrollHeight") <= view_h + 1
    assert driver.find_element(By.ID, "user").rect["y"] >= 0
    assert "History of user" in driver.find_element(By.ID, "histhead").text
    score = driver.find_element(By.CSS_SELECTOR, ".item .score")
    assert score.text.startswith("#1") and "log-probability" in score.get_attribute("title")
    logs = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not logs, logs  # no 404s (favicon included) or script errors
    driver.save_screenshot(str(tmp_path / "chat.png"))
    assert (tmp_path / "chat.png").stat().st_size > 10_000


def test_an_anonymous_conversation(site, driver):
    from selenium.webdriver.common.by import By

    from tests.browser import send, wait_for
    live, ds = site
    driver.get(f"{live.url}/?user=")
    wait_for(lambda: "Your picks so far" in driver.find_element(By.ID, "histhead").text)
    first = send(driver, "what should I watch next?")
    assert "most popular" in first.text and first.find_elements(By.CSS_SELECTOR, ".item")
    reply = send(driver, "something like Toy Story, no horror")
    picks = [e.get_attribute("data-item") for e in reply.find_elements(By.CSS_SELECTOR, ".item")]
    assert picks and not any("Horror" in ds.items["category"].iat[ds.item_by_raw[i]] for i in picks)
    wait_for(lambda: "Toy Story" in driver.find_element(By.ID, "history").text)
    assert driver.find_element(By.ID, "user").get_attribute("value") == ""
    logs = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    assert not logs, logs


def test_backend_down_is_a_friendly_message(site, driver):
    from selenium.webdriver.common.by import By

    from tests.browser import send, wait_for
    live, ds = site
    driver.get(f"{live.url}/?user={ds.user_raw_ids[0]}")
    # the page's start-up requests (health, users, the user's history) must finish before the
    # backend is cut off, or the page never learns its user and the last reply has no items
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#history li"))
    # point the page at a port where nothing listens: fetch fails like a dead backend
    driver.execute_script("window._fetch = window.fetch; window.fetch = (u, o) => "
                          "window._fetch('http://127.0.0.1:9' + u, o);")
    reply = send(driver, "what next?")
    assert "not reachable" in reply.text and "error" in reply.get_attribute("class")
    driver.execute_script("window.fetch = window._fetch;")
    reply = send(driver, "")  # empty message: a friendly note, no request
    assert "empty" in reply.text
    reply = send(driver, "what next?")
    assert driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1].find_elements(By.CSS_SELECTOR, ".item")
