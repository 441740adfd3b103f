"""Human evaluation in Label Studio (issue 21): its exports read without a server, and a round trip
through a real one.

Without a server: hand-made copies of the three exports that carry ratings (`JSON`, `JSON_MIN`,
`CSV`, in `tests/fixtures/labelstudio`, shaped as Label Studio 1.23.2 writes them) read to the
same ratings, and a response file of any format that holds no rating is refused.

With a server (`AUDIOBENCH_LABEL_STUDIO` names its `label-studio` command; .ci/run installs
1.23.2 into its own environment): one server for the module, bound to 127.0.0.1 with a throwaway
data dir, user and API token. A project is made from the exported labelling config and given the
exported tasks; every task's image is a PNG (embedded as a data: URI, or served by the local-files
route); two raters' ratings are posted through the REST API; the JSON, JSON_MIN and CSV exports
ingest to one table, which `analyze` reads; and headless Chromium shows a task's picture.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from audiobench.human_eval.export import build_items, export
from audiobench.human_eval.ingest import ingest, read_responses
from PIL import Image

from audiobench.errors import AudiobenchError
from tests.conftest import HANG_SECONDS, REPO
from tests.test_human_eval import CHROMEDRIVER, CHROMIUM, headless_chromium

FIXTURES = REPO / "tests" / "fixtures" / "labelstudio"
EXPORTS = {"JSON": "export.json", "JSON_MIN": "export_min.json", "CSV": "export.csv"}
# (rater, item, rating) in the fixtures: user 2 skipped item c, nobody rated item d
FIXTURE_RATINGS = {
    ("1", "item-0000000a", 4),
    ("2", "item-0000000a", 5),
    ("1", "item-0000000b", 2),
    ("2", "item-0000000b", 1),
    ("1", "item-0000000c", 5),
}
PNG = b"\x89PNG\r\n\x1a\n"


def ratings_of(table: pd.DataFrame) -> set[tuple[str, str, int]]:
    return set(zip(table.rater, table["item"], table.rating.astype(int), strict=True))


@pytest.mark.parametrize("export_format", EXPORTS)
def test_every_label_studio_export_reads_to_the_same_ratings(export_format):
    responses = read_responses(FIXTURES / EXPORTS[export_format])
    assert ratings_of(responses) == FIXTURE_RATINGS
    result = ingest([FIXTURES / EXPORTS[export_format]], FIXTURES / "key.csv")
    assert list(result.ratings.sort_values(["rater", "item"]).method) == [
        "reference",
        "sd-text",
        "attention-check",
        "reference",
        "sd-text",
    ]


def test_a_csv_export_with_embedded_images_reads(tmp_path):
    """Each row repeats its task's data URI, longer than the csv module's default field limit."""
    small, large = "data:image/png;base64,iVBORw0KGgo=", "data:image/png;base64," + "A" * 400_000
    path = tmp_path / "export.csv"
    path.write_text((FIXTURES / "export.csv").read_text().replace(small, large))
    assert ratings_of(read_responses(path)) == FIXTURE_RATINGS


# (format, file name, content) of response files that hold no rating
EMPTY = [
    ("Label Studio JSON export", "export.json", "[]"),
    ("Label Studio JSON export", "labelstudio_tasks.json", '[{"data": {"item_id": "item-1"}}]'),
    (
        "Label Studio JSON_MIN export",  # a task nobody rated, exported with "all tasks"
        "export.json",
        '[{"item_id": "item-1", "id": 4, "annotator": null, "annotation_id": null}]',
    ),
    ("Label Studio CSV export", "export.csv", '"annotator","id","item_id","rating"\r\n'),
    ("MTurk results file", "results.csv", "WorkerId,Input.item_id,Answer.rating\n"),
    ("rating sheet", "sheet.csv", "item_id,image,label,rater,rating\n"),
    ("form download", "ratings.csv", "rater,item_id,rating,shown_at,answered_at\n"),
]


@pytest.mark.parametrize(("form", "name", "content"), EMPTY, ids=[f"{f} {n}" for f, n, _ in EMPTY])
def test_a_file_without_ratings_is_an_error_naming_its_format(tmp_path, cli, form, name, content):
    path = tmp_path / name
    path.write_text(content)
    out = tmp_path / "tidy.csv"
    key = FIXTURES / "key.csv"
    code, _, err = cli("human-eval", "ingest", path, "--key", key, "--out", out)
    assert code == 2 and err.count("\n") == 1
    assert f"{path}: no ratings in this {form}" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "rating", ['[{"stars": 4}]', "[]", '[{"rating": 4}, {"rating": 5}]', '{"rating": 4}', "4"]
)
def test_a_label_studio_rating_of_another_shape_is_named(tmp_path, rating):
    path = tmp_path / "export.json"
    record = {"item_id": "item-0000000a", "annotator": 1, "rating": json.loads(rating)}
    path.write_text(json.dumps([record]))
    with pytest.raises(AudiobenchError, match=r"export\.json: item 'item-0000000a': .* is not one"):
        read_responses(path)


# --- against a real server ------------------------------------------------------------------

USER, PASSWORD = "first-rater@example.org", "audiobench-test-password"
TOKEN = "audiobench-test-token"
# Only catches a hang: the first start initialises a database, minutes on a loaded machine
START_SECONDS = 15 * 60


@dataclass(frozen=True)
class LabelStudio:
    url: str
    document_root: Path  # what the local-files route may serve from

    def fetch(self, url: str, method: str = "GET", body: object = None) -> bytes:
        """The answer to an HTTP request as the admin user (a path is on this server)."""
        request = urllib.request.Request(
            url if url.startswith("http") else self.url + url,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"},
        )
        with _DIRECT.open(request, timeout=HANG_SECONDS) as response:
            return response.read()

    def call(self, path: str, method: str = "GET", body: object = None) -> Any:
        return json.loads(self.fetch(path, method, body))

    def status(self, url: str) -> int:
        try:
            self.fetch(url)
        except urllib.error.HTTPError as error:
            return error.code
        return 200


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A Label Studio server on 127.0.0.1 for this module, stopped by its pid at the end."""
    command = os.environ.get("AUDIOBENCH_LABEL_STUDIO")
    if not command:
        pytest.skip(
            "label-studio is not installed: set AUDIOBENCH_LABEL_STUDIO to its label-studio "
            "command (.ci/run installs label-studio==1.23.2 into /opt/labelstudio)"
        )
    if not Path(command).is_file():
        pytest.fail(f"AUDIOBENCH_LABEL_STUDIO={command} is not a file")
    folder = tmp_path_factory.mktemp("labelstudio")
    port, document_root = free_port(), folder / "files"
    document_root.mkdir()
    environment = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(folder / "data"),
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
    }
    arguments = ["start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    arguments += ["--username", USER, "--password", PASSWORD, "--user-token", TOKEN]
    arguments += ["--enable-legacy-api-token"]  # 1.23 refuses `Token` authorisation otherwise
    log = folder / "server.log"
    started = time.monotonic()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [command, *arguments], stdout=output, stderr=subprocess.STDOUT, env=environment
        )
    server = LabelStudio(f"http://127.0.0.1:{port}", document_root)
    try:
        _wait_until_answering(server, process, log, started)
        print(f"Label Studio answered after {time.monotonic() - started:.0f} s")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_answering(server: LabelStudio, process, log: Path, started: float) -> None:
    while time.monotonic() - started < START_SECONDS:
        if process.poll() is not None:
            pytest.fail(f"label-studio exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if server.call("/api/current-user/whoami")["email"] == USER:
                return
        except (OSError, ValueError):  # not listening yet, or answering before it is ready
            pass
        time.sleep(1)
    pytest.fail(f"label-studio did not answer within {START_SECONDS} s:\n{log.read_text()[-3000:]}")


@dataclass(frozen=True)
class Study:
    project: int
    sheets: Path
    tasks: list[dict]
    posted: set[tuple[str, str, int]]  # (rater, item, rating) as posted


def rating_of(rater: int, row) -> int:
    """Two careful raters: they pass every attention check and prefer the reference."""
    if row.kind != "rating":
        return {"check-true": (5, 4), "check-wrong": (1, 2)}[row.kind][rater]
    return {"reference": (4, 5), "sd-text": (2, 1)}[row.method][rater]


def new_project(server: LabelStudio, sheets: Path, title: str) -> tuple[int, list[dict]]:
    """A project from an export's labelling config holding its tasks, and those tasks."""
    config = (sheets / "labelstudio_config.xml").read_text()
    project = server.call("/api/projects", "POST", {"title": title, "label_config": config})["id"]
    tasks = json.loads((sheets / "labelstudio_tasks.json").read_text())
    server.call(f"/api/projects/{project}/import", "POST", tasks)
    return project, server.call(f"/api/tasks?project={project}&page_size=1000")["tasks"]


@pytest.fixture(scope="module")
def study(label_studio, rated_runs, tmp_path_factory) -> Study:
    """The export's tasks in a project, rated by the admin and by a second user."""
    sheets = tmp_path_factory.mktemp("study") / "sheets"
    export(build_items(rated_runs, per_method=3, seed=0, attention_checks=1), sheets, "labelstudio")
    project, tasks = new_project(label_studio, sheets, "audiobench")
    second = {"email": "second-rater@example.org", "password": PASSWORD, "username": "second"}
    raters = [
        label_studio.call("/api/current-user/whoami")["id"],
        label_studio.call("/api/users/", "POST", second)["id"],
    ]
    key = pd.read_csv(sheets / "key.csv").set_index("item_id")
    posted = set()
    for index, rater in enumerate(raters):
        for task in tasks:
            item = task["data"]["item_id"]
            rating = rating_of(index, key.loc[item])
            result = {"from_name": "rating", "to_name": "image", "type": "rating"}
            body = {"result": [{**result, "value": {"rating": rating}}], "completed_by": rater}
            label_studio.call(f"/api/tasks/{task['id']}/annotations/", "POST", body)
            posted.add((str(rater), item, rating))
    return Study(project, sheets, tasks, posted)


@pytest.mark.labelstudio
def test_every_task_embeds_its_png_and_item_id(study):
    key = pd.read_csv(study.sheets / "key.csv")
    assert sorted(task["data"]["item_id"] for task in study.tasks) == sorted(key.item_id)
    for task in study.tasks:
        assert set(task["data"]) == {"image", "label", "item_id"}  # nothing names a method
        prefix, _, encoded = task["data"]["image"].partition(",")
        assert prefix == "data:image/png;base64"
        image = base64.b64decode(encoded, validate=True)
        assert image == (study.sheets / "images" / f"{task['data']['item_id']}.png").read_bytes()
        with Image.open(io.BytesIO(image)) as decoded:
            assert decoded.format == "PNG"


@pytest.mark.labelstudio
def test_every_export_format_ingests_to_the_same_table(label_studio, study, tmp_path, cli):
    tables, key = {}, study.sheets / "key.csv"
    for export_format, suffix in (("JSON", ".json"), ("JSON_MIN", ".json"), ("CSV", ".csv")):
        path = tmp_path / f"export-{export_format}{suffix}"
        url = f"/api/projects/{study.project}/export?exportType={export_format}"
        path.write_bytes(label_studio.fetch(url))
        out = tmp_path / f"ratings-{export_format}.csv"
        code, _, err = cli("human-eval", "ingest", path, "--key", key, "--out", out)
        assert code == 0, err
        table = pd.read_csv(out, dtype={"rater": str})  # every rating, attention checks too
        tables[export_format] = table.sort_values(["rater", "item"], ignore_index=True)
    assert ratings_of(tables["JSON"]) == study.posted
    pd.testing.assert_frame_equal(tables["JSON"], tables["JSON_MIN"])
    pd.testing.assert_frame_equal(tables["JSON"], tables["CSV"])
    code, out, err = cli("human-eval", "analyze", tmp_path / "ratings-JSON.csv", "--json")
    assert code == 0, err
    methods = json.loads(out)["methods"]
    assert methods["reference"]["mean"] == pytest.approx(4.5)
    assert methods["sd-text"]["mean"] == pytest.approx(1.5)
    assert methods["reference"]["n_ratings"] == methods["sd-text"]["n_ratings"] == 6


@pytest.mark.labelstudio
def test_local_files_storage_serves_the_images(label_studio, rated_runs):
    """The alternative to embedding: the images served from disk by Label Studio itself, for
    tasks that name them by the local-files URL; the storage only grants access (a sync would
    add one unlabelled task per image), and nothing outside its folder (the key) is served."""
    sheets = label_studio.document_root / "sheets"
    prefix = f"{label_studio.url}/data/local-files/?d=sheets/images/"
    items = build_items(rated_runs, per_method=2, seed=1, attention_checks=0)
    export(items, sheets, "labelstudio", prefix)
    project, tasks = new_project(label_studio, sheets, "local files")
    assert label_studio.status(tasks[0]["data"]["image"]) == 404  # no storage, no access
    storage = {"project": project, "path": str(sheets / "images"), "use_blob_urls": True}
    label_studio.call("/api/storages/localfiles", "POST", {**storage, "title": "images"})
    for task in tasks:
        item = task["data"]["item_id"]
        assert task["data"]["image"] == f"{prefix}{item}.png"
        served = label_studio.fetch(task["data"]["image"])
        assert served.startswith(PNG) and served == (sheets / "images" / f"{item}.png").read_bytes()
    assert label_studio.status(f"{label_studio.url}/data/local-files/?d=sheets/key.csv") == 404
    now = label_studio.call(f"/api/tasks?project={project}&page_size=1000")["tasks"]
    assert len(now) == len(items)


@pytest.mark.labelstudio
@pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)
def test_a_task_shows_its_picture_in_the_browser(label_studio, study, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    key = pd.read_csv(study.sheets / "key.csv").set_index("item_id")
    task = next(t for t in study.tasks if key.loc[t["data"]["item_id"], "method"] == "reference")
    with Image.open(study.sheets / "images" / f"{task['data']['item_id']}.png") as image:
        width = image.width
    driver = headless_chromium(tmp_path / "downloads", tmp_path / "profile")
    driver.set_window_size(1280, 1000)
    try:
        wait = WebDriverWait(driver, HANG_SECONDS)
        driver.get(f"{label_studio.url}/user/login/")
        driver.find_element(By.NAME, "email").send_keys(USER)
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: "/user/login" not in d.current_url)
        driver.get(f"{label_studio.url}/projects/{study.project}/data?task={task['id']}")
        shown = wait.until(lambda d: d.execute_script(SHOWN_WIDTH))
        wait.until(lambda d: task["data"]["label"] in d.find_element(By.TAG_NAME, "body").text)
        screenshot = tmp_path / "labelstudio-task.png"
        driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    assert shown == width  # the labelling area's picture is the task's image, decoded
    assert screenshot.read_bytes().startswith(PNG)
    print(f"screenshot: {screenshot}")


# The width of the picture Label Studio's labelling area decoded, 0 until it has
SHOWN_WIDTH = """
const image = document.querySelector(".lsf-image img");
return image && image.complete ? image.naturalWidth : 0;
"""
