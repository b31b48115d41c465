"""Foreign keys to the models moved from requests_app to ``experiments``: state only,
the tables and constraints are unchanged."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0014_partitions_capacity_and_quotas'),
        ('experiments', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name='campaign',
                    name='experiment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='campaigns', to='experiments.experiment'),
                ),
                migrations.AlterField(
                    model_name='dataset',
                    name='experiment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='datasets', to='experiments.experiment'),
                ),
                migrations.AlterField(
                    model_name='failurerule',
                    name='template',
                    field=models.ForeignKey(blank=True, help_text="Empty: applies to every template (after the template's own rules).", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='failure_rules', to='experiments.workflowtemplate'),
                ),
                migrations.AlterField(
                    model_name='partitionquota',
                    name='experiment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='partition_quotas', to='experiments.experiment'),
                ),
                migrations.AlterField(
                    model_name='stage',
                    name='code',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='experiments.productioncode'),
                ),
                migrations.AlterField(
                    model_name='stage',
                    name='template_stage',
                    field=models.ForeignKey(blank=True, help_text='Where the snapshot came from (for reference only).', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='experiments.stagetemplate'),
                ),
                migrations.AlterField(
                    model_name='storagearea',
                    name='experiment',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='storage_area', to='experiments.experiment'),
                ),
            ],
        ),
    ]
