"""``opos experiments placement``, ``opos campaigns placement`` and ``opos partitions``
against the live server: each change reaches the API, is recorded, and refusals keep the
exit codes (1 refused by the server, 2 usage error)."""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.models import Campaign, CampaignEvent, Partition, PartitionQuota
from experiments.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_experiment_placement_shown_changed_and_refused(cli, live_server, dune):
    cli.login(live_server.url, "op")
    shown = cli("experiments", "placement", "dune")
    assert shown.code == 0, shown.err
    assert "partition    (default)" in shown.out
    changed = cli(
        "experiments",
        "placement",
        "dune",
        "--partition",
        "spare",
        "--avoid",
        "debug, gpu",
        "--json",
    )
    assert changed.code == 0, changed.err
    body = changed.json()
    assert body["batch_partition"] == "spare" and body["changed"]["batch_avoid_partitions"] == [
        "",
        "debug, gpu",
    ]
    dune.experiment.refresh_from_db()
    assert dune.experiment.avoided_partitions == ["debug", "gpu"]
    assert AuditEvent.objects.filter(action="change_experiment_placement").count() == 1
    # Its own partition also one to avoid: refused by the server, named, exit 1.
    refused = cli("experiments", "placement", "dune", "--avoid", "spare")
    assert refused.code == 1 and "batch_avoid_partitions" in refused.err
    # Back to the default with an empty value.
    reset = cli("experiments", "placement", "dune", "--partition", "")
    assert reset.code == 0 and "partition    (default) (changed)" in reset.out


def test_members_cannot_change_the_placement(cli, live_server, dune):
    cli.login(live_server.url, "liaison")
    refused = cli("experiments", "placement", "dune", "--qos", "high")
    assert refused.code == 1 and "operators" in refused.err


def test_campaign_placement(cli, live_server, dune):
    Campaign.objects.create(
        experiment=dune.experiment,
        name="MCC6",
        deadline=dt.date.today() + dt.timedelta(days=40),
        backend="slurm",
    )
    cli.login(live_server.url, "op")
    done = cli("campaigns", "placement", "MCC6", "--partition", "spare", "--qos", "high")
    assert done.code == 0, done.err
    assert "partition    spare (changed)" in done.out
    campaign = Campaign.objects.get(name="MCC6")
    assert (campaign.batch_partition, campaign.batch_qos) == ("spare", "high")
    assert CampaignEvent.objects.filter(campaign=campaign, kind="edited").exists()


def test_partitions_set_quota_list_remove(cli, live_server, dune):
    cli.login(live_server.url, "op")
    made = cli("partitions", "set", "spare", "--capacity", "40", "-m", "new nodes")
    assert made.code == 0, made.err
    assert made.out.startswith("slurm:spare  capacity 40, in flight 0")
    again = cli("partitions", "set", "spare", "--capacity", "30")
    assert again.code == 0 and Partition.objects.get().capacity == 30
    quota = cli("partitions", "quota", "spare", "dune", "--max-jobs", "20", "--share", "50")
    assert quota.code == 0, quota.err
    assert "dune: at most 20 jobs and 50 % of the capacity (limit 15)" in quota.out
    listed = cli("partitions", "list", "--json")
    assert listed.code == 0 and listed.json()[0]["quotas"][0]["limit"] == 15
    usage = cli("partitions", "quota", "spare", "dune")
    assert usage.code == 2 and "--max-jobs" in usage.err  # nothing sent
    bad = cli("partitions", "quota", "spare", "dune", "--share", "150")
    assert bad.code == 1 and "share_pct" in bad.err
    cleared = cli("partitions", "quota", "spare", "dune", "--clear")
    assert cleared.code == 0 and not PartitionQuota.objects.exists()
    missing = cli("partitions", "quota", "gpu", "dune", "--max-jobs", "1")
    assert missing.code == 1 and "no partition slurm:gpu" in missing.err
    removed = cli("partitions", "remove", "spare", "-m", "decommissioned")
    assert removed.code == 0 and not Partition.objects.exists()
    assert AuditEvent.objects.get(action="remove_partition").data["reason"] == "decommissioned"
