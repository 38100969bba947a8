"""The latent-explorer page in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

The page must show what the server computes: each test reads the pixels the browser displays
and compares them with the runtime's own answer for the same input.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from components.runtime import AutoencoderRuntime
from flows.service.app import create_app
from flows.service.server import running_server
from tests.exports import VAE_2D, export_tiny

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,  # about 25 s: a browser start and a server
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
    ),
]
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update", "--window-size=1200,900",
]  # fmt: skip

PIXELS_OF = """
const img = document.getElementById(arguments[0]);
const canvas = document.createElement("canvas");
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const pen = canvas.getContext("2d"); pen.drawImage(img, 0, 0);
const rgba = pen.getImageData(0, 0, canvas.width, canvas.height).data;
return [canvas.width, canvas.height, Array.from(rgba.filter((_, i) => i % 4 === 0))];
"""


@pytest.fixture(scope="module")
def vae(tmp_path_factory: pytest.TempPathFactory) -> AutoencoderRuntime:
    return AutoencoderRuntime(
        export_tiny(tmp_path_factory.mktemp("vae"), "explorer-vae", *VAE_2D, seed=3).folder
    )


@pytest.fixture(scope="module")
def browser(vae: AutoencoderRuntime) -> Iterator[tuple[Any, str]]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="aeflow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    with running_server(create_app(vae)) as base:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.get(base + "/")
            wait_for(lambda: driver.find_element("id", "status").text == "ready", "the page to load")
            yield driver, base
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def shown_pixels(driver: Any, image_id: str) -> np.ndarray:
    """The grayscale pixels the browser displays in <img id=image_id>, once it has loaded."""
    loaded = f"const i = document.getElementById('{image_id}'); return i.complete && i.naturalWidth > 0"
    wait_for(lambda: driver.execute_script(loaded), f"#{image_id} to load")
    width, height, values = driver.execute_script(PIXELS_OF, image_id)
    return np.array(values, dtype=np.float64).reshape(height, width)


def after_next_report(driver: Any, action: Callable[[], None]) -> str:
    status = driver.find_element("id", "status")
    before = int(status.get_attribute("data-done"))
    action()
    wait_for(lambda: int(status.get_attribute("data-done")) > before, "the page to report")
    return str(status.text)


def test_drawing_a_digit_shows_its_reconstruction(browser: tuple[Any, str], vae: AutoencoderRuntime) -> None:
    from selenium.webdriver import ActionChains

    driver, _ = browser
    canvas = driver.find_element("id", "draw")

    def stroke() -> None:
        ActionChains(driver).move_to_element_with_offset(canvas, -20, -80).click_and_hold().move_by_offset(
            30, 60
        ).move_by_offset(10, 90).release().perform()

    assert after_next_report(driver, stroke) == "reconstructed"
    drawn = driver.execute_script("return document.getElementById('draw').toDataURL('image/png')")
    drawing = Image.open(io.BytesIO(base64.b64decode(drawn.split(",", 1)[1])))
    assert np.asarray(drawing.convert("L")).max() == 255  # the stroke is on the canvas
    expected = vae.reconstruct(drawing)[0, 0] * 255
    np.testing.assert_allclose(shown_pixels(driver, "result"), expected, atol=2)
    code = json.loads(driver.find_element("id", "code").text)
    np.testing.assert_allclose(code, vae.encode(drawing)[0], atol=1e-3)


def test_clicking_the_latent_plane_decodes_that_code(
    browser: tuple[Any, str], vae: AutoencoderRuntime
) -> None:
    from selenium.webdriver import ActionChains

    driver, _ = browser
    plane = driver.find_element("id", "plane")
    assert plane.is_displayed()
    # Offsets are from the centre of the 300×300 plane, which spans [-3, 3]²: (+75, +38) ≈ z (1.5, -0.76).
    assert (
        after_next_report(
            driver, lambda: ActionChains(driver).move_to_element_with_offset(plane, 75, 38).click().perform()
        )
        == "decoded"
    )
    z = json.loads(driver.find_element("id", "z").get_attribute("data-code"))
    np.testing.assert_allclose(z, [1.5, -0.76], atol=0.04)
    expected = vae.decode(np.array([z], dtype=np.float32))[0, 0] * 255
    np.testing.assert_allclose(shown_pixels(driver, "decoded"), expected, atol=2)
    # And somewhere else on the plane the decoder makes something else.
    assert (
        after_next_report(
            driver,
            lambda: ActionChains(driver).move_to_element_with_offset(plane, -120, -120).click().perform(),
        )
        == "decoded"
    )
    assert not np.allclose(shown_pixels(driver, "decoded"), expected, atol=2)


def test_uploading_an_image_reconstructs_it(
    browser: tuple[Any, str], vae: AutoencoderRuntime, tmp_path: Path
) -> None:
    driver, _ = browser
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[4:24, 12:16] = 255  # a "1", at another size than the model's 16×16
    path = tmp_path / "one.png"
    Image.fromarray(pixels).save(path)
    status = after_next_report(driver, lambda: driver.find_element("id", "file").send_keys(str(path)))
    assert status == "reconstructed"
    np.testing.assert_allclose(shown_pixels(driver, "result"), vae.reconstruct([path])[0, 0] * 255, atol=2)
