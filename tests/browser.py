"""Drive the chat page in a real (headless) chromium: shared by the browser test and
eval/demo_screenshot.py. Needs Debian's chromium + chromidriver (apt) and selenium."""
import shutil
import socket
import threading
import time


def browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'genrec[dev]')"
    for exe in ("chromium", "chromedriver"):
        if not shutil.which(exe):
            return f"{exe} is not on PATH (Debian: apt-get install chromium chromium-driver)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn on loopback in a thread."""

    def __init__(self, app):
        import uvicorn
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def chromium(width: int = 1280, height: int = 860):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--window-size={width},{height}"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for driver.get_log("browser")
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def wait_for(cond, timeout: float = 60.0, every: float = 0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise TimeoutError("condition not met in time")


def send(driver, text: str, timeout: float = 120.0):
    """Type a message, wait for the assistant's reply to finish; returns the reply element."""
    from selenium.webdriver.common.by import By
    n = len(driver.find_elements(By.CSS_SELECTOR, ".msg.assistant"))
    box = driver.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")) > n, timeout)
    wait_for(lambda: driver.find_element(By.ID, "send").is_enabled(), timeout)
    return driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]
