"""An experiment's default backend is a batch endpoint name (experiments/endpoints.py),
checked by a validator reading the settings instead of fixed choices."""

import experiments.endpoints
import experiments.models.experiments
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('experiments', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='experiment',
            name='default_backend',
            field=models.CharField(default=experiments.models.experiments.configured_default_backend, help_text="The batch endpoint its campaigns' jobs run on unless a campaign says otherwise; new experiments start with the service's OPOS_DEFAULT_BACKEND.", max_length=32, validators=[experiments.endpoints.validate_endpoint]),
        ),
    ]
