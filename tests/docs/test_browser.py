"""The static site in a real browser: synced framework tabs, the plot, the comparison table.

Debian's chromium and chromedriver, driven by Selenium; nothing is downloaded (the driver
path is given explicitly, so Selenium Manager never runs). CI installs `chromium` and
`chromium-driver`; without /usr/bin/chromium the test is skipped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# The docs tests check the generator's own parsing (its internals: allowed in tests/docs only).
from shared.docs import _generate

ROOT = Path(__file__).parent.parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT_COPY = Path("/tmp/docs-screenshot.png")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium "
    "chromium-driver)",
)


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
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _visible(driver, selector: str) -> set[str]:
    return {
        e.get_attribute("data-framework")
        for e in driver.find_elements("css selector", selector)
        if e.is_displayed()
    }


def test_tabs_plot_and_table_in_chromium(browser, tmp_path):
    browser.get((ROOT / _generate.SITE_HTML).resolve().as_uri())
    blocks = browser.find_elements("css selector", ".codeblock")
    assert len(blocks) == len(_generate.frameworks()) * len(_generate.concepts())
    assert _visible(browser, ".codeblock") == {"linen"}

    # Click Haiku on the last section's tabs: every block on the page follows.
    browser.find_elements("css selector", ".tab[data-framework=haiku]")[-1].click()
    shown = [b for b in blocks if b.is_displayed()]
    assert len(shown) == len(_generate.concepts())
    assert {b.get_attribute("data-framework") for b in shown} == {"haiku"}
    active = browser.find_elements("css selector", ".tab.active")
    assert len(active) == len(_generate.concepts())
    assert {t.get_attribute("data-framework") for t in active} == {"haiku"}
    assert "hk.get_parameter" in shown[0].text

    plot = browser.find_element("css selector", "#trajectory-plot")
    assert (
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot)
        > 0
    )
    table = browser.find_element("css selector", "#comparison-table")
    rows = table.find_elements("css selector", "tbody tr")
    assert len(rows) >= 2
    assert "jax/harness" in table.text and "agrees" in table.text

    # The recorded bench run, with its plot, when the repository has one.
    if (ROOT / _generate.PERFORMANCE_JSON).is_file():
        perf = browser.find_element("css selector", "#performance-table")
        assert "flax_nnx" in perf.text and "harness" in perf.text
        perf_plot = browser.find_element("css selector", "#performance-plot")
        loaded = "return arguments[0].complete && arguments[0].naturalWidth"
        assert browser.execute_script(loaded, perf_plot) > 0

    screenshot = tmp_path / "docs-screenshot.png"
    browser.execute_script("document.getElementById('declare-param').scrollIntoView()")
    assert browser.save_screenshot(str(screenshot))
    shutil.copyfile(screenshot, SCREENSHOT_COPY)
