"""Backend fields hold batch endpoint names (experiments/endpoints.py): the choices give way
to a validator reading the settings, and the names may be longer. Widening a varchar
rewrites no rows on PostgreSQL."""

import experiments.endpoints
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0015_experiments_moved'),
    ]

    operations = [
        migrations.AlterField(
            model_name='campaign',
            name='backend',
            field=models.CharField(max_length=32, validators=[experiments.endpoints.validate_endpoint]),
        ),
        migrations.AlterField(
            model_name='job',
            name='backend',
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AlterField(
            model_name='partition',
            name='backend',
            field=models.CharField(default='slurm', max_length=32, validators=[experiments.endpoints.validate_endpoint]),
        ),
        migrations.AlterField(
            model_name='submission',
            name='backend',
            field=models.CharField(max_length=32),
        ),
    ]
