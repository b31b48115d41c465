"""Journey 6: the liaison finds the catalogue from the navigation, invalidates a bad file
with a reason (ticked on the dataset's page, confirmed on its own page), closes the
dataset, and sees both on the dataset's page; a physicist of the experiment sees the
states but no action. No script, no inline style: the CSP checks stay quiet."""

import pytest

from campaigns.execution.catalogue import define_dataset
from campaigns.models import Dataset, OutputFile
from experiments.models import AuditEvent

from .world import build_world

pytestmark = pytest.mark.browser

FILES = [
    {"name": f"flux_{i}.root", "size": 1000 + i, "checksum": f"{i:064x}", "events": 10}
    for i in range(3)
]


def test_liaison_invalidates_a_file_and_closes_the_dataset(journey):
    world = build_world()
    dataset = define_dataset(world.liaison, world.dune, "dune:flux-v1", "beam flux", FILES)

    tab = journey.tab("liaison")
    page = tab.page
    tab.sign_in("liam")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    tab.arrived("datasets")
    page.get_by_role("link", name="dune:flux-v1").click()
    tab.arrived("dataset")

    page.get_by_label("Pick flux_1.root").check()
    page.get_by_role("button", name="Invalidate the ticked files").click()
    tab.arrived("invalidate files")
    assert "flux_1.root" in page.locator("#picked-files").inner_text()
    page.get_by_label("Reason").fill("Beam monitor miscalibrated for this file.")
    with page.expect_navigation():
        page.get_by_role("button", name="Invalidate files").click()
    tab.arrived()
    assert "1 files invalidated" in page.locator(".messages").inner_text()
    row = page.locator("tbody tr", has_text="flux_1.root")
    assert "invalid" in row.inner_text() and "Beam monitor" in row.inner_text()
    assert "2 valid files" in page.locator(".page-head").inner_text()

    page.get_by_role("link", name="Close").click()
    tab.arrived("close dataset")
    page.get_by_label("Reason").fill("All runs of the period are in.")
    with page.expect_navigation():
        page.get_by_role("button", name="Close").click()
    tab.arrived()
    assert "dune:flux-v1 is closed (complete)." in page.locator(".messages").inner_text()
    assert "All runs of the period are in." in page.locator("#dataset-state-reason").inner_text()
    assert Dataset.objects.get(pk=dataset.pk).state == "closed"
    assert OutputFile.objects.get(dataset=dataset, name="flux_1.root").invalidated is not None
    assert AuditEvent.objects.filter(target="dune:flux-v1").count() == 2

    reader = journey.tab("physicist")
    reader.sign_in("phoebe")
    reader.visit(f"/campaigns/datasets/{dataset.pk}/", "dataset as a physicist")
    assert reader.page.get_by_role("link", name="Close").count() == 0
    assert reader.page.locator('input[name="file"]').count() == 0

    journey.finish()
