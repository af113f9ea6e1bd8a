"""JupyterLab in headless Chromium: each notebook renders its stored outputs; an explorer's slider redraws it.

Needs Debian's `chromium` and `chromium-driver` (`apt-get install chromium chromium-driver`); screenshots go to
runs/browser/ (not committed). The server and the browser run on copies of the notebooks in a temporary folder,
with their own config, data, runtime, settings and workspace folders, so nothing here touches the repository's
notebooks or the user's Jupyter set-up.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
SHOTS = ROOT / "runs" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Flags that work in a container without a display or GPU; without the background-networking ones, connections
# were refused again and again on the project's machines.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000")
# Settings a reader would not want in a test run: no news or update checks (network), no autosave (copies anyway),
# and every cell attached to the page so that the outputs can be counted.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
# Every wait's limit; each returns as soon as its condition holds. On 2 shared cores a notebook opened in 6-10 s and
# the whole explorer test took 23-38 s; the margin is for machines busy with other jobs.
TIMEOUT_S = 300

pytestmark = pytest.mark.browser

# The notebook page's state, read in the browser. Images count only once decoded (a broken image has width 0).
PAGE_STATE = """
const panel = document.querySelector('.jp-NotebookPanel');
if (!panel) return null;
return {
  cells: panel.querySelectorAll('.jp-Notebook .jp-Cell').length,
  images: [...panel.querySelectorAll('.jp-OutputArea-output img')].filter(i => i.complete && i.naturalWidth > 0).length,
  headings: panel.querySelectorAll('.jp-MarkdownOutput h1').length,
  dialogs: [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText.slice(0, 200)),
  errors: [...panel.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText)
            .filter(t => /Traceback|Error displaying widget/.test(t)).map(t => t.slice(0, 200)),
};
"""


def _stored(notebook: Path) -> tuple[int, int]:
    """(cells, stored PNG outputs) of a notebook file."""
    cells = json.loads(notebook.read_text())["cells"]
    pngs = sum("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))
    return len(cells), pngs


def _explorer_cell() -> tuple[Path, int]:
    """The first notebook cell that calls viz.query_explorer (a slider explorer), as (notebook, cell index)."""
    for nb in NOTEBOOKS:
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            if cell["cell_type"] == "code" and "query_explorer(" in "".join(cell["source"]):
                return nb, i
    raise AssertionError("no notebook calls viz.query_explorer: point the explorer test at another slider explorer")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT_S) -> Any:
    """Poll `condition()` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A JupyterLab server on a free localhost port serving copies of the notebooks: yields (base url, token)."""
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not tool.is_file():
            pytest.fail(f"{tool} is missing: install Debian's browser and driver (apt-get install chromium "
                        "chromium-driver), or deselect these tests with -m 'not browser'")
    tmp = tmp_path_factory.mktemp("lab")
    # The repository's layout (zsnb.viz.figures_dir finds pyproject.toml), so figures saved by a run land in tmp.
    shutil.copytree(ROOT / "notebooks", tmp / "root" / "notebooks", ignore=shutil.ignore_patterns(".*"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "root")
    for plugin, values in LAB_SETTINGS.items():
        path = tmp / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_DATA_DIR": str(tmp / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "IPYTHONDIR": str(tmp / "ipython"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces")}
    port, token = _free_port(), secrets.token_hex(16)
    log = (tmp / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={tmp / 'root'}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert server.poll() is None, f"JupyterLab exited with {server.returncode}:\n{(tmp / 'lab.log').read_text()}"
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        _wait(ready, "JupyterLab to answer on /api/status")
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Any]:
    """Headless Debian Chromium driven by Debian's chromedriver (so Selenium Manager never runs or downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _shutdown_kernels(lab: tuple[str, str]) -> None:
    """Shut down every kernel of the server (each opened notebook starts one; navigating away leaves it running)."""
    base, token = lab
    with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=30) as r:
        kernels = json.load(r)
    for kernel in kernels:
        request = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


def _open(driver: Any, lab: tuple[str, str], notebook: Path) -> dict:
    """Open `notebook` in a fresh Lab workspace and wait until its stored outputs are all on the page."""
    _shutdown_kernels(lab)
    base, token = lab
    driver.get(f"{base}/lab/tree/notebooks/{notebook.name}?reset&token={token}")
    cells, pngs = _stored(notebook)

    def rendered() -> dict | None:
        state = driver.execute_script(PAGE_STATE)
        return state if state and state["cells"] == cells and state["images"] >= pngs and state["headings"] else None

    try:
        return _wait(rendered, f"{notebook.name}: {cells} cells, {pngs} stored images and a title on the page")
    except AssertionError:
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / f"{notebook.stem}-failed.png"))
        raise


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_renders_stored_outputs(lab, browser, notebook: Path):
    state = _open(browser, lab, notebook)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.execute_script("document.querySelector('.jp-NotebookPanel .jp-OutputArea-output img')"
                           "?.scrollIntoView({block: 'center'})")
    time.sleep(0.5)  # let the scroll paint before the screenshot
    browser.save_screenshot(str(SHOTS / f"{notebook.stem}.png"))
    assert state["images"] == _stored(notebook)[1]
    assert not state["dialogs"], f"JupyterLab showed a dialog: {state['dialogs']}"
    assert not state["errors"], f"error outputs on the page: {state['errors']}"


# The explorer cell's figure (once decoded), first slider's readout, the kernel's status, and whether the run
# started by the test has finished (the notebook commands' promises resolve once the kernel has replied).
EXPLORER_STATE = """
const cell = document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')[arguments[0]];
const img = cell.querySelector('.jp-OutputArea-output img');
const readout = cell.querySelector('.widget-slider .widget-readout');
return {src: img && img.complete && img.naturalWidth > 0 ? img.src : null,
        ran: window.zsnbRan === true,
        readout: readout && readout.innerText,
        kernel: window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel?.status};
"""


def _settled(driver: Any, index: int, what: str) -> dict:
    """The explorer state once the kernel is idle and the figure and readout stayed the same for a second."""
    def same_twice() -> dict | None:
        first = driver.execute_script(EXPLORER_STATE, index)
        time.sleep(1)
        second = driver.execute_script(EXPLORER_STATE, index)
        settled = first == second and second["kernel"] == "idle" and second["src"] and second["readout"]
        return second if settled and second["ran"] else None

    return _wait(same_twice, what)


def test_explorer_slider_redraws_figure(lab, browser):
    from selenium.webdriver.common.keys import Keys

    notebook, index = _explorer_cell()
    _open(browser, lab, notebook)
    # Run every cell above the explorer in the notebook's live kernel (Run > Run All Above), then the explorer.
    browser.execute_script(
        "const app = window.jupyterapp; const panel = app.shell.currentWidget;"
        "panel.content.activeCellIndex = arguments[0];"
        "panel.sessionContext.ready.then(() => app.commands.execute('notebook:run-all-above'))"
        ".then(() => app.commands.execute('notebook:run-cell')).then(ok => { window.zsnbRan = ok; });", index)
    before = _settled(browser, index, f"{notebook.name} cell {index} to run and show its figure and sliders")
    handle = browser.execute_script(
        "const h = document.querySelectorAll('.jp-NotebookPanel .jp-Notebook .jp-Cell')[arguments[0]]"
        ".querySelector('.widget-slider .noUi-handle'); h.scrollIntoView({block: 'center'}); return h;", index)
    time.sleep(0.5)  # let the scroll paint before the screenshot
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{notebook.stem}-explorer-before.png"))
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT * 4)  # as a reader's arrow keys: four steps along the first slider
    # First the new figure (the kernel may not have seen the move yet: idle and unchanged is no answer), then the last.
    _wait(lambda: browser.execute_script(EXPLORER_STATE, index)["src"] not in (None, before["src"]),
          f"{notebook.name}: the explorer figure to change after the slider moved")
    after = _settled(browser, index, f"{notebook.name}: the explorer to finish redrawing")
    browser.save_screenshot(str(SHOTS / f"{notebook.stem}-explorer-after.png"))
    assert float(after["readout"]) > float(before["readout"]), "the slider did not move"
    assert not browser.execute_script("return document.querySelectorAll('.jp-Dialog').length")
