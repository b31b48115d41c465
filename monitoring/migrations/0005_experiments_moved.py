"""Foreign keys to the models moved from requests_app to ``experiments``: state only,
the tables and constraints are unchanged."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('experiments', '0001_initial'),
        ('monitoring', '0004_weekly_report'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.AlterField(
                    model_name='allocation',
                    name='experiment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='allocations', to='experiments.experiment'),
                ),
                migrations.AlterField(
                    model_name='commitment',
                    name='experiment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='experiments.experiment'),
                ),
                migrations.AlterField(
                    model_name='statusreport',
                    name='experiment',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='status_reports', to='experiments.experiment'),
                ),
            ],
        ),
    ]
