"""`lcm serve` in a real browser: headless Chromium (Debian's, through its chromedriver, with
every host but this machine unresolvable, so a page needing the network would show it) drives
the page of the shipped speech recipe: a recording uploaded, the progress shown, then the
transcript and the traced summary; a sentence spoken into the microphone (Chromium's fake
capture device playing a WAV); a corrupt upload gives a message and the server answers on; an
upload over the limit is refused.

``make screenshots`` runs this with LCM_SCREENSHOTS=docs and keeps the page with its result.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lcm.serve.child import answers, served

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO / "data" / "audio" / "aclsum_P17-1143_intro.flac"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DESKTOP = (1440, 1000)
UPLOAD_MB = 5
"""The served limit here: the shipped recording (1.7 MB) fits."""
RESULT_S = 400
"""A cold first request on two busy cores: Whisper, MiniLM and the decoder load, then work."""


@pytest.fixture(scope="module")
def microphone(tmp_path_factory) -> Path:
    """What Chromium's fake capture device plays into the microphone: the recording's first
    sentence (0.5-6.8 s), as the 16-bit WAV the device reads."""
    import soundfile as sf

    samples, rate = sf.read(str(RECORDING))
    target = tmp_path_factory.mktemp("microphone") / "first_sentence.wav"
    sf.write(str(target), samples[:int(7.2 * rate)], rate, subtype="PCM_16")
    return target


@pytest.fixture(scope="module")
def browser(microphone):
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except (WebDriverException, OSError) as exc:
        pytest.skip(f"Chromium cannot start here: {str(exc).strip().splitlines()[0]}")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    """The default recipe served (started once Chromium is known to work)."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with served(log, ("--max-upload-mb", str(UPLOAD_MB)), cwd=REPO) as (url, process):
        yield url, process


def upload(browser, url: str, path: Path) -> None:
    """A fresh page with ``path`` in the recording box, its upload finished."""
    from selenium.webdriver.common.by import By

    browser.get(url)
    wait_for(browser, "#lcm-audio input[type=file]", 60).send_keys(str(path))
    wait_for(browser, "#lcm-audio button[aria-label=Clear]", 60)
    browser.find_element(By.ID, "lcm-run").click()


def wait_for(browser, css: str, seconds: float, seen: list[str] | None = None):
    """The first element matching ``css``; ``seen`` collects the status lines meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = browser.find_elements(By.CSS_SELECTOR, css)
        if found:
            return found[0]
        if seen is not None:
            try:
                seen += [e.text for e in browser.find_elements(By.ID, "lcm-status")]
            except StaleElementReferenceException:
                pass
        time.sleep(0.5)
    status = [e.text for e in browser.find_elements(By.ID, "lcm-status")]
    raise AssertionError(f"no {css} after {seconds:.0f} s; status: {status}")


def wait_for_result(browser, seen: list[str] | None = None) -> None:
    """Until the summary shows; an error message on the page fails at once, naming it."""
    found = wait_for(browser, "#lcm-summary .lcm-item, #lcm-status.lcm-error", RESULT_S, seen)
    assert "lcm-item" in found.get_attribute("class"), found.text


def test_a_recording_gives_its_transcript_and_a_traced_summary(browser, server):
    from selenium.webdriver.common.by import By

    url, _ = server
    seen: list[str] = []
    upload(browser, url, RECORDING)
    wait_for_result(browser, seen)
    assert any("elapsed" in line for line in seen), seen  # a stage with its time was shown
    transcript = browser.find_element(By.ID, "lcm-transcript").text.lower()
    for word in ("malware", "centrifuges", "nuclear", "cyber"):  # Whisper tiny hears these
        assert word in transcript, transcript
    lines = browser.find_elements(By.CSS_SELECTOR, "#lcm-transcript .lcm-segment")
    assert len(lines) >= 5 and all(":" in line.text.split(" ")[0] for line in lines)
    assert lines[0].get_attribute("onclick").startswith("lcmPlay(")
    items = browser.find_elements(By.CSS_SELECTOR, "#lcm-summary .lcm-item")
    assert 1 <= len(items) <= 3  # the recipe's max_summary_concepts
    for item in items:
        assert item.find_elements(By.CSS_SELECTOR, ".lcm-bar > span")
        assert item.find_element(By.CSS_SELECTOR, ".lcm-badge").text in ("generated", "retrieved")
    assert browser.find_element(By.ID, "lcm-concepts").get_attribute("src").startswith("data:image/png")
    if os.environ.get("LCM_SCREENSHOTS"):
        save_screenshot(browser, Path(os.environ["LCM_SCREENSHOTS"]) / "serve_page.png")


def test_a_microphone_recording_is_summarised_when_it_stops(browser, server):
    from selenium.webdriver.common.by import By

    url, _ = server
    browser.get(url)
    box = wait_for(browser, "#lcm-audio", 60)
    box.find_element(By.CSS_SELECTOR, "button[aria-label='Record audio']").click()
    wait_for(browser, "#lcm-audio button.record-button", 30).click()
    time.sleep(8)  # the fake device plays the first sentence
    box.find_element(By.CSS_SELECTOR, "button.stop-button").click()  # no click on Summarise
    wait_for_result(browser)
    transcript = browser.find_element(By.ID, "lcm-transcript").text.lower()
    assert "malware" in transcript and "nuclear" in transcript, transcript


def test_a_corrupt_upload_gets_a_message_and_the_server_answers_on(browser, server, tmp_path):
    url, process = server
    corrupt = tmp_path / "broken.flac"
    corrupt.write_bytes(b"fLaC" + bytes(range(256)) * 40)
    upload(browser, url, corrupt)
    message = wait_for(browser, "#lcm-status.lcm-error", 120).text
    assert message.startswith("broken.flac: not a readable audio file"), message
    assert process.poll() is None and answers(url)


def save_screenshot(browser, target: Path) -> None:
    """The whole page at desktop width (the window grown to the page's height)."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(DESKTOP[0], min(int(height) + 120, 4000))
    browser.execute_script("window.scrollTo(0, 0)")
    time.sleep(1)
    target.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(target))
    browser.set_window_size(*DESKTOP)


def test_an_upload_over_the_limit_is_refused_before_it_is_read(server):
    import httpx

    url, _ = server
    body = b"\0" * (UPLOAD_MB + 1) * 2 ** 20
    response = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.wav", body)}, timeout=60)
    assert response.status_code == 413 and "more than the limit of 5 MB" in response.text
