"""The built site in a real browser: linked framework tabs, the columns view, the state-write
lines, no console errors, and screenshots at desktop and phone width.

Debian's chromium and chromedriver, driven by Selenium; nothing is downloaded (the driver
path is given explicitly, so Selenium Manager never runs). The site is served from a
loopback address by Python's own HTTP server. CI installs `chromium` and `chromium-driver`;
without /usr/bin/chromium the test is skipped.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared import docs

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path("/tmp")  # docs-desktop.png, docs-phone.png: copies to look at by hand
DESKTOP, PHONE = (1400, 1000), (390, 844)
ROOT = Path(__file__).parent.parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built from the checkout as it is (`mkdocs build --strict`)."""
    return docs.build_site(ROOT, tmp_path_factory.mktemp("site") / "site")


# The line of each framework's bias adder that writes the running mean.
STATE_WRITES = {
    "Flax Linen": "mean.value = self.momentum * mean.value + (1.0 - self.momentum) * batch_mean",
    "Flax NNX": "self.mean[...] = self.momentum * self.mean[...] + (1.0 - self.momentum)",
    "Haiku": 'hk.set_state("mean", mean)',
    "Equinox": "state = state.set(self.mean_index, mean)",
    "Keras": "self.mean.assign(",
}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium "
    "chromium-driver)",
)


@pytest.fixture
def served(site) -> Iterator[str]:
    """The built site's URL, served from 127.0.0.1 for the test's duration."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the log would go to stderr; keep the test quiet
        pass


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# Each tab set whose labels are the frameworks: the label of its selected tab.
SELECTED_FRAMEWORKS = """
const names = arguments[0];
return [...document.querySelectorAll('.tabbed-set')]
  .filter(set => [...set.querySelectorAll(':scope > .tabbed-labels > label')]
                   .map(l => l.innerText.trim()).join('|') === names.join('|'))
  .map(set => {
    const input = set.querySelector(':scope > input:checked');
    return set.querySelector(`:scope > .tabbed-labels > label[for="${input.id}"]`)
      .innerText.trim();
  });
"""


def _click_label(driver, text: str, index: int = 0) -> None:
    labels = [
        label
        for label in driver.find_elements("css selector", ".tabbed-labels > label")
        if label.text.strip() == text
    ]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", labels[index])
    labels[index].click()


def _errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_linked_tabs_columns_and_state_writes_in_chromium(browser, served, tmp_path):
    names = [name for name, _ in docs.frameworks().values()]
    topic = "parameters-and-state"
    sections = [c for c in docs.concepts() if c.topic == topic]
    browser.get(f"{served}/guide/{topic}.html")

    # Every framework's state-write line is on the page (in its tab, hidden or not).
    source = browser.execute_script("return document.body.textContent")
    for framework, line in STATE_WRITES.items():
        assert line in source, framework

    # One framework tab set per section (the tabs view; the columns view has none), each
    # starting on the first framework.
    selected = browser.execute_script(SELECTED_FRAMEWORKS, names)
    assert selected == [names[0]] * len(sections)

    # Click Haiku in the last section: every section follows.
    _click_label(browser, "Haiku", index=len(sections) - 1)
    assert browser.execute_script(SELECTED_FRAMEWORKS, names) == ["Haiku"] * len(sections)
    shown = [
        block.text
        for block in browser.find_elements("css selector", ".tabbed-block .highlight")
        if block.is_displayed()
    ]
    assert len(shown) == len(sections) + sum(len(c.extra.get("haiku", ())) for c in sections)
    assert 'hk.set_state("mean", mean)' in "\n".join(shown)
    browser.set_window_size(*DESKTOP)
    browser.execute_script("document.getElementById('write-state').scrollIntoView()")
    assert browser.save_screenshot(str(tmp_path / "docs-desktop.png"))

    # The choice is kept: another page opens on Haiku too.
    browser.get(f"{served}/guide/optimizer.html")
    others = [c for c in docs.concepts() if c.topic == "optimizer"]
    assert browser.execute_script(SELECTED_FRAMEWORKS, names) == ["Haiku"] * len(others)

    # The columns view: every framework's block of a section on screen at once, side by side.
    browser.get(f"{served}/guide/{topic}.html")
    _click_label(browser, docs.COLUMNS_LABEL)
    for grid in browser.find_elements("css selector", ".rosetta-columns"):
        columns = grid.find_elements("css selector", ":scope > div")
        assert len(columns) == len(names)
        assert all(column.is_displayed() for column in columns)
        titles = [c.find_element("css selector", ".filename").text for c in columns]
        assert [t.split(" · ")[0] for t in titles] == names
    first = browser.find_element("css selector", "#write-state ~ .tabbed-set .rosetta-columns")
    tops = {c.location["y"] for c in first.find_elements("css selector", ":scope > div")}
    assert len(tops) < len(names), "the columns should sit side by side, not one per row"
    browser.execute_script("document.getElementById('write-state').scrollIntoView()")
    assert browser.save_screenshot(str(tmp_path / "docs-columns.png"))

    # The results page: the plot loads, the table is there.
    browser.get(f"{served}/results.html")
    plot = browser.find_element("css selector", "img[src$='trajectories.png']")
    loaded = "return arguments[0].complete && arguments[0].naturalWidth"
    assert browser.execute_script(loaded, plot) > 0
    table = browser.find_element("css selector", "table")
    assert "jax/harness" in table.text and "agrees" in table.text

    # A phone-sized screen: the page fits its width (the code scrolls inside its block).
    browser.set_window_size(*PHONE)
    browser.get(f"{served}/guide/{topic}.html")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    inner = browser.execute_script("return window.innerWidth")
    assert width <= inner, f"the page is {width} px wide on a {inner} px screen"
    assert browser.save_screenshot(str(tmp_path / "docs-phone.png"))

    assert _errors(browser) == []
    for name in ("docs-desktop.png", "docs-columns.png", "docs-phone.png"):
        shutil.copyfile(tmp_path / name, SCREENSHOTS / name)
