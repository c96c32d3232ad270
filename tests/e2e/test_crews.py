"""Crews in a real browser, one journey: records, a crew ordered by dragging, a streamed test run, export and import.

The run uses the bundled local model (SmolLM2-135M through llama.cpp), the provider every
new workspace starts with: the crew runs offline, as on a fresh install. It is slow on a
small machine (10-20 s a task on two cores), so the crew has two short tasks and the run
gets a generous timeout. What streams and when, deterministically, is checked in
tests/ui/test_crews.py against the scripted LLM server; here it is the real thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Account, LiveApp

pytestmark = pytest.mark.e2e

RUN_TIMEOUT_MS = 240_000  # two tasks on the local model, on a busy machine
SAVE_TIMEOUT_MS = 30_000
STREAMING_WHILE_RUNNING = """() => {
    const reply = document.querySelector('[data-testid="crew-test-reply"]');
    const status = document.querySelector('[data-testid="crew-test-status"]');
    return !!reply && reply.textContent.trim().length > 0 && !!status && status.textContent.trim() === 'running';
}"""


def pick(page: Page, select_testid: str, option: str) -> None:
    """Choose the option whose text starts with `option` in a NiceGUI (Quasar) select."""
    page.get_by_test_id(select_testid).click()
    page.get_by_role("option", name=re.compile(f"^{re.escape(option)}")).first.click()
    page.keyboard.press("Escape")  # a multiple select stays open


def add_task(page: Page, name: str) -> None:
    """Add a task to the crew with the editor's searchable picker."""
    page.get_by_test_id("crew-task-add-select").fill(name)  # Quasar puts the test id on the select's input
    page.get_by_role("option", name=name, exact=True).click()
    expect(page.locator(f'[data-testid="crew-task"][data-task="{name}"]')).to_be_visible()


def task_rows(page: Page) -> list[str]:
    rows = page.get_by_test_id("crew-task")
    return [rows.nth(i).get_attribute("data-task") or "" for i in range(rows.count())]


def row_handle(page: Page, task: str) -> str:
    return f'[data-testid="crew-task"][data-task="{task}"] [draggable="true"]'


def create_agent(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/agents/new")
    page.get_by_test_id("agent-name").fill("helper")
    page.get_by_test_id("agent-role").fill("Helpful assistant")
    page.get_by_test_id("agent-goal").fill("Answer questions about {topic} briefly")
    page.get_by_test_id("agent-submit").click()
    page.wait_for_url(re.compile(r"/agents/[0-9a-f-]{36}$"), timeout=SAVE_TIMEOUT_MS)


def create_task(page: Page, base_url: str, name: str, description: str, context: str | None = None) -> None:
    page.goto(f"{base_url}/tasks/new")
    page.get_by_test_id("task-name").fill(name)
    page.get_by_test_id("task-description").fill(description)
    page.get_by_test_id("task-expected_output").fill("One short sentence.")
    pick(page, "task-agent_id", "helper")
    if context is not None:
        pick(page, "task-context_ids", context)
    page.get_by_test_id("task-submit").click()
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"), timeout=SAVE_TIMEOUT_MS)


def test_build_reorder_run_export_and_import_a_crew(
    live_app: LiveApp, page: Page, other_page: Page, sign_up: Callable[..., Account], tmp_path: Path
) -> None:
    base = live_app.base_url
    sign_up(page)
    create_agent(page, base)
    create_task(page, base, "facts", "Name one fact about {topic}.")
    create_task(page, base, "summary", "Say one sentence about {topic}.", context="facts")

    # A new crew, its tasks added in the wrong order: the live check says why it cannot run.
    page.goto(f"{base}/crews/new")
    page.get_by_test_id("crew-name").fill("trivia")
    for name in ("summary", "facts"):
        add_task(page, name)
    expect(page.get_by_test_id("crew-task")).to_have_count(2)
    assert task_rows(page) == ["summary", "facts"]
    expect(page.get_by_test_id("crew-problems")).to_contain_text("task 'facts' runs later")
    expect(page.get_by_test_id("crew-agent_ids")).to_contain_text("helper")  # came with its tasks

    # Dragging facts onto summary's place puts it first; nothing stops the crew then.
    page.locator(row_handle(page, "facts")).drag_to(page.locator(row_handle(page, "summary")))
    expect(page.get_by_test_id("crew-task").first).to_have_attribute("data-task", "facts")
    assert task_rows(page) == ["facts", "summary"]
    expect(page.get_by_test_id("crew-no-problems")).to_be_visible()
    page.get_by_test_id("crew-submit").click()
    page.wait_for_url(re.compile(r"/crews/[0-9a-f-]{36}$"), timeout=SAVE_TIMEOUT_MS)
    crew_url = page.url
    page.reload()
    expect(page.get_by_test_id("page-title")).to_have_text("Crew trivia")
    expect(page.get_by_test_id("crew-task")).to_have_count(2)
    assert task_rows(page) == ["facts", "summary"]
    expect(page.get_by_test_id("crew-placeholders")).to_contain_text("topic")

    # Test: the reply streams while the run goes on, then the final answer comes.
    page.get_by_test_id("crew-test-input-topic").fill("the moon")
    page.get_by_test_id("crew-test-run").click()
    expect(page.get_by_test_id("crew-test-cancel")).to_be_visible()
    page.wait_for_function(STREAMING_WHILE_RUNNING, timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("crew-test-steps")).to_contain_text("Task facts started")
    expect(page.get_by_test_id("crew-test-status")).to_have_text("completed", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("crew-test-answer")).to_be_visible()
    expect(page.get_by_test_id("crew-test-answer")).not_to_be_empty()
    expect(page.get_by_test_id("crew-test-error")).to_be_hidden()
    expect(page.get_by_test_id("crew-test-steps")).to_contain_text("Task summary done")
    expect(page.get_by_test_id("crew-test-cancel")).to_be_hidden()

    # Export the CrewAI project ...
    with page.expect_download() as download:
        page.get_by_test_id("crew-export").click()
    project = tmp_path / download.value.suggested_filename
    download.value.save_as(project)
    assert project.name == "trivia.zip"

    # ... and import it into another person's workspace, where the crew runs on their records.
    sign_up(other_page)
    other_page.goto(f"{base}/crews")
    other_page.get_by_test_id("crews-import").click()
    other_page.get_by_test_id("crews-import-upload").locator("input[type=file]").set_input_files(project)
    report = other_page.get_by_test_id("crews-import-report")
    expect(report).to_contain_text("Created crew trivia (sequential).", timeout=SAVE_TIMEOUT_MS)
    expect(other_page.get_by_test_id("crews-import-tasks")).to_contain_text("facts")
    expect(other_page.get_by_test_id("crews-import-agents")).to_contain_text("helper")
    other_page.get_by_test_id("crews-import-open").click()
    other_page.wait_for_url(re.compile(r"/crews/[0-9a-f-]{36}$"))
    assert other_page.url != crew_url
    expect(other_page.get_by_test_id("page-title")).to_have_text("Crew trivia")
    expect(other_page.get_by_test_id("crew-task")).to_have_count(2)
    assert task_rows(other_page) == ["facts", "summary"]
    other_page.goto(f"{base}/crews")
    expect(other_page.locator('[data-testid="crew-row"][data-name="trivia"]')).to_be_visible()
